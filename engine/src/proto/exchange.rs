//! One request/response exchange on a connection, with no I/O: the request
//! head and multipart body go out as gathered [`Piece`]s, the response comes in as
//! bytes, and `now` is passed in for progress timing.
//!
//! ```text
//!             handle_sent / handle_unflushed          handle_received / handle_eof
//!   ┌─────────┐  all body bytes accepted  ┌───────────┐  final head + body complete  ┌──────┐
//!   │ Sending ├──────────────────────────►│ Receiving ├─────────────────────────────►│ Done │
//!   └────┬────┘                           └─────┬─────┘                              └──────┘
//!        │ early final head ≥ 400 or "Connection: close": stop sending ──► Receiving
//!        │ write error before any response: keep reading, fail if none comes
//!        └──────────────── any error ──────────────────────────────────────────► Failed
//! ```
//!
//! Call order, as in quinn-proto: feed inputs (`handle_*`), then drain outputs
//! (`poll_gather`, `poll_progress`, `poll_outcome`) until they return
//! `None`.
//!
//! Sent-byte accounting: `handle_sent(n)` counts bytes the transport
//! accepted; `handle_unflushed(u)` says how many of those are still buffered
//! in user space (TLS records not yet written whole). Progress counts only
//! body bytes in `accepted - unflushed`.

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use uploadtask_http1::{
    body_framing, BodyDecoder, BodyError, Headers, Limits, ParseStatus, ResponseError, ResponseHead, ResponseHeadParser,
};
use uploadtask_multipart::{Body, Chunk, Cursor};

use crate::proto::ack::AckTracker;
use crate::proto::progress::{Progress, ProgressGate};

/// One piece of a gathered write: see [`Exchange::poll_gather`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes of file part `part` from `offset`.
    File {
        /// Index of the file part.
        part: usize,
        /// Offset in the file.
        offset: u64,
        /// Bytes of the region.
        len: u64,
    },
}

/// Most pieces one gathered write holds.
pub const MAX_PIECES: usize = 4;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase (the usual ones are borrowed, not allocated).
    pub reason: Cow<'static, str>,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1, `2` for HTTP/2.
    pub version: u8,
    /// Headers in order, duplicates kept.
    pub headers: Headers,
    /// The body, decoded from its framing.
    pub body: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The response head was refused.
    Head(ResponseError),
    /// The response framing was refused.
    Framing(uploadtask_http1::FramingError),
    /// The response body was refused.
    Body(BodyError),
    /// The connection closed before a response head.
    ClosedBeforeResponse {
        /// Body bytes sent before.
        body_bytes_sent: u64,
    },
    /// The connection closed before the whole body was sent, after a
    /// response that gave no reason to stop sending (below 400, keep-alive).
    ClosedWhileSending {
        /// Body bytes sent before.
        body_bytes_sent: u64,
        /// The body's length.
        body_length: u64,
    },
    /// The HTTP/2 stream was reset (by the server, or by us for a rule it
    /// broke) before the response ended.
    StreamReset {
        /// The RST_STREAM error code.
        code: u32,
        /// Body bytes sent before.
        body_bytes_sent: u64,
    },
    /// An HTTP/2 response that breaks RFC 9113 §8.1 (body before the head,
    /// more body than its Content-Length).
    Malformed(&'static str),
    /// A read or write failed before the exchange completed.
    Io {
        /// The error's kind.
        kind: std::io::ErrorKind,
        /// The error's text.
        message: String,
        /// Body bytes sent before.
        body_bytes_sent: u64,
        /// The error itself.
        source: IoSource,
    },
}

/// The `io::Error` behind [`ExchangeError::Io`], shared; two are always
/// equal (the kind and message are compared instead).
#[derive(Debug, Clone, Default)]
pub struct IoSource(pub Option<std::sync::Arc<std::io::Error>>);

