//! Property tests: any split of the input gives the one-shot result.

use proptest::prelude::*;
use uploadtask_http1::{
    body_framing, BodyDecoder, BodyError, Limits, ParseStatus, ResponseError, ResponseHead, ResponseHeadParser,
};

/// Feeds `wire` to a head parser in pieces cut at `cuts`, as a connection
/// would: bytes accumulate; interim heads are dropped.
fn parse_head_split(wire: &[u8], cuts: &[usize]) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let mut parser = ResponseHeadParser::new(Limits::default());
    let mut buf = Vec::new();
    let mut dropped = 0;
    let mut fed = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.push(wire.len());
    ends.sort_unstable();
    for end in ends {
        if end <= fed {
            continue;
        }
        buf.extend_from_slice(&wire[fed..end]);
        fed = end;
        loop {
            match parser.parse(&buf)? {
                ParseStatus::Partial => break,
                ParseStatus::Interim { consumed, .. } => {
                    buf.drain(..consumed);
                    dropped += consumed;
                }
                ParseStatus::Complete { head, consumed } => return Ok(Some((head, dropped + consumed))),
            }
        }
    }
    Ok(None)
}

/// Decodes a body from `wire` in pieces cut at `cuts`.
fn decode_split(decoder: &mut BodyDecoder, wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize), BodyError> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.push(wire.len());
    ends.sort_unstable();
    let mut body = Vec::new();
    let mut at = 0;
    let mut pending = Vec::new();
    for end in ends {
        pending.extend_from_slice(&wire[at..end]);
        at = end;
        loop {
            if decoder.is_done() {
                break;
            }
            let step = decoder.decode(&pending)?;
            body.extend_from_slice(&pending[step.body.clone()]);
            pending.drain(..step.consumed);
            if step.consumed == 0 {
                break;
            }
        }
    }
    Ok((body, wire.len() - pending.len()))
}

fn chunked_wire(chunks: &[Vec<u8>], ext: bool, trailers: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        wire.extend_from_slice(format!("{:x}", chunk.len()).as_bytes());
        if ext {
            wire.extend_from_slice(b";name=\"v\"");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n");
    if trailers {
        wire.extend_from_slice(b"Checksum: abc\r\nX-T: 1\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire
}

proptest! {
    #[test]
    fn heads_split_anywhere(
        interim in 0usize..3,
        status in 200u16..600,
        headers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,30}"), 0..10),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        body in "[a-z]{0,10}",
    ) {
        let mut wire = Vec::new();
        for _ in 0..interim {
            wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        wire.extend_from_slice(format!("HTTP/1.1 {status} Reason Here\r\n").as_bytes());
        for (name, value) in &headers {
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        let head_len = wire.len();
        wire.extend_from_slice(body.as_bytes());
        let one_shot = parse_head_split(&wire, &[]);
        let split = parse_head_split(&wire, &cuts);
        prop_assert_eq!(&one_shot, &split);
        let (head, consumed) = one_shot.unwrap().unwrap();
        prop_assert_eq!(consumed, head_len);
        prop_assert_eq!(head.status, status);
        prop_assert_eq!(head.headers.len(), headers.len());
        for (parsed, (name, value)) in head.headers.iter().zip(&headers) {
            prop_assert_eq!(&parsed.name, name);
            prop_assert_eq!(parsed.value, value.trim().as_bytes());
        }
        // The framing decision does not depend on the split either.
        prop_assert_eq!(body_framing(&head).is_ok(), body_framing(&split.unwrap().unwrap().0).is_ok());
    }

    #[test]
    fn chunked_split_anywhere(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..6),
        ext in any::<bool>(),
        trailers in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut wire = chunked_wire(&chunks, ext, trailers);
        let body_len = wire.len();
        wire.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let limits = Limits::default();
        let mut one = BodyDecoder::new(uploadtask_http1::BodyKind::Chunked, &limits);
        let one_shot = decode_split(&mut one, &wire, &[]).unwrap();
        let mut split = BodyDecoder::new(uploadtask_http1::BodyKind::Chunked, &limits);
        let pieces = decode_split(&mut split, &wire, &cuts).unwrap();
        prop_assert!(one.is_done() && split.is_done());
        prop_assert_eq!(&one_shot, &pieces);
        prop_assert_eq!(one_shot.0, chunks.concat());
        prop_assert_eq!(one_shot.1, body_len);
    }

    #[test]
    fn chunked_byte_at_a_time_equals_one_shot_even_when_broken(
        wire in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'0'), Just(b'5'), Just(b';'), Just(b'a'), Just(b':')], 0..60),
    ) {
        let limits = Limits::default();
        let mut one = BodyDecoder::new(uploadtask_http1::BodyKind::Chunked, &limits);
        let one_shot = decode_split(&mut one, &wire, &[]);
        let cuts: Vec<usize> = (0..wire.len()).collect();
        let mut bytewise = BodyDecoder::new(uploadtask_http1::BodyKind::Chunked, &limits);
        let split = decode_split(&mut bytewise, &wire, &cuts);
        prop_assert_eq!(one_shot, split);
    }
}
