//! The event loop: readiness, timers, commands. It owns every socket,
//! file, slab slot and timer, and frees them on every path.
//!
//! One upload's life (the `Phase` of its slot):
//!
//! ```text
//!  Queued ──start──► Resolving ──addrs──► Connecting ──► Handshaking (https) ──► Exchanging ──► finished
//!     │                  │                   │  next address on failure          ▲    │
//!     │                  │                   └──────────────────────────────────┘    │ reused connection failed
//!     │   idle pooled connection for the origin ─────────────────────────────────►   │ before any response byte:
//!     │                                                                              │ once, back to Resolving
//!     └── abort / overall timeout / shutdown at any phase ──► finished (fail) ◄──────┘
//! ```
//!
//! Connections live in their own slab so an idle one can outlive its
//! upload and carry the next upload to the same origin. A `Token` is a
//! connection's slab index; keys with a generation keep stale timers and
//! resolver answers from reaching a reused slot.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use uploadtask_http1::request::{Scheme, Target};

use crate::exchange::{Exchange, ExchangeError};
use crate::prepare::{prepare, Entropy};
use crate::pump::{pump_read, pump_write, Scratch, WriteFlow};
use crate::source::BodySource;
use crate::transport::{TcpTransport, TlsTransport, Transport};
use crate::{
    Command, EngineConfig, ErrorKind, Event, EventSink, Mailbox, Resolver, Sendfile, UploadError, UploadId,
    UploadRequest,
};

/// The waker's token; connection tokens are slab indexes, far below it.
pub(crate) const WAKER: Token = Token(usize::MAX);

const READ_BUF: usize = 64 * 1024;
const FILE_BUF: usize = 256 * 1024;

/// A slab index with the generation of its occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    index: usize,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerTarget {
    Upload(Key),
    IdleConn(Key),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Resolving,
    Connecting,
    Handshaking,
    Exchanging,
}

type Origin = (Scheme, String, u16);

struct UploadSlot {
    generation: u32,
    id: UploadId,
    sink: Box<dyn EventSink>,
    phase: Phase,
    request: Option<Box<UploadRequest>>,
    target: Option<Target>,
    exchange: Option<Exchange>,
    sources: Vec<Box<dyn BodySource>>,
    conn: Option<usize>,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    last_connect_error: Option<io::Error>,
    deadline: Option<Instant>,
    connect_deadline: Option<Instant>,
    last_activity: Instant,
    timer_at: Option<Instant>,
    conn_reused: bool,
    retried: bool,
}

enum ConnIo {
    Connecting(TcpStream),
    Ready(Box<dyn Transport>),
    /// Transitional, while the stream moves into its transport.
    Empty,
}

struct ConnSlot {
    generation: u32,
    io: ConnIo,
    origin: Origin,
    upload: Option<usize>,
    idle_until: Option<Instant>,
}

pub(crate) struct Loop {
    poll: Poll,
    config: EngineConfig,
    tls: Arc<rustls::ClientConfig>,
    resolver: Arc<dyn Resolver>,
    inbox: mpsc::Receiver<Command>,
    mailbox: Mailbox,
    entropy: Entropy,
    uploads: Slab<UploadSlot>,
    conns: Slab<ConnSlot>,
    ids: HashMap<UploadId, usize>,
    queue: VecDeque<Key>,
    in_flight: usize,
    idle: HashMap<Origin, Vec<usize>>,
    timers: BinaryHeap<Reverse<(Instant, TimerTarget)>>,
    ready: VecDeque<Key>,
    next_generation: u32,
    read_buf: Box<[u8]>,
    file_buf: Scratch,
    shutting_down: bool,
    now: Instant,
}