impl PartialEq for IoSource {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IoSource {}

impl ExchangeError {
    /// The underlying error, for `UploadError::source`.
    pub fn shared_source(&self) -> Option<crate::error::Source> {
        match self {
            ExchangeError::Head(e) => Some(std::sync::Arc::new(*e)),
            ExchangeError::Framing(e) => Some(std::sync::Arc::new(*e)),
            ExchangeError::Body(e) => Some(std::sync::Arc::new(*e)),
            ExchangeError::ClosedBeforeResponse { .. }
            | ExchangeError::ClosedWhileSending { .. }
            | ExchangeError::StreamReset { .. }
            | ExchangeError::Malformed(_) => None,
            ExchangeError::Io { source, .. } => source.0.clone().map(|e| e as crate::error::Source),
        }
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Head(e) => e.fmt(f),
            ExchangeError::Framing(e) => e.fmt(f),
            ExchangeError::Body(e) => e.fmt(f),
            ExchangeError::ClosedBeforeResponse { body_bytes_sent } => {
                write!(
                    f,
                    "connection closed after {body_bytes_sent} body bytes, before a response"
                )
            }
            ExchangeError::ClosedWhileSending {
                body_bytes_sent,
                body_length,
            } => write!(
                f,
                "connection closed after {body_bytes_sent} of {body_length} body bytes were sent"
            ),
            ExchangeError::StreamReset { code, body_bytes_sent } => {
                let code = uploadtask_http2::ErrorCode(*code);
                write!(f, "HTTP/2 stream reset ({code}) after {body_bytes_sent} body bytes")
            }
            ExchangeError::Malformed(what) => write!(f, "malformed HTTP/2 response: {what}"),
            ExchangeError::Io {
                kind,
                message,
                body_bytes_sent,
                ..
            } => {
                let what = match kind {
                    std::io::ErrorKind::ConnectionReset => "connection reset",
                    std::io::ErrorKind::BrokenPipe => "connection closed by peer",
                    _ => message.as_str(),
                };
                write!(f, "{what} after {body_bytes_sent} body bytes")
            }
        }
    }
}

impl std::error::Error for ExchangeError {}

/// Heads to report, when asked.
#[derive(Debug, Default)]
struct Reports {
    headers: Option<(u16, Headers)>,
    request_head: Option<Vec<u8>>,
    /// Every response head's bytes as received (1xx and final), not yet
    /// polled; one read's worth at most between polls.
    response_heads: Vec<u8>,
    /// `104` heads not yet polled, in order (at most the parser's limit of
    /// interim heads per response).
    interim: std::collections::VecDeque<(u16, Headers)>,
}

/// A body that is one piece of a longer one (a resumable upload's append):
/// file offsets start at `start` in the source, and progress counts from
/// `start` (plus the body bytes on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Window {
    start: u64,
    /// A `HEAD` request: the response never has a body.
    head_request: bool,
    /// Keep `104` interim heads for `poll_interim`.
    interim: bool,
    /// An HTTP/2 stream carries the exchange ([`Exchange::start_stream`]).
    stream: bool,
}

/// Waiting for `100 Continue`: for `wait` once the head is out, then the
/// body goes anyway (servers that ignore `Expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    wait_ms: u32,
    until: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Sending,
    Receiving,
    Done,
    Failed,
}

/// One request/response exchange; see the module doc.
#[derive(Debug)]
pub struct Exchange {
    state: State,
    head: Vec<u8>,
    head_sent: usize,
    body: Body,
    cursor: Cursor,
    accepted: u64,
    unflushed: u64,
    progress: ProgressGate,
    parser: ResponseHeadParser,
    /// Bytes of a response head that did not arrive in one read; bounded by
    /// `limits.max_head_bytes` (the parser refuses more).
    partial_head: Vec<u8>,
    head_in: Option<ResponseHead>,
    decoder: Option<BodyDecoder>,
    response_body: Vec<u8>,
    response_started: bool,
    reusable: bool,
    /// The response's `Keep-Alive: timeout=N`, in seconds.
    keep_alive_secs: Option<u32>,
    write_error: Option<std::io::Error>,
    /// Sending stopped because an early final response came.
    stopped_early: bool,
    /// Status of a final head not yet reported by `poll_response_head`.
    head_event: Option<u16>,
    /// Waiting for `100 Continue` before the body (`Expect: 100-continue`).
    expect: Option<Expect>,
    /// Copy the heads for `poll_headers` and `poll_request_head` (opt-in:
    /// a copy costs allocations; boxed, as most exchanges never report).
    reports: Option<Box<Reports>>,
    /// Where the body sits in its source and in the whole upload.
    window: Window,
    /// Progress counts what the peer acknowledged (opt-in), and when the
    /// driver asks the kernel next.
    ack: Option<Box<(AckTracker, Option<Instant>)>>,
    outcome: Option<Result<Response, ExchangeError>>,
}

