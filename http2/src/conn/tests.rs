//! The connection against a server scripted with the frame writers.

use super::*;
use crate::frame::{flag, kind, setting, FrameHeader};
use crate::hpack::Encoder;

/// The server's side: frames written into a buffer.
#[derive(Default)]
struct Server(Vec<u8>);

impl Server {
    fn settings(mut self, pairs: &[(u16, u32)]) -> Self {
        frame::write_settings(pairs, &mut self.0);
        self
    }

    fn headers(mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Self {
        let mut block = Vec::new();
        let mut encoder = Encoder::default();
        for (n, v) in fields {
            encoder.encode(n.as_bytes(), v.as_bytes(), &mut block);
        }
        frame::write_headers(stream, &block, end_stream, 16_384, &mut self.0);
        self
    }

    fn raw(mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Self {
        FrameHeader {
            len: payload.len() as u32,
            kind,
            flags,
            stream,
        }
        .write(&mut self.0);
        self.0.extend_from_slice(payload);
        self
    }

    fn data(mut self, stream: u32, data: &[u8], end_stream: bool) -> Self {
        self.0
            .extend_from_slice(&frame::data_header(stream, data.len() as u32, end_stream));
        self.0.extend_from_slice(data);
        self
    }

    fn window(mut self, stream: u32, increment: u32) -> Self {
        frame::write_window_update(stream, increment, &mut self.0);
        self
    }

    fn goaway(mut self, last: u32) -> Self {
        frame::write_goaway(last, ErrorCode::NO_ERROR, b"", &mut self.0);
        self
    }

    fn reset(mut self, stream: u32, code: ErrorCode) -> Self {
        frame::write_reset(stream, code, &mut self.0);
        self
    }
}

fn ready() -> Connection {
    let mut c = Connection::new(Config::default());
    c.poll_transmit();
    feed(&mut c, Server::default().settings(&[])).unwrap();
    c.poll_transmit();
    c
}

fn feed(c: &mut Connection, server: Server) -> Result<(), ConnectionError> {
    let used = c.handle_received(&server.0)?;
    assert_eq!(used, server.0.len(), "whole frames");
    Ok(())
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn request(c: &mut Connection, end_stream: bool) -> u32 {
    let fields: [(&[u8], &[u8]); 4] = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.com"),
        (b":path", b"/up"),
    ];
    c.open_stream(&fields, end_stream).unwrap()
}

/// The frames in `wire`, as (kind, flags, stream, payload).
fn frames(wire: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let header = FrameHeader::read(wire[at..at + 9].try_into().unwrap());
        let end = at + 9 + header.len as usize;
        out.push((header.kind, header.flags, header.stream, wire[at + 9..end].to_vec()));
        at = end;
    }
    out
}

#[test]
fn the_preface_settings_and_connection_window_go_first() {
    let mut c = Connection::new(Config::default());
    let wire = c.poll_transmit().unwrap();
    assert_eq!(&wire[..24], PREFACE);
    let sent = frames(&wire[24..]);
    assert_eq!(sent.len(), 2);
    let (k, _, _, payload) = &sent[0];
    assert_eq!(*k, kind::SETTINGS);
    let pairs: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, 1 << 20),
            (setting::MAX_HEADER_LIST_SIZE, 64 << 10)
        ]
    );
    assert_eq!(
        sent[1],
        (
            kind::WINDOW_UPDATE,
            0,
            0,
            ((10u32 << 20) - 65_535).to_be_bytes().to_vec()
        )
    );
}

#[test]
fn the_servers_first_frame_must_be_settings() {
    let mut c = Connection::new(Config::default());
    c.poll_transmit();
    let error = feed(&mut c, Server::default().window(0, 10)).unwrap_err();
    assert_eq!(error.code, ErrorCode::PROTOCOL_ERROR);
    let goaway = frames(&c.poll_transmit().unwrap());
    assert_eq!(goaway[0].0, kind::GOAWAY);
    assert!(c.handle_received(&[]).is_err(), "nothing more after a failure");
}

