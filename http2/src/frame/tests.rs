//! Every frame type read and written; the RFC's connection and stream
//! errors; frames split anywhere.

use proptest::prelude::*;

use super::*;

const MAX: u32 = MIN_MAX_FRAME_SIZE;

fn one(wire: &[u8]) -> Frame<'_> {
    match parse(wire, MAX).unwrap() {
        Parsed::Frame(frame, used) => {
            assert_eq!(used, wire.len());
            frame
        }
        Parsed::Incomplete(n) => panic!("{n} bytes missing"),
    }
}

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

fn code(wire: &[u8]) -> ErrorCode {
    parse(wire, MAX).unwrap_err().code
}

#[test]
fn data_with_and_without_padding() {
    let mut wire = data_header(1, 5, true).to_vec();
    wire.extend_from_slice(b"hello");
    assert_eq!(
        one(&wire),
        Frame::Data {
            stream: 1,
            data: b"hello",
            end_stream: true,
            flow_len: 5
        }
    );
    // Pad length 3, "hi", three bytes of padding: flow control counts all 6.
    let wire = raw(kind::DATA, flag::PADDED, 3, &[3, b'h', b'i', 0, 0, 0]);
    assert_eq!(
        one(&wire),
        Frame::Data {
            stream: 3,
            data: b"hi",
            end_stream: false,
            flow_len: 6
        }
    );
    assert_eq!(
        code(&raw(kind::DATA, flag::PADDED, 3, &[3, 0, 0])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(code(&raw(kind::DATA, 0, 0, b"x")), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn headers_split_over_continuations_read_back() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut wire = Vec::new();
    write_headers(5, &block, true, MAX, &mut wire);
    let mut at = 0;
    let mut got = Vec::new();
    let mut frames = 0;
    while at < wire.len() {
        let Parsed::Frame(frame, used) = parse(&wire[at..], MAX).unwrap() else {
            panic!()
        };
        at += used;
        frames += 1;
        match frame {
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => {
                assert_eq!((stream, end_stream, end_headers), (5, true, false));
                got.extend_from_slice(fragment);
            }
            Frame::Continuation {
                stream,
                fragment,
                end_headers,
            } => {
                assert_eq!(stream, 5);
                assert_eq!(end_headers, at == wire.len());
                got.extend_from_slice(fragment);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(frames, 3);
    assert_eq!(got, block);
}

#[test]
fn headers_with_priority_and_padding_lose_both() {
    let mut payload = vec![2]; // pad length
    payload.extend_from_slice(&[0x80, 0, 0, 1, 15]); // exclusive dependency on 1, weight 16
    payload.extend_from_slice(b"\x82\x86");
    payload.extend_from_slice(&[0, 0]);
    let wire = raw(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
        3,
        &payload,
    );
    assert_eq!(
        one(&wire),
        Frame::Headers {
            stream: 3,
            fragment: b"\x82\x86",
            end_stream: false,
            end_headers: true
        }
    );
    assert_eq!(
        code(&raw(kind::HEADERS, flag::PRIORITY, 3, &[0, 0])),
        ErrorCode::FRAME_SIZE_ERROR
    );
}

#[test]
fn settings_and_their_ack() {
    let mut wire = Vec::new();
    write_settings(
        &[(setting::ENABLE_PUSH, 0), (setting::INITIAL_WINDOW_SIZE, 1 << 24)],
        &mut wire,
    );
    let Frame::Settings(pairs) = one(&wire) else { panic!() };
    assert_eq!(
        pairs.collect::<Vec<_>>(),
        [(setting::ENABLE_PUSH, 0), (setting::INITIAL_WINDOW_SIZE, 1 << 24)]
    );
    let mut ack = Vec::new();
    write_settings_ack(&mut ack);
    assert_eq!(one(&ack), Frame::SettingsAck);
    assert_eq!(
        code(&raw(kind::SETTINGS, flag::ACK, 0, &[0; 6])),
        ErrorCode::FRAME_SIZE_ERROR
    );
    assert_eq!(code(&raw(kind::SETTINGS, 0, 0, &[0; 5])), ErrorCode::FRAME_SIZE_ERROR);
    assert_eq!(code(&raw(kind::SETTINGS, 0, 1, &[])), ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn ping_goaway_reset_and_window_update() {
    let mut wire = Vec::new();
    write_ping(*b"abcdefgh", true, &mut wire);
    assert_eq!(one(&wire), Frame::PingAck(*b"abcdefgh"));
    assert_eq!(code(&raw(kind::PING, 0, 0, &[0; 7])), ErrorCode::FRAME_SIZE_ERROR);
    assert_eq!(code(&raw(kind::PING, 0, 1, &[0; 8])), ErrorCode::PROTOCOL_ERROR);

    let mut wire = Vec::new();
    write_goaway(7, ErrorCode::ENHANCE_YOUR_CALM, b"slow down", &mut wire);
    assert_eq!(
        one(&wire),
        Frame::GoAway {
            last_stream: 7,
            code: ErrorCode::ENHANCE_YOUR_CALM,
            debug: b"slow down"
        }
    );
    assert_eq!(code(&raw(kind::GOAWAY, 0, 0, &[0; 7])), ErrorCode::FRAME_SIZE_ERROR);

    let mut wire = Vec::new();
    write_reset(9, ErrorCode::CANCEL, &mut wire);
    assert_eq!(
        one(&wire),
        Frame::Reset {
            stream: 9,
            code: ErrorCode::CANCEL
        }
    );
    assert_eq!(code(&raw(kind::RST_STREAM, 0, 0, &[0; 4])), ErrorCode::PROTOCOL_ERROR);
    assert_eq!(code(&raw(kind::RST_STREAM, 0, 1, &[0; 5])), ErrorCode::FRAME_SIZE_ERROR);

    let mut wire = Vec::new();
    write_window_update(0, 1 << 20, &mut wire);
    assert_eq!(
        one(&wire),
        Frame::WindowUpdate {
            stream: 0,
            increment: 1 << 20
        }
    );
    // A zero increment: a connection error on stream 0, a stream error elsewhere.
    assert_eq!(
        code(&raw(kind::WINDOW_UPDATE, 0, 0, &[0; 4])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(
        one(&raw(kind::WINDOW_UPDATE, 0, 3, &[0; 4])),
        Frame::StreamError {
            stream: 3,
            code: ErrorCode::PROTOCOL_ERROR
        }
    );
}

#[test]
fn priority_push_and_unknown_frames() {
    assert_eq!(one(&raw(kind::PRIORITY, 0, 1, &[0; 5])), Frame::Ignored);
    assert_eq!(
        one(&raw(kind::PRIORITY, 0, 1, &[0; 4])),
        Frame::StreamError {
            stream: 1,
            code: ErrorCode::FRAME_SIZE_ERROR
        }
    );
    assert_eq!(
        code(&raw(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0, 0, 0, 2])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(one(&raw(0xfa, 0xff, 77, b"whatever")), Frame::Ignored);
}

#[test]
fn a_frame_longer_than_announced_is_refused_before_it_arrives() {
    let header = raw(kind::DATA, 0, 1, &[]);
    let mut long = header.clone();
    long[..3].copy_from_slice(&(MAX + 1).to_be_bytes()[1..]);
    assert_eq!(code(&long), ErrorCode::FRAME_SIZE_ERROR);
    assert_eq!(parse(&header[..4], MAX).unwrap(), Parsed::Incomplete(5));
}

#[test]
fn the_reserved_bit_is_dropped() {
    let mut wire = raw(kind::RST_STREAM, 0, 1, &[0, 0, 0, 8]);
    wire[5] |= 0x80;
    assert_eq!(
        one(&wire),
        Frame::Reset {
            stream: 1,
            code: ErrorCode::CANCEL
        }
    );
}

/// Frames of every kind, written by this module.
fn any_frames() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        (1u32..100, proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()).prop_map(|(s, d, end)| {
            let mut out = data_header(s, d.len() as u32, end).to_vec();
            out.extend_from_slice(&d);
            out
        }),
        (1u32..100, proptest::collection::vec(any::<u8>(), 0..40_000)).prop_map(|(s, block)| {
            let mut out = Vec::new();
            write_headers(s, &block, false, MAX, &mut out);
            out
        }),
        any::<[u8; 8]>().prop_map(|d| {
            let mut out = Vec::new();
            write_ping(d, false, &mut out);
            out
        }),
        (1u32..MAX_WINDOW).prop_map(|inc| {
            let mut out = Vec::new();
            write_window_update(0, inc, &mut out);
            out
        }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|debug| {
            let mut out = Vec::new();
            write_goaway(3, ErrorCode::NO_ERROR, &debug, &mut out);
            out
        }),
    ];
    proptest::collection::vec(frame, 1..6).prop_map(|frames| frames.concat())
}

proptest! {
    #[test]
    fn split_anywhere_the_same_frames_come_out(wire in any_frames(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        // Whole, frame by frame.
        let mut whole = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let Parsed::Frame(frame, used) = parse(&wire[at..], MAX).unwrap() else { panic!("incomplete") };
            whole.push(format!("{frame:?}"));
            at += used;
        }
        // Fed in pieces to a buffer, as a connection would.
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut buffer = Vec::new();
        let mut fed = 0;
        let mut pieces = Vec::new();
        for point in points {
            buffer.extend_from_slice(&wire[fed..point]);
            fed = point;
            loop {
                match parse(&buffer, MAX).unwrap() {
                    Parsed::Frame(frame, used) => {
                        pieces.push(format!("{frame:?}"));
                        buffer.drain(..used);
                    }
                    Parsed::Incomplete(n) => {
                        prop_assert!(n > 0);
                        break;
                    }
                }
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes, MAX);
    }
}