impl Exchange {
    /// The request head's and the body's storage, for the next upload.
    pub fn into_storage(self) -> (Vec<u8>, uploadtask_multipart::Spare) {
        (self.head, self.body.into_spare())
    }

    /// An exchange that sends `head` then `body`, and reads the response
    /// within `limits`.
    pub fn new(head: Vec<u8>, body: Body, limits: Limits) -> Self {
        let total = body.content_length();
        Exchange {
            state: State::Sending,
            head,
            head_sent: 0,
            cursor: body.cursor(),
            body,
            accepted: 0,
            unflushed: 0,
            progress: ProgressGate::new(total),
            parser: ResponseHeadParser::new(limits),
            partial_head: Vec::new(),
            head_in: None,
            decoder: None,
            response_body: Vec::new(),
            response_started: false,
            reusable: false,
            keep_alive_secs: None,
            write_error: None,
            stopped_early: false,
            head_event: None,
            expect: None,
            reports: None,
            window: Window::default(),
            ack: None,
            outcome: None,
        }
    }

    /// Makes the body the piece of a longer upload that starts at `start` in
    /// its source: file reads start there, and progress counts from there
    /// toward `total` (the whole upload). `head_request` says a `HEAD` goes
    /// out (its response has no body); `interim` keeps `104` heads for
    /// [`Exchange::poll_interim`].
    pub fn set_window(&mut self, start: u64, total: u64, head_request: bool, interim: bool) {
        self.window = Window {
            start,
            head_request,
            interim,
            stream: self.window.stream,
        };
        self.progress.set_total(total);
    }

    /// Starts over on a fresh connection (the retry of a reused one). Progress
    /// already reported stays: no event repeats or goes back.
    pub fn restart(&mut self) {
        let fresh = Exchange::new(std::mem::take(&mut self.head), self.body.clone(), *self.parser.limits());
        let progress = self.progress.clone();
        let reports = self.reports.as_ref().map(|_| Box::default());
        // The next connection may speak HTTP/1.1.
        let window = Window {
            stream: false,
            ..self.window
        };
        let ack = self.ack.as_ref().map(|_| Box::default());
        *self = Exchange {
            progress,
            reports,
            window,
            ack,
            ..fresh
        };
    }

    /// The next exchange after a redirect: `head` then `body` (the same body
    /// from byte 0, or none). Progress already reported stays: no event
    /// repeats or goes back.
    pub fn follow(&self, head: Vec<u8>, body: Body) -> Exchange {
        let mut next = Exchange::new(head, body, *self.parser.limits());
        next.progress = self.progress.clone();
        next.reports = self.reports.as_ref().map(|_| Box::default());
        next.ack = self.ack.as_ref().map(|_| Box::default());
        next
    }

    /// Progress counts body bytes the peer acknowledged ([`crate::proto::ack`])
    /// instead of those the kernel accepted.
    pub fn set_ack_progress(&mut self, on: bool) {
        self.ack = on.then(Box::default);
    }

    /// True in acknowledged-progress mode.
    pub fn is_ack_progress(&self) -> bool {
        self.ack.is_some()
    }

    /// After a write pass: `wire` bytes went to the kernel on this
    /// connection so far. Arms the next question at `now` + the progress
    /// interval, if none is armed.
    pub fn handle_wire_written(&mut self, wire: u64, now: Instant) {
        let body = self.body_bytes_sent();
        if let Some(ack) = self.ack.as_mut() {
            ack.0.handle_written(wire, body);
            if ack.1.is_none() && ack.0.acked() < self.body.content_length() {
                ack.1 = now.checked_add(crate::proto::progress::PROGRESS_INTERVAL);
            }
        }
    }

    /// True (once) when the kernel should be asked what the peer has.
    pub fn ack_due(&mut self, now: Instant) -> bool {
        match self.ack.as_mut() {
            Some(ack) if ack.1.is_some_and(|at| at <= now) => {
                ack.1 = None;
                true
            }
            _ => false,
        }
    }

