//! The event loop: readiness, timers, commands. It decides nothing about an
//! upload itself: each slot's [`Upload`] says what to do next (resolve,
//! connect to an address, start TLS, exchange, fail), its
//! [`Exchange`](crate::proto::exchange::Exchange) what to write and what
//! the bytes read mean (moved through [`crate::io::pump`]), and its
//! [`Transfer`] what follows an exchange's end; the loop does it and feeds
//! back what happened.
//!
//! Each resource has its own file: [`uploads`] (the slab, admission and
//! the queue), [`conns`] (sockets, tokens with generations, the keep-alive
//! pool), [`setup`] (lookup, connect, proxy tunnel, TLS), [`timers`],
//! [`transfers`] (doing what a transfer decided: the outcome, a redirect,
//! a retry), [`resume`] (a resumable session's requests and checksums) and
//! [`acks`] (acknowledged progress). [`Loop::finish`] is the one place that
//! ends an upload and frees what it holds, on every path: its slot and
//! place in flight, its files, its connection (pooled or closed); its timer
//! entries go stale and are dropped lazily.
//!
//! App code (event sinks, jobs) runs under `catch_unwind` ([`deliver`]): a
//! panic is logged with the upload's id and the loop goes on.

mod acks;
mod conns;
mod keys;
mod mailbox;
pub(crate) mod prepare;
pub(crate) mod recycle;
mod resume;
mod setup;
mod streams;
mod timers;
mod transfers;
mod uploads;

pub(crate) use self::mailbox::{Command, Mailbox};

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use uploadtask_http1::request::{Scheme, Target};

use self::conns::{ConnIo, ConnKey, Conns, Origin};
use self::prepare::{prepare, Entropy};
use self::timers::{TimerTarget, Timers};
pub(crate) use self::uploads::Key;
use self::uploads::Uploads;
use crate::config::EngineConfig;
use crate::error::ErrorKind;
use crate::error::UploadError;
use crate::events::Event;
use crate::events::EventSink;
use crate::events::UploadId;
use crate::io::pump::{pump_read, pump_write, Scratch, WriteFlow};
use crate::io::resolver::Resolver;
use crate::io::sendq::Acks;
use crate::io::transport::{Connector, TcpConnector};
use crate::proto::exchange::ExchangeError;
use crate::proto::proxy::Proxies;
use crate::proto::redirect;
use crate::proto::reuse;
use crate::proto::sharing::Sharing;
use crate::proto::transfer::{Held, Transfer};
use crate::proto::upload::{deadline_after, Action, Phase, Timing, Upload};
use crate::request::UploadRequest;
use crate::stats::Stats;

/// The waker's token; connection tokens never reach it.
pub(crate) const WAKER: Token = Token(usize::MAX);

const READ_BUF: usize = 64 * 1024;
const FILE_BUF: usize = 256 * 1024;

/// Runs app code (an event sink) so that a panic in it cannot end the
/// loop: the panic is logged with the upload's id and swallowed.
pub(crate) fn deliver(sink: &mut dyn EventSink, id: UploadId, event: Event) {
    if catch_unwind(AssertUnwindSafe(|| sink.event(event))).is_err() {
        log::error!("uploadtask: an event handler of {id} panicked; the engine goes on");
    }
}

pub(crate) struct Loop {
    poll: Poll,
    config: EngineConfig,
    tls: Arc<rustls::ClientConfig>,
    /// The same, offering HTTP/2 first (ALPN `h2`, `http/1.1`).
    tls_h2: Arc<rustls::ClientConfig>,
    resolver: Arc<dyn Resolver>,
    connector: Arc<dyn Connector>,
    proxies: Arc<Proxies>,
    /// Timeouts and the low-speed limit, shared by every upload.
    timing: Arc<Timing>,
    inbox: mpsc::Receiver<Command>,
    mailbox: Mailbox,
    entropy: Entropy,
    targets: prepare::TargetCache,
    /// Storage of ended uploads for new ones.
    recycle: crate::driver::recycle::Recycle,
    /// Lookups under way and answers kept.
    names: crate::proto::names::Names<Key>,
    uploads: Uploads,
    conns: Conns,
    /// Which HTTP/2 connections uploads share, and who waits for one.
    sharing: Sharing<Origin, ConnKey, Key>,
    timers: Timers,
    ready: VecDeque<Key>,
    /// HTTP/2 connections with bytes to write this turn.
    ready_conns: VecDeque<ConnKey>,
    /// Uploads that waited for a connection and may start now.
    woken: VecDeque<Key>,
    read_buf: Box<[u8]>,
    file_buf: Scratch,
    shutting_down: bool,
    now: Instant,
    /// Loop turns so far (one poll each).
    turn: u64,
    /// The kernel's answers for acknowledged progress.
    acks: Acks,
    /// Requests sent again after a reused connection failed.
    resent: u64,
    /// Health pings sent (each one's payload).
    pings: u64,
}

