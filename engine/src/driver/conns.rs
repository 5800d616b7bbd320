//! Connections and the keep-alive pool: a slab of sockets (connecting or
//! ready, plain or TLS), each registered with the poller under a token that
//! carries its generation, and the idle connections per origin.
//!
//! A connection lives apart from the uploads so an idle one can outlive its
//! upload and carry the next upload to the same origin. It is never reused
//! after the server closed or wrote on it: every idle connection stays
//! registered for reading, so a poll reports a FIN, a reset or stray bytes
//! and the loop closes it before it starts queued uploads. Only a
//! connection pooled during the current loop turn (after its poll) has not
//! been vetted that way: [`Conns::take_idle`] checks it directly
//! ([`Transport::is_reusable`], a one-byte `MSG_PEEK`). One system call per
//! reuse is saved on the common path, where the next upload starts a turn
//! later.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Registry, Token};
use slab::Slab;
use uploadtask_http1::request::Scheme;

pub(crate) use super::keys::ConnKey;
use super::keys::Key;
use crate::io::transport::{Connector, Transport};
use crate::proto::mux::Mux;
use crate::proto::reuse;
use crate::proto::sharing::Room;

/// Where a connection goes: connections pool by (proxy, origin).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) scheme: Scheme,
    pub(crate) host: Arc<str>,
    pub(crate) port: u16,
    /// The proxy it goes through (host, port), if any.
    pub(crate) proxy: Option<Box<(String, u16)>>,
    /// Its uploads may go over HTTP/2 (their version allows it).
    pub(crate) h2: bool,
}

pub(crate) enum ConnIo {
    /// Set up under way (`Transport::connected` not yet true).
    Connecting(Box<dyn Transport>),
    /// Connected (and, for https, wrapped in TLS).
    Ready(Box<dyn Transport>),
    /// Transitional, while the stream moves into its transport.
    Empty,
}

pub(crate) struct ConnSlot {
    generation: u32,
    pub(crate) io: ConnIo,
    pub(crate) origin: Origin,
    /// The upload it carries; `None` while idle in the pool.
    pub(crate) upload: Option<Key>,
    pub(crate) idle_until: Option<Instant>,
    /// An event said the peer closed its side or the socket failed (that
    /// edge is not reported again): never pooled.
    pub(crate) peer_closed: bool,
    /// When the connect started, and the round trip it took (the handshake).
    pub(crate) started: Instant,
    /// Microseconds; 0 until connected.
    pub(crate) rtt_us: u32,
    /// The address it connects (or connected) to.
    pub(crate) addr: SocketAddr,
    /// Answers it carried, and when the last one ended.
    answers: u32,
    answered_at: Option<Instant>,
    /// HTTP/2: the streams it multiplexes (then `upload` stays `None`,
    /// and `idle_until` is set while no stream is open).
    pub(crate) mux: Option<Box<Mux<Key>>>,
    /// HTTP/2: when the server last sent anything, and the deadline of a
    /// ping that asks whether it is still there (no stream opens meanwhile).
    pub(crate) heard_at: Instant,
    pub(crate) ping_until: Option<Instant>,
}

/// The idle connections to one origin: those a poll has vetted, and those
/// pooled during `fresh_turn` (not vetted yet). Both are stacks: the most
/// recently used connection is taken first.
#[derive(Default)]
struct IdleList {
    vetted: Vec<ConnKey>,
    fresh: Vec<ConnKey>,
    fresh_turn: u64,
}

impl IdleList {
    /// Moves last turns' fresh connections to the vetted ones.
    fn age(&mut self, turn: u64) {
        if self.fresh_turn != turn {
            self.vetted.append(&mut self.fresh);
            self.fresh_turn = turn;
        }
    }

    /// The next connection to try, and whether a poll has vetted it.
    fn pop(&mut self, turn: u64) -> Option<(ConnKey, bool)> {
        self.age(turn);
        match self.vetted.pop() {
            Some(key) => Some((key, true)),
            None => self.fresh.pop().map(|key| (key, false)),
        }
    }

    fn push(&mut self, key: ConnKey, turn: u64) {
        self.age(turn);
        self.fresh.push(key);
    }

    fn len(&self) -> usize {
        self.vetted.len() + self.fresh.len()
    }

    fn remove(&mut self, key: ConnKey) -> usize {
        let before = self.len();
        self.vetted.retain(|&k| k != key);
        self.fresh.retain(|&k| k != key);
        before - self.len()
    }
}

/// Origins whose emptied idle list (and its storage) stays in the pool,
/// so that an upload taking its origin's last idle connection, and pooling
/// it again, allocates no list each time. Beyond it, emptied lists go.
const EMPTY_LISTS_KEPT: usize = 64;

/// Origins whose connection history is kept ([`reuse::Origins`]).
const ORIGINS_KEPT: usize = 256;

