//! The client side of one HTTP/2 connection, without I/O: it writes the
//! preface and settings, opens streams with HPACK-coded requests, counts
//! what each stream may send (the peer's windows, its frame size, its
//! stream limit), and reads the server's frames into events. The caller
//! moves bytes: [`Connection::poll_transmit`] before any DATA frame, then
//! each DATA frame's header from [`Connection::send_data`] followed by its
//! body bytes from wherever they are.
//!
//! ```text
//!  new ── preface, SETTINGS, WINDOW_UPDATE queued
//!   │
//!   ▼
//!  Open ──GOAWAY received──► Draining: no new streams; those above the
//!   │                        last stream id come back as Refused
//!   └── a connection error ──► Failed: GOAWAY queued, every stream Failed
//!
//!  a stream: open_stream ─► Open ─END_STREAM sent─► HalfClosedLocal ─┐
//!                            └─END_STREAM received─► HalfClosedRemote ┴─► gone
//!            RST_STREAM sent or received, Refused ────────────────────────► gone
//! ```
//!
//! A stream whose response ended (END_STREAM received) hears nothing more,
//! but for one [`Event::SendStopped`] when the peer resets it while its
//! body is still going out; a connection failure only ends its sending
//! ([`Connection::send_capacity`] is 0), as the response is whole.
//!
//! Bounds: a header block (HEADERS and its CONTINUATIONs) of at most
//! [`MAX_BLOCK_FRAMES`] frames and the header list size we announce plus
//! 16 KiB (the CONTINUATION flood: a connection error, `ENHANCE_YOUR_CALM`);
//! response bodies arrive as copies in events and their credit is returned
//! at once, in large steps ([`crate::flow`]).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::flow::{ReceiveWindow, SendWindow};
use crate::frame::{self, Frame, FrameError, Parsed, HEADER_LEN};
use crate::hpack::{Decoder, Encoder, HpackError};
use crate::settings::Settings;
use crate::{ErrorCode, Fields, PREFACE};

/// Streams opened before the server's SETTINGS say how many it takes: the
/// least RFC 9113 §6.5.2 recommends a server allow. A server that allows
/// fewer refuses the rest (REFUSED_STREAM), and they are sent again.
pub const STREAMS_BEFORE_SETTINGS: usize = 100;

/// Frames one header block may take (HEADERS and CONTINUATIONs).
pub const MAX_BLOCK_FRAMES: usize = 64;

/// Our side's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The window each stream's response gets.
    pub stream_window: u32,
    /// The window all responses share.
    pub connection_window: u32,
    /// The largest header list we take (`SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_header_list_size: u32,
}

impl Default for Config {
    /// Windows large enough that a response never waits for credit: 1 MiB
    /// a stream, 10 MiB for the connection (curl's); 64 KiB of header list.
    fn default() -> Self {
        Config {
            stream_window: 1 << 20,
            connection_window: 10 << 20,
            max_header_list_size: 64 << 10,
        }
    }
}

/// What the connection tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A response head: interim (1xx) or final.
    Headers {
        /// The stream.
        stream: u32,
        /// `:status`.
        status: u16,
        /// The other fields, in order (names in lower case).
        fields: Fields,
        /// The response ends here (no body).
        end_stream: bool,
    },
    /// Trailers: a header block after the body; the response ends.
    Trailers {
        /// The stream.
        stream: u32,
        /// The fields.
        fields: Fields,
    },
    /// Response body bytes.
    Data {
        /// The stream.
        stream: u32,
        /// The bytes (padding removed).
        data: Vec<u8>,
        /// The response ends here.
        end_stream: bool,
    },
    /// The peer reset the stream, or the stream broke a rule and we did.
    Reset {
        /// The stream.
        stream: u32,
        /// The code.
        code: ErrorCode,
    },
    /// The peer did not process the stream (REFUSED_STREAM, or above a
    /// GOAWAY's last stream id): it may be sent again, whole, elsewhere.
    Refused {
        /// The stream.
        stream: u32,
    },
    /// The connection failed: the stream ends with it.
    Failed {
        /// The stream.
        stream: u32,
    },
    /// The peer reset a stream whose response had ended while we were
    /// still sending its body: stop sending; the response stands (a
    /// server may answer before it read the whole request and then ask
    /// the client to stop, RFC 9113 §8.1).
    SendStopped {
        /// The stream.
        stream: u32,
        /// The reset's code (`NO_ERROR` for that request).
        code: ErrorCode,
    },
    /// Streams may send more (a window or the stream limit grew).
    Writable,
    /// The peer will take no new stream.
    GoAway {
        /// The last stream it may have processed.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
    },
    /// The answer to our PING.
    PingAck([u8; 8]),
}

