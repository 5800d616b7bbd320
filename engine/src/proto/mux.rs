//! Many exchanges on one HTTP/2 connection, without I/O: which stream
//! sends next and how much, the bytes to write, and which of each stream's
//! body bytes the transport has really taken.
//!
//! ```text
//!   open(key) ─► HEADERS queued ─► in the turn: one DATA frame per stream per round,
//!                                  as large as both windows and the frame size allow
//!   fill ─► pending() ─► transport ─► handle_written(n), handle_unflushed(u)
//!                                      └─► confirmed bytes credited to their streams
//!   handle_received(bytes) ─► poll_event: (the stream's key, what happened)
//!   detach(stream): the exchange is over (RST_STREAM(CANCEL) if still open)
//! ```
//!
//! Body bytes are copied into one buffer as whole DATA frames; a stream's
//! bytes count as sent ([`Mux::poll_unconfirmed`] reaches 0 for them) only
//! once the transport took them and holds none of them in user space: the
//! exchange's progress rule, kept across the multiplexing.
//!
//! Fairness: streams take turns, one frame each per round, so a large
//! upload never starves the small ones beside it; a stream waiting for a
//! window or for `100 Continue` keeps its place without taking a turn.
//! Frames are as large as the windows allow, up to [`MAX_FRAME`], and
//! never tiny: a window that opened by a
//! few bytes waits for [`MIN_FRAME`] of credit (curl once sent one-byte
//! frames there).

use std::collections::{HashMap, VecDeque};

use uploadtask_http2::conn::{Config, Connection, ConnectionError, Event, Refusal};
use uploadtask_http2::frame::HEADER_LEN;
use uploadtask_http2::ErrorCode;

/// The least body bytes a DATA frame carries, unless the body ends (see
/// [`Mux::fill`]).
pub const MIN_FRAME: u32 = 4096;

/// The most body bytes a DATA frame carries, whatever larger size the peer
/// allows (nginx allows 16 MiB): nghttp2's size. Larger frames gain
/// nothing (9 bytes of header per 16 KiB is 0.05%) and hold a whole frame
/// in the write buffer while the transport takes it piece by piece.
pub const MAX_FRAME: u32 = 16_384;

/// What a stream's exchange may send now (see [`Bodies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// This many body bytes remain, and may go now.
    Send(u64),
    /// Nothing now (waiting for `100 Continue`); ask again later.
    Wait,
    /// It sends nothing more.
    Done,
}

/// The exchanges' bodies, as the driver reaches them.
pub trait Bodies<K> {
    /// What `key`'s exchange may send now.
    fn want(&mut self, key: K) -> Want;
    /// Appends exactly `len` body bytes of `key` to `out` (the exchange
    /// counts them accepted); `false` when it cannot (a file that changed):
    /// that stream is then reset.
    fn write(&mut self, key: K, len: usize, out: &mut Vec<u8>) -> bool;
}

#[derive(Debug)]
struct StreamSlot<K> {
    key: K,
    /// Body bytes written into frames and not yet confirmed taken.
    unconfirmed: u64,
}

/// A DATA frame's payload in the byte stream: `[start, end)`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    stream: u32,
    start: u64,
    end: u64,
}

/// One HTTP/2 connection's streams and bytes; see the module doc.
#[derive(Debug)]
pub struct Mux<K> {
    conn: Connection,
    streams: HashMap<u32, StreamSlot<K>>,
    /// Streams that may send, in turn order.
    turn: VecDeque<u32>,
    /// Bytes to write: `out[written..]`.
    out: Vec<u8>,
    written: usize,
    /// Bytes handed to the transport so far, and of those, confirmed.
    handed: u64,
    confirmed: u64,
    /// Payloads not yet confirmed, in byte order.
    ledger: VecDeque<Segment>,
    /// Streams whose unconfirmed count changed since the last poll.
    changed: Vec<u32>,
    /// Received bytes that do not make a whole frame yet.
    partial: Vec<u8>,
    events: VecDeque<(Option<K>, Event)>,
    failed: Option<ConnectionError>,
}

impl<K: Copy> Mux<K> {
    /// A connection that writes its preface and settings first.
    pub fn new(config: Config) -> Self {
        Mux {
            conn: Connection::new(config),
            streams: HashMap::new(),
            turn: VecDeque::new(),
            out: Vec::new(),
            written: 0,
            handed: 0,
            confirmed: 0,
            ledger: VecDeque::new(),
            changed: Vec::new(),
            partial: Vec::new(),
            events: VecDeque::new(),
            failed: None,
        }
    }

