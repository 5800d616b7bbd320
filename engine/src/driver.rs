//! The event loop: readiness, timers, commands. It owns every socket,
//! file, slab slot and timer, and frees them on every path.
//!
//! It decides nothing about an upload itself: each slot's [`Upload`] says
//! what to do next (resolve, connect to an address, start TLS, exchange,
//! fail) and the driver does it, feeding back what happened; the
//! [`Exchange`] says what to write and takes what was read, through
//! [`crate::pump`]. Abort, shutdown and the overall timeout end an upload in
//! any phase through [`Loop::finish`], the one place that frees a slot.
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
use crate::upload::{Action, Phase, Upload};
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

type Origin = (Scheme, String, u16);

struct UploadSlot {
    generation: u32,
    id: UploadId,
    sink: Box<dyn EventSink>,
    /// Phase, addresses, deadlines, retry: the sans-I/O life of the upload.
    life: Upload,
    request: Option<Box<UploadRequest>>,
    target: Option<Target>,
    exchange: Option<Exchange>,
    sources: Vec<Box<dyn BodySource>>,
    conn: Option<usize>,
    timer_at: Option<Instant>,
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
        self.mailbox.set_loop_thread();
        let mut events = Events::with_capacity(1024);
        while !self.shutting_down {
            let timeout = if self.ready.is_empty() && !self.mailbox.has_local() {
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
        let life = Upload::new(
            deadline,
            self.config.connect_timeout,
            self.config.idle_timeout,
            self.now,
        );
        let index = self.uploads.insert(UploadSlot {
            generation,
            id,
            sink,
            life,
            request: Some(request),
            target: None,
            exchange: None,
            sources: Vec::new(),
            conn: None,
            timer_at: None,
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
            if self.upload(key).is_some_and(|slot| slot.life.phase() == Phase::Queued) {
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
        let request = self
            .upload(key)
            .ok_or_else(vanished)?
            .request
            .take()
            .ok_or_else(vanished)?;
        let (target, exchange, sources) = prepare(*request, self.config.limits, &mut self.entropy)?;
        let origin: Origin = (target.scheme, target.host.clone(), target.port);
        let pooled = self.take_idle(&origin);
        let now = self.now;
        let slot = self.upload(key).ok_or_else(vanished)?;
        let action = slot
            .life
            .handle_start(&target.host, target.scheme == Scheme::Https, pooled.is_some(), now);
        slot.exchange = Some(exchange);
        slot.sources = sources;
        slot.target = Some(target);
        if let Some(conn) = pooled {
            self.attach(key, conn);
        }
        self.act(key, action);
        Ok(())
    }

    /// Performs what the upload's life asks for.
    fn act(&mut self, key: Key, action: Action) {
        match action {
            Action::Resolve => self.resolve(key),
            Action::Connect(addr) => self.connect(key, addr),
            Action::StartTls => self.on_handshaking(key),
            Action::Exchange => self.serve(key, false, true),
            Action::Fail(error) => return self.finish(key, Err(error)),
        }
        self.schedule(key);
    }
    fn take_idle(&mut self, origin: &Origin) -> Option<usize> {
        let list = self.idle.get_mut(origin)?;
        let conn = list.pop();
        if list.is_empty() {
            self.idle.remove(origin);
        }
        conn
    }

    /// Gives a pooled connection to an upload.
    fn attach(&mut self, key: Key, conn: usize) {
        let generation = self.generation();
        if let Some(c) = self.conns.get_mut(conn) {
            c.upload = Some(key.index);
            c.idle_until = None;
            c.generation = generation;
        }
        if let Some(slot) = self.upload(key) {
            slot.conn = Some(conn);
        }
    }
    fn resolve(&mut self, key: Key) {
        let Some(slot) = self.upload(key) else { return };
        if let Some(conn) = slot.conn.take() {
            self.close_conn(conn);
        }
        let Some(slot) = self.upload(key) else { return };
        let Some(target) = slot.target.as_ref() else { return };
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
        let now = self.now;
        let Some(slot) = self.upload(key) else { return };
        if slot.life.phase() != Phase::Resolving {
            return;
        }
        let action = slot.life.handle_resolved(result, now);
        self.act(key, action);
    }
    /// Closes the upload's connection, if any, and connects to `addr`.
    fn connect(&mut self, key: Key, addr: SocketAddr) {
        let now = self.now;
        let Some(slot) = self.upload(key) else { return };
        if let Some(conn) = slot.conn.take() {
            self.close_conn(conn);
        }
        let Some(slot) = self.upload(key) else { return };
        let Some(origin) = slot.target.as_ref().map(|t| (t.scheme, t.host.clone(), t.port)) else {
            return;
        };
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => {
                let action = slot.life.handle_connect_failed(&e, now);
                return self.act(key, action);
            }
        };
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self
            .poll
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
        if let Some(slot) = self.upload(key) {
            slot.conn = Some(token.0);
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
        match self.uploads[upload].life.phase() {
            Phase::Connecting => self.on_connecting(key, index),
            Phase::Handshaking => self.on_handshaking(key),
            Phase::Exchanging => self.serve(key, readable, writable),
            Phase::Queued | Phase::Resolving => {}
        }
    }

    fn on_connecting(&mut self, key: Key, index: usize) {
        let now = self.now;
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
            let Some(slot) = self.upload(key) else { return };
            let action = slot.life.handle_connect_failed(&e, now);
            return self.act(key, action);
        }
        let ConnIo::Connecting(stream) = std::mem::replace(&mut self.conns[index].io, ConnIo::Empty) else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let sendfile = match self.config.sendfile {
            Sendfile::Always => true,
            Sendfile::Never => false,
            Sendfile::Auto => !stream.peer_addr().is_ok_and(|a| a.ip().is_loopback()),
        };
        let tcp = TcpTransport::new(stream, sendfile);
        let tls_config = Arc::clone(&self.tls);
        let Some(slot) = self.upload(key) else { return };
        let action = slot.life.handle_connected(now);
        let transport: Box<dyn Transport> = match (&action, slot.target.as_ref()) {
            (Action::StartTls, Some(target)) => match TlsTransport::new(tcp, tls_config, &target.host) {
                Ok(tls) => Box::new(tls),
                Err(e) => return self.fail(key, ErrorKind::Tls, format!("tls setup failed: {e}")),
            },
            _ => Box::new(tcp),
        };
        self.conns[index].io = ConnIo::Ready(transport);
        self.act(key, action);
    }
    fn on_handshaking(&mut self, key: Key) {
        let now = self.now;
        let Some(index) = self.upload(key).and_then(|s| s.conn) else {
            return;
        };
        let ConnIo::Ready(transport) = &mut self.conns[index].io else {
            return;
        };
        let result = transport.handshake();
        let Some(slot) = self.upload(key) else { return };
        match result {
            Ok(_) => {
                let action = slot.life.handle_handshake_done(now);
                self.act(key, action);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.life.handle_activity(now),
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
        // Reads follow readable events; after a failed write, at once, for a
        // response the peer may have sent before it closed.
        if readable || exchange.write_failed() {
            moved += pump_read(exchange, transport.as_mut(), &mut self.read_buf);
        }
        if moved > 0 {
            slot.life.handle_activity(self.now);
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
        let error = match outcome {
            Ok(response) => return self.finish(key, Ok(response)),
            Err(error) => error,
        };
        let Some(slot) = self.upload(key) else { return };
        let started = slot.exchange.as_ref().is_some_and(Exchange::response_started);
        let action = slot.life.handle_exchange_failed(error, started);
        if action == Action::Resolve {
            // A stale pooled connection: the exchange starts over on a fresh one.
            if let Some(exchange) = slot.exchange.as_mut() {
                exchange.restart();
            }
        }
        self.act(key, action);
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
        if slot.life.phase() != Phase::Queued {
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
        self.compact();
        slot.sink.event(Event::Done(outcome));
    }

    /// Timer entries and queue keys of ended uploads are skipped lazily;
    /// once they outnumber the live ones, they are dropped, so neither grows
    /// with the uploads an engine has seen.
    fn compact(&mut self) {
        let live = self.uploads.len() + self.conns.len();
        if self.timers.len() > 64 + 2 * live {
            let timers = std::mem::take(&mut self.timers).into_vec();
            self.timers = timers
                .into_iter()
                .filter(|Reverse((at, target))| self.timer_is_current(*at, *target))
                .collect();
        }
        if self.queue.len() > 64 + 2 * self.uploads.len() {
            let uploads = &self.uploads;
            self.queue
                .retain(|key| uploads.get(key.index).is_some_and(|s| s.generation == key.generation));
        }
    }

    /// True when a timer entry still stands for a live upload or idle connection.
    fn timer_is_current(&self, at: Instant, target: TimerTarget) -> bool {
        match target {
            TimerTarget::Upload(key) => self
                .uploads
                .get(key.index)
                .is_some_and(|s| s.generation == key.generation && s.timer_at == Some(at)),
            TimerTarget::IdleConn(key) => self
                .conns
                .get(key.index)
                .is_some_and(|c| c.generation == key.generation && c.upload.is_none()),
        }
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

    fn schedule(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key.index).filter(|s| s.generation == key.generation) else {
            return;
        };
        let Some(at) = slot.life.poll_timeout() else {
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
            if !self.timer_is_current(at, target) {
                continue; // superseded, or its upload or connection is gone
            }
            match target {
                TimerTarget::IdleConn(key) => self.close_conn(key.index),
                TimerTarget::Upload(key) => {
                    let Some(slot) = self.upload(key) else { continue };
                    slot.timer_at = None;
                    match slot.life.handle_timeout(now) {
                        Some(action) => self.act(key, action),
                        None => self.schedule(key),
                    }
                }
            }
        }
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