impl Event {
    /// The stream the event is about, if it is about one.
    pub fn stream(&self) -> Option<u32> {
        match self {
            Event::Headers { stream, .. }
            | Event::Trailers { stream, .. }
            | Event::Data { stream, .. }
            | Event::Reset { stream, .. }
            | Event::Refused { stream }
            | Event::Failed { stream }
            | Event::SendStopped { stream, .. } => Some(*stream),
            Event::Writable | Event::GoAway { .. } | Event::PingAck(_) => None,
        }
    }
}

/// Why a stream cannot be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// As many streams are open as the peer allows: wait, or use another
    /// connection.
    AtLimit,
    /// The connection takes no new stream (GOAWAY, failure, ids used up).
    Closing,
}

/// A connection error: we sent GOAWAY with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionError {
    /// The code we sent.
    pub code: ErrorCode,
    /// Why.
    pub reason: &'static str,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/2 connection error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ConnectionError {}

impl From<FrameError> for ConnectionError {
    fn from(e: FrameError) -> Self {
        ConnectionError {
            code: e.code,
            reason: e.reason,
        }
    }
}

fn fail(code: ErrorCode, reason: &'static str) -> ConnectionError {
    ConnectionError { code, reason }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Draining,
    Failed,
}

#[derive(Debug)]
struct Stream {
    send: SendWindow,
    recv: ReceiveWindow,
    /// We sent END_STREAM.
    local_done: bool,
    /// The peer sent END_STREAM.
    remote_done: bool,
    /// A final (non-1xx) head arrived.
    final_head: bool,
}

/// A header block being gathered.
#[derive(Debug)]
struct Block {
    stream: u32,
    bytes: Vec<u8>,
    frames: usize,
    end_stream: bool,
}

/// One client connection; see the module doc.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    peer: Settings,
    /// The peer's first frame (its SETTINGS) arrived.
    peer_ready: bool,
    encoder: Encoder,
    decoder: Decoder,
    send: SendWindow,
    recv: ReceiveWindow,
    streams: BTreeMap<u32, Stream>,
    next_id: u32,
    out: Vec<u8>,
    events: VecDeque<Event>,
    block: Option<Block>,
    state: State,
    /// The settings frame size we announced (the default).
    max_frame_in: u32,
}

impl Connection {
    /// A connection that has sent nothing yet: the preface, our SETTINGS
    /// (push off, our windows, our header list size) and the connection
    /// window's growth wait in [`Connection::poll_transmit`].
    pub fn new(config: Config) -> Self {
        let ours = Settings {
            enable_push: false,
            initial_window_size: config.stream_window,
            max_header_list_size: Some(config.max_header_list_size),
            ..Settings::default()
        };
        let mut out = PREFACE.to_vec();
        frame::write_settings(&ours.pairs(), &mut out);
        let mut recv = ReceiveWindow::new(65_535);
        if let Some(more) = recv.grow_to(config.connection_window) {
            frame::write_window_update(0, more, &mut out);
        }
        Connection {
            config,
            peer: Settings::default(),
            peer_ready: false,
            encoder: Encoder::default(),
            decoder: Decoder::new(4096, config.max_header_list_size as usize),
            send: SendWindow::new(65_535),
            recv,
            streams: BTreeMap::new(),
            next_id: 1,
            out,
            events: VecDeque::new(),
            block: None,
            state: State::Open,
            max_frame_in: frame::MIN_MAX_FRAME_SIZE,
        }
    }