    /// The kernel holds `unacked` of the `wire` bytes of this connection;
    /// the next question is armed while body bytes remain unacknowledged.
    pub fn handle_unacked(&mut self, wire: u64, unacked: u64, now: Instant) {
        let total = self.body.content_length();
        if let Some(ack) = self.ack.as_mut() {
            let acked = ack.0.handle_unacked(wire, unacked);
            if acked < total && !matches!(self.state, State::Done | State::Failed) {
                ack.1 = now.checked_add(crate::proto::progress::PROGRESS_INTERVAL);
            }
        }
    }

    /// The multipart body being sent.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// True once any response byte has arrived.
    pub fn response_started(&self) -> bool {
        self.response_started
    }

    /// True while bytes remain to be written.
    pub fn wants_write(&self) -> bool {
        self.state == State::Sending && self.write_error.is_none()
    }

    /// True when a write failed and no response has come yet: whatever the
    /// peer sent before failing must still be read.
    pub fn write_failed(&self) -> bool {
        self.write_error.is_some()
    }

    /// True when the connection may carry another exchange (only meaningful
    /// once the outcome is a success).
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    /// How long the server said it keeps the connection open while idle
    /// (`Keep-Alive: timeout=N`), in seconds.
    pub fn keep_alive_secs(&self) -> Option<u32> {
        self.keep_alive_secs
    }

    /// Body bytes on the wire.
    pub fn body_bytes_sent(&self) -> u64 {
        let on_wire = self.accepted.saturating_sub(self.unflushed);
        on_wire.saturating_sub(self.head.len() as u64)
    }

    /// Body bytes not yet accepted by the transport.
    pub fn body_remaining(&self) -> u64 {
        let body_accepted = self.accepted.saturating_sub(self.head.len() as u64);
        self.body.content_length().saturating_sub(body_accepted)
    }

    /// Up to [`MAX_PIECES`] pieces to write in one vectored call: the head,
    /// framing bytes, and file regions of at most `room` bytes in all (the
    /// caller reads them into its buffer). A file region too large for the
    /// room left is cut to it and ends the gather, so that the pieces fill
    /// the room (over TLS: full records, not a small one for the head and
    /// framing); if it comes first it is returned whole and alone, for the
    /// caller to send in pieces or with `sendfile`.
    pub fn poll_gather(&self, room: u64) -> ([Piece<'_>; MAX_PIECES], usize) {
        let mut pieces = [Piece::Bytes(&[]); MAX_PIECES];
        let mut count = 0;
        if !self.wants_write() {
            return (pieces, 0);
        }
        let head = &self.head[self.head_sent..];
        if !head.is_empty() {
            pieces[0] = Piece::Bytes(head);
            count = 1;
        }
        if self.expect.is_some() {
            // Only the head until `100 Continue` (or the wait) releases the body.
            return (pieces, count);
        }
        let mut cursor = self.cursor;
        let mut room = room;
        while count < MAX_PIECES {
            let Some(chunk) = self.body.chunk(&cursor) else { break };
            let (piece, len) = match chunk {
                Chunk::Bytes(bytes) => (Piece::Bytes(bytes), bytes.len() as u64),
                Chunk::File { part, offset, len } if len <= room => {
                    let offset = offset + self.window.start;
                    room -= len;
                    (Piece::File { part, offset, len }, len)
                }
                Chunk::File { part, offset, len } if count == 0 => {
                    let offset = offset + self.window.start;
                    return ([Piece::File { part, offset, len }, pieces[1], pieces[2], pieces[3]], 1);
                }
                Chunk::File { part, offset, .. } if room > 0 => {
                    let offset = offset + self.window.start;
                    pieces[count] = Piece::File {
                        part,
                        offset,
                        len: room,
                    };
                    count += 1;
                    break;
                }
                Chunk::File { .. } => break,
            };
            pieces[count] = piece;
            count += 1;
            cursor.advance(&self.body, len);
        }
        (pieces, count)
    }

    /// Sends `Expect: 100-continue` semantics: after the head, the body
    /// waits for `100 Continue`, or for `wait` (then goes anyway). A final
    /// response instead is the result and no body is sent (a 401 or 413
    /// costs no body). The head must carry the `Expect` header.
    pub fn expect_continue(&mut self, wait: std::time::Duration) {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        self.expect = Some(Expect { wait_ms, until: None });
    }

    /// True while the body waits for `100 Continue`.
    pub fn awaiting_continue(&self) -> bool {
        self.expect.is_some()
    }

    /// Time passed: starts the `100 Continue` wait once the head is out, and
    /// releases the body when it is over. Returns `true` when it released it.
    pub fn handle_time(&mut self, now: Instant) -> bool {
        let head_out = self.head_sent == self.head.len();
        let Some(expect) = self.expect.as_mut().filter(|_| head_out) else {
            return false;
        };
        let until = *expect.until.get_or_insert_with(|| {
            now.checked_add(std::time::Duration::from_millis(u64::from(expect.wait_ms)))
                .unwrap_or(now)
        });
        if now >= until {
            self.expect = None;
            return true;
        }
        false
    }

    /// When [`Exchange::handle_time`] must next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.ack.as_ref().and_then(|a| a.1);
        [self.expect.and_then(|e| e.until), ack].into_iter().flatten().min()
    }