#[test]
fn settings_are_acknowledged_and_a_request_decodes_back() {
    let mut c = Connection::new(Config::default());
    c.poll_transmit();
    let id = request(&mut c, false);
    assert_eq!(id, 1);
    let sent = frames(&c.poll_transmit().unwrap());
    let (k, flags, stream, block) = &sent[0];
    assert_eq!((*k, *flags, *stream), (kind::HEADERS, flag::END_HEADERS, 1));
    let mut fields = Vec::new();
    Decoder::new(4096, 1 << 16)
        .decode(block, |n, v| {
            fields.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })
        .unwrap();
    assert_eq!(fields[0], (":method".into(), "POST".into()));
    assert_eq!(fields[3], (":path".into(), "/up".into()));
    feed(&mut c, Server::default().settings(&[(setting::MAX_FRAME_SIZE, 32_768)])).unwrap();
    assert_eq!(
        frames(&c.poll_transmit().unwrap()),
        [(kind::SETTINGS, flag::ACK, 0, vec![])]
    );
    assert_eq!(c.peer_settings().max_frame_size, 32_768);
    assert_eq!(request(&mut c, true), 3);
}

#[test]
fn a_response_head_body_and_end_arrive_as_events() {
    let mut c = ready();
    let id = request(&mut c, false);
    let header = c.send_data(id, 5, true).unwrap();
    assert_eq!(FrameHeader::read(&header).len, 5);
    let server = Server::default()
        .headers(id, &[(":status", "201"), ("content-type", "application/json")], false)
        .data(id, b"{\"ok\"", false)
        .data(id, b":1}", true);
    feed(&mut c, server).unwrap();
    assert_eq!(
        events(&mut c),
        [
            Event::Headers {
                stream: 1,
                status: 201,
                fields: vec![(b"content-type".to_vec(), b"application/json".to_vec())],
                end_stream: false
            },
            Event::Data {
                stream: 1,
                data: b"{\"ok\"".to_vec(),
                end_stream: false
            },
            Event::Data {
                stream: 1,
                data: b":1}".to_vec(),
                end_stream: true
            },
        ]
    );
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn interim_heads_trailers_and_an_early_final_answer() {
    let mut c = ready();
    let id = request(&mut c, true);
    let server = Server::default()
        .headers(id, &[(":status", "100")], false)
        .headers(id, &[(":status", "200")], false)
        .data(id, b"x", false)
        .headers(id, &[("grpc-status", "0")], true);
    feed(&mut c, server).unwrap();
    let got = events(&mut c);
    assert!(matches!(got[0], Event::Headers { status: 100, .. }));
    assert!(matches!(got[1], Event::Headers { status: 200, .. }));
    assert_eq!(
        got[3],
        Event::Trailers {
            stream: 1,
            fields: vec![(b"grpc-status".to_vec(), b"0".to_vec())]
        }
    );
    // 413 with the body unsent: the response ends; the stream may still
    // send (the caller resets it or finishes).
    let id = request(&mut c, false);
    feed(&mut c, Server::default().headers(id, &[(":status", "413")], true)).unwrap();
    assert!(matches!(
        events(&mut c)[..],
        [Event::Headers {
            status: 413,
            end_stream: true,
            ..
        }]
    ));
    assert!(c.send_capacity(id) > 0);
    c.reset(id, ErrorCode::CANCEL);
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn sending_is_bounded_by_both_windows_and_the_frame_size() {
    let mut c = ready();
    let a = request(&mut c, false);
    let b = request(&mut c, false);
    assert_eq!(c.send_capacity(a), 16_384);
    for _ in 0..3 {
        c.send_data(a, 16_384, false).unwrap();
    }
    // The connection window (65,535) has 16,383 left for both streams.
    assert_eq!(c.send_capacity(a), 16_383);
    c.send_data(b, 16_383, false).unwrap();
    assert_eq!((c.send_capacity(a), c.send_capacity(b)), (0, 0));
    assert!(c.send_data(a, 1, false).is_none());
    feed(&mut c, Server::default().window(0, 1 << 20)).unwrap();
    assert_eq!(events(&mut c), [Event::Writable]);
    // Stream a used 49,152 of its 65,535.
    assert_eq!(c.send_capacity(a), 16_383);
    // SETTINGS lowering the initial window takes it below zero.
    feed(
        &mut c,
        Server::default().settings(&[(setting::INITIAL_WINDOW_SIZE, 16_384)]),
    )
    .unwrap();
    assert_eq!(c.send_capacity(a), 0);
    feed(&mut c, Server::default().window(a, 32_768)).unwrap();
    assert_eq!(c.send_capacity(a), 0, "49,152 used of a window of 16,384 + 32,768");
    feed(&mut c, Server::default().window(a, 1)).unwrap();
    assert_eq!(c.send_capacity(a), 1);
    // A window beyond 2^31-1 resets the stream.
    events(&mut c);
    feed(&mut c, Server::default().window(b, frame::MAX_WINDOW)).unwrap();
    assert_eq!(
        events(&mut c),
        [Event::Reset {
            stream: b,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }]
    );
}

#[test]
fn the_stream_limit_is_honoured() {
    let mut c = ready();
    feed(
        &mut c,
        Server::default().settings(&[(setting::MAX_CONCURRENT_STREAMS, 2)]),
    )
    .unwrap();
    let a = request(&mut c, true);
    request(&mut c, true);
    assert!(!c.can_open());
    let fields: [(&[u8], &[u8]); 0] = [];
    assert_eq!(c.open_stream(&fields, true), Err(Refusal::AtLimit));
    feed(&mut c, Server::default().headers(a, &[(":status", "204")], true)).unwrap();
    assert!(c.can_open());
}

#[test]
fn goaway_and_refused_streams_come_back_to_be_sent_again() {
    let mut c = ready();
    let (a, b, d) = (request(&mut c, false), request(&mut c, false), request(&mut c, false));
    feed(&mut c, Server::default().reset(b, ErrorCode::REFUSED_STREAM)).unwrap();
    assert_eq!(events(&mut c), [Event::Refused { stream: b }]);
    feed(&mut c, Server::default().goaway(a)).unwrap();
    assert_eq!(
        events(&mut c),
        [
            Event::Refused { stream: d },
            Event::GoAway {
                last_stream: a,
                code: ErrorCode::NO_ERROR
            }
        ]
    );
    let fields: [(&[u8], &[u8]); 0] = [];
    assert_eq!(c.open_stream(&fields, true), Err(Refusal::Closing));
    assert!(!c.is_done(), "stream a goes on");
    feed(&mut c, Server::default().reset(a, ErrorCode::CANCEL)).unwrap();
    assert_eq!(
        events(&mut c),
        [Event::Reset {
            stream: a,
            code: ErrorCode::CANCEL
        }]
    );
    assert!(c.is_done());
}

#[test]
fn a_continuation_flood_ends_the_connection() {
    let mut c = ready();
    let id = request(&mut c, false);
    let mut server = Server::default().raw(kind::HEADERS, 0, id, &[0x88]);
    for _ in 0..MAX_BLOCK_FRAMES {
        server = server.raw(kind::CONTINUATION, 0, id, &[]);
    }
    let error = feed(&mut c, server).unwrap_err();
    assert_eq!(error.code, ErrorCode::ENHANCE_YOUR_CALM);
    assert_eq!(events(&mut c), [Event::Failed { stream: id }]);
    // A block too large in bytes.
    let mut c = ready();
    let id = request(&mut c, false);
    let mut server = Server::default().raw(kind::HEADERS, 0, id, &[0x88]);
    for _ in 0..6 {
        server = server.raw(kind::CONTINUATION, 0, id, &[0; 16_384]);
    }
    assert_eq!(feed(&mut c, server).unwrap_err().code, ErrorCode::ENHANCE_YOUR_CALM);
}

#[test]
fn a_frame_inside_a_header_block_or_on_a_stream_never_opened_is_a_connection_error() {
    let mut c = ready();
    let id = request(&mut c, false);
    let server = Server::default().raw(kind::HEADERS, 0, id, &[0x88]).window(0, 1);
    assert_eq!(feed(&mut c, server).unwrap_err().code, ErrorCode::PROTOCOL_ERROR);
    let mut c = ready();
    assert_eq!(
        feed(&mut c, Server::default().headers(1, &[(":status", "200")], true))
            .unwrap_err()
            .code,
        ErrorCode::PROTOCOL_ERROR
    );
    let mut c = ready();
    request(&mut c, false);
    assert_eq!(
        feed(&mut c, Server::default().headers(2, &[(":status", "200")], true))
            .unwrap_err()
            .code,
        ErrorCode::PROTOCOL_ERROR,
        "a pushed stream"
    );
    let mut c = ready();
    let id = request(&mut c, false);
    let push = Server::default().raw(kind::PUSH_PROMISE, flag::END_HEADERS, id, &[0, 0, 0, 2, 0x82]);
    assert_eq!(feed(&mut c, push).unwrap_err().code, ErrorCode::PROTOCOL_ERROR);
}

#[test]
fn a_block_for_a_reset_stream_is_still_decoded_so_the_table_stays_in_step() {
    let mut c = ready();
    let (a, b) = (request(&mut c, false), request(&mut c, false));
    c.reset(a, ErrorCode::CANCEL);
    // :status 200 indexed; then x-id: 7 with incremental indexing.
    let mut block = vec![0x88, 0x40, 4];
    block.extend_from_slice(b"x-id");
    block.push(1);
    block.push(b'7');
    let server = Server::default()
        .raw(kind::HEADERS, flag::END_HEADERS | flag::END_STREAM, a, &block)
        // On stream b: :status 200 and the dynamic entry 62.
        .raw(kind::HEADERS, flag::END_HEADERS | flag::END_STREAM, b, &[0x88, 0xbe]);
    feed(&mut c, server).unwrap();
    assert_eq!(
        events(&mut c),
        [Event::Headers {
            stream: b,
            status: 200,
            fields: vec![(b"x-id".to_vec(), b"7".to_vec())],
            end_stream: true
        }]
    );
}

#[test]
fn malformed_responses_reset_only_their_stream() {
    let mut c = ready();
    let a = request(&mut c, false);
    let b = request(&mut c, false);
    let d = request(&mut c, false);
    c.poll_transmit();
    let server = Server::default()
        .headers(a, &[("content-type", "x")], false)
        .data(b, b"body before head", false)
        .headers(d, &[(":status", "200"), ("X-Upper", "1")], false);
    feed(&mut c, server).unwrap();
    assert_eq!(
        events(&mut c),
        [
            Event::Reset {
                stream: a,
                code: ErrorCode::PROTOCOL_ERROR
            },
            Event::Reset {
                stream: b,
                code: ErrorCode::PROTOCOL_ERROR
            },
            Event::Reset {
                stream: d,
                code: ErrorCode::PROTOCOL_ERROR
            },
        ]
    );
    let resets = frames(&c.poll_transmit().unwrap());
    assert!(resets.iter().all(|f| f.0 == kind::RST_STREAM));
    assert!(c.can_open());
}

#[test]
fn pings_are_answered_and_response_credit_comes_back_in_large_steps() {
    let mut c = ready();
    feed(&mut c, Server::default().raw(kind::PING, 0, 0, b"pingpong")).unwrap();
    assert_eq!(
        frames(&c.poll_transmit().unwrap()),
        [(kind::PING, flag::ACK, 0, b"pingpong".to_vec())]
    );
    let id = request(&mut c, false);
    c.poll_transmit();
    let mut server = Server::default().headers(id, &[(":status", "200")], false);
    for _ in 0..40 {
        server = server.data(id, &[0; 16_384], false);
    }
    feed(&mut c, server).unwrap();
    let updates = frames(&c.poll_transmit().unwrap());
    // 640 KiB received: the stream's 1 MiB window was given back once, at
    // half; the connection's 10 MiB not yet.
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].0, kind::WINDOW_UPDATE);
    assert_eq!(updates[0].2, id);
}