    /// Bytes to write to the peer, if any (write them before any DATA
    /// frame: a stream's HEADERS go here).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The peer's settings as known so far.
    pub fn peer_settings(&self) -> &Settings {
        &self.peer
    }

    /// True once the peer's first SETTINGS arrived (its limits are known).
    pub fn has_peer_settings(&self) -> bool {
        self.peer_ready
    }

    /// Streams open (sending or awaiting their response).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// True when a new stream may be opened now: within the peer's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, or [`STREAMS_BEFORE_SETTINGS`]
    /// until its SETTINGS arrive.
    pub fn can_open(&self) -> bool {
        let limit = match (self.peer_ready, self.peer.max_concurrent_streams) {
            (_, Some(max)) => max as usize,
            (false, None) => STREAMS_BEFORE_SETTINGS,
            (true, None) => usize::MAX,
        };
        self.state == State::Open && self.next_id <= frame::MAX_WINDOW && self.streams.len() < limit
    }

    /// Opens a stream with a request's fields (pseudo-fields first, names
    /// in lower case); `end_stream` when it has no body.
    pub fn open_stream(&mut self, fields: &[(&[u8], &[u8])], end_stream: bool) -> Result<u32, Refusal> {
        if self.state != State::Open || self.next_id > frame::MAX_WINDOW {
            return Err(Refusal::Closing);
        }
        if !self.can_open() {
            return Err(Refusal::AtLimit);
        }
        let id = self.next_id;
        self.next_id += 2;
        let mut block = Vec::new();
        for (name, value) in fields {
            self.encoder.encode(name, value, &mut block);
        }
        frame::write_headers(id, &block, end_stream, self.peer.max_frame_size, &mut self.out);
        self.streams.insert(
            id,
            Stream {
                send: SendWindow::new(self.peer.initial_window_size),
                recv: ReceiveWindow::new(self.config.stream_window),
                local_done: end_stream,
                remote_done: false,
                final_head: false,
            },
        );
        Ok(id)
    }

    /// Bytes the connection's send window allows now, all streams together.
    pub fn connection_send_window(&self) -> u32 {
        if self.state == State::Failed {
            return 0;
        }
        self.send.available()
    }

    /// True while `stream` is open on our side or the peer's (not ended
    /// both ways, not reset, not refused).
    pub fn has_stream(&self, stream: u32) -> bool {
        self.streams.contains_key(&stream)
    }

    /// True when the connection takes no new stream and never will again
    /// (GOAWAY sent or received, a connection error, stream ids used up).
    pub fn is_closing(&self) -> bool {
        self.state != State::Open || self.next_id > frame::MAX_WINDOW
    }

    /// How many body bytes `stream` may send in its next DATA frame now:
    /// the least of the connection's window, the stream's and the peer's
    /// frame size (0 when it may not send).
    pub fn send_capacity(&self, stream: u32) -> u32 {
        match self.streams.get(&stream) {
            Some(s) if !s.local_done && self.state != State::Failed => self
                .send
                .available()
                .min(s.send.available())
                .min(self.peer.max_frame_size),
            _ => 0,
        }
    }

    /// A DATA frame of `len` body bytes (at most [`Connection::send_capacity`];
    /// 0 with `end_stream` ends an empty body): its header, to write
    /// followed by the bytes. The windows are taken now.
    pub fn send_data(&mut self, stream: u32, len: u32, end_stream: bool) -> Option<[u8; HEADER_LEN]> {
        if len > self.send_capacity(stream) || (len == 0 && !end_stream) {
            return None;
        }
        let s = self.streams.get_mut(&stream).filter(|s| !s.local_done)?;
        s.send.consume(len);
        self.send.consume(len);
        if end_stream {
            s.local_done = true;
            if s.remote_done {
                self.streams.remove(&stream);
            }
        }
        Some(frame::data_header(stream, len, end_stream))
    }