impl Loop {
    pub(crate) fn new(
        poll: Poll,
        config: EngineConfig,
        tls: Arc<rustls::ClientConfig>,
        resolver: Arc<dyn Resolver>,
        inbox: mpsc::Receiver<Command>,
        mailbox: Mailbox,
    ) -> Self {
        Loop {
            poll,
            config,
            tls,
            resolver,
            inbox,
            mailbox,
            entropy: Entropy::default(),
            uploads: Slab::new(),
            conns: Slab::new(),
            ids: HashMap::new(),
            queue: VecDeque::new(),
            in_flight: 0,
            idle: HashMap::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            next_generation: 0,
            read_buf: vec![0; READ_BUF].into_boxed_slice(),
            file_buf: Scratch::new(FILE_BUF),
            shutting_down: false,
            now: Instant::now(),
        }
    }

    /// Runs until shutdown; every upload still present then fails as aborted.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.shutting_down {
            let timeout = if self.ready.is_empty() {
                self.timers
                    .peek()
                    .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("poll failed: {e}");
                    break;
                }
            }
            self.now = Instant::now();
            // Commands first: an abort or a job sent before this wake-up must
            // not lose to a completion seen in the same poll.
            self.drain_commands();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed() || event.is_error();
                self.on_conn_event(event.token().0, readable, writable);
            }
            self.serve_ready();
            self.fire_timers();
            self.start_queued();
        }
        self.stop_all();
    }

    fn generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    fn drain_commands(&mut self) {
        self.mailbox.clear_wake();
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Submit { id, at, request, sink } => self.submit(id, at, request, sink),
                Command::Abort(id) => {
                    if let Some(&index) = self.ids.get(&id) {
                        let key = Key {
                            index,
                            generation: self.uploads[index].generation,
                        };
                        self.finish(key, Err(UploadError::new(ErrorKind::Aborted, "abort")));
                    }
                }
                Command::Reject { error, mut sink } => sink.event(Event::Done(Err(error))),
                Command::Run(job) => job(),
                Command::Resolved { key, result } => self.on_resolved(key, result),
                Command::Shutdown => self.shutting_down = true,
            }
        }
    }

    fn submit(&mut self, id: UploadId, at: Instant, request: Box<UploadRequest>, sink: Box<dyn EventSink>) {
        let generation = self.generation();
        let deadline = request.timeout.map(|t| at + t);
        let index = self.uploads.insert(UploadSlot {
            generation,
            id,
            sink,
            phase: Phase::Queued,
            request: Some(request),
            target: None,
            exchange: None,
            sources: Vec::new(),
            conn: None,
            addrs: Vec::new(),
            next_addr: 0,
            last_connect_error: None,
            deadline,
            connect_deadline: None,
            last_activity: self.now,
            timer_at: None,
            conn_reused: false,
            retried: false,
        });
        self.ids.insert(id, index);
        let key = Key { index, generation };
        self.queue.push_back(key);
        self.schedule(key);
    }

    fn upload(&mut self, key: Key) -> Option<&mut UploadSlot> {
        self.uploads
            .get_mut(key.index)
            .filter(|slot| slot.generation == key.generation)
    }

    fn start_queued(&mut self) {
        while self.in_flight < self.config.max_in_flight.max(1) {
            let Some(key) = self.queue.pop_front() else {
                return;
            };
            if self.upload(key).is_some_and(|slot| slot.phase == Phase::Queued) {
                self.in_flight += 1;
                if let Err(error) = self.start(key) {
                    self.finish(key, Err(error));
                }
            }
        }
    }

    /// Opens the files, frames the form, writes the head, then takes a pooled
    /// connection or resolves the host.
    fn start(&mut self, key: Key) -> Result<(), UploadError> {
        let vanished = || UploadError::new(ErrorKind::Internal, "upload vanished");
        let request = {
            let slot = self.upload(key).ok_or_else(vanished)?;
            slot.phase = Phase::Resolving;
            slot.request.take().ok_or_else(vanished)?
        };
        let (target, exchange, sources) = prepare(*request, self.config.limits, &mut self.entropy)?;
        let origin: Origin = (target.scheme, target.host.clone(), target.port);
        let slot = self.upload(key).ok_or_else(vanished)?;
        slot.exchange = Some(exchange);
        slot.sources = sources;
        slot.target = Some(target);
        match self.take_idle(&origin) {
            Some(conn) => {
                self.attach(key, conn, true);
                self.serve(key, false, true);
            }
            None => self.resolve(key),
        }
        Ok(())
    }

    fn take_idle(&mut self, origin: &Origin) -> Option<usize> {
        let list = self.idle.get_mut(origin)?;
        let conn = list.pop();
        if list.is_empty() {
            self.idle.remove(origin);
        }
        conn
    }

    fn attach(&mut self, key: Key, conn: usize, reused: bool) {
        let generation = self.generation();
        if let Some(c) = self.conns.get_mut(conn) {
            c.upload = Some(key.index);
            c.idle_until = None;
            c.generation = generation;
        }
        if let Some(slot) = self.upload(key) {
            slot.conn = Some(conn);
            slot.conn_reused = reused;
            slot.phase = Phase::Exchanging;
            slot.connect_deadline = None;
        }
        self.schedule(key);
    }

    fn resolve(&mut self, key: Key) {
        let Some(slot) = self.upload(key) else { return };
        slot.phase = Phase::Resolving;
        let Some(target) = slot.target.as_ref() else {
            return;
        };
        let (host, port) = (target.host.clone(), target.port);
        let mailbox = self.mailbox.clone();
        self.resolver.resolve(
            &host,
            port,
            Box::new(move |result| {
                let _ = mailbox.send(Command::Resolved { key, result });
            }),
        );
    }

    fn on_resolved(&mut self, key: Key, result: io::Result<Vec<SocketAddr>>) {
        let Some(slot) = self.upload(key) else { return };
        if slot.phase != Phase::Resolving {
            return;
        }
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                slot.addrs = addrs;
                slot.next_addr = 0;
                self.connect_next(key);
            }
            Ok(_) => self.fail(key, ErrorKind::Network, "name resolution gave no address".into()),
            Err(e) => {
                let host = slot.target.as_ref().map_or("", |t| t.host.as_str());
                let message = format!("cannot resolve {host}: {e}");
                self.fail(key, ErrorKind::Network, message);
            }
        }
    }

    /// Connects to the next address, or fails with the last connect error.
    fn connect_next(&mut self, key: Key) {
        let now = self.now;
        let connect_timeout = self.config.connect_timeout;
        loop {
            let Some(slot) = self.upload(key) else { return };
            let Some(&addr) = slot.addrs.get(slot.next_addr) else {
                let error = match slot.last_connect_error.take() {
                    Some(e) => UploadError::from_io(&e, "connect failed"),
                    None => UploadError::new(ErrorKind::Network, "connect failed"),
                };
                return self.finish(key, Err(error));
            };
            slot.next_addr += 1;
            let origin = slot.target.as_ref().map(|t| (t.scheme, t.host.clone(), t.port));
            let Some(origin) = origin else { return };
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        return self.finish(key, Err(UploadError::from_io(&e, "register socket")));
                    }
                    entry.insert(ConnSlot {
                        generation: 0,
                        io: ConnIo::Connecting(stream),
                        origin,
                        upload: Some(key.index),
                        idle_until: None,
                    });
                    let Some(slot) = self.upload(key) else { return };
                    slot.conn = Some(token.0);
                    slot.phase = Phase::Connecting;
                    slot.connect_deadline = Some(now + connect_timeout);
                    self.schedule(key);
                    return;
                }
                Err(e) => {
                    let error = UploadError::from_io(&e, "connect failed");
                    if error.kind == ErrorKind::ResourceExhausted {
                        return self.finish(key, Err(error));
                    }
                    slot.last_connect_error = Some(e);
                }
            }
        }
    }

    fn on_conn_event(&mut self, index: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get(index) else {
            return;
        };
        let Some(upload) = conn.upload else {
            // An idle pooled connection that spoke, closed or failed cannot be
            // reused. A writable edge alone (ACKs of the last bytes) is no news.
            if readable {
                self.close_conn(index);
            }
            return;
        };
        let Some(generation) = self.uploads.get(upload).map(|s| s.generation) else {
            return;
        };
        let key = Key {
            index: upload,
            generation,
        };
        match self.uploads[upload].phase {
            Phase::Connecting => self.on_connecting(key, index),
            Phase::Handshaking => self.on_handshaking(key),
            Phase::Exchanging => self.serve(key, readable, writable),
            Phase::Queued | Phase::Resolving => {}
        }
    }

    fn on_connecting(&mut self, key: Key, index: usize) {
        let ConnIo::Connecting(stream) = &self.conns[index].io else {
            return;
        };
        let failed = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failed {
            self.close_conn(index);
            if let Some(slot) = self.upload(key) {
                slot.conn = None;
                slot.last_connect_error = Some(e);
            }
            return self.connect_next(key);
        }
        let io = std::mem::replace(&mut self.conns[index].io, ConnIo::Empty);
        let ConnIo::Connecting(stream) = io else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let sendfile = match self.config.sendfile {
            Sendfile::Always => true,
            Sendfile::Never => false,
            Sendfile::Auto => !stream.peer_addr().is_ok_and(|a| a.ip().is_loopback()),
        };
        let tcp = TcpTransport::new(stream, sendfile);
        let now = self.now;
        let tls_config = Arc::clone(&self.tls);
        let Some(slot) = self.upload(key) else { return };
        slot.connect_deadline = None;
        slot.last_activity = now;
        let Some(target) = slot.target.as_ref() else {
            return;
        };
        if target.scheme == Scheme::Https {
            match TlsTransport::new(tcp, tls_config, &target.host) {
                Ok(tls) => {
                    slot.phase = Phase::Handshaking;
                    self.conns[index].io = ConnIo::Ready(Box::new(tls));
                    self.on_handshaking(key);
                }
                Err(e) => self.fail(key, ErrorKind::Tls, format!("tls setup failed: {e}")),
            }
        } else {
            self.conns[index].io = ConnIo::Ready(Box::new(tcp));
            self.attach(key, index, false);
            self.serve(key, false, true);
        }
    }

    fn on_handshaking(&mut self, key: Key) {
        let Some(index) = self.upload(key).and_then(|s| s.conn) else {
            return;
        };
        let ConnIo::Ready(transport) = &mut self.conns[index].io else {
            return;
        };
        match transport.handshake() {
            Ok(_) => {
                self.attach(key, index, false);
                self.serve(key, true, true);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let now = self.now;
                if let Some(slot) = self.upload(key) {
                    slot.last_activity = now;
                }
            }
            Err(e) => self.fail(key, ErrorKind::Tls, format!("tls handshake failed: {e}")),
        }
    }

    /// Moves bytes both ways for an exchanging upload, reports progress and
    /// the outcome.
    fn serve(&mut self, key: Key, readable: bool, writable: bool) {
        let budget = self.config.write_budget;
        let Some(slot) = self
            .uploads
            .get_mut(key.index)
            .filter(|s| s.generation == key.generation)
        else {
            return;
        };
        let (Some(index), Some(exchange)) = (slot.conn, slot.exchange.as_mut()) else {
            return;
        };
        let Some(ConnSlot {
            io: ConnIo::Ready(transport),
            ..
        }) = self.conns.get_mut(index)
        else {
            return;
        };
        let mut moved = 0;
        let mut flow = WriteFlow::Idle;
        let mut file_error = None;
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
                }
                Err(e) => file_error = Some(e),
            }
        }
        let write_failed = writable && flow == WriteFlow::Idle && !exchange.wants_write() && !exchange.is_finished();
        if readable || write_failed {
            moved += pump_read(exchange, transport.as_mut(), &mut self.read_buf);
        }
        if moved > 0 {
            slot.last_activity = self.now;
        }
        if let Some(e) = file_error {
            return self.fail(key, ErrorKind::File, e.0);
        }
        while let Some(progress) = exchange.poll_progress(self.now) {
            slot.sink.event(Event::Progress(progress));
        }
        if let Some(status) = exchange.poll_response_head() {
            slot.sink.event(Event::ResponseHead(status));
        }
        if let Some(outcome) = exchange.poll_outcome() {
            return self.on_outcome(key, outcome);
        }
        if flow == WriteFlow::Yield {
            self.ready.push_back(key);
        }
    }

    fn serve_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                return;
            };
            self.serve(key, false, true);
        }
    }

    fn on_outcome(&mut self, key: Key, outcome: Result<crate::Response, ExchangeError>) {
        let Some(slot) = self.upload(key) else { return };
        let tls = slot.target.as_ref().is_some_and(|t| t.scheme == Scheme::Https);
        match outcome {
            Ok(response) => self.finish(key, Ok(response)),
            Err(error) => {
                let retry = slot.conn_reused
                    && !slot.retried
                    && matches!(
                        error,
                        ExchangeError::Io { .. } | ExchangeError::ClosedBeforeResponse { .. }
                    )
                    && slot.exchange.as_ref().is_some_and(|e| !e.response_started());
                if retry {
                    // The pooled connection was stale: once more on a fresh one.
                    slot.retried = true;
                    if let Some(exchange) = slot.exchange.as_mut() {
                        exchange.restart();
                    }
                    if let Some(conn) = slot.conn.take() {
                        self.close_conn(conn);
                    }
                    return self.resolve(key);
                }
                let kind = match &error {
                    ExchangeError::Io {
                        kind: io::ErrorKind::InvalidData,
                        ..
                    } if tls => ErrorKind::Tls,
                    ExchangeError::Io {
                        kind: io::ErrorKind::UnexpectedEof,
                        ..
                    } if tls => ErrorKind::Tls,
                    ExchangeError::Io { .. } | ExchangeError::ClosedBeforeResponse { .. } => ErrorKind::Network,
                    _ => ErrorKind::Protocol,
                };
                self.fail(key, kind, error.to_string())
            }
        }
    }

    fn fail(&mut self, key: Key, kind: ErrorKind, message: String) {
        self.finish(key, Err(UploadError::new(kind, message)));
    }

    /// Ends an upload: frees its slot, timer claim and files; pools or closes
    /// its connection; then reports the outcome.
    fn finish(&mut self, key: Key, outcome: Result<crate::Response, UploadError>) {
        if self.upload(key).is_none() {
            return;
        }
        let mut slot = self.uploads.remove(key.index);
        self.ids.remove(&slot.id);
        if slot.phase != Phase::Queued {
            self.in_flight -= 1;
        }
        if let Some(conn) = slot.conn.take() {
            let reusable = outcome.is_ok()
                && self.config.keep_alive
                && slot.exchange.as_ref().is_some_and(|e| e.reusable() && e.is_finished());
            if reusable {
                self.pool_conn(conn);
            } else {
                self.close_conn(conn);
            }
        }
        drop(slot.sources);
        slot.sink.event(Event::Done(outcome));
    }

    fn pool_conn(&mut self, index: usize) {
        let until = self.now + self.config.idle_timeout;
        let generation = self.generation();
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let list = self.idle.entry(conn.origin.clone()).or_default();
        if list.len() >= self.config.max_idle_per_origin {
            return self.close_conn(index);
        }
        list.push(index);
        conn.upload = None;
        conn.idle_until = Some(until);
        conn.generation = generation;
        self.timers
            .push(Reverse((until, TimerTarget::IdleConn(Key { index, generation }))));
    }

    fn close_conn(&mut self, index: usize) {
        if !self.conns.contains(index) {
            return;
        }
        let mut conn = self.conns.remove(index);
        if conn.upload.is_none() {
            if let Some(list) = self.idle.get_mut(&conn.origin) {
                list.retain(|&i| i != index);
                if list.is_empty() {
                    self.idle.remove(&conn.origin);
                }
            }
        }
        let registry = self.poll.registry();
        let _ = match &mut conn.io {
            ConnIo::Connecting(stream) => registry.deregister(stream),
            ConnIo::Ready(transport) => transport.deregister(registry),
            ConnIo::Empty => Ok(()),
        };
    }

    /// The earliest moment this upload must be looked at again.
    fn next_deadline(&self, slot: &UploadSlot) -> Option<Instant> {
        let idle = match slot.phase {
            Phase::Handshaking | Phase::Exchanging => Some(slot.last_activity + self.config.idle_timeout),
            _ => None,
        };
        [slot.deadline, slot.connect_deadline, idle].into_iter().flatten().min()
    }

    fn schedule(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key.index).filter(|s| s.generation == key.generation) else {
            return;
        };
        let Some(at) = self.next_deadline(slot) else {
            return;
        };
        if slot.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        self.uploads[key.index].timer_at = Some(at);
        self.timers.push(Reverse((at, TimerTarget::Upload(key))));
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, target))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            match target {
                TimerTarget::IdleConn(key) => {
                    let stale = self
                        .conns
                        .get(key.index)
                        .is_some_and(|c| c.generation == key.generation && c.upload.is_none());
                    if stale {
                        self.close_conn(key.index);
                    }
                }
                TimerTarget::Upload(key) => self.on_upload_timer(key, at, now),
            }
        }
    }

    fn on_upload_timer(&mut self, key: Key, at: Instant, now: Instant) {
        let Some(slot) = self.uploads.get(key.index).filter(|s| s.generation == key.generation) else {
            return;
        };
        if slot.timer_at != Some(at) {
            return; // superseded by an earlier entry
        }
        self.uploads[key.index].timer_at = None;
        let slot = &self.uploads[key.index];
        let idle_timeout = self.config.idle_timeout;
        if slot.deadline.is_some_and(|d| d <= now) {
            return self.fail(key, ErrorKind::Timeout, "timeout".into());
        }
        if slot.connect_deadline.is_some_and(|d| d <= now) {
            let message = format!("connect timeout after {} ms", self.config.connect_timeout.as_millis());
            if slot.next_addr < slot.addrs.len() {
                if let Some(conn) = self.uploads[key.index].conn.take() {
                    self.close_conn(conn);
                }
                self.uploads[key.index].connect_deadline = None;
                self.connect_next(key);
                return self.schedule(key);
            }
            return self.fail(key, ErrorKind::Timeout, message);
        }
        if matches!(slot.phase, Phase::Handshaking | Phase::Exchanging) && slot.last_activity + idle_timeout <= now {
            let message = format!("idle timeout: no byte moved for {} ms", idle_timeout.as_millis());
            return self.fail(key, ErrorKind::Timeout, message);
        }
        self.schedule(key);
    }

    /// Fails every upload as aborted and closes every connection.
    fn stop_all(&mut self) {
        let keys: Vec<Key> = self
            .uploads
            .iter()
            .map(|(index, s)| Key {
                index,
                generation: s.generation,
            })
            .collect();
        for key in keys {
            self.finish(key, Err(UploadError::new(ErrorKind::Aborted, "engine shut down")));
        }
        let conns: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for index in conns {
            self.close_conn(index);
        }
        // Uploads submitted after the loop stopped listening.
        while let Ok(command) = self.inbox.try_recv() {
            if let Command::Submit { mut sink, .. } = command {
                sink.event(Event::Done(Err(UploadError::new(
                    ErrorKind::Aborted,
                    "engine shut down",
                ))));
            }
        }
    }
}
