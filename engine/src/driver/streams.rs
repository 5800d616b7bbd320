//! HTTP/2 connections: uploads to one origin share them as streams.
//!
//! An upload whose version allows HTTP/2 takes a stream on a connection
//! to its origin that has room ([`Conns::take_shared`](super::conns::Conns::take_shared));
//! else, while another upload sets up a connection that may multiplex, it
//! waits for that one (curl's wait for multiplexing) instead of opening its
//! own; else it sets one up. When a connection is ready, TLS's choice (or
//! prior knowledge) says whether it multiplexes; the waiting uploads then
//! start again. The streams' bytes go through one [`Mux`] per connection:
//! this file moves them to and from the socket and hands each stream's
//! events to its exchange; the decisions are the mux's and the exchange's.
//!
//! A stream refused by the server (REFUSED_STREAM, or above a GOAWAY's
//! last stream id) was never processed: it is sent again whole, on
//! whatever connection has room or a new one, whatever the retry option
//! says ([`Transfer::handle_refused`](crate::proto::transfer::Transfer::handle_refused)
//! bounds how often).

use std::io::{self, IoSlice};
use std::sync::Arc;

use uploadtask_http1::request::Scheme;
use uploadtask_http2::conn::{Config, Event as H2Event};

use super::conns::{ConnIo, ConnKey, Origin};
use super::timers::TimerTarget;
use super::uploads::{Key, Uploads};
use super::{origin_of, Loop};
use crate::error::{ErrorKind, UploadError};
use crate::io::pump::{copy_body, FileError};
use crate::io::source::Source;
use crate::proto::exchange::{ExchangeError, IoSource};
use crate::proto::mux::{Bodies, Mux, Want};
use crate::proto::sharing::Need;
use crate::proto::stream_head;
use crate::proto::upload::Phase;

/// What an upload does for a connection.
pub(super) enum Shared {
    /// A stream on this HTTP/2 connection.
    Stream(ConnKey),
    /// Waits for a connection another upload sets up.
    Wait,
    /// Its own connection (pooled or new).
    Own,
}

/// Bytes of frames gathered for one write.
const FILL: usize = 64 * 1024;

