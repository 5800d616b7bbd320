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
                Ok(ParseStatus::Interim { consumed, .. }) => {
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

/// Reads little-endian numbers and bytes from the front of fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
}

/// A response built from the input, with what a correct client must make
/// of it: `Some((status, body))`, or `None` for raw garbage (only "no panic,
/// one outcome" holds then).
fn scripted_response(input: &mut Input<'_>) -> (Vec<u8>, Option<(u16, Vec<u8>)>) {
    let mode = input.byte();
    if mode % 5 == 4 {
        let len = usize::from(input.byte());
        let raw: Vec<u8> = (0..len).map(|_| input.byte()).collect();
        return (raw, None);
    }
    let status = [200, 201, 202, 400, 404, 413, 500, 503][usize::from(mode >> 4) % 8];
    let body_len = usize::from(input.byte()) * 3;
    let body: Vec<u8> = (0..body_len).map(|i| (i * 7 + usize::from(mode)) as u8).collect();
    let mut wire = format!("HTTP/1.1 {status} Whatever\r\nX-A: b\r\n").into_bytes();
    if mode % 5 < 2 {
        wire.extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
        wire.extend_from_slice(&body);
    } else {
        wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let mut at = 0;
        while at < body.len() {
            let size = (usize::from(input.byte()) + 1).min(body.len() - at);
            wire.extend_from_slice(format!("{size:x}\r\n").as_bytes());
            wire.extend_from_slice(&body[at..at + size]);
            wire.extend_from_slice(b"\r\n");
            at += size;
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    }
    (wire, Some((status, body)))
}

/// The exchange and pump over a scripted transport whose writes (short,
/// zero, `WouldBlock`, resets) and reads (any split, `WouldBlock`, EOF,
/// reset) come from the input. Independent oracles: the bytes written are a
/// prefix of head + body (all of it when a response below 400 arrives
/// whole); progress rises and never passes the body bytes accepted; there
/// is one outcome at most; an `Ok` equals the response that was scripted.
pub fn exchange(data: &[u8]) {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
    use uploadtask_engine::exchange::Exchange;
    use uploadtask_engine::pump::{pump_read, pump_write, Scratch};
    use uploadtask_engine::scripted::{ReadStep, ScriptedTransport, WriteStep};
    use uploadtask_engine::{BodySource, MemorySource};

    let mut input = Input(data);
    let file_len = usize::from(input.u16() % 4096);
    let file: Vec<u8> = (0..file_len).map(|i| (i % 251) as u8).collect();
    let body = Form::new()
        .text("k", "v")
        .file(FilePart::new("f", "x.bin", file_len as u64))
        .boundary("BND")
        .build()
        .expect("a fixed form frames");
    let head = b"POST /up HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
    let mut expected = head.clone();
    let mut cursor = body.cursor();
    while let Some(chunk) = body.chunk(&cursor) {
        let n = match chunk {
            Chunk::Bytes(b) => {
                expected.extend_from_slice(b);
                b.len() as u64
            }
            Chunk::File { offset, len, .. } => {
                expected.extend_from_slice(&file[offset as usize..(offset + len) as usize]);
                len
            }
        };
        cursor.advance(&body, n);
    }
    let total = body.content_length();
    let (response, scripted) = scripted_response(&mut input);
    let mut writes = Vec::new();
    for _ in 0..input.byte() % 64 {
        let b = input.byte();
        writes.push(match b % 16 {
            0 => WriteStep::WouldBlock,
            1 => WriteStep::Accept(0),
            2 if b > 200 => WriteStep::Fail(ConnectionReset),
            3 if b > 200 => WriteStep::Fail(BrokenPipe),
            _ => WriteStep::Accept(usize::from(b) * 5 + 1),
        });
    }
    let mut reads = Vec::new();
    let mut at = 0;
    while at < response.len() {
        if input.0.is_empty() {
            reads.push(ReadStep::Data(response[at..].to_vec()));
            at = response.len();
            break;
        }
        let b = input.byte();
        match b % 8 {
            0 => reads.push(ReadStep::WouldBlock),
            1 if b > 240 => {
                reads.push(ReadStep::Fail(ConnectionReset));
                break;
            }
            _ => {
                let n = (usize::from(b) + 1).min(response.len() - at);
                reads.push(ReadStep::Data(response[at..at + n].to_vec()));
                at += n;
            }
        }
    }
    let whole_response = at == response.len();
    if input.byte() % 4 == 0 {
        reads.push(ReadStep::Eof);
    }
    let mut transport = ScriptedTransport::new(writes, reads);
    let sources: Vec<Box<dyn BodySource>> = vec![Box::new(MemorySource(file.into()))];
    let mut exchange = Exchange::new(head.clone(), body, uploadtask_http1::Limits::default());
    let mut scratch = Scratch::new(usize::from(input.byte()) * 16 + 1);
    let mut read_buf = vec![0u8; usize::from(input.byte()) + 1];
    let now = std::time::Instant::now();
    let mut last_progress = 0;
    let mut outcome = None;
    for _ in 0..20_000 {
        let written = pump_write(1, &mut exchange, &mut transport, &sources, &mut scratch, 300);
        assert!(written.is_ok(), "a memory source never changes size: {written:?}");
        pump_read(&mut exchange, &mut transport, &mut read_buf);
        let accepted_body = (transport.written.len() as u64).saturating_sub(head.len() as u64);
        while let Some(p) = exchange.poll_progress(now) {
            assert!(p.total_bytes_sent > last_progress, "progress must rise");
            assert!(
                p.total_bytes_sent <= accepted_body,
                "progress ahead of what was accepted"
            );
            assert_eq!(p.total_bytes_expected_to_send, total);
            last_progress = p.total_bytes_sent;
        }
        if let Some(o) = exchange.poll_outcome() {
            outcome = Some(o);
            break;
        }
    }
    assert!(exchange.poll_outcome().is_none(), "one outcome only");
    assert!(
        expected.starts_with(&transport.written),
        "written bytes are not head + body"
    );
    if let (Some(Ok(response)), Some((status, body))) = (&outcome, &scripted) {
        assert_eq!((response.status, &response.body), (*status, body));
        if *status < 400 && whole_response {
            assert_eq!(transport.written.len(), expected.len(), "the whole request went out");
            assert_eq!(last_progress, total);
        }
    }
}

/// Characters that need care in names and values. Not the backslash: it
/// goes raw, as browsers and curl (without `--form-escape`) send it
///, while multer reads RFC 822 quoted-pairs, so a trailing `\`
/// swallows the closing quote there: a difference between parsers, found by
/// this target, not a framing error.
const ALPHABET: &[char] = &[
    'a', 'Z', '0', ' ', '"', '\r', '\n', '-', '_', '.', 'é', '😀', ';', '=', '/', '%',
];

fn text(input: &mut Input<'_>) -> String {
    (0..input.byte() % 12)
        .map(|_| ALPHABET[usize::from(input.byte()) % ALPHABET.len()])
        .collect()
}

/// A part as multer reads it back.
#[derive(Debug, PartialEq)]
struct Parsed {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

fn parse_with_multer(wire: Vec<u8>, boundary: &str) -> Result<Vec<Parsed>, multer::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes::Bytes::from(wire)) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await? {
            let name = field.name().unwrap_or("").to_string();
            let filename = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(|m| m.to_string());
            let bytes = field.bytes().await?.to_vec();
            parts.push(Parsed {
                name,
                filename,
                content_type,
                bytes,
            });
        }
        Ok(parts)
    })
}