    /// True when a new stream may open now.
    pub fn can_open(&self) -> bool {
        self.failed.is_none() && self.conn.can_open()
    }

    /// True once the server said its settings (its stream limit).
    pub fn settings_known(&self) -> bool {
        self.conn.has_peer_settings()
    }

    /// True when it will never take a new stream (GOAWAY, a failure).
    pub fn is_closing(&self) -> bool {
        self.failed.is_some() || self.conn.is_closing()
    }

    /// Exchanges attached.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Opens a stream for `key` with a request's fields; `end_stream` when
    /// the request has no body.
    pub fn open(&mut self, key: K, fields: &[(&[u8], &[u8])], end_stream: bool) -> Result<u32, Refusal> {
        if self.failed.is_some() {
            return Err(Refusal::Closing);
        }
        let stream = self.conn.open_stream(fields, end_stream)?;
        self.streams.insert(stream, StreamSlot { key, unconfirmed: 0 });
        if !end_stream {
            self.turn.push_back(stream);
        }
        Ok(stream)
    }

    /// The exchange on `stream` is over: the stream is reset (`CANCEL`)
    /// unless it ended both ways already; its later frames are dropped.
    pub fn detach(&mut self, stream: u32) {
        if self.streams.remove(&stream).is_some() && self.conn.has_stream(stream) {
            self.conn.reset(stream, ErrorCode::CANCEL);
        }
    }

    /// Sends a PING; the server's next bytes (its ACK, or anything) show
    /// the connection still works.
    pub fn ping(&mut self, data: [u8; 8]) {
        self.conn.ping(data);
    }

    /// Closes gracefully (GOAWAY): streams under way go on.
    pub fn close(&mut self) {
        self.conn.close();
    }

    /// Fills the write buffer up to about `max` bytes: control frames and
    /// HEADERS first, then DATA frames, the streams taking turns. Returns
    /// the keys whose streams can send no more although their bodies are
    /// not out (the connection dropped them: their events said why, or
    /// they were reset for a body that could not be read).
    pub fn fill(&mut self, max: usize, bodies: &mut dyn Bodies<K>) -> Vec<K> {
        let mut gone = Vec::new();
        // What the transport took goes (a transport that always leaves a
        // few bytes must not keep all it ever took), once it is at least
        // half the buffer: each byte is moved at most once on average,
        // however little each write takes.
        if self.written > 0 && self.written >= self.out.len() / 2 {
            self.out.drain(..self.written);
            self.written = 0;
        }
        self.take_transmit();
        let mut idle_round = 0;
        while self.out.len() - self.written < max && idle_round < self.turn.len() {
            if self.conn.connection_send_window() == 0 {
                break;
            }
            let Some(stream) = self.turn.pop_front() else { break };
            let Some(key) = self.streams.get(&stream).map(|s| s.key) else {
                continue; // detached
            };
            let remaining = match bodies.want(key) {
                Want::Done => continue,
                Want::Wait => {
                    self.turn.push_back(stream);
                    idle_round += 1;
                    continue;
                }
                Want::Send(remaining) => remaining,
            };
            let capacity = self.conn.send_capacity(stream);
            if !self.conn.has_stream(stream) {
                gone.push(key);
                continue;
            }
            if capacity < self.min_frame(remaining) {
                self.turn.push_back(stream);
                idle_round += 1;
                continue;
            }
            let capacity = capacity.min(MAX_FRAME);
            let len = u32::try_from(remaining.min(u64::from(capacity))).unwrap_or(capacity);
            let end = u64::from(len) == remaining;
            let at = self.out.len();
            self.out.extend_from_slice(&[0; HEADER_LEN]);
            if !bodies.write(key, len as usize, &mut self.out) || self.out.len() != at + HEADER_LEN + len as usize {
                self.out.truncate(at);
                self.detach(stream);
                self.take_transmit();
                gone.push(key);
                continue;
            }
            let Some(header) = self.conn.send_data(stream, len, end) else {
                // Cannot happen (capacity was asked just now); the frame goes.
                self.out.truncate(at);
                continue;
            };
            self.out[at..at + HEADER_LEN].copy_from_slice(&header);
            let start = self.handed + (at + HEADER_LEN - self.written) as u64;
            if len > 0 {
                self.ledger.push_back(Segment {
                    stream,
                    start,
                    end: start + u64::from(len),
                });
                if let Some(slot) = self.streams.get_mut(&stream) {
                    slot.unconfirmed += u64::from(len);
                }
            }
            idle_round = 0;
            if !end {
                self.turn.push_back(stream);
            }
        }
        gone
    }

