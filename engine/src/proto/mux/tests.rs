//! The mux against a server scripted with the frame writers, with bodies
//! of known bytes: what goes out, in which order and sizes, and when a
//! stream's bytes count as sent.

use std::collections::HashMap;

use super::*;
use uploadtask_http2::frame::{self, Parsed};
use uploadtask_http2::frame::{setting, Frame};
use uploadtask_http2::hpack::Encoder;

/// Bodies of `len` bytes each: byte `i` of key `k` is `k + i`.
#[derive(Default)]
struct Fixed {
    left: HashMap<u8, u64>,
    sent: HashMap<u8, u64>,
    waiting: Vec<u8>,
    broken: Vec<u8>,
}

impl Fixed {
    fn with(bodies: &[(u8, u64)]) -> Self {
        Fixed {
            left: bodies.iter().copied().collect(),
            ..Fixed::default()
        }
    }
}

impl Bodies<u8> for Fixed {
    fn want(&mut self, key: u8) -> Want {
        if self.waiting.contains(&key) {
            return Want::Wait;
        }
        match self.left.get(&key) {
            Some(&left) => Want::Send(left),
            None => Want::Done,
        }
    }

    fn write(&mut self, key: u8, len: usize, out: &mut Vec<u8>) -> bool {
        if self.broken.contains(&key) {
            return false;
        }
        let sent = self.sent.entry(key).or_default();
        out.extend((0..len as u64).map(|i| key.wrapping_add((*sent + i) as u8)));
        *sent += len as u64;
        let Some(left) = self.left.get_mut(&key) else {
            return false;
        };
        *left -= len as u64;
        if *left == 0 {
            self.left.remove(&key);
        }
        true
    }
}

fn fields() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        (b":path", b"/"),
    ]
}

/// Writes everything pending (as a transport taking all) and returns the
/// frames after the preface: (kind, stream, payload length, end stream).
fn drain(mux: &mut Mux<u8>, bodies: &mut Fixed, max: usize) -> Vec<(u8, u32, usize, bool)> {
    let mut wire = Vec::new();
    loop {
        mux.fill(max, bodies);
        let pending = mux.pending().to_vec();
        if pending.is_empty() {
            break;
        }
        mux.handle_written(pending.len());
        mux.handle_unflushed(0);
        wire.extend_from_slice(&pending);
    }
    frames(&wire)
}

fn frames(mut wire: &[u8]) -> Vec<(u8, u32, usize, bool)> {
    if wire.starts_with(uploadtask_http2::PREFACE) {
        wire = &wire[uploadtask_http2::PREFACE.len()..];
    }
    let mut out = Vec::new();
    while !wire.is_empty() {
        let header = frame::FrameHeader::read(wire[..9].try_into().unwrap());
        let end = header.flags & frame::flag::END_STREAM != 0 && header.kind <= 1;
        out.push((header.kind, header.stream, header.len as usize, end));
        match frame::parse(wire, 1 << 20) {
            Ok(Parsed::Frame(_, n)) => wire = &wire[n..],
            other => panic!("a frame we wrote does not parse: {other:?}"),
        }
    }
    out
}

fn server_settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_settings(pairs, &mut out);
    out
}

#[test]
fn streams_take_turns_one_frame_each() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 40_000), (2, 40_000)]);
    mux.handle_received(&server_settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 20)]))
        .unwrap();
    let a = mux.open(1, &fields(), false).unwrap();
    let b = mux.open(2, &fields(), false).unwrap();
    // A connection window of 65,535: the frames alternate until it is spent.
    let data: Vec<(u32, usize, bool)> = drain(&mut mux, &mut bodies, 1 << 20)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .map(|(_, s, l, e)| (s, l, e))
        .collect();
    assert_eq!(
        data,
        [
            (a, 16_384, false),
            (b, 16_384, false),
            (a, 16_384, false),
            (b, 16_383, false)
        ]
    );
    // Credit comes back: the rest goes, in frames as large as allowed.
    let mut more = Vec::new();
    frame::write_window_update(0, 1 << 20, &mut more);
    mux.handle_received(&more).unwrap();
    let data: Vec<(u32, usize, bool)> = drain(&mut mux, &mut bodies, 1 << 20)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .map(|(_, s, l, e)| (s, l, e))
        .collect();
    assert_eq!(data, [(a, 7_232, true), (b, 7_233, true)]);
}