/// A whole request from fuzzed URL, names, values, types and boundary,
/// parsed back by independent parsers: the request line and `Host` against
/// the `url` crate (httparse), the body by `multer`, byte for byte.
pub fn multipart_roundtrip(data: &[u8]) {
    let mut input = Input(data);
    let path: String = text(&mut input).chars().filter(|c| !c.is_control()).collect();
    let port = input.u16();
    let url = format!("http://Example.COM:{port}/{path}?q={}", input.byte());
    let Ok(target) = uploadtask_http1::Target::parse(&url) else {
        return;
    };
    let parsed_url = url::Url::parse(&url).expect("the engine took it, so the url crate does");
    let mut form = Form::new();
    let mut expected = Vec::new();
    let mut contents = Vec::new();
    let escape = |s: &str| s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A");
    for _ in 0..input.byte() % 4 {
        let (name, value) = (text(&mut input), text(&mut input));
        form = form.text(name.clone(), value.clone());
        expected.push(Parsed {
            name: escape(&name),
            filename: None,
            content_type: None,
            bytes: value.into_bytes(),
        });
    }
    for i in 0..input.byte() % 3 {
        let (name, filename) = (text(&mut input), text(&mut input));
        let bytes: Vec<u8> = (0..input.byte()).map(|j| j.wrapping_mul(i + 3)).collect();
        let mut part = FilePart::new(name.as_str(), filename.as_str(), bytes.len() as u64);
        let typed = input.byte() % 2 == 0;
        if typed {
            part = part.content_type("text/plain; charset=utf-8");
        }
        form = form.file(part);
        let base = uploadtask_multipart::basename(&filename);
        expected.push(Parsed {
            name: escape(&name),
            filename: Some(escape(base)),
            content_type: Some(if typed {
                "text/plain; charset=utf-8".to_string()
            } else {
                mime_guess::from_path(base).first_or_octet_stream().to_string()
            }),
            bytes: bytes.clone(),
        });
        contents.push(bytes);
    }
    let boundary: String = (0..input.byte() % 80)
        .map(|_| ['a', 'B', '7', '-', '_', '\'', '(', '+', ' ', '='][usize::from(input.byte()) % 10])
        .collect();
    if !boundary.is_empty() {
        form = form.boundary(boundary);
    }
    let Ok(body) = form.build() else { return };
    let mut head = Vec::new();
    uploadtask_http1::RequestHead::new(&target, body.content_type(), body.content_length())
        .write(&mut head)
        .expect("a head with no user headers is written");
    let mut parsed = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut parsed);
    assert_eq!(request.parse(&head), Ok(httparse::Status::Complete(head.len())));
    let mut line = parsed_url.path().to_string();
    if let Some(query) = parsed_url.query() {
        line = format!("{line}?{query}");
    }
    assert_eq!((request.method, request.path), (Some("POST"), Some(line.as_str())));
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .expect("Host");
    let want_host = match parsed_url.port() {
        Some(port) => format!("{}:{port}", parsed_url.host_str().unwrap_or("")),
        None => parsed_url.host_str().unwrap_or("").to_string(),
    };
    assert_eq!(host.value, want_host.as_bytes());
    let mut wire = Vec::new();
    let mut cursor = body.cursor();
    while let Some(chunk) = body.chunk(&cursor) {
        let n = match chunk {
            Chunk::Bytes(b) => {
                wire.extend_from_slice(b);
                b.len() as u64
            }
            Chunk::File { part, offset, len } => {
                wire.extend_from_slice(&contents[part][offset as usize..(offset + len) as usize]);
                len
            }
        };
        cursor.advance(&body, n);
    }
    assert_eq!(wire.len() as u64, body.content_length());
    let parts = parse_with_multer(wire, body.boundary()).expect("multer parses what we frame");
    assert_eq!(parts, expected);
}