    /// Resets a stream of ours (abort, timeout: `CANCEL`); its later
    /// frames are dropped.
    pub fn reset(&mut self, stream: u32, code: ErrorCode) {
        if self.streams.remove(&stream).is_some() && self.state != State::Failed {
            frame::write_reset(stream, code, &mut self.out);
        }
    }

    /// Sends a PING (its ACK comes back as [`Event::PingAck`]).
    pub fn ping(&mut self, data: [u8; 8]) {
        if self.state != State::Failed {
            frame::write_ping(data, false, &mut self.out);
        }
    }

    /// Closes gracefully: GOAWAY(NO_ERROR); streams under way go on.
    pub fn close(&mut self) {
        if self.state == State::Open {
            frame::write_goaway(0, ErrorCode::NO_ERROR, b"", &mut self.out);
            self.state = State::Draining;
        }
    }

    /// True once nothing is left to do: draining or failed, no stream.
    pub fn is_done(&self) -> bool {
        self.state != State::Open && self.streams.is_empty()
    }

    /// Reads frames from the front of `input`; returns the bytes used (the
    /// rest is an incomplete frame: keep it and call again with more). On a
    /// connection error, GOAWAY is queued, every stream fails, and the
    /// connection takes nothing more.
    pub fn handle_received(&mut self, input: &[u8]) -> Result<usize, ConnectionError> {
        if self.state == State::Failed {
            return Err(fail(ErrorCode::PROTOCOL_ERROR, "the connection failed before"));
        }
        let mut used = 0;
        while used < input.len() {
            let parsed = frame::parse(&input[used..], self.max_frame_in).map_err(ConnectionError::from);
            let (frame, n) = match parsed {
                Ok(Parsed::Frame(frame, n)) => (frame, n),
                Ok(Parsed::Incomplete(_)) => break,
                Err(e) => return Err(self.fail_with(e)),
            };
            if let Err(e) = self.handle_frame(frame) {
                return Err(self.fail_with(e));
            }
            used += n;
        }
        Ok(used)
    }

    /// Ends the connection with `error`: GOAWAY, every stream failed.
    fn fail_with(&mut self, error: ConnectionError) -> ConnectionError {
        let last = self.next_id.saturating_sub(2);
        frame::write_goaway(last, error.code, error.reason.as_bytes(), &mut self.out);
        self.state = State::Failed;
        for (stream, s) in std::mem::take(&mut self.streams) {
            // A stream whose response ended has its outcome already.
            if !s.remote_done {
                self.events.push_back(Event::Failed { stream });
            }
        }
        error
    }