/// The TLS configuration `tls` offering HTTP/2 first.
pub(super) fn offering_h2(tls: &Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

impl Loop {
    /// A stream on a shared connection, a wait for one being set up, or
    /// neither.
    pub(super) fn share_or_wait(&mut self, key: Key, origin: &Origin) -> Shared {
        if !origin.h2 {
            return Shared::Own;
        }
        self.ping_quiet(origin);
        let (conns, uploads, cap) = (&self.conns, &self.uploads, self.config.max_streams_per_connection);
        let need = self.sharing.handle_need(
            origin,
            key,
            |conn| conns.room(conn, cap),
            |k| uploads.phase(k).is_some_and(setting_up),
        );
        match need {
            Need::Stream(conn) => Shared::Stream(conn),
            Need::Own => Shared::Own,
            Need::Wait => {
                if let Some(slot) = self.uploads.get(key) {
                    slot.waiting = true;
                }
                Shared::Wait
            }
        }
    }

    /// Pings each shared connection to `origin` the server has been quiet
    /// on for the configured time: no stream opens on it until the server
    /// shows it is still there.
    fn ping_quiet(&mut self, origin: &Origin) {
        let (now, after, timeout) = (self.now, self.config.http2_ping_after, self.config.http2_ping_timeout);
        for &conn_key in self.sharing.conns(origin) {
            let Some(conn) = self.conns.get(conn_key) else { continue };
            let Some(mux) = conn.mux.as_mut() else { continue };
            if conn.ping_until.is_some() || mux.is_closing() || now.saturating_duration_since(conn.heard_at) < after {
                continue;
            }
            let Some(until) = now.checked_add(timeout) else {
                continue;
            };
            self.pings += 1;
            mux.ping(self.pings.to_be_bytes());
            conn.ping_until = Some(until);
            self.timers.push(until, TimerTarget::Ping(conn_key));
            self.ready_conns.push_back(conn_key);
        }
    }

    /// A health ping went unanswered: the connection takes no new stream
    /// (it closes when its streams are over), and the uploads waiting for
    /// it go elsewhere.
    pub(super) fn handle_ping_unanswered(&mut self, conn_key: ConnKey) {
        let Some(conn) = self.conns.get(conn_key) else { return };
        let Some(mux) = conn.mux.as_mut() else { return };
        let (host, port) = (&conn.origin.host, conn.origin.port);
        log::warn!("{host}:{port} did not answer a ping: its HTTP/2 connection takes no new upload");
        conn.ping_until = None;
        mux.close();
        if mux.streams() == 0 {
            self.close_conn(conn_key);
        } else {
            let origin = conn.origin.clone();
            self.ready_conns.push_back(conn_key);
            let woken = self.sharing.handle_room(&origin, true, |_| true);
            self.woken.extend(woken);
        }
    }

    /// The uploads woken since the last turn start again.
    pub(super) fn start_woken(&mut self) {
        while let Some(key) = self.woken.pop_front() {
            let Some(slot) = self.uploads.get(key) else { continue };
            if std::mem::take(&mut slot.waiting) {
                self.begin_exchange(key);
            }
        }
    }

    /// The upload no longer sets up a connection for its origin: those
    /// that waited for it start again.
    pub(super) fn end_setup(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(target) = slot.target.as_ref() else { return };
        if !slot.h2.allows_h2(target.scheme == Scheme::Https) {
            return;
        }
        let origin = origin_of(slot);
        if origin.h2 {
            let woken = self.sharing.handle_setup_failed(&origin, key);
            self.woken.extend(woken);
        }
    }

    /// The upload's connection is ready for its exchange: when it speaks
    /// HTTP/2 (TLS chose `h2`, or prior knowledge), the exchange goes on a
    /// stream. `false` when the exchange runs on the connection alone.
    pub(super) fn attach_stream(&mut self, key: Key) -> bool {
        let Some(slot) = self.uploads.get(key) else {
            return false;
        };
        let Some(conn_key) = slot.conn else { return false };
        let https = slot.target.as_ref().is_some_and(|t| t.scheme == Scheme::Https);
        if !slot.h2.allows_h2(https) {
            return false;
        }
        let origin = origin_of(slot);
        let Some(conn) = self.conns.get(conn_key) else {
            return false;
        };
        if conn.mux.is_none() {
            let h2 = match &conn.io {
                ConnIo::Ready(transport) => transport.negotiated_h2() || (origin.h2 && !https),
                _ => false,
            };
            let (host, port) = (&origin.host, origin.port);
            if !h2 {
                if origin.h2 {
                    log::info!("{host}:{port} chose HTTP/1.1 (ALPN)");
                    let woken = self.sharing.handle_ready(&origin, key, None);
                    self.woken.extend(woken);
                }
                return false;
            }
            let how = if https { "ALPN h2" } else { "prior knowledge" };
            log::info!("using HTTP/2 with {host}:{port} ({how}): uploads to it share this connection");
            self.conns.share(conn_key, Mux::new(Config::default()));
            let woken = self.sharing.handle_ready(&origin, key, Some(conn_key));
            self.woken.extend(woken);
        }
        self.open_stream(key, conn_key, https);
        true
    }

    /// Opens the upload's stream on `conn_key`.
    fn open_stream(&mut self, key: Key, conn_key: ConnKey, https: bool) {
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(exchange) = slot.exchange.as_mut() else { return };
        let scheme = if https { "https" } else { "http" };
        let (fields, trace) = match stream_head::request(exchange.request_head(), scheme) {
            Ok(request) => request,
            Err(e) => {
                let error = UploadError::new(ErrorKind::InvalidArgument, e.to_string());
                return self.finish(key, Err(error));
            }
        };
        let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let empty = exchange.body().content_length() == 0;
        let Some(conn) = self.conns.get(conn_key) else { return };
        let Some(mux) = conn.mux.as_mut() else { return };
        match mux.open(key, &refs, empty) {
            Ok(stream) => {
                conn.idle_until = None;
                slot.stream = Some(stream);
                exchange.start_stream(Some(trace));
                // The head is on its way: an `Expect: 100-continue` wait
                // starts now, and its timer releases the body.
                exchange.handle_time(self.now);
                self.ready_conns.push_back(conn_key);
                self.schedule(key);
            }
            Err(_) => {
                // The server lowered its stream limit, or is closing: again,
                // on whatever connection has room.
                slot.conn = None;
                slot.waiting = true;
                self.woken.push_back(key);
            }
        }
    }

    /// The exchange on `stream` is over; the connection goes on. When it
    /// has no stream left it idles until the pool's timeout.
    pub(super) fn detach_stream(&mut self, conn_key: ConnKey, stream: u32) {
        let now = self.now;
        let idle_for = self.config.pool_idle_timeout;
        let Some(conn) = self.conns.get(conn_key) else { return };
        let Some(mux) = conn.mux.as_mut() else { return };
        mux.detach(stream);
        self.ready_conns.push_back(conn_key);
        let origin = conn.origin.clone();
        if mux.streams() == 0 {
            if mux.is_closing() {
                return self.close_conn(conn_key);
            }
            if let Some(until) = now.checked_add(idle_for) {
                conn.idle_until = Some(until);
                self.timers.push(until, TimerTarget::IdleConn(conn_key));
            }
        }
        let uploads = &self.uploads;
        let woken = self.sharing.handle_room(&origin, false, |k| uploads.is_waiting(k));
        self.woken.extend(woken);
    }

    /// Closes a connection; an HTTP/2 one says GOAWAY first (best effort).
    pub(super) fn close_conn(&mut self, conn_key: ConnKey) {
        if let Some(conn) = self.conns.get(conn_key) {
            if conn.mux.is_some() {
                // Uploads waiting for room on it (its limit unknown, or a
                // ping unanswered) look again.
                self.sharing.handle_closed(&conn.origin, conn_key);
                let woken = self.sharing.handle_room(&conn.origin, true, |_| true);
                self.woken.extend(woken);
            }
            if let (Some(mux), ConnIo::Ready(transport)) = (conn.mux.as_mut(), &mut conn.io) {
                mux.close();
                let _ = mux.fill(0, &mut NoBodies);
                if let Ok(n) = transport.write_vectored(&[IoSlice::new(mux.pending())]) {
                    mux.handle_written(n);
                }
                let _ = transport.flush();
            }
        }
        self.conns.close(self.poll.registry(), conn_key);
    }

    /// Serves the HTTP/2 connections with bytes to write.
    pub(super) fn serve_ready_conns(&mut self) {
        while let Some(conn) = self.ready_conns.pop_front() {
            self.serve_mux(conn, false, true);
        }
    }

    /// Moves bytes both ways on an HTTP/2 connection, hands each stream's
    /// events to its exchange, then reports what changed.
    pub(super) fn serve_mux(&mut self, conn_key: ConnKey, readable: bool, _writable: bool) {
        let now = self.now;
        let budget = self.config.write_budget;
        let Loop {
            conns,
            uploads,
            read_buf,
            ready_conns,
            ..
        } = self;
        let Some(conn) = conns.get(conn_key) else { return };
        let (Some(mux), ConnIo::Ready(transport)) = (conn.mux.as_deref_mut(), &mut conn.io) else {
            return;
        };
        let mut touched: Vec<Key> = Vec::new();
        let mut broken: Option<ExchangeError> = None;
        let settings_known = mux.settings_known();
        let mut heard = false;
        if readable {
            loop {
                match transport.read(read_buf) {
                    Ok(0) => {
                        broken = Some(ExchangeError::ClosedBeforeResponse { body_bytes_sent: 0 });
                        break;
                    }
                    Ok(n) => {
                        heard = true;
                        if let Err(e) = mux.handle_received(&read_buf[..n]) {
                            broken = Some(io_error(io::Error::other(e.to_string())));
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        broken = Some(io_error(e));
                        break;
                    }
                }
            }
        }
        // The events first: a stream that ended (a 413 and its reset, say)
        // must not be taken for one cut short by the writes below.
        let mut refused = Vec::new();
        hand_events(mux, uploads, broken.as_ref(), now, (&mut touched, &mut refused));
        // Writes: control frames first (a connection error's GOAWAY too),
        // then the streams' DATA, until the socket is full or the budget spent.
        let mut bodies = StreamBodies {
            uploads,
            failed: Vec::new(),
        };
        let mut moved = 0;
        let mut gone = Vec::new();
        while broken.is_none() || !mux.pending().is_empty() {
            if let Err(e) = transport.flush() {
                if e.kind() != io::ErrorKind::WouldBlock {
                    broken.get_or_insert(io_error(e));
                }
                break;
            }
            mux.handle_unflushed(transport.unflushed());
            if broken.is_none() {
                gone.extend(mux.fill(FILL, &mut bodies));
            } else {
                // A connection error's GOAWAY.
                mux.fill(0, &mut NoBodies);
            }
            if mux.pending().is_empty() {
                break;
            }
            if moved >= budget {
                ready_conns.push_back(conn_key);
                break;
            }
            match transport.write_vectored(&[IoSlice::new(mux.pending())]) {
                Ok(0) => {
                    broken.get_or_insert(io_error(io::ErrorKind::WriteZero.into()));
                    break;
                }
                Ok(n) => {
                    moved += n;
                    mux.handle_written(n);
                    mux.handle_unflushed(transport.unflushed());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    mux.handle_unflushed(transport.unflushed());
                    break;
                }
                Err(e) => {
                    broken.get_or_insert(io_error(e));
                    break;
                }
            }
        }
        let failed = std::mem::take(&mut bodies.failed);
        let uploads = bodies.uploads;
        if broken.is_some() {
            mux.handle_closed();
        }
        while let Some((key, unconfirmed)) = mux.poll_unconfirmed() {
            if let Some(exchange) = uploads.get(key).and_then(|s| s.exchange.as_mut()) {
                let before = exchange.body_bytes_sent();
                exchange.handle_unflushed(unconfirmed as usize);
                let moved = exchange.body_bytes_sent().saturating_sub(before);
                if let Some(slot) = uploads.get(key) {
                    slot.life.handle_activity(now, moved);
                }
                touched.push(key);
            }
        }
        for key in gone {
            if let Some(exchange) = uploads.get(key).and_then(|s| s.exchange.as_mut()) {
                exchange.handle_stream_closed(ExchangeError::ClosedWhileSending {
                    body_bytes_sent: exchange.body_bytes_sent(),
                    body_length: exchange.body().content_length(),
                });
                touched.push(key);
            }
        }
        hand_events(mux, uploads, broken.as_ref(), now, (&mut touched, &mut refused));
        let mut room_changed = !settings_known && mux.settings_known();
        if heard {
            conn.heard_at = now;
            // Any bytes answer a health ping.
            room_changed |= conn.ping_until.take().is_some();
        }
        let origin = room_changed.then(|| conn.origin.clone());
        for (key, error) in failed {
            self.finish(key, Err(UploadError::new(ErrorKind::File, error.0)));
        }
        for key in refused {
            self.resend_refused(key);
        }
        if let Some(origin) = origin {
            // The server said how many streams it takes, or answered a
            // ping: those waiting for it take them (or set up the next
            // connection).
            let woken = self.sharing.handle_room(&origin, true, |_| true);
            self.woken.extend(woken);
        }
        touched.sort_unstable();
        touched.dedup();
        for key in touched {
            self.report(key);
        }
        if broken.is_some() {
            self.close_conn(conn_key);
        } else if let Some(conn) = self.conns.get(conn_key) {
            if conn.mux.as_ref().is_some_and(|m| m.is_closing() && m.streams() == 0) {
                self.close_conn(conn_key);
            }
        }
    }

    /// The server did not process the upload's stream: the exchange starts
    /// over, elsewhere, as the transfer allows.
    fn resend_refused(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        if let (Some(conn), Some(stream)) = (slot.conn.take(), slot.stream.take()) {
            self.detach_stream(conn, stream);
        }
        let Some(slot) = self.uploads.get(key) else { return };
        let again = slot.transfer.as_mut().is_none_or(|t| t.handle_refused());
        if !again {
            let error = UploadError::new(
                ErrorKind::Network,
                "the server refused the HTTP/2 stream every time it was sent",
            );
            return self.finish(key, Err(error));
        }
        if let Some(exchange) = slot.exchange.as_mut() {
            exchange.restart();
        }
        self.resent += 1;
        self.begin_exchange(key);
    }
}

/// Hands the streams' events to their exchanges: `touched` gets the
/// uploads with news, `refused` those to send again.
fn hand_events(
    mux: &mut Mux<Key>,
    uploads: &mut Uploads,
    broken: Option<&ExchangeError>,
    now: std::time::Instant,
    (touched, refused): (&mut Vec<Key>, &mut Vec<Key>),
) {
    while let Some((key, event)) = mux.poll_event() {
        match (key, event) {
            (Some(key), H2Event::Refused { .. }) => refused.push(key),
            (Some(key), event) => {
                if let Some(slot) = uploads.get(key) {
                    if let Some(exchange) = slot.exchange.as_mut() {
                        let bytes = hand(exchange, event, broken);
                        slot.life.handle_activity(now, bytes);
                        touched.push(key);
                    }
                }
            }
            (None, H2Event::GoAway { last_stream, code }) => {
                log::info!(
                    "the server sent GOAWAY ({code}, last stream {last_stream}): no new stream on its connection"
                );
            }
            (None, _) => {}
        }
    }
}

/// True while an upload sets up its connection.
fn setting_up(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Resolving | Phase::Connecting | Phase::Tunneling | Phase::Handshaking
    )
}

/// Hands one stream event to its exchange; returns the response bytes it
/// carried (for the idle clock).
fn hand(exchange: &mut crate::proto::exchange::Exchange, event: H2Event, broken: Option<&ExchangeError>) -> u64 {
    let sent = exchange.body_bytes_sent();
    match event {
        H2Event::Headers {
            status,
            fields,
            end_stream,
            ..
        } => {
            let (headers, trace) = stream_head::response(status, &fields);
            exchange.handle_stream_head(status, headers, end_stream, &trace);
            trace.len() as u64
        }
        H2Event::Data { data, end_stream, .. } => {
            exchange.handle_stream_data(&data);
            if end_stream {
                exchange.handle_stream_end();
            }
            data.len() as u64
        }
        H2Event::SendStopped { .. } => {
            exchange.handle_stream_closed(ExchangeError::ClosedWhileSending {
                body_bytes_sent: sent,
                body_length: exchange.body().content_length(),
            });
            0
        }
        H2Event::Trailers { .. } => {
            exchange.handle_stream_end();
            0
        }
        H2Event::Reset { code, .. } => {
            exchange.handle_stream_closed(ExchangeError::StreamReset {
                code: code.0,
                body_bytes_sent: sent,
            });
            0
        }
        H2Event::Failed { .. } => {
            let error = match broken {
                Some(ExchangeError::ClosedBeforeResponse { .. }) | None => {
                    ExchangeError::ClosedBeforeResponse { body_bytes_sent: sent }
                }
                Some(ExchangeError::Io {
                    kind, message, source, ..
                }) => ExchangeError::Io {
                    kind: *kind,
                    message: message.clone(),
                    body_bytes_sent: sent,
                    source: source.clone(),
                },
                Some(other) => other.clone(),
            };
            exchange.handle_stream_closed(error);
            0
        }
        _ => 0,
    }
}

fn io_error(error: io::Error) -> ExchangeError {
    ExchangeError::Io {
        kind: error.kind(),
        message: error.to_string(),
        body_bytes_sent: 0,
        source: IoSource(Some(Arc::new(error))),
    }
}

/// The streams' bodies, read from the uploads' exchanges and files.
struct StreamBodies<'a> {
    uploads: &'a mut Uploads,
    failed: Vec<(Key, FileError)>,
}

impl Bodies<Key> for StreamBodies<'_> {
    fn want(&mut self, key: Key) -> Want {
        let Some(exchange) = self.uploads.get(key).and_then(|s| s.exchange.as_ref()) else {
            return Want::Done;
        };
        if !exchange.wants_write() {
            Want::Done
        } else if exchange.awaiting_continue() {
            Want::Wait
        } else {
            Want::Send(exchange.body_remaining())
        }
    }

    fn write(&mut self, key: Key, len: usize, out: &mut Vec<u8>) -> bool {
        let Some(slot) = self.uploads.get(key) else {
            return false;
        };
        let Some(exchange) = slot.exchange.as_mut() else {
            return false;
        };
        let sources: &[Source] = &slot.sources;
        match copy_body(exchange, sources, len, out) {
            Ok(()) => true,
            Err(e) => {
                self.failed.push((key, e));
                false
            }
        }
    }
}

/// No stream sends (closing).
struct NoBodies;

impl Bodies<Key> for NoBodies {
    fn want(&mut self, _: Key) -> Want {
        Want::Done
    }

    fn write(&mut self, _: Key, _: usize, _: &mut Vec<u8>) -> bool {
        false
    }
}