/// Removes the fixture tree of `internal_paths` (the stable replay calls it).
pub fn remove_fixture() {
    let base = std::env::temp_dir().join(format!("uploadtask-fuzz-paths-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(base);
}

/// A fixture tree for `internal_paths`, made once per process: a root with
/// files, a directory, symlinks that stay inside (relative) and lead out
/// (relative and absolute), and a file outside.
fn fixture() -> &'static (std::path::PathBuf, uploadtask::Roots) {
    static FIXTURE: std::sync::OnceLock<(std::path::PathBuf, uploadtask::Roots)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("uploadtask-fuzz-paths-{}", std::process::id()));
        let root = base.join("root");
        let _ = std::fs::create_dir_all(root.join("d/e"));
        let _ = std::fs::write(root.join("a"), b"a");
        let _ = std::fs::write(root.join("d/b"), b"b");
        let _ = std::fs::write(root.join("d/e/c"), b"c");
        let _ = std::fs::write(base.join("secret"), b"s");
        for (link, to) in [
            ("in", "d/b"),
            ("d/up", "../a"),
            ("out", "../secret"),
            ("d/far", "../../secret"),
            ("abs", "/etc/hostname"),
            ("dirlink", "d"),
            ("outdir", ".."),
        ] {
            let _ = std::os::unix::fs::symlink(to, root.join(link));
        }
        let root = std::fs::canonicalize(&root).expect("fixture root");
        let roots = uploadtask::Roots::new().root("r", &root);
        (root, roots)
    })
}