    fn handle_frame(&mut self, frame: Frame<'_>) -> Result<(), ConnectionError> {
        if !self.peer_ready && !matches!(frame, Frame::Settings(_)) {
            return Err(fail(
                ErrorCode::PROTOCOL_ERROR,
                "the server's first frame is not SETTINGS",
            ));
        }
        if let Some(block) = &self.block {
            if !matches!(frame, Frame::Continuation { stream, .. } if stream == block.stream) {
                return Err(fail(ErrorCode::PROTOCOL_ERROR, "a frame inside a header block"));
            }
        }
        match frame {
            Frame::Settings(pairs) => {
                let before = (self.peer.initial_window_size, self.peer.max_concurrent_streams);
                for (id, value) in pairs {
                    self.peer.apply(id, value)?;
                }
                self.peer_ready = true;
                let delta = i64::from(self.peer.initial_window_size) - i64::from(before.0);
                if delta != 0 {
                    for s in self.streams.values_mut() {
                        s.send
                            .adjust(delta)
                            .map_err(|code| fail(code, "a stream window beyond 2^31-1"))?;
                    }
                }
                frame::write_settings_ack(&mut self.out);
                if delta > 0 || self.peer.max_concurrent_streams != before.1 {
                    self.events.push_back(Event::Writable);
                }
            }
            Frame::SettingsAck => {}
            Frame::Ping(data) => frame::write_ping(data, true, &mut self.out),
            Frame::PingAck(data) => self.events.push_back(Event::PingAck(data)),
            Frame::GoAway { last_stream, code, .. } => {
                if self.state == State::Open {
                    self.state = State::Draining;
                }
                let refused: Vec<u32> = self.streams.range(last_stream + 1..).map(|(&id, _)| id).collect();
                for stream in refused {
                    // One whose response ended was processed, whatever the
                    // GOAWAY says: it only stops sending.
                    match self.streams.remove(&stream) {
                        Some(s) if !s.remote_done => self.events.push_back(Event::Refused { stream }),
                        Some(s) if !s.local_done => self.events.push_back(Event::SendStopped { stream, code }),
                        _ => {}
                    }
                }
                self.events.push_back(Event::GoAway { last_stream, code });
            }
            Frame::WindowUpdate { stream: 0, increment } => {
                self.send
                    .increase(increment)
                    .map_err(|code| fail(code, "the connection window beyond 2^31-1"))?;
                self.events.push_back(Event::Writable);
            }
            Frame::WindowUpdate { stream, increment } => {
                self.check_known(stream)?;
                if let Some(s) = self.streams.get_mut(&stream) {
                    match s.send.increase(increment) {
                        Ok(()) => self.events.push_back(Event::Writable),
                        Err(code) => self.reset_for(stream, code),
                    }
                }
            }
            Frame::Reset { stream, code } => {
                self.check_known(stream)?;
                match self.streams.remove(&stream) {
                    Some(s) if !s.remote_done => self.events.push_back(match code {
                        ErrorCode::REFUSED_STREAM => Event::Refused { stream },
                        code => Event::Reset { stream, code },
                    }),
                    Some(s) if !s.local_done => self.events.push_back(Event::SendStopped { stream, code }),
                    _ => {}
                }
            }
            Frame::StreamError { stream, code } => {
                self.check_known(stream)?;
                self.reset_for(stream, code);
            }
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => self.handle_data(stream, data, end_stream, flow_len)?,
            Frame::Headers {
                stream,
                fragment,
                end_stream,
                end_headers,
            } => {
                self.check_known(stream)?;
                self.block = Some(Block {
                    stream,
                    bytes: fragment.to_vec(),
                    frames: 1,
                    end_stream,
                });
                self.check_block()?;
                if end_headers {
                    self.end_block()?;
                }
            }
            Frame::Continuation {
                fragment, end_headers, ..
            } => {
                let Some(block) = self.block.as_mut() else {
                    return Err(fail(ErrorCode::PROTOCOL_ERROR, "CONTINUATION without HEADERS"));
                };
                block.bytes.extend_from_slice(fragment);
                block.frames += 1;
                self.check_block()?;
                if end_headers {
                    self.end_block()?;
                }
            }
            Frame::Ignored => {}
        }
        Ok(())
    }

    /// A stream id the server may speak of: one we opened (a push or an
    /// idle stream is a connection error).
    fn check_known(&self, stream: u32) -> Result<(), ConnectionError> {
        if stream % 2 == 0 || stream >= self.next_id {
            return Err(fail(ErrorCode::PROTOCOL_ERROR, "a frame on a stream we did not open"));
        }
        Ok(())
    }

    /// The block being gathered stays within its bounds.
    fn check_block(&self) -> Result<(), ConnectionError> {
        let Some(block) = &self.block else { return Ok(()) };
        let max_bytes = self.config.max_header_list_size as usize + (16 << 10);
        if block.frames > MAX_BLOCK_FRAMES || block.bytes.len() > max_bytes {
            return Err(fail(ErrorCode::ENHANCE_YOUR_CALM, "a header block beyond its bounds"));
        }
        Ok(())
    }