#[test]
fn bytes_count_only_once_the_transport_holds_none_of_them() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(7, 1000)]);
    mux.handle_received(&server_settings(&[])).unwrap();
    mux.open(7, &fields(), false).unwrap();
    mux.fill(1 << 20, &mut bodies);
    let pending = mux.pending().len();
    // Everything but the last 100 bytes taken; 300 still in a TLS buffer.
    mux.handle_written(pending - 100);
    mux.handle_unflushed(300);
    assert_eq!(mux.poll_unconfirmed(), Some((7, 400)));
    assert_eq!(mux.poll_unconfirmed(), None);
    mux.handle_written(100);
    mux.handle_unflushed(0);
    assert_eq!(mux.poll_unconfirmed(), Some((7, 0)));
}

#[test]
fn a_waiting_stream_keeps_its_turn_without_blocking_others() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 10), (2, 10)]);
    bodies.waiting.push(1);
    mux.handle_received(&server_settings(&[])).unwrap();
    let a = mux.open(1, &fields(), false).unwrap();
    let b = mux.open(2, &fields(), false).unwrap();
    let data: Vec<u32> = drain(&mut mux, &mut bodies, 1 << 20)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .map(|f| f.1)
        .collect();
    assert_eq!(data, [b]);
    bodies.waiting.clear();
    let data: Vec<(u32, usize, bool)> = drain(&mut mux, &mut bodies, 1 << 20)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .map(|(_, s, l, e)| (s, l, e))
        .collect();
    assert_eq!(data, [(a, 10, true)]);
}

#[test]
fn a_body_that_cannot_be_read_resets_its_stream_only() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 10), (2, 10)]);
    bodies.broken.push(1);
    mux.handle_received(&server_settings(&[])).unwrap();
    let a = mux.open(1, &fields(), false).unwrap();
    let b = mux.open(2, &fields(), false).unwrap();
    let gone = mux.fill(1 << 20, &mut bodies);
    assert_eq!(gone, [1]);
    let sent = frames(mux.pending());
    assert!(sent.contains(&(frame::kind::RST_STREAM, a, 4, false)), "{sent:?}");
    assert!(sent.contains(&(frame::kind::DATA, b, 10, true)), "{sent:?}");
    assert!(!sent.iter().any(|f| f.0 == frame::kind::DATA && f.1 == a), "{sent:?}");
}

#[test]
fn events_carry_their_stream_key_and_detached_streams_are_silent() {
    let mut mux = Mux::new(Config::default());
    mux.handle_received(&server_settings(&[])).unwrap();
    let a = mux.open(1, &fields(), true).unwrap();
    let b = mux.open(2, &fields(), true).unwrap();
    mux.detach(b);
    let mut input = Vec::new();
    let mut block = Vec::new();
    Encoder::default().encode(b":status", b"201", &mut block);
    frame::write_headers(a, &block, true, 16_384, &mut input);
    frame::write_headers(b, &block, true, 16_384, &mut input);
    mux.handle_received(&input).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| mux.poll_event()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(events[0], (Some(1), Event::Headers { status: 201, .. })),
        "{events:?}"
    );
    // Detaching sent RST_STREAM(CANCEL) for the stream still open.
    let mut none = Fixed::default();
    mux.fill(1 << 20, &mut none);
    let sent = frames(mux.pending());
    assert!(sent.contains(&(frame::kind::RST_STREAM, b, 4, false)), "{sent:?}");
}

#[test]
fn a_frame_split_across_reads_is_kept_until_whole() {
    let mut mux = Mux::new(Config::default());
    let mut input = server_settings(&[(setting::MAX_CONCURRENT_STREAMS, 1)]);
    let mut ping = Vec::new();
    frame::write_ping(*b"12345678", true, &mut ping);
    input.extend_from_slice(&ping);
    for chunk in input.chunks(5) {
        mux.handle_received(chunk).unwrap();
    }
    let events: Vec<_> = std::iter::from_fn(|| mux.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, (None, Event::PingAck(d)) if d == b"12345678")),
        "{events:?}"
    );
    mux.open(1, &fields(), true).unwrap();
    assert!(!mux.can_open());
}