impl Loop {
    pub(crate) fn new(
        poll: Poll,
        config: EngineConfig,
        tls: Arc<rustls::ClientConfig>,
        resolver: Arc<dyn Resolver>,
        (inbox, mailbox): (mpsc::Receiver<Command>, Mailbox),
        admitted: Arc<AtomicUsize>,
        proxies: Arc<Proxies>,
    ) -> Self {
        let (dns_cache_timeout, connect_timeout) = (config.dns_cache_timeout, config.connect_timeout);
        let timing = Arc::new(Timing {
            connect_timeout: config.connect_timeout,
            attempt_delay: config.happy_eyeballs_delay,
            idle_timeout: config.idle_timeout,
            low_speed_limit: config.low_speed_limit,
            low_speed_time: config.low_speed_time,
        });
        Loop {
            poll,
            uploads: Uploads::new(config.max_in_flight, admitted),
            conns: Conns::new(config.max_idle_per_origin),
            sharing: Sharing::default(),
            connector: config.connector.clone().unwrap_or_else(|| {
                Arc::new(TcpConnector {
                    sendfile: config.sendfile,
                })
            }),
            config,
            tls_h2: streams::offering_h2(&tls),
            tls,
            resolver,
            inbox,
            mailbox,
            entropy: Entropy::default(),
            targets: prepare::TargetCache::default(),
            recycle: crate::driver::recycle::Recycle::default(),
            names: crate::proto::names::Names::new(dns_cache_timeout, connect_timeout),
            proxies,
            timing,
            timers: Timers::default(),
            ready: VecDeque::new(),
            ready_conns: VecDeque::new(),
            woken: VecDeque::new(),
            read_buf: vec![0; READ_BUF].into_boxed_slice(),
            file_buf: Scratch::new(FILE_BUF),
            shutting_down: false,
            now: Instant::now(),
            turn: 0,
            acks: Acks::default(),
            resent: 0,
            pings: 0,
        }
    }

    /// Runs until shutdown; every upload still present then fails as
    /// aborted. Should the loop itself panic (a bug), the uploads are still
    /// ended, and every later submit fails as the engine is gone.
    pub(crate) fn run(mut self) {
        self.mailbox.set_loop_thread();
        crate::io::sigpipe::block_on_this_thread();
        if catch_unwind(AssertUnwindSafe(|| self.turns())).is_err() {
            log::error!("uploadtask: the engine loop panicked; its uploads fail");
        }
        if catch_unwind(AssertUnwindSafe(|| self.stop_all())).is_err() {
            log::error!("uploadtask: the engine loop panicked while stopping");
        }
    }