/// The slab and the pool; see the module doc.
pub(crate) struct Conns {
    slab: Slab<ConnSlot>,
    idle: HashMap<Origin, IdleList>,
    idle_count: usize,
    max_idle_per_origin: usize,
    next_generation: u32,
    /// Origins whose connections die right after their first answer.
    origins: reuse::Origins<Origin>,
    /// Connections opened so far, and how many of them speak HTTP/2.
    pub(crate) opened: u64,
    pub(crate) opened_h2: u64,
}

impl Conns {
    pub(crate) fn new(max_idle_per_origin: usize) -> Self {
        Conns {
            slab: Slab::new(),
            idle: HashMap::new(),
            idle_count: 0,
            max_idle_per_origin,
            next_generation: 0,
            origins: reuse::Origins::new(ORIGINS_KEPT),
            opened: 0,
            opened_h2: 0,
        }
    }

    /// Room for another stream on `key` (an HTTP/2 connection), within
    /// `cap` streams if given.
    pub(crate) fn room(&self, key: ConnKey, cap: Option<u32>) -> Room {
        let conn = self.slab.get(key.index()).filter(|c| c.generation == key.generation());
        let Some(mux) = conn.filter(|c| !c.peer_closed).and_then(|c| c.mux.as_deref()) else {
            return Room::Full;
        };
        let under_cap = cap.is_none_or(|cap| mux.streams() < cap as usize);
        let pinging = conn.is_some_and(|c| c.ping_until.is_some());
        if pinging && !mux.is_closing() {
            return if under_cap { Room::Soon } else { Room::Full };
        }
        match (mux.can_open() && under_cap, mux.settings_known() || mux.is_closing()) {
            (true, _) => Room::Open,
            (false, false) if under_cap => Room::Soon,
            _ => Room::Full,
        }
    }

    /// The connection speaks HTTP/2 from now on: its streams share it.
    pub(crate) fn share(&mut self, key: ConnKey, mux: Mux<Key>) {
        if let Some(conn) = self.get(key) {
            conn.mux = Some(Box::new(mux));
            conn.upload = None;
            self.opened_h2 += 1;
        }
    }

    /// The connection carried an answer and may carry another: a reused one
    /// shows that its origin's connections live past one answer.
    pub(crate) fn handle_answered(&mut self, key: ConnKey, now: Instant) {
        // Every upload on a kept-alive connection passes here: the origin is
        // borrowed, never cloned, and looked up only when one has strikes.
        let Some(conn) = self
            .slab
            .get_mut(key.index())
            .filter(|c| c.generation == key.generation())
        else {
            return;
        };
        conn.answers = conn.answers.saturating_add(1);
        conn.answered_at = Some(now);
        if conn.answers > 1 && !self.origins.is_empty() {
            self.origins.handle_reuse_answered(&conn.origin);
        }
    }

    /// The peer closed the connection (found while idle, or when a reuse
    /// failed). Returns the origin when this close stops pooling for it
    /// (see [`reuse`]).
    pub(crate) fn handle_peer_closed(&mut self, key: ConnKey, now: Instant) -> Option<Origin> {
        let conn = self.get(key)?;
        let early = conn.answers == 1
            && conn
                .answered_at
                .is_some_and(|at| now.saturating_duration_since(at) <= reuse::EARLY_CLOSE);
        if !early {
            return None;
        }
        let origin = conn.origin.clone();
        self.origins.handle_early_close(&origin, now).then_some(origin)
    }

    /// Origins not pooled for now.
    pub(crate) fn origins_not_pooled(&self, now: Instant) -> usize {
        self.origins.not_pooled(now)
    }

    /// Starts a connection to `addr` for `upload` with `connector`,
    /// registered for both directions.
    pub(crate) fn connect(
        &mut self,
        registry: &Registry,
        connector: &dyn Connector,
        addr: SocketAddr,
        origin: Origin,
        upload: Key,
        now: Instant,
    ) -> io::Result<ConnKey> {
        // An embedder's connector is app code: a panic is this connect's error.
        let connect = std::panic::AssertUnwindSafe(|| connector.connect(addr, &origin.host));
        let mut transport =
            std::panic::catch_unwind(connect).unwrap_or_else(|_| Err(io::Error::other("the connector panicked")))?;
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = self.slab.vacant_entry();
        // Tokens have room for a generation on 64-bit targets only.
        let generation = if cfg!(target_pointer_width = "64") {
            self.next_generation
        } else {
            0
        };
        let key = ConnKey::new(entry.key(), generation);
        transport.register(registry, key.token(), Interest::READABLE | Interest::WRITABLE)?;
        self.opened += 1;
        entry.insert(ConnSlot {
            generation: key.generation(),
            io: ConnIo::Connecting(transport),
            origin,
            upload: Some(upload),
            idle_until: None,
            started: now,
            rtt_us: 0,
            addr,
            peer_closed: false,
            answers: 0,
            answered_at: None,
            mux: None,
            heard_at: now,
            ping_until: None,
        });
        Ok(key)
    }