#[test]
fn a_closed_connection_fails_every_attached_stream() {
    let mut mux = Mux::new(Config::default());
    mux.handle_received(&server_settings(&[])).unwrap();
    mux.open(1, &fields(), true).unwrap();
    mux.open(2, &fields(), true).unwrap();
    mux.handle_closed();
    let keys: Vec<Option<u8>> = std::iter::from_fn(|| mux.poll_event())
        .filter(|e| matches!(e.1, Event::Failed { .. }))
        .map(|e| e.0)
        .collect();
    assert_eq!(keys, [Some(1), Some(2)]);
    assert!(mux.is_closing() && !mux.can_open());
    // A frame parsed from the server after that is refused.
    assert!(mux.handle_received(&server_settings(&[])).is_err());
    let _ = Frame::SettingsAck;
}

#[test]
fn credit_given_back_in_small_steps_is_gathered_into_real_frames() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 100_000)]);
    mux.handle_received(&server_settings(&[(setting::INITIAL_WINDOW_SIZE, 16_384)]))
        .unwrap();
    let a = mux.open(1, &fields(), false).unwrap();
    let sent = drain(&mut mux, &mut bodies, 1 << 20);
    assert!(sent.contains(&(frame::kind::DATA, a, 16_384, false)), "{sent:?}");
    // The server gives credit back 100 bytes at a time.
    let mut data = Vec::new();
    for step in 1..=60 {
        let mut update = Vec::new();
        frame::write_window_update(a, 100, &mut update);
        mux.handle_received(&update).unwrap();
        data.extend(
            drain(&mut mux, &mut bodies, 1 << 20)
                .into_iter()
                .filter(|f| f.0 == frame::kind::DATA)
                .map(|f| (step, f.2)),
        );
    }
    // Nothing until 4,096 bytes of credit, then one frame of all of it.
    assert_eq!(data, [(41, 4_100)]);
}

#[test]
fn a_body_ending_in_a_small_window_still_ends() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 16_384 + 10)]);
    mux.handle_received(&server_settings(&[(setting::INITIAL_WINDOW_SIZE, 16_384)]))
        .unwrap();
    let a = mux.open(1, &fields(), false).unwrap();
    drain(&mut mux, &mut bodies, 1 << 20);
    let mut update = Vec::new();
    frame::write_window_update(a, 10, &mut update);
    mux.handle_received(&update).unwrap();
    let data: Vec<_> = drain(&mut mux, &mut bodies, 1 << 20)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .collect();
    assert_eq!(data, [(frame::kind::DATA, a, 10, true)]);
}

#[test]
fn a_transport_that_always_leaves_a_little_does_not_grow_the_buffer() {
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 50 << 20)]);
    mux.handle_received(&server_settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 30)]))
        .unwrap();
    let mut update = Vec::new();
    frame::write_window_update(0, 1 << 30, &mut update);
    mux.handle_received(&update).unwrap();
    mux.open(1, &fields(), false).unwrap();
    for _ in 0..500 {
        mux.fill(64 << 10, &mut bodies);
        let pending = mux.pending().len();
        mux.handle_written(pending - 1);
        mux.handle_unflushed(0);
    }
    assert!(mux.out.capacity() < 256 << 10, "{} bytes kept", mux.out.capacity());
}

#[test]
fn frames_stay_small_when_the_peer_allows_huge_ones() {
    // nginx allows frames of 16 MiB and a 1 MiB stream window: a frame as
    // large as that would make every partial write move the rest of it.
    let mut mux = Mux::new(Config::default());
    let mut bodies = Fixed::with(&[(1, 3 << 20)]);
    mux.handle_received(&server_settings(&[
        (setting::INITIAL_WINDOW_SIZE, 1 << 20),
        (setting::MAX_FRAME_SIZE, (1 << 24) - 1),
    ]))
    .unwrap();
    let mut update = Vec::new();
    frame::write_window_update(0, 1 << 30, &mut update);
    mux.handle_received(&update).unwrap();
    mux.open(1, &fields(), false).unwrap();
    let data: Vec<usize> = drain(&mut mux, &mut bodies, 1 << 20)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .map(|f| f.2)
        .collect();
    assert!(!data.is_empty());
    assert!(data.iter().all(|&len| len == MAX_FRAME as usize), "{data:?}");
}