/// `internal://` resolution over the fixture tree: whatever the path, an
/// accepted one opens a file whose real path lies under its root; a refused
/// one is refused with 202 (the path) or 300 (the file), nothing else.
pub fn internal_paths(data: &[u8]) {
    const PIECES: &[&str] = &[
        "a", "d", "b", "e", "c", "in", "up", "out", "far", "abs", "dirlink", "outdir", "..", ".", "/", "%2e", "%2f",
        "%2E%2e", "\\", "%00", "secret", "x", "%5c", "//",
    ];
    let path: String = data.iter().map(|b| PIECES[usize::from(*b) % PIECES.len()]).collect();
    let (root, roots) = fixture();
    match roots.open(&format!("internal://r/{path}")) {
        Ok(source) => {
            let file = source.file().expect("a file source");
            let real = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file)))
                .expect("/proc/self/fd");
            assert!(
                real.starts_with(root),
                "internal://r/{path} opened {} outside {}",
                real.display(),
                root.display()
            );
        }
        Err(error) => assert!(matches!(error.code(), 202 | 300), "internal://r/{path}: {error}"),
    }
}

/// A resumable session fed arbitrary answers (statuses, headers,
/// 104s, failures): it never panics, the offset never passes the length,
/// every request stays inside the body and within the piece size, a `Fail`
/// is a protocol error, and a success is only ever a final 2xx answer to
/// the request that completed the upload (ietf: one that carried the end
/// of the body with `Upload-Complete: ?1`, or the plain fallback with the
/// whole body; tus: an answer whose offset is the length). The same bytes
/// go to the 104 head parser and the sock_diag answer parser.
pub fn resumable(data: &[u8]) {
    use uploadtask_engine::resumable::{Answer, Next, Protocol, Resumable, Session};
    let _ = uploadtask_http1::response::interim_headers(data, &Limits::default());
    let _ = uploadtask_engine::sendq::parse_reply(7, data);
    let mut input = Input(data);
    let flags = input.byte();
    let length = u64::from(input.u16());
    let chunk = match input.byte() {
        0 => None,
        n => Some(u64::from(n)),
    };
    let config = Resumable {
        protocol: match (flags & 1, flags & 16) {
            (_, 16) => Protocol::Gcs,
            (0, _) => Protocol::Tus,
            _ => Protocol::Ietf,
        },
        upload_url: (flags & 2 != 0).then(|| "http://127.0.0.1:1/files/known".to_string()),
        chunk_size: chunk,
        checksum: flags & 4 != 0,
        creation_with_upload: flags & 8 != 0,
        metadata: vec![("filename".into(), "a b.txt".into())],
    };
    let mut session = Session::new(config, "http://127.0.0.1:1/files/", length, &[]);
    for _ in 0..64 {
        if input.0.is_empty() {
            break;
        }
        let step = session.poll_step();
        assert!(
            step.start.checked_add(step.len).is_some_and(|end| end <= length),
            "{step:?}"
        );
        assert!(url::Url::parse(&step.url).is_ok(), "{}", step.url);
        session.handle_sent(&step);
        let kind = input.byte();
        let count = usize::from(input.byte() % 4);
        let mut headers = uploadtask_http1::Headers::new();
        for _ in 0..count {
            let name = [
                "Location",
                "Upload-Offset",
                "Upload-Complete",
                "Upload-Limit",
                "Upload-Draft-Interop-Version",
                "Upload-Expires",
                "Tus-Resumable",
                "Range",
            ][usize::from(input.byte()) % 8];
            let len = usize::from(input.byte() % 24).min(input.0.len());
            let (value, rest) = input.0.split_at(len);
            input.0 = rest;
            headers.push(name, value);
        }
        let mut status = 0;
        let next = match kind % 4 {
            0 => session.handle_failure(),
            1 => match session.handle_interim(104, &headers) {
                Some(next) => next,
                None => continue,
            },
            _ => {
                status = 100 + input.u16() % 500;
                session.handle_answer(&Answer {
                    status,
                    headers: &headers,
                    unix_time: u64::from(input.u16()),
                })
            }
        };
        assert!(session.offset() <= length);
        match next {
            Next::Done => {
                if (200..300).contains(&status) {
                    let completing = match (flags & 1, flags & 16) {
                        // GCS: a PUT that sent the last byte, or asked the offset.
                        (_, 16) => {
                            let range = step.headers.iter().find(|(n, _)| n == "Content-Range");
                            let asks = range.is_some_and(|(_, v)| v.starts_with("bytes */"));
                            step.method == "PUT" && range.is_some() && (asks || step.start + step.len == length)
                        }
                        (0, _) => session.offset() == length,
                        _ => {
                            let says_complete = step.headers.iter().any(|(n, v)| n == "Upload-Complete" && v == "?1");
                            let plain = !step.headers.iter().any(|(n, _)| n.starts_with("Upload-"));
                            step.start + step.len == length && (says_complete || plain) && step.method != "HEAD"
                        }
                    };
                    assert!(completing, "a success to a request that did not complete: {step:?}");
                }
                break;
            }
            Next::Fail(error) => {
                assert_eq!(error.kind, uploadtask_engine::ErrorKind::Protocol);
                break;
            }
            Next::Send | Next::Recover(_) | Next::Interrupt => {}
        }
    }
}