    /// The transport accepted `n` more bytes of what `poll_gather` gave.
    pub fn handle_sent(&mut self, n: usize) {
        self.accepted += n as u64;
        let into_head = n.min(self.head.len() - self.head_sent);
        self.head_sent += into_head;
        if into_head > 0 && self.head_sent == self.head.len() {
            if let Some(reports) = self.reports.as_mut() {
                reports.request_head = Some(self.head.clone());
            }
        }
        self.cursor.advance(&self.body, (n - into_head) as u64);
        if self.state == State::Sending && self.cursor.is_done(&self.body) {
            self.state = State::Receiving;
            self.try_complete();
        }
    }

    /// `unflushed` of the accepted bytes are still buffered in user space.
    pub fn handle_unflushed(&mut self, unflushed: usize) {
        self.unflushed = unflushed as u64;
    }

    /// A write failed. Before a response head, any response already on its
    /// way is still read (an early error response stands); if none comes,
    /// this error is the outcome. After a head that did not stop sending, it
    /// is the outcome at once.
    pub fn handle_write_error(&mut self, error: std::io::Error) {
        if self.head_in.is_some() {
            // A final head that gave no reason to stop sending (an error or
            // closing one stops the writes when it arrives): the body did
            // not get through, so the write error is the outcome.
            let error = self.io_error(error);
            let _ = self.fail(error);
        } else {
            self.write_error = Some(error);
        }
    }

    /// Response bytes arrived.
    pub fn handle_received(&mut self, mut bytes: &[u8]) {
        if self.is_finished() || bytes.is_empty() {
            return;
        }
        self.response_started = true;
        while !bytes.is_empty() && !self.is_finished() {
            let used = if self.head_in.is_none() {
                self.read_head(bytes)
            } else {
                self.read_body(bytes)
            };
            match used {
                Some(0) | None => break,
                Some(used) => bytes = &bytes[used..],
            }
        }
    }

    fn read_head(&mut self, bytes: &[u8]) -> Option<usize> {
        let from_partial = !self.partial_head.is_empty();
        if from_partial {
            self.partial_head.extend_from_slice(bytes);
        }
        let buf = if from_partial { &self.partial_head[..] } else { bytes };
        let status = match self.parser.parse(buf) {
            Ok(status) => status,
            Err(e) => return self.fail(ExchangeError::Head(e)),
        };
        if let (ParseStatus::Interim { consumed, .. } | ParseStatus::Complete { consumed, .. }, Some(reports)) =
            (&status, self.reports.as_mut())
        {
            reports.response_heads.extend_from_slice(&buf[..*consumed]);
        }
        let (used_of_buf, head) = match status {
            ParseStatus::Partial => {
                if !from_partial {
                    self.partial_head.extend_from_slice(bytes);
                }
                return Some(bytes.len());
            }
            ParseStatus::Interim { status, consumed } => {
                if status == 100 {
                    // 100 Continue: the body may go out now.
                    self.expect = None;
                }
                if status == 104 && self.window.interim {
                    let headers = uploadtask_http1::response::interim_headers(&buf[..consumed], self.parser.limits());
                    let interim = &mut self.reports.get_or_insert_with(Box::default).interim;
                    if interim.len() < self.parser.limits().max_interim_responses {
                        interim.push_back((status, headers));
                    }
                }
                (consumed, None)
            }
            ParseStatus::Complete { head, consumed } => (consumed, Some(head)),
        };
        // Bytes of `bytes` used: all that the head took, minus what was kept before.
        let kept_before = if from_partial {
            self.partial_head.len() - bytes.len()
        } else {
            0
        };
        let used = used_of_buf - kept_before;
        if from_partial {
            self.partial_head.clear();
        }
        if let Some(head) = head {
            self.accept_head(head)?;
        }
        Some(used)
    }