    /// A whole header block: decoded (always, to keep the table in step),
    /// then a head or trailers of its stream, if the stream is still ours.
    fn end_block(&mut self) -> Result<(), ConnectionError> {
        let Some(block) = self.block.take() else { return Ok(()) };
        let mut fields = Vec::new();
        let decoded = self
            .decoder
            .decode(&block.bytes, |n, v| fields.push((n.to_vec(), v.to_vec())));
        let stream = block.stream;
        match decoded {
            Ok(()) => {}
            Err(HpackError::ListTooLarge) => {
                self.reset_for(stream, ErrorCode::PROTOCOL_ERROR);
                return Ok(());
            }
            Err(_) => {
                return Err(fail(
                    ErrorCode::COMPRESSION_ERROR,
                    "a header block that does not decode",
                ))
            }
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(()); // reset or finished: its frames are dropped
        };
        if s.remote_done {
            self.reset_for(stream, ErrorCode::STREAM_CLOSED);
            return Ok(());
        }
        if s.final_head {
            // Trailers: they end the stream.
            if !block.end_stream {
                self.reset_for(stream, ErrorCode::PROTOCOL_ERROR);
                return Ok(());
            }
            self.events.push_back(Event::Trailers { stream, fields });
            return self.end_remote(stream);
        }
        let status = match response_status(&mut fields) {
            Some(status) if !(block.end_stream && status < 200) => status,
            _ => {
                self.reset_for(stream, ErrorCode::PROTOCOL_ERROR);
                return Ok(());
            }
        };
        if status >= 200 {
            s.final_head = true;
        }
        self.events.push_back(Event::Headers {
            stream,
            status,
            fields,
            end_stream: block.end_stream,
        });
        if block.end_stream {
            return self.end_remote(stream);
        }
        Ok(())
    }

    fn handle_data(
        &mut self,
        stream: u32,
        data: &[u8],
        end_stream: bool,
        flow_len: u32,
    ) -> Result<(), ConnectionError> {
        self.check_known(stream)?;
        self.recv
            .handle_received(flow_len)
            .map_err(|code| fail(code, "DATA beyond the connection window"))?;
        if let Some(more) = self.recv.poll_update() {
            frame::write_window_update(0, more, &mut self.out);
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(()); // reset or finished: dropped (counted above)
        };
        if s.remote_done || !s.final_head {
            let code = if s.remote_done {
                ErrorCode::STREAM_CLOSED
            } else {
                ErrorCode::PROTOCOL_ERROR
            };
            self.reset_for(stream, code);
            return Ok(());
        }
        if s.recv.handle_received(flow_len).is_err() {
            self.reset_for(stream, ErrorCode::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        if !end_stream {
            if let Some(more) = s.recv.poll_update() {
                frame::write_window_update(stream, more, &mut self.out);
            }
        }
        self.events.push_back(Event::Data {
            stream,
            data: data.to_vec(),
            end_stream,
        });
        if end_stream {
            return self.end_remote(stream);
        }
        Ok(())
    }

    /// The peer ended its side of `stream`.
    fn end_remote(&mut self, stream: u32) -> Result<(), ConnectionError> {
        if let Some(s) = self.streams.get_mut(&stream) {
            s.remote_done = true;
            if s.local_done {
                self.streams.remove(&stream);
            }
        }
        Ok(())
    }

    /// A stream broke a rule (or its window overflowed): reset it, tell.
    fn reset_for(&mut self, stream: u32, code: ErrorCode) {
        if let Some(s) = self.streams.remove(&stream) {
            frame::write_reset(stream, code, &mut self.out);
            if !s.remote_done {
                self.events.push_back(Event::Reset { stream, code });
            }
        }
    }
}

/// Takes `:status` out of a response's fields; `None` when it is missing,
/// not three digits, repeated, or another pseudo-field or an upper-case
/// name is there (a malformed response, RFC 9113 §8.1.1).
fn response_status(fields: &mut Fields) -> Option<u16> {
    let mut status = None;
    for (name, value) in fields.iter() {
        if name.first() == Some(&b':') {
            if name != b":status" || status.is_some() {
                return None;
            }
            let digits = <[u8; 3]>::try_from(value.as_slice()).ok()?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            status = Some(digits.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')));
        } else if name.iter().any(u8::is_ascii_uppercase) {
            return None;
        }
    }
    if fields.first().map(|(n, _)| n.as_slice()) != Some(b":status") {
        return None;
    }
    fields.remove(0);
    status.filter(|&s| s >= 100)
}

#[cfg(test)]
mod tests;