/// An S3 multipart session fed arbitrary answers (statuses, ETags, XML
/// bodies made of the bytes): every part it asks for lies inside the file
/// and is never asked twice at once; at most `parallel` are in flight; a
/// completion lists every part in order; success is only ever a 2xx
/// answer without an error document to CompleteMultipartUpload after
/// every part was answered with an ETag. The XML scanner reads the same
/// bytes.
pub fn s3_session(data: &[u8]) {
    use uploadtask_objects::multipart::{Outcome, Session, Step};
    use uploadtask_objects::plan::Plan;
    let text = String::from_utf8_lossy(data);
    let _ = uploadtask_objects::xml::first(&text, "UploadId");
    let _ = uploadtask_objects::xml::error(&text);
    let _ = uploadtask_objects::xml::all(&text, "Part").count();
    let mut input = Input(data);
    let parts = u64::from(input.byte() % 7);
    let size = parts * (5 << 20) + u64::from(input.u16());
    let Ok(plan) = Plan::new(size, Some(5 << 20)) else {
        return;
    };
    let parallel = usize::from(input.byte() % 4) + 1;
    let resume = (input.byte() & 1 == 1).then(|| "kept".to_string());
    let mut session = Session::new(plan, parallel, resume);
    let mut flying: Vec<Step> = Vec::new();
    let mut control: Option<Step> = None;
    let mut answered = std::collections::BTreeSet::new();
    let mut listed = false;
    for _ in 0..256 {
        // As the runner does: requests the session no longer waits for
        // are stopped, their answers never heard.
        flying.retain(|s| matches!(s, Step::Part { number, .. } if session.is_in_flight(*number)));
        while let Some(step) = session.poll_step() {
            match &step {
                Step::Part { number, start, len } => {
                    assert!(*number >= 1 && *number <= plan.parts());
                    assert!(start + len <= size);
                    assert!(!flying.contains(&step), "{step:?} twice at once");
                    flying.push(step);
                    assert!(session.in_flight().count() <= parallel);
                }
                Step::Complete => {
                    let body = session.complete_body();
                    let numbers: Vec<String> = uploadtask_objects::xml::all(&body, "PartNumber").collect();
                    let expected: Vec<String> = (1..=plan.parts()).map(|n| n.to_string()).collect();
                    assert_eq!(numbers, expected);
                    control = Some(step);
                }
                _ => control = Some(step),
            }
        }
        if let Some(outcome) = session.poll_outcome() {
            if let Outcome::Completed(_) = outcome {
                if !listed {
                    assert_eq!(answered.len() as u32, plan.parts(), "completed without every part");
                }
            }
            return;
        }
        if input.0.is_empty() {
            return;
        }
        let pick = usize::from(input.byte());
        let step = if !flying.is_empty() && (control.is_none() || pick % 2 == 0) {
            flying.remove(pick % flying.len())
        } else if let Some(step) = control.take() {
            step
        } else {
            return;
        };
        let status = [200, 200, 200, 201, 308, 400, 403, 404, 500, 503][usize::from(input.byte()) % 10];
        let len = usize::from(input.byte() % 64).min(input.0.len());
        let (body, rest) = input.0.split_at(len);
        input.0 = rest;
        let body = match input.byte() % 4 {
            0 => b"<UploadId>u</UploadId>".to_vec(),
            1 => b"<Error><Code>NoSuchUpload</Code></Error>".to_vec(),
            _ => body.to_vec(),
        };
        if input.byte() % 8 == 0 {
            session.handle_failure(&step, "reset");
            continue;
        }
        let etag = (input.byte() % 4 != 0).then_some("\"e\"");
        if let (Step::Part { number, .. }, true, Some(_)) = (&step, (200..300).contains(&status), etag) {
            answered.insert(*number);
        }
        match step {
            Step::Create => answered.clear(),
            Step::List { .. } => listed = true,
            _ => {}
        }
        session.handle_answer(&step, status, etag, &body);
    }
}