    /// The least a DATA frame of a body with `remaining` bytes carries: a
    /// window that opened by a few bytes waits until it opened by
    /// [`MIN_FRAME`] (or half the peer's stream window, if smaller), so that
    /// credit given back in small steps never turns into a trickle of tiny
    /// frames (a 9-byte header for each few bytes).
    fn min_frame(&self, remaining: u64) -> u32 {
        let half_window = (self.conn.peer_settings().initial_window_size / 2).max(1);
        let min = MIN_FRAME.min(half_window);
        u32::try_from(remaining).map_or(min, |r| r.min(min))
    }

    /// Moves the connection's own bytes (settings, HEADERS, WINDOW_UPDATE,
    /// RST_STREAM) to the write buffer.
    fn take_transmit(&mut self) {
        if let Some(bytes) = self.conn.poll_transmit() {
            if self.out.is_empty() {
                self.out = bytes;
            } else {
                self.out.extend_from_slice(&bytes);
            }
        }
    }

    /// Bytes to write now (after [`Mux::fill`]).
    pub fn pending(&self) -> &[u8] {
        &self.out[self.written..]
    }

    /// The transport took `n` bytes of [`Mux::pending`].
    pub fn handle_written(&mut self, n: usize) {
        let n = n.min(self.out.len() - self.written);
        self.written += n;
        self.handed += n as u64;
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        }
    }

    /// The transport holds `unflushed` of the bytes it took in user space
    /// (TLS records not yet written whole): the rest are confirmed, and
    /// credited to their streams.
    pub fn handle_unflushed(&mut self, unflushed: usize) {
        let confirmed = self.handed.saturating_sub(unflushed as u64).max(self.confirmed);
        while let Some(segment) = self.ledger.front().copied() {
            let from = segment.start.max(self.confirmed);
            let to = segment.end.min(confirmed);
            if to > from {
                if let Some(slot) = self.streams.get_mut(&segment.stream) {
                    slot.unconfirmed -= to - from;
                    self.changed.push(segment.stream);
                }
            }
            if segment.end > confirmed {
                break;
            }
            self.ledger.pop_front();
        }
        self.confirmed = confirmed;
    }

    /// A stream whose count of unconfirmed body bytes changed: its key and
    /// the count.
    pub fn poll_unconfirmed(&mut self) -> Option<(K, u64)> {
        while let Some(stream) = self.changed.pop() {
            if let Some(slot) = self.streams.get(&stream) {
                return Some((slot.key, slot.unconfirmed));
            }
        }
        None
    }

    /// Bytes read from the transport. A connection error fails every
    /// stream (their events follow) and is returned.
    pub fn handle_received(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = if self.partial.is_empty() {
            self.conn.handle_received(bytes).map(|used| {
                self.partial.extend_from_slice(&bytes[used..]);
            })
        } else {
            self.partial.extend_from_slice(bytes);
            self.conn.handle_received(&self.partial).map(|used| {
                self.partial.drain(..used);
            })
        };
        self.take_events();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
            self.partial = Vec::new();
        }
        result
    }

    /// The transport failed or the peer closed: every stream fails.
    pub fn handle_closed(&mut self) {
        if self.failed.is_none() {
            self.failed = Some(ConnectionError {
                code: ErrorCode::NO_ERROR,
                reason: "the connection closed",
            });
        }
        let mut streams: Vec<u32> = self.streams.keys().copied().collect();
        streams.sort_unstable();
        for stream in streams {
            if let Some(slot) = self.streams.get(&stream) {
                self.events.push_back((Some(slot.key), Event::Failed { stream }));
            }
        }
    }

    fn take_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            let key = match event.stream() {
                Some(stream) => match self.streams.get(&stream) {
                    Some(slot) => Some(slot.key),
                    None => continue, // detached: nobody listens
                },
                None => None,
            };
            self.events.push_back((key, event));
        }
    }

    /// The next event: with the key of its stream's exchange, when it is
    /// about one.
    pub fn poll_event(&mut self) -> Option<(Option<K>, Event)> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