    fn accept_head(&mut self, head: ResponseHead) -> Option<()> {
        let framing = match body_framing(&head) {
            // A response to `HEAD` has no body, whatever its head says.
            Ok(framing) if self.window.head_request => uploadtask_http1::Framing {
                kind: uploadtask_http1::BodyKind::None,
                ..framing
            },
            Ok(framing) => framing,
            Err(e) => {
                self.fail(ExchangeError::Framing(e));
                return None;
            }
        };
        let hint = uploadtask_http1::framing::keep_alive(&head);
        // `max=0`: the server takes no further request on this connection.
        self.reusable = framing.reusable && hint.max != Some(0);
        self.keep_alive_secs = hint.timeout_secs.map(|secs| u32::try_from(secs).unwrap_or(u32::MAX));
        if self.expect.take().is_some() && self.state == State::Sending {
            // A final answer to `Expect: 100-continue`: the result, and the
            // body promised by Content-Length never goes: not reusable.
            self.reusable = false;
            self.stop_sending();
        }
        if self.state == State::Sending && (head.status >= 400 || !framing.reusable) {
            self.reusable = false;
            self.stop_sending();
        }
        self.decoder = Some(BodyDecoder::new(framing.kind, self.parser.limits()));
        self.head_event = Some(head.status);
        if let Some(reports) = self.reports.as_mut() {
            reports.headers = Some((head.status, head.headers.clone()));
        }
        self.head_in = Some(head);
        self.try_complete();
        Some(())
    }

    fn read_body(&mut self, bytes: &[u8]) -> Option<usize> {
        let decoder = self.decoder.as_mut()?;
        match decoder.decode(bytes) {
            Ok(step) => {
                self.response_body.extend_from_slice(&bytes[step.body]);
                self.try_complete();
                if step.consumed == 0 && !self.is_finished() {
                    return None;
                }
                if self.is_finished() && step.consumed < bytes.len() {
                    // Bytes after the response: the connection cannot be reused.
                    self.reusable = false;
                }
                Some(step.consumed)
            }
            Err(e) => self.fail(ExchangeError::Body(e)),
        }
    }

    /// The peer ended the stream cleanly (EOF, or TLS close_notify).
    pub fn handle_eof(&mut self) {
        if self.is_finished() {
            return;
        }
        self.reusable = false;
        let Some(decoder) = self.decoder.as_mut() else {
            let error = match self.write_error.take() {
                Some(e) => self.io_error(e),
                None => ExchangeError::ClosedBeforeResponse {
                    body_bytes_sent: self.body_bytes_sent(),
                },
            };
            let _ = self.fail(error);
            return;
        };
        match decoder.handle_eof() {
            Err(e) => {
                let _ = self.fail(ExchangeError::Body(e));
            }
            // A response that gave no reason to stop sending is
            // only the outcome once the whole body went out: the server
            // closing first means it never got the file.
            Ok(()) if self.state == State::Sending => {
                let error = match self.write_error.take() {
                    Some(e) => self.io_error(e),
                    None => ExchangeError::ClosedWhileSending {
                        body_bytes_sent: self.body_bytes_sent(),
                        body_length: self.body.content_length(),
                    },
                };
                let _ = self.fail(error);
            }
            Ok(()) => self.try_complete(),
        }
    }

    /// A read failed (reset, TLS error, …).
    pub fn handle_read_error(&mut self, error: std::io::Error) {
        if self.is_finished() {
            return;
        }
        self.reusable = false;
        // An early final response stands even if the server then resets,
        // but only when its body is whole: a close-delimited body ends here;
        // one with a length or chunks that stopped short is an error.
        let body_ends_here = self.decoder.as_mut().is_some_and(|d| d.handle_eof().is_ok());
        if self.stopped_early && self.head_in.is_some() && body_ends_here {
            self.record_response();
            return;
        }
        let error = self.io_error(error);
        let _ = self.fail(error);
    }