#[test]
fn the_split_of_the_input_does_not_matter() {
    let mut whole = ready();
    let mut pieces = ready();
    let (a, b) = (request(&mut whole, false), request(&mut pieces, false));
    assert_eq!(a, b);
    let server = Server::default()
        .headers(a, &[(":status", "200"), ("server", "test")], false)
        .data(a, b"hello", true);
    feed(&mut whole, Server(server.0.clone())).unwrap();
    let mut buffer = Vec::new();
    for byte in &server.0 {
        buffer.push(*byte);
        let used = pieces.handle_received(&buffer).unwrap();
        buffer.drain(..used);
    }
    assert!(buffer.is_empty());
    assert_eq!(events(&mut whole), events(&mut pieces));
}

#[test]
fn a_stream_whose_response_ended_hears_only_that_it_must_stop_sending() {
    let mut c = ready();
    let (a, b) = (request(&mut c, false), request(&mut c, false));
    // Complete answers while both still send (an early 413, a 200).
    let server = Server::default()
        .headers(a, &[(":status", "413")], true)
        .headers(b, &[(":status", "200")], true)
        // The RFC's "stop sending": RST_STREAM(NO_ERROR) after the response.
        .reset(a, ErrorCode::NO_ERROR);
    feed(&mut c, server).unwrap();
    let got = events(&mut c);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[2],
        Event::SendStopped {
            stream: a,
            code: ErrorCode::NO_ERROR
        }
    );
    assert_eq!(c.send_capacity(a), 0);
    assert!(c.send_capacity(b) > 0, "b may still send");
    // A GOAWAY that says b was not processed cannot undo its response.
    let (c2, d) = (request(&mut c, false), request(&mut c, false));
    feed(
        &mut c,
        Server::default().headers(d, &[(":status", "200")], true).goaway(c2),
    )
    .unwrap();
    let got = events(&mut c);
    assert!(
        matches!(got[0], Event::Headers { stream, .. } if stream == d),
        "{got:?}"
    );
    assert!(!got.contains(&Event::Refused { stream: d }), "{got:?}");
    assert!(
        got.contains(&Event::SendStopped {
            stream: d,
            code: ErrorCode::NO_ERROR
        }),
        "{got:?}"
    );
    assert_eq!(c.send_capacity(d), 0);
    // A connection error: b's response was whole, so b does not fail.
    let error = feed(&mut c, Server::default().raw(kind::PING, 0, 1, &[0; 8])).unwrap_err();
    assert_eq!(error.code, ErrorCode::PROTOCOL_ERROR);
    assert_eq!(
        events(&mut c),
        [Event::Failed { stream: c2 }],
        "only the stream still waiting"
    );
    assert_eq!(c.send_capacity(b), 0);
}

#[test]
fn before_the_servers_settings_a_hundred_streams_at_most() {
    let mut c = Connection::new(Config::default());
    for _ in 0..STREAMS_BEFORE_SETTINGS {
        request(&mut c, true);
    }
    assert!(!c.can_open());
    // SETTINGS without a limit: no limit.
    feed(&mut c, Server::default().settings(&[])).unwrap();
    assert!(c.can_open());
}