/// HTTP/2 frames read from arbitrary bytes, whole and fed in pieces: both
/// give the same frames and the same error; every frame that can be
/// written again reads back equal.
pub fn h2_frames(data: &[u8]) {
    use uploadtask_http2::frame::{self, Frame, Parsed};
    let max = frame::MIN_MAX_FRAME_SIZE;
    let (step, data) = cut_points(data);
    let mut whole = Vec::new();
    let mut at = 0;
    let whole_end = loop {
        match frame::parse(&data[at..], max) {
            Ok(Parsed::Frame(f, used)) => {
                assert!(used >= frame::HEADER_LEN && used <= data.len() - at, "used {used}");
                whole.push(format!("{f:?}"));
                let mut again = Vec::new();
                match f {
                    Frame::Ping(d) => frame::write_ping(d, false, &mut again),
                    Frame::PingAck(d) => frame::write_ping(d, true, &mut again),
                    Frame::WindowUpdate { stream, increment } => {
                        frame::write_window_update(stream, increment, &mut again)
                    }
                    Frame::Reset { stream, code } => frame::write_reset(stream, code, &mut again),
                    Frame::GoAway {
                        last_stream,
                        code,
                        debug,
                    } => frame::write_goaway(last_stream, code, debug, &mut again),
                    Frame::SettingsAck => frame::write_settings_ack(&mut again),
                    _ => {}
                }
                if !again.is_empty() {
                    match frame::parse(&again, max) {
                        Ok(Parsed::Frame(back, n)) => {
                            assert_eq!(n, again.len());
                            assert_eq!(format!("{back:?}"), format!("{f:?}"));
                        }
                        other => panic!("a written frame reads back as {other:?}"),
                    }
                }
                at += used;
            }
            Ok(Parsed::Incomplete(n)) => {
                assert!(n > 0);
                break Ok(());
            }
            Err(e) => break Err(e),
        }
    };
    let mut buffer = Vec::new();
    let mut pieces = Vec::new();
    let mut fed = 0;
    let pieces_end = 'feed: loop {
        let end = (fed + step).min(data.len());
        buffer.extend_from_slice(&data[fed..end]);
        fed = end;
        loop {
            match frame::parse(&buffer, max) {
                Ok(Parsed::Frame(f, used)) => {
                    pieces.push(format!("{f:?}"));
                    buffer.drain(..used);
                }
                Ok(Parsed::Incomplete(_)) if fed < data.len() => break,
                Ok(Parsed::Incomplete(_)) => break 'feed Ok(()),
                Err(e) => break 'feed Err(e),
            }
        }
    };
    assert_eq!(whole, pieces);
    assert_eq!(whole_end, pieces_end);
}