    fn io_error(&self, error: std::io::Error) -> ExchangeError {
        ExchangeError::Io {
            kind: error.kind(),
            message: error.to_string(),
            body_bytes_sent: self.body_bytes_sent(),
            source: IoSource(Some(std::sync::Arc::new(error))),
        }
    }

    /// An HTTP/2 stream carries this exchange: the request head goes as a
    /// HEADERS frame (not through [`Exchange::poll_gather`], which then
    /// gives body bytes only), and the response arrives as
    /// [`Exchange::handle_stream_head`], [`Exchange::handle_stream_data`]
    /// and [`Exchange::handle_stream_end`]. `trace` is the request head as
    /// `-v` shows it, reported once the stream opened (with
    /// `set_report_headers(true)`).
    pub fn start_stream(&mut self, trace: Option<Vec<u8>>) {
        self.window.stream = true;
        let rest = self.head.len() - self.head_sent;
        self.head_sent = self.head.len();
        self.accepted += rest as u64;
        if let (Some(reports), Some(trace)) = (self.reports.as_mut(), trace) {
            reports.request_head = Some(trace);
        }
        if self.state == State::Sending && self.cursor.is_done(&self.body) {
            self.state = State::Receiving;
        }
    }

    /// The request head this exchange was built with (HTTP/1.1 bytes; an
    /// HTTP/2 stream takes its fields from it).
    pub fn request_head(&self) -> &[u8] {
        &self.head
    }

    /// A response head on the stream: an interim one (1xx) or the final one.
    /// `trace` is the head as `-v` shows it.
    pub fn handle_stream_head(&mut self, status: u16, headers: Headers, end_stream: bool, trace: &[u8]) {
        if self.is_finished() {
            return;
        }
        self.response_started = true;
        if let Some(reports) = self.reports.as_mut() {
            reports.response_heads.extend_from_slice(trace);
        }
        if status < 200 {
            if status == 100 {
                self.expect = None;
            }
            if status == 104 && self.window.interim {
                let max = self.parser.limits().max_interim_responses;
                let interim = &mut self.reports.get_or_insert_with(Box::default).interim;
                if interim.len() < max {
                    interim.push_back((status, headers));
                }
            }
            return;
        }
        let length = headers
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let kind = if end_stream || self.window.head_request || status == 204 || status == 304 {
            uploadtask_http1::BodyKind::None
        } else if let Some(length) = length {
            uploadtask_http1::BodyKind::Length(length)
        } else {
            uploadtask_http1::BodyKind::CloseDelimited
        };
        self.reusable = true;
        if self.state == State::Sending && (status >= 400 || self.expect.is_some()) {
            // An early final answer: the body stops here (the stream is reset).
            self.expect = None;
            self.stop_sending();
        }
        self.expect = None;
        self.decoder = Some(BodyDecoder::new(kind, self.parser.limits()));
        self.head_event = Some(status);
        if let Some(reports) = self.reports.as_mut() {
            reports.headers = Some((status, headers.clone()));
        }
        self.head_in = Some(ResponseHead {
            version: 2,
            status,
            reason: Cow::Borrowed(""),
            headers,
        });
        if end_stream {
            self.handle_stream_end();
        }
    }

    /// Response body bytes on the stream.
    pub fn handle_stream_data(&mut self, data: &[u8]) {
        if self.is_finished() || data.is_empty() {
            return;
        }
        let Some(decoder) = self.decoder.as_mut() else {
            let _ = self.fail(ExchangeError::Malformed("body before the head"));
            return;
        };
        match decoder.decode(data) {
            Ok(step) if step.consumed == data.len() => {
                self.response_body.extend_from_slice(&data[step.body]);
            }
            Ok(_) => {
                let _ = self.fail(ExchangeError::Malformed("more body than its Content-Length"));
            }
            Err(e) => {
                let _ = self.fail(ExchangeError::Body(e));
            }
        }
    }

    /// The response ended on the stream (END_STREAM, or trailers). It is the
    /// outcome once the body is out, or at once when sending stopped early.
    pub fn handle_stream_end(&mut self) {
        if self.is_finished() {
            return;
        }
        let Some(decoder) = self.decoder.as_mut() else {
            let _ = self.fail(ExchangeError::ClosedBeforeResponse {
                body_bytes_sent: self.body_bytes_sent(),
            });
            return;
        };
        if let Err(e) = decoder.handle_eof() {
            let _ = self.fail(ExchangeError::Body(e));
            return;
        }
        self.try_complete();
    }