    pub(crate) fn get(&mut self, key: ConnKey) -> Option<&mut ConnSlot> {
        self.slab
            .get_mut(key.index())
            .filter(|conn| conn.generation == key.generation())
    }

    /// The connection an event's token names, if it still exists.
    pub(crate) fn by_token(&mut self, token: Token) -> Option<(ConnKey, &mut ConnSlot)> {
        let key = ConnKey::from_token(token);
        self.get(key).map(|conn| (key, conn))
    }

    /// An idle connection to `origin` that is still good, handed to
    /// `upload`; bad ones met on the way are closed. `turn` is the current
    /// loop turn (see the module doc).
    pub(crate) fn take_idle(
        &mut self,
        registry: &Registry,
        origin: &Origin,
        upload: Key,
        turn: u64,
        now: Instant,
    ) -> Option<ConnKey> {
        loop {
            let list = self.idle.get_mut(origin)?;
            let next = list.pop(turn);
            if list.len() == 0 && self.idle.len() > EMPTY_LISTS_KEPT {
                self.idle.remove(origin);
            }
            let (key, vetted_by_poll) = next?;
            self.idle_count -= 1;
            let conn = self.get(key)?;
            conn.upload = Some(upload);
            conn.idle_until = None;
            let good = match &mut conn.io {
                ConnIo::Ready(transport) => vetted_by_poll || transport.is_reusable(),
                _ => false,
            };
            if good {
                return Some(key);
            }
            if let Some(origin) = self.handle_peer_closed(key, now) {
                log_not_pooled(&origin);
            }
            self.close(registry, key);
        }
    }

    /// Puts a connection in the pool until `until`; `false` when the pool
    /// for its origin is full or its origin is not pooled for now (the
    /// connection was closed instead).
    pub(crate) fn pool(&mut self, registry: &Registry, key: ConnKey, until: Instant, turn: u64, now: Instant) -> bool {
        let max = self.max_idle_per_origin;
        let Some(conn) = self
            .slab
            .get_mut(key.index())
            .filter(|c| c.generation == key.generation())
        else {
            return false;
        };
        if conn.peer_closed || !self.origins.poll_pooling(&conn.origin, now) {
            self.close(registry, key);
            return false;
        }
        let list = self.idle.entry(conn.origin.clone()).or_default();
        if list.len() >= max {
            self.close(registry, key);
            return false;
        }
        list.push(key, turn);
        self.idle_count += 1;
        conn.upload = None;
        conn.idle_until = Some(until);
        true
    }

    /// True while `key` is idle in the pool until `at` (its timer is current).
    /// (An HTTP/2 connection is idle while it has no stream.)
    pub(crate) fn is_idle_until(&self, key: ConnKey, at: Instant) -> bool {
        self.slab
            .get(key.index())
            .is_some_and(|c| c.generation == key.generation() && c.upload.is_none() && c.idle_until == Some(at))
    }

    /// True when `key`'s health ping is still unanswered at `at`, its deadline.
    pub(crate) fn is_pinging_until(&self, key: ConnKey, at: Instant) -> bool {
        self.slab
            .get(key.index())
            .is_some_and(|c| c.generation == key.generation() && c.ping_until == Some(at))
    }

    /// Deregisters and drops the connection (closing its socket).
    pub(crate) fn close(&mut self, registry: &Registry, key: ConnKey) {
        if self.get(key).is_none() {
            return;
        }
        let mut conn = self.slab.remove(key.index());
        if conn.mux.is_none() && conn.upload.is_none() {
            if let Some(list) = self.idle.get_mut(&conn.origin) {
                self.idle_count -= list.remove(key);
                if list.len() == 0 && self.idle.len() > EMPTY_LISTS_KEPT {
                    self.idle.remove(&conn.origin);
                }
            }
        }
        let _ = match &mut conn.io {
            ConnIo::Connecting(transport) | ConnIo::Ready(transport) => transport.deregister(registry),
            ConnIo::Empty => Ok(()),
        };
    }

    pub(crate) fn keys(&self) -> Vec<ConnKey> {
        self.slab
            .iter()
            .map(|(index, conn)| ConnKey::new(index, conn.generation))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn idle_len(&self) -> usize {
        self.idle_count
    }
}

/// Says, for `-v`, that an origin's connections are not pooled for now.
pub(crate) fn log_not_pooled(origin: &Origin) {
    let Origin { scheme, host, port, .. } = origin;
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    log::info!(
        "connections to {scheme}://{host}:{port} closed right after their first answer {} times in a row: \
         not reusing them for {} s",
        reuse::STRIKES,
        reuse::NO_POOL_FOR.as_secs()
    );
}