/// An HPACK header block from arbitrary bytes under bounds its first two
/// bytes choose: no panic; the table stays within its size; what was
/// decoded, encoded again, decodes to the same fields; Huffman data that
/// decodes encodes back to bytes that decode the same.
pub fn hpack(data: &[u8]) {
    use uploadtask_http2::hpack::{huffman, Decoder, Encoder, HpackError};
    let (table, list, block) = match data {
        [a, b, rest @ ..] => (usize::from(*a) * 16, usize::from(*b) * 64, rest),
        _ => return,
    };
    let mut decoder = Decoder::new(table, list);
    let mut fields = Vec::new();
    let outcome = decoder.decode(block, |n, v| fields.push((n.to_vec(), v.to_vec())));
    assert!(
        decoder.table().size() <= table,
        "table {} over {table}",
        decoder.table().size()
    );
    let listed: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
    assert!(listed <= list, "{listed} bytes of fields over {list}");
    if outcome.is_ok() || outcome == Err(HpackError::ListTooLarge) {
        let mut again = Vec::new();
        let mut encoder = Encoder::default();
        for (n, v) in &fields {
            encoder.encode(n, v, &mut again);
        }
        let mut back = Vec::new();
        Decoder::new(0, usize::MAX)
            .decode(&again, |n, v| back.push((n.to_vec(), v.to_vec())))
            .expect("our own block decodes");
        assert_eq!(back, fields);
    }
    let mut plain = Vec::new();
    if huffman::decode(block, &mut plain).is_ok() {
        let mut coded = Vec::new();
        huffman::encode(&plain, &mut coded);
        assert_eq!(coded.len(), huffman::encoded_len(&plain));
        let mut back = Vec::new();
        huffman::decode(&coded, &mut back).expect("our own Huffman data decodes");
        assert_eq!(back, plain);
    }
}