    /// The stream can send no more (reset, or its connection went) while
    /// the body is still going out: a whole response that came first stands
    /// (the server answered and stopped the upload, RFC 9113 §8.1); else
    /// `error` is the outcome.
    pub fn handle_stream_closed(&mut self, error: ExchangeError) {
        if self.is_finished() {
            return;
        }
        if self.decoder.as_ref().is_some_and(|d| d.is_done()) {
            self.stop_sending();
            self.record_response();
            return;
        }
        let _ = self.fail(error);
    }

    /// True once every body byte has been accepted by the transport (the
    /// server may have the whole request).
    pub fn body_accepted(&self) -> bool {
        self.cursor.is_done(&self.body)
    }

    /// Response body bytes held in memory.
    pub fn buffered_bytes(&self) -> usize {
        self.response_body.len() + self.partial_head.len()
    }

    /// The next progress event, given `now`.
    pub fn poll_progress(&mut self, now: Instant) -> Option<Progress> {
        if self.outcome.as_ref().is_some_and(|o| o.is_err()) {
            return None;
        }
        let sent = match &self.ack {
            Some(ack) => ack.0.acked(),
            None => self.body_bytes_sent(),
        };
        self.progress.poll(self.window.start + sent, now)
    }

    /// The status of the final response head, once, when it has arrived.
    pub fn poll_response_head(&mut self) -> Option<u16> {
        self.head_event.take()
    }

    /// Asks for the final head's headers through [`Exchange::poll_headers`].
    pub fn set_report_headers(&mut self, on: bool) {
        self.reports = on.then(Box::default);
    }

    /// The request head, once the transport accepted it whole (only after
    /// `set_report_headers(true)`), for a `-v` trace.
    pub fn poll_request_head(&mut self) -> Option<Vec<u8>> {
        self.reports.as_mut()?.request_head.take()
    }

    /// The bytes of every response head received since the last call (1xx
    /// interim heads and the final one, each ending with its empty line),
    /// when heads are reported (`set_report_headers(true)`).
    pub fn poll_response_heads(&mut self) -> Option<Vec<u8>> {
        let reports = self.reports.as_mut()?;
        (!reports.response_heads.is_empty()).then(|| std::mem::take(&mut reports.response_heads))
    }

    /// The next `104` interim head's status and headers, in the order they
    /// came, once each (only after `set_window(.., interim: true)`).
    pub fn poll_interim(&mut self) -> Option<(u16, Headers)> {
        self.reports.as_mut()?.interim.pop_front()
    }

    /// The status and headers of the final head, once, when it has arrived
    /// (only after `set_report_headers(true)`).
    pub fn poll_headers(&mut self) -> Option<(u16, Headers)> {
        self.reports.as_mut()?.headers.take()
    }

    /// The outcome, once: a response or an error. Call after `poll_progress`
    /// has returned `None`, so the last progress comes first.
    pub fn poll_outcome(&mut self) -> Option<Result<Response, ExchangeError>> {
        // Set only by `deliver` and `fail`, which also finish the exchange.
        self.outcome.take()
    }

    /// True once the outcome is decided.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    fn stop_sending(&mut self) {
        if self.state == State::Sending {
            self.stopped_early = true;
            self.state = State::Receiving;
        }
    }

    fn try_complete(&mut self) {
        let body_done = self.decoder.as_ref().is_some_and(|d| d.is_done());
        if self.state == State::Receiving && body_done {
            self.record_response();
        }
    }

    /// The response is whole: it becomes the outcome.
    fn record_response(&mut self) {
        let Some(head) = self.head_in.take() else {
            return;
        };
        self.state = State::Done;
        self.outcome = Some(Ok(Response {
            status: head.status,
            reason: head.reason,
            version: head.version,
            headers: head.headers,
            body: std::mem::take(&mut self.response_body),
        }));
    }

    /// Records the failure; returns `None` so read steps can end with it.
    fn fail(&mut self, error: ExchangeError) -> Option<usize> {
        self.state = State::Failed;
        self.reusable = false;
        self.outcome = Some(Err(error));
        None
    }
}

#[cfg(test)]
mod tests;