    fn turns(&mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.shutting_down {
            let idle = self.ready.is_empty() && self.ready_conns.is_empty() && self.woken.is_empty();
            let timeout = if idle && !self.mailbox.has_local() {
                self.timers
                    .next()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("uploadtask: poll failed: {e}");
                    return;
                }
            }
            self.now = Instant::now();
            self.turn += 1;
            // Commands first: an abort or a job sent before this wake-up must
            // not lose to a completion seen in the same poll.
            self.drain_commands();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let closed = event.is_read_closed() || event.is_error();
                let readable = event.is_readable() || closed;
                let writable = event.is_writable() || event.is_write_closed() || event.is_error();
                self.on_conn_event(event.token(), readable, writable, closed);
            }
            self.serve_ready();
            self.fire_timers();
            self.start_woken();
            self.start_queued();
            self.serve_ready_conns();
        }
    }

    fn drain_commands(&mut self) {
        self.mailbox.clear_wake();
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Submit { id, at, request, sink } => self.submit(id, at, request, sink),
                Command::Abort(id) => {
                    if let Some(key) = self.uploads.key_of(id) {
                        self.finish(key, Err(UploadError::new(ErrorKind::Aborted, "abort")));
                    }
                }
                Command::Reject { error, mut sink } => deliver(&mut *sink, UploadId(0), Event::Done(Err(error))),
                Command::Run(job) => {
                    if catch_unwind(AssertUnwindSafe(job)).is_err() {
                        log::error!("uploadtask: a job on the engine thread panicked; the engine goes on");
                    }
                }
                Command::Stats(reply) => {
                    let _ = reply.send(self.stats());
                }
                Command::Resolved { host, port, result } => self.on_lookup(host, port, result),
                Command::Checksum { id, piece, result } => self.on_checksum(id, piece, result),
                Command::Shutdown => self.shutting_down = true,
            }
        }
    }

    fn stats(&mut self) -> Stats {
        let (uploads, conns) = (&self.uploads, &self.conns);
        self.timers.compact(0, true, |at, target| match target {
            TimerTarget::Upload(key) => uploads.timer_at(key) == Some(at),
            TimerTarget::IdleConn(key) => conns.is_idle_until(key, at),
            TimerTarget::Ping(key) => conns.is_pinging_until(key, at),
        });
        Stats {
            uploads: self.uploads.len(),
            in_flight: self.uploads.in_flight(),
            queued: self.uploads.queued(),
            connections: self.conns.len(),
            idle_connections: self.conns.idle_len(),
            timers: self.timers.len(),
            buffered_response_bytes: self.uploads.buffered(),
            admitted: self.uploads.admitted(),
            resent: self.resent,
            origins_not_pooled: self.conns.origins_not_pooled(self.now),
            connections_opened: self.conns.opened,
            http2_connections_opened: self.conns.opened_h2,
        }
    }

    fn submit(&mut self, id: UploadId, at: Instant, request: UploadRequest, sink: Box<dyn EventSink>) {
        let deadline = request.timeout.and_then(|t| deadline_after(at, t));
        let mut life = Upload::with_shared_timing(deadline, Arc::clone(&self.timing), self.now);
        if let Some(timeout) = request.timeout {
            life.set_overall_timeout(timeout);
        }
        let key = self.uploads.insert(id, sink, life, request, at);
        self.schedule(key);
    }

    /// Starts the uploads given a place in flight, after the turn's events
    /// (so a pooled connection a poll saw close is not taken).
    fn start_queued(&mut self) {
        while let Some((key, request)) = self.uploads.admit_next() {
            let started = match request {
                Some(request) => self.start(key, request),
                None => Err(UploadError::new(ErrorKind::Internal, "upload vanished")),
            };
            if let Err(error) = started {
                self.finish(key, Err(error));
            }
        }
    }

    /// Opens the files, frames the form, writes the head, then connects.
    fn start(&mut self, key: Key, request: UploadRequest) -> Result<(), UploadError> {
        let vanished = || UploadError::new(ErrorKind::Internal, "upload vanished");
        let policy = redirect::Policy {
            max: self.config.max_redirects,
            allow_https_to_http: self.config.allow_https_to_http,
        };
        let acked = request.progress_acked || self.config.progress_acked;
        // Acknowledged progress counts a connection's bytes: one upload's.
        let http = match request.http.unwrap_or(self.config.http) {
            _ if acked => crate::request::HttpVersion::Http1,
            http => http,
        };
        let mut prepared = prepare(
            request,
            self.config.limits,
            policy,
            self.config.expect_continue_threshold,
            &self.proxies,
            (&mut self.entropy, &mut self.targets, &mut self.recycle),
        )?;
        if acked {
            prepared.exchange.set_ack_progress(true);
        }
        let slot = self.uploads.get(key).ok_or_else(vanished)?;
        slot.exchange = Some(prepared.exchange);
        slot.sources = prepared.sources;
        slot.target = Some(prepared.target);
        slot.transfer = Some(prepared.transfer);
        slot.h2 = http;
        self.begin_exchange(key);
        Ok(())
    }

    /// Takes a pooled connection to the target's origin or resolves its host.
    fn begin_exchange(&mut self, key: Key) {
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        let origin = origin_of(slot);
        let shared = match self.share_or_wait(key, &origin) {
            streams::Shared::Wait => return,
            streams::Shared::Stream(conn) => Some(conn),
            streams::Shared::Own => None,
        };
        let pooled = match shared {
            Some(conn) => Some(conn),
            None => self.conns.take_idle(self.poll.registry(), &origin, key, self.turn, now),
        };
        if pooled.is_none() && origin.h2 {
            self.sharing.handle_setup(&origin, key);
        }
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(target) = slot.target.as_ref() else { return };
        let https = target.scheme == Scheme::Https;
        let (host, _) = slot.connect_point();
        slot.life.set_tunnel(https && origin.proxy.is_some());
        let action = slot.life.handle_start(host, https, pooled.is_some(), now);
        slot.conn = pooled;
        self.act(key, action);
    }

    /// Performs what the upload's life asks for.
    fn act(&mut self, key: Key, action: Action) {
        match action {
            Action::Resolve => self.resolve(key),
            Action::Connect(addr) => self.connect(key, addr),
            Action::Wait => {}
            Action::Tunnel => self.tunnel(key),
            Action::StartTls => match self.start_tls(key) {
                Ok(()) => self.on_handshaking(key),
                Err(error) => return self.finish(key, Err(error)),
            },
            Action::Exchange => {
                self.arm_expect(key);
                if !self.attach_stream(key) {
                    self.serve(key, false, true)
                }
            }
            Action::Fail(error) => {
                self.end_setup(key);
                self.forget_unreachable(key);
                return self.on_failure(key, error);
            }
        }
        self.schedule(key);
    }

    /// Closes the upload's connection, if it has one.
    fn drop_conn(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        if let (Some(conn), Some(stream)) = (slot.conn, slot.stream.take()) {
            // A stream: the connection goes on with the others.
            slot.conn = None;
            self.detach_stream(conn, stream);
        }
        let Some(slot) = self.uploads.get(key) else { return };
        let racing = slot.racing.take().map(|r| *r).unwrap_or_default();
        if let Some(conn) = slot.conn.take() {
            self.conns.close(self.poll.registry(), conn);
        }
        for conn in racing {
            self.conns.close(self.poll.registry(), conn);
        }
    }

    fn on_conn_event(&mut self, token: Token, readable: bool, writable: bool, closed: bool) {
        let Some((conn_key, conn)) = self.conns.by_token(token) else {
            return; // a socket closed since the poll
        };
        conn.peer_closed |= closed;
        if conn.mux.is_some() {
            return self.serve_mux(conn_key, readable, writable);
        }
        let Some(key) = conn.upload else {
            // An idle pooled connection that spoke, closed or failed cannot be
            // reused. A writable edge alone (ACKs of the last bytes) is no news.
            if readable {
                if let Some(origin) = self.conns.handle_peer_closed(conn_key, self.now) {
                    conns::log_not_pooled(&origin);
                }
                self.conns.close(self.poll.registry(), conn_key);
            }
            return;
        };
        let Some(slot) = self.uploads.get(key) else { return };
        match slot.life.phase() {
            Phase::Connecting => self.on_connecting(key, conn_key),
            Phase::Tunneling => self.tunnel(key),
            Phase::Handshaking => self.on_handshaking(key),
            // A readable edge also tries a write: a transport without
            // socket readiness (a scripted or simulated one) signals both
            // with one wake-up; on a socket it costs at most one EAGAIN.
            Phase::Exchanging => self.serve(key, readable, writable || readable),
            Phase::Queued | Phase::Resolving => {}
        }
    }

    /// Moves bytes both ways for an exchanging upload, reports progress and
    /// the outcome.
    fn serve(&mut self, key: Key, readable: bool, writable: bool) {
        let budget = self.config.write_budget;
        let Some(slot) = self.uploads.get(key) else { return };
        if slot.stream.is_some() {
            // Its connection writes for all its streams.
            if let Some(conn) = slot.conn {
                self.ready_conns.push_back(conn);
            }
            return;
        }
        let (Some(conn_key), Some(exchange)) = (slot.conn, slot.exchange.as_mut()) else {
            return;
        };
        let Some(ConnIo::Ready(transport)) = self.conns.get(conn_key).map(|c| &mut c.io) else {
            return;
        };
        let mut moved = 0;
        let mut flow = WriteFlow::Idle;
        let mut file_error = None;
        let waited_for_continue = exchange.awaiting_continue();
        if writable {
            match pump_write(
                slot.id.0,
                exchange,
                transport.as_mut(),
                &slot.sources,
                &mut self.file_buf,
                budget,
            ) {
                Ok((f, n)) => {
                    flow = f;
                    moved += n;
                    if exchange.is_ack_progress() {
                        exchange.handle_wire_written(transport.wire_written(), self.now);
                    }
                }
                Err(e) => file_error = Some(e),
            }
        }
        // Reads follow readable events; after a failed write, at once, for a
        // response the peer may have sent before it closed.
        if readable || exchange.write_failed() {
            moved += pump_read(exchange, transport.as_mut(), &mut self.read_buf);
        }
        if moved > 0 {
            slot.life.handle_activity(self.now, moved as u64);
        }
        exchange.handle_time(self.now);
        if waited_for_continue && !exchange.awaiting_continue() && exchange.wants_write() {
            // `100 Continue` (read just now) or the end of the wait released
            // the body: write it on the next turn (no writable edge will come).
            flow = WriteFlow::Yield;
        }
        if let Some(e) = file_error {
            return self.finish(key, Err(UploadError::new(ErrorKind::File, e.0)));
        }
        let acked_mode = exchange.is_ack_progress();
        if acked_mode && exchange.is_finished() {
            // The last word on what the peer has, before the outcome.
            self.acks.ask(transport.as_mut(), exchange, self.now);
        }
        if !self.report(key) {
            return;
        }
        if flow == WriteFlow::Yield {
            self.ready.push_back(key);
        }
        if acked_mode {
            self.schedule(key);
        }
    }

    /// Reports what the upload's exchange has for its sink (the request
    /// head, progress, heads), then its outcome, or ends it when its
    /// responses outgrow the memory budget. `false` when the exchange is
    /// over (the upload went on to what follows, or ended).
    fn report(&mut self, key: Key) -> bool {
        let Some(slot) = self.uploads.get(key) else {
            return false;
        };
        let Some(exchange) = slot.exchange.as_mut() else {
            return false;
        };
        if let Some(head) = exchange.poll_request_head() {
            deliver(&mut *slot.sink, slot.id, Event::RequestHead(head));
        }
        while let Some(progress) = exchange.poll_progress(self.now) {
            deliver(&mut *slot.sink, slot.id, Event::Progress(progress));
        }
        if let Some(heads) = exchange.poll_response_heads() {
            deliver(&mut *slot.sink, slot.id, Event::ResponseHeadBytes(heads));
        }
        // A 1xx of a resumable session may stop the request under way.
        let mut stop = None;
        while let Some((status, headers)) = exchange.poll_interim() {
            if let Some(transfer) = slot.transfer.as_mut() {
                stop = stop.or(transfer.handle_interim(status, &headers));
                while let Some(change) = transfer.poll_url_change() {
                    deliver(&mut *slot.sink, slot.id, Event::Resumable(change));
                }
            }
        }
        if let Some(next) = stop {
            // Its connection is closed; the session's next step follows.
            self.resume_interrupted(key, next);
            return false;
        }
        // A head whose response may be followed waits: only the outcome's
        // heads are heard of.
        if let Some(status) = exchange.poll_response_head() {
            if let Some(head) = hold(slot.transfer.as_mut(), Held::Status(status)) {
                deliver(&mut *slot.sink, slot.id, event_of(head));
            }
        }
        if let Some((status, headers)) = exchange.poll_headers() {
            if let Some(head) = hold(slot.transfer.as_mut(), Held::Headers(status, headers)) {
                deliver(&mut *slot.sink, slot.id, event_of(head));
            }
        }
        let buffered = exchange.buffered_bytes();
        if let Some(outcome) = exchange.poll_outcome() {
            self.on_outcome(key, outcome);
            return false;
        }
        if self.uploads.set_buffered(key, buffered) > self.config.max_buffered_response_bytes {
            let message = format!(
                "responses held in memory would exceed the engine's budget of {} bytes",
                self.config.max_buffered_response_bytes
            );
            self.finish(key, Err(UploadError::new(ErrorKind::ResourceExhausted, message)));
            return false;
        }
        true
    }

    fn serve_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                return;
            };
            self.serve(key, false, true);
        }
    }

    fn on_outcome(&mut self, key: Key, outcome: Result<crate::proto::exchange::Response, ExchangeError>) {
        let error = match outcome {
            Ok(response) => return self.on_response(key, response),
            Err(error) => error,
        };
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        let (started, accepted) = slot
            .exchange
            .as_ref()
            .map_or((false, false), |e| (e.response_started(), e.body_accepted()));
        let engine_resends = self.config.resend_reused;
        let resend = slot
            .transfer
            .as_ref()
            .map_or(reuse::Resend::from_choice(engine_resends), |t| {
                t.resend_rule(engine_resends)
            });
        let action = slot.life.handle_exchange_failed(error, started, accepted, resend, now);
        if action == Action::Resolve {
            // A stale pooled connection: the request goes again on a new one.
            if let Some(exchange) = slot.exchange.as_mut() {
                exchange.restart();
            }
            self.resent += 1;
            if let Some(origin) = slot.conn.and_then(|conn| self.conns.handle_peer_closed(conn, now)) {
                conns::log_not_pooled(&origin);
            }
        }
        self.act(key, action);
    }

    /// Starts the upload's next exchange (a redirect hop, a resend), after
    /// pooling or closing the connection of the last one.
    fn next_exchange(&mut self, key: Key, next: Result<(Target, crate::proto::exchange::Exchange), UploadError>) {
        let Some(slot) = self.uploads.get(key) else { return };
        match next {
            Ok((target, exchange)) => {
                let keep = reuse::kept_alive(slot.exchange.as_ref(), self.config.keep_alive);
                slot.exchange = Some(exchange);
                slot.target = Some(target);
                self.leave_conn(key, keep);
                self.begin_exchange(key);
            }
            Err(error) => self.finish(key, Err(error)),
        }
    }

    /// Gives up the upload's connection: its stream ends (an HTTP/2
    /// connection goes on with the others), or the connection is pooled
    /// (`keep`, see [`Loop::release_conn`]) or closed.
    fn leave_conn(&mut self, key: Key, keep: Option<Option<u32>>) {
        let Some(slot) = self.uploads.get(key) else { return };
        let (conn, stream) = (slot.conn.take(), slot.stream.take());
        match (conn, stream) {
            (Some(conn), Some(stream)) => self.detach_stream(conn, stream),
            (Some(conn), None) => self.release_conn(conn, keep),
            (None, _) => {}
        }
    }

    /// Pools a connection that can carry another request (`keep`: its
    /// `Keep-Alive` timeout, if the server gave one), or closes it.
    fn release_conn(&mut self, conn: ConnKey, keep: Option<Option<u32>>) {
        let Some(keep_alive_secs) = keep else {
            return self.conns.close(self.poll.registry(), conn);
        };
        self.conns.handle_answered(conn, self.now);
        let Some(until) = reuse::pool_until(self.now, self.config.pool_idle_timeout, keep_alive_secs) else {
            return self.conns.close(self.poll.registry(), conn);
        };
        if self.conns.pool(self.poll.registry(), conn, until, self.turn, self.now) {
            self.timers.push(until, TimerTarget::IdleConn(conn));
        }
    }

    /// Ends an upload: frees its slot, place in flight and files; pools or
    /// closes its connection; then reports the outcome.
    fn finish(&mut self, key: Key, outcome: Result<crate::proto::exchange::Response, UploadError>) {
        self.end_setup(key);
        let Some(mut slot) = self.uploads.remove(key) else {
            return;
        };
        for conn in slot.racing.take().map(|r| *r).unwrap_or_default() {
            self.conns.close(self.poll.registry(), conn);
        }
        if let (Some(conn), Some(stream)) = (slot.conn, slot.stream) {
            slot.conn = None;
            self.detach_stream(conn, stream);
        }
        if let Some(conn) = slot.conn.take() {
            let keep = reuse::kept_alive(slot.exchange.as_ref(), self.config.keep_alive).filter(|_| outcome.is_ok());
            self.release_conn(conn, keep);
        }
        self.recycle.keep(slot.exchange.take(), slot.sources);
        self.compact();
        deliver(&mut *slot.sink, slot.id, Event::Done(outcome));
    }

    /// Timer entries of ended uploads are skipped lazily; once they
    /// outnumber the live ones, they are dropped.
    fn compact(&mut self) {
        let (uploads, conns) = (&self.uploads, &self.conns);
        self.timers
            .compact(uploads.len() + conns.len(), false, |at, target| match target {
                TimerTarget::Upload(key) => uploads.timer_at(key) == Some(at),
                TimerTarget::IdleConn(key) => conns.is_idle_until(key, at),
                TimerTarget::Ping(key) => conns.is_pinging_until(key, at),
            });
    }

    fn schedule(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        let exchange_at = slot.exchange.as_ref().and_then(|e| e.poll_timeout());
        let retry_at = slot.transfer.as_ref().and_then(|t| t.poll_timeout());
        let Some(at) = [slot.life.poll_timeout(), exchange_at, retry_at]
            .into_iter()
            .flatten()
            .min()
        else {
            return;
        };
        if slot.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        slot.timer_at = Some(at);
        self.timers.push(at, TimerTarget::Upload(key));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        self.now = now;
        while let Some((at, target)) = self.timers.pop_due(now) {
            match target {
                TimerTarget::IdleConn(conn) => {
                    if self.conns.is_idle_until(conn, at) {
                        self.close_conn(conn);
                    }
                }
                TimerTarget::Ping(conn) => {
                    if self.conns.is_pinging_until(conn, at) {
                        self.handle_ping_unanswered(conn);
                    }
                }
                TimerTarget::Upload(key) => {
                    let Some(slot) = self.uploads.get(key).filter(|s| s.timer_at == Some(at)) else {
                        continue; // superseded, or the upload is gone
                    };
                    slot.timer_at = None;
                    let retry_due = slot
                        .transfer
                        .as_ref()
                        .and_then(|t| t.poll_timeout())
                        .is_some_and(|at| at <= now);
                    match slot.life.handle_timeout(now) {
                        // The overall deadline wins over a retry that is due.
                        None if retry_due => {
                            if let Some(transfer) = slot.transfer.as_mut() {
                                transfer.handle_timeout(now);
                            }
                            self.begin_exchange(key);
                        }
                        Some(action) => self.act(key, action),
                        None => {
                            let released = slot.exchange.as_mut().is_some_and(|e| e.handle_time(now));
                            let ask = slot.exchange.as_mut().is_some_and(|e| e.ack_due(now));
                            if ask {
                                self.ask_acked(key);
                            }
                            if released {
                                self.serve(key, false, true);
                            }
                            self.schedule(key);
                        }
                    }
                }
            }
        }
    }

    /// Fails every upload as aborted and closes every connection.
    fn stop_all(&mut self) {
        for key in self.uploads.keys() {
            self.finish(key, Err(UploadError::new(ErrorKind::Aborted, "engine shut down")));
        }
        for conn in self.conns.keys() {
            self.conns.close(self.poll.registry(), conn);
        }
        // Commands sent after the loop stopped listening.
        while let Ok(command) = self.inbox.try_recv() {
            let shut_down = || Event::Done(Err(UploadError::new(ErrorKind::Aborted, "engine shut down")));
            match command {
                Command::Submit { id, mut sink, .. } => {
                    self.uploads.release_admitted();
                    deliver(&mut *sink, id, shut_down());
                }
                Command::Reject { error, mut sink } => deliver(&mut *sink, UploadId(0), Event::Done(Err(error))),
                _ => {}
            }
        }
    }
}

