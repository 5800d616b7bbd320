//! The fuzz targets' bodies. `fuzz_targets/*.rs` call these; the workspace's
//! `tests` crate includes this file to replay the seed corpus on stable.
//! Each function panics only when an invariant is broken.

use uploadtask_http1::{body_framing, BodyDecoder, BodyKind, Limits, ParseStatus, ResponseHeadParser};
use uploadtask_multipart::{Chunk, FilePart, Form};

/// Splits `data` into pieces at the offsets its first byte chooses, for
/// checking that incremental input gives the one-shot result.
fn cut_points(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&step, rest)) => (usize::from(step % 17) + 1, rest),
        None => (1, data),
    }
}

/// Response head, framing and body decoding on arbitrary bytes, fed whole
/// and in pieces: both must agree.
pub fn response_head(data: &[u8]) {
    let (step, wire) = cut_points(data);
    let whole = read_response(wire, wire.len().max(1));
    let pieces = read_response(wire, step);
    assert_eq!(whole, pieces, "split at every {step} bytes changed the result");
}

type Outcome = Result<(u16, usize, Vec<u8>), String>;

fn read_response(wire: &[u8], step: usize) -> Option<Outcome> {
    let limits = Limits {
        max_head_bytes: 4096,
        max_body_bytes: 1 << 16,
        ..Limits::default()
    };
    let mut parser = ResponseHeadParser::new(limits);
    let mut buf = Vec::new();
    let mut fed = 0;
    let (head, mut rest) = 'head: loop {
        if fed >= wire.len() {
            return None;
        }
        let end = (fed + step).min(wire.len());
        buf.extend_from_slice(&wire[fed..end]);
        fed = end;
        loop {
            match parser.parse(&buf) {
                Err(e) => return Some(Err(e.to_string())),
                Ok(ParseStatus::Partial) => break,
                Ok(ParseStatus::Interim { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    buf.drain(..consumed);
                }
                Ok(ParseStatus::Complete { head, consumed }) => {
                    assert!(consumed <= buf.len());
                    buf.drain(..consumed);
                    break 'head (head, buf);
                }
            }
        }
    };
    let framing = match body_framing(&head) {
        Ok(f) => f,
        Err(e) => return Some(Err(e.to_string())),
    };
    if let BodyKind::Length(n) = framing.kind {
        assert!(head.values("content-length").count() > 0 || n == 0);
    }
    rest.extend_from_slice(&wire[fed..]);
    let mut decoder = BodyDecoder::new(framing.kind, &limits);
    let mut body = Vec::new();
    let mut at = 0;
    while at < rest.len() && !decoder.is_done() {
        let end = (at + step).min(rest.len());
        let mut piece = &rest[at..end];
        while !piece.is_empty() && !decoder.is_done() {
            let decoded = match decoder.decode(piece) {
                Ok(d) => d,
                Err(e) => return Some(Err(e.to_string())),
            };
            body.extend_from_slice(&piece[decoded.body.clone()]);
            piece = &piece[decoded.consumed..];
            at += decoded.consumed;
            if decoded.consumed == 0 {
                break;
            }
        }
        if !piece.is_empty() {
            break;
        }
    }
    assert_eq!(decoder.received(), body.len() as u64);
    if !decoder.is_done() {
        if let Err(e) = decoder.handle_eof() {
            return Some(Err(e.to_string()));
        }
    }
    Some(Ok((head.status, head.headers.len(), body)))
}

/// Chunked decoding on arbitrary bytes: whole and in pieces must agree, and
/// the decoder never reports bytes outside its input.
pub fn chunked(data: &[u8]) {
    let (step, wire) = cut_points(data);
    let run = |step: usize| {
        let mut decoder = uploadtask_http1::ChunkedDecoder::new(&Limits::default());
        let mut body = Vec::new();
        let mut pending = Vec::new();
        for piece in wire.chunks(step) {
            pending.extend_from_slice(piece);
            while !decoder.is_done() {
                let decoded = decoder.decode(&pending).map_err(|e| e.to_string())?;
                assert!(decoded.consumed <= pending.len() && decoded.body.end <= decoded.consumed);
                body.extend_from_slice(&pending[decoded.body]);
                pending.drain(..decoded.consumed);
                if decoded.consumed == 0 {
                    break;
                }
            }
        }
        Ok::<_, String>((body, decoder.is_done(), pending.len()))
    };
    assert_eq!(run(wire.len().max(1)), run(step));
}

/// Request head and multipart writer on arbitrary strings: either refused,
/// or the head parses back with httparse to the same headers, and the body
/// is exactly `content_length` bytes.
pub fn request_multipart(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\u{1}');
    let url = format!("http://h.example/{}", fields.next().unwrap_or(""));
    let Ok(target) = uploadtask_http1::Target::parse(&url) else {
        return;
    };
    let mut headers = Vec::new();
    let mut form = Form::new();
    for (i, field) in fields.enumerate() {
        let (name, value) = field.split_once('\u{2}').unwrap_or((field, ""));
        match i % 3 {
            0 => headers.push((name, value)),
            1 => form = form.text(name, value),
            _ => form = form.file(FilePart::new(name, value, value.len() as u64)),
        }
    }
    let Ok(body) = form.build() else { return };
    let mut head = Vec::new();
    let written = uploadtask_http1::RequestHead::new(&target, body.content_type(), body.content_length())
        .headers(headers.iter().copied())
        .write(&mut head);
    if written.is_err() {
        assert!(head.is_empty(), "a refused head leaves the buffer alone");
        return;
    }
    let mut parsed = [httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut parsed);
    let status = request.parse(&head).expect("written head parses");
    assert_eq!(status, httparse::Status::Complete(head.len()));
    let get = |name: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect::<Vec<_>>()
    };
    assert_eq!(get("content-length"), [body.content_length().to_string().as_bytes()]);
    assert_eq!(get("content-type"), [body.content_type().as_bytes()]);
    for (name, value) in &headers {
        let role = uploadtask_http1::request::check_header(name, value).expect("head was accepted");
        if role == uploadtask_http1::request::HeaderRole::Plain {
            assert!(get(name).contains(&value.trim_matches([' ', '\t']).as_bytes()));
        }
    }
    let mut cursor = body.cursor();
    let mut total = 0u64;
    while let Some(chunk) = body.chunk(&cursor) {
        let n = match chunk {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File { len, .. } => len,
        };
        assert!(n > 0);
        total += n;
        cursor.advance(&body, n);
    }
    assert_eq!(total, body.content_length());
}