/// The client connection fed a server's bytes (after a valid SETTINGS),
/// in pieces, while its streams send what they may. Oracles: no panic;
/// what the client writes parses back as frames; a stream hears nothing
/// after its end (a final event, a reset, a refusal, a failure); a body
/// only after a final head; `send_data` takes exactly what
/// `send_capacity` allows; after a connection error every stream has
/// failed and nothing more is taken.
pub fn h2_client(data: &[u8]) {
    use std::collections::{HashMap, HashSet};
    use uploadtask_http2::conn::{Config, Connection, Event};
    use uploadtask_http2::frame::{self, Parsed};
    let (step, data) = cut_points(data);
    let (streams, data) = match data.split_first() {
        Some((&n, rest)) => (usize::from(n % 8) + 1, rest),
        None => return,
    };
    let mut c = Connection::new(Config::default());
    let mut server = Vec::new();
    frame::write_settings(&[], &mut server);
    server.extend_from_slice(data);
    let fields: [(&[u8], &[u8]); 4] = [
        (b":method", b"PUT"),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        (b":path", b"/"),
    ];
    let opened: Vec<u32> = (0..streams)
        .filter_map(|i| c.open_stream(&fields, i % 3 == 2).ok())
        .collect();
    let mut ended: HashSet<u32> = HashSet::new();
    let mut stopped: HashSet<u32> = HashSet::new();
    let bodiless: HashSet<u32> = opened.iter().copied().filter(|s| (s / 2) % 3 == 2).collect();
    let mut final_head: HashSet<u32> = HashSet::new();
    let mut sent: HashMap<u32, u32> = HashMap::new();
    let mut written = Vec::new();
    let mut buffer = Vec::new();
    let mut fed = 0;
    let mut failed = false;
    while fed < server.len() && !failed {
        let end = (fed + step).min(server.len());
        buffer.extend_from_slice(&server[fed..end]);
        fed = end;
        match c.handle_received(&buffer) {
            Ok(used) => {
                buffer.drain(..used);
            }
            Err(_) => failed = true,
        }
        while let Some(event) = c.poll_event() {
            let Some(stream) = event.stream() else { continue };
            assert!(opened.contains(&stream), "an event for stream {stream}, never opened");
            if let Event::SendStopped { .. } = event {
                // Once, after a whole response, while the body goes out.
                assert!(ended.contains(&stream) && !stopped.contains(&stream), "{event:?}");
                assert!(!bodiless.contains(&stream), "{event:?} of a stream that sent its end");
                stopped.insert(stream);
                continue;
            }
            assert!(!ended.contains(&stream), "{event:?} after the stream ended");
            match &event {
                Event::Headers { status, end_stream, .. } => {
                    assert!(*status >= 100 && *status <= 999);
                    if *status >= 200 {
                        final_head.insert(stream);
                    }
                    if *end_stream {
                        ended.insert(stream);
                    }
                }
                Event::Data { end_stream, .. } => {
                    assert!(final_head.contains(&stream), "a body before a final head");
                    if *end_stream {
                        ended.insert(stream);
                    }
                }
                _ => {
                    ended.insert(stream);
                }
            }
        }
        // Every stream sends what it may, exactly.
        for &stream in &opened {
            let capacity = c.send_capacity(stream);
            if capacity == 0 {
                continue;
            }
            assert!(
                c.send_data(stream, capacity + 1, false).is_none(),
                "more than the capacity"
            );
            let len = capacity.min(20_000);
            let header = c.send_data(stream, len, false).expect("the capacity");
            assert_eq!(frame::FrameHeader::read(&header).len, len);
            *sent.entry(stream).or_default() += len;
            assert!(sent[&stream] <= (1u32 << 31), "a stream sent beyond any window");
        }
        if let Some(bytes) = c.poll_transmit() {
            written.extend_from_slice(&bytes);
        }
    }
    if failed {
        assert!(c.handle_received(&[]).is_err());
        for &stream in &opened {
            assert_eq!(c.send_capacity(stream), 0);
        }
        assert_eq!(c.open_streams(), 0);
    }
    if let Some(bytes) = c.poll_transmit() {
        written.extend_from_slice(&bytes);
    }
    // What the client wrote: the preface, then frames that parse.
    assert!(written.starts_with(uploadtask_http2::PREFACE));
    let mut at = uploadtask_http2::PREFACE.len();
    while at < written.len() {
        match frame::parse(&written[at..], frame::MAX_MAX_FRAME_SIZE) {
            Ok(Parsed::Frame(_, n)) => at += n,
            other => panic!("the client wrote {other:?}"),
        }
    }
}