/// The pool key of an upload's connections: its origin and its proxy.
fn origin_of(slot: &uploads::UploadSlot) -> Origin {
    let proxy = slot.transfer.as_ref().and_then(|t| t.proxy.as_ref());
    match slot.target.as_ref() {
        Some(t) => {
            let https = t.scheme == Scheme::Https;
            // A forwarding proxy (plain http through it) speaks HTTP/1.1.
            let h2 = slot.h2.allows_h2(https) && (https || proxy.is_none());
            Origin {
                scheme: t.scheme,
                host: t.host.clone(),
                port: t.port,
                proxy: proxy.map(|p| Box::new((p.host.clone(), p.port))),
                h2,
            }
        }
        None => Origin {
            scheme: Scheme::Http,
            host: Arc::from(""),
            port: 0,
            proxy: None,
            h2: false,
        },
    }
}

/// `Some(head)` to report now, `None` when the transfer holds it.
fn hold(transfer: Option<&mut Transfer>, head: Held) -> Option<Held> {
    match transfer {
        Some(transfer) => transfer.handle_head(head),
        None => Some(head),
    }
}

/// The event that reports a head.
fn event_of(head: Held) -> Event {
    match head {
        Held::Status(status) => Event::ResponseHead(status),
        Held::Headers(status, headers) => Event::Headers(status, headers),
    }
}

/// Seconds since the Unix epoch (a `Retry-After` date, an upload's expiry).
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
