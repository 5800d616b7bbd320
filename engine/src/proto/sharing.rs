//! Which connection an upload that may use HTTP/2 takes, without I/O: a
//! stream on a multiplexed connection to its origin with room, a wait for
//! a connection about to have room, or one of its own.
//!
//! ```text
//!   handle_need ─► Stream(conn)   a shared connection has room
//!              ─► Wait            another upload sets up a connection to the
//!                                 origin, or a new one has not said its
//!                                 stream limit yet (curl's wait for multiplexing)
//!              ─► Own             sets one up (handle_setup), or pools HTTP/1.1
//!   handle_ready(conn or none) ─► every waiter starts again
//!   handle_room ─► one waiter (a stream ended), every waiter (limit known)
//! ```
//!
//! Without the wait, a thousand uploads started together to one origin
//! would open a thousand connections before the first said it multiplexes.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// A shared connection's room for another stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// It takes a stream now.
    Open,
    /// Not now, but it may soon: its server has not said its stream limit.
    Soon,
    /// Not now (at its limit, or closing).
    Full,
}

/// What an upload does for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<C> {
    /// A stream on this connection.
    Stream(C),
    /// Waits; it is woken by [`Sharing::handle_ready`] or [`Sharing::handle_room`].
    Wait,
    /// A connection of its own.
    Own,
}

/// Origins kept as known to speak HTTP/1.1 only (then forgotten at once).
const HTTP1_KEPT: usize = 256;

/// The shared connections, setups and waiters per origin `O`, with
/// connection keys `C` and upload keys `K`; see the module doc.
#[derive(Debug)]
pub struct Sharing<O, C, K> {
    shared: HashMap<O, Vec<C>>,
    setters: HashMap<O, K>,
    waiters: HashMap<O, Vec<K>>,
    http1_only: HashSet<O>,
}

impl<O, C, K> Default for Sharing<O, C, K> {
    fn default() -> Self {
        Sharing {
            shared: HashMap::new(),
            setters: HashMap::new(),
            waiters: HashMap::new(),
            http1_only: HashSet::new(),
        }
    }
}

impl<O: Hash + Eq + Clone, C: Copy + Eq, K: Copy + Eq> Sharing<O, C, K> {
    /// An upload to `origin` needs a connection. `room` says each shared
    /// connection's room; `setting_up` whether an upload is still setting
    /// up its connection.
    pub fn handle_need(
        &mut self,
        origin: &O,
        upload: K,
        room: impl Fn(C) -> Room,
        setting_up: impl Fn(K) -> bool,
    ) -> Need<C> {
        if self.http1_only.contains(origin) {
            return Need::Own;
        }
        let mut soon = false;
        if let Some(conns) = self.shared.get(origin) {
            for &conn in conns {
                match room(conn) {
                    Room::Open => return Need::Stream(conn),
                    Room::Soon => soon = true,
                    Room::Full => {}
                }
            }
        }
        let setter = self
            .setters
            .get(origin)
            .is_some_and(|&setter| setter != upload && setting_up(setter));
        if soon || setter {
            self.waiters.entry(origin.clone()).or_default().push(upload);
            return Need::Wait;
        }
        Need::Own
    }

    /// The shared connections to `origin`.
    pub fn conns(&self, origin: &O) -> &[C] {
        self.shared.get(origin).map_or(&[], |conns| conns)
    }

    /// `upload` sets up a connection to `origin` (it may multiplex).
    pub fn handle_setup(&mut self, origin: &O, upload: K) {
        if !self.http1_only.contains(origin) {
            self.setters.insert(origin.clone(), upload);
        }
    }

    /// `upload`'s setup for `origin` is over: `Some(conn)` multiplexes,
    /// `None` speaks HTTP/1.1 (the origin is then known as such). Returns
    /// the waiters, to start again.
    pub fn handle_ready(&mut self, origin: &O, upload: K, conn: Option<C>) -> Vec<K> {
        match conn {
            Some(conn) => {
                self.http1_only.remove(origin);
                self.shared.entry(origin.clone()).or_default().push(conn);
            }
            None => {
                if self.http1_only.len() >= HTTP1_KEPT {
                    self.http1_only.clear();
                }
                self.http1_only.insert(origin.clone());
            }
        }
        self.handle_setup_failed(origin, upload)
    }

    /// `upload` no longer sets up a connection for `origin` (it failed,
    /// ended, or went elsewhere). Returns the waiters when it was the
    /// setter.
    pub fn handle_setup_failed(&mut self, origin: &O, upload: K) -> Vec<K> {
        if self.setters.get(origin) != Some(&upload) {
            return Vec::new();
        }
        self.setters.remove(origin);
        self.waiters.remove(origin).unwrap_or_default()
    }

    /// A connection to `origin` has room: a stream ended (`all` false: the
    /// first waiter `waiting` says still waits), or its server said its
    /// stream limit (`all`: every waiter).
    pub fn handle_room(&mut self, origin: &O, all: bool, waiting: impl Fn(K) -> bool) -> Vec<K> {
        if all {
            return self.waiters.remove(origin).unwrap_or_default();
        }
        let Some(waiters) = self.waiters.get_mut(origin) else {
            return Vec::new();
        };
        let mut woken = Vec::new();
        while let Some(upload) = waiters.pop() {
            if waiting(upload) {
                woken.push(upload);
                break;
            }
        }
        if waiters.is_empty() {
            self.waiters.remove(origin);
        }
        woken
    }

    /// The connection closed.
    pub fn handle_closed(&mut self, origin: &O, conn: C) {
        if let Some(conns) = self.shared.get_mut(origin) {
            conns.retain(|&c| c != conn);
            if conns.is_empty() {
                self.shared.remove(origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type S = Sharing<&'static str, u32, u32>;

    #[test]
    fn uploads_wait_for_a_setup_then_share_its_connection() {
        let mut s = S::default();
        assert_eq!(s.handle_need(&"a", 1, |_| Room::Open, |_| true), Need::Own);
        s.handle_setup(&"a", 1);
        assert_eq!(s.handle_need(&"a", 2, |_| Room::Open, |_| true), Need::Wait);
        assert_eq!(s.handle_need(&"a", 3, |_| Room::Open, |_| true), Need::Wait);
        // Another origin does not wait.
        assert_eq!(s.handle_need(&"b", 4, |_| Room::Open, |_| true), Need::Own);
        assert_eq!(s.handle_ready(&"a", 1, Some(10)), [2, 3]);
        assert_eq!(s.handle_need(&"a", 2, |_| Room::Open, |_| true), Need::Stream(10));
    }

    #[test]
    fn a_setter_that_is_gone_or_failed_holds_nobody() {
        let mut s = S::default();
        s.handle_setup(&"a", 1);
        // The setter no longer sets up (it waits for a retry, say).
        assert_eq!(s.handle_need(&"a", 2, |_| Room::Open, |_| false), Need::Own);
        s.handle_setup(&"a", 2);
        assert_eq!(s.handle_need(&"a", 3, |_| Room::Open, |_| true), Need::Wait);
        assert_eq!(s.handle_setup_failed(&"a", 1), Vec::<u32>::new(), "not the setter");
        assert_eq!(s.handle_setup_failed(&"a", 2), [3]);
    }

    #[test]
    fn an_http1_origin_is_learned_and_never_waited_for() {
        let mut s = S::default();
        s.handle_setup(&"a", 1);
        assert_eq!(s.handle_need(&"a", 2, |_| Room::Open, |_| true), Need::Wait);
        assert_eq!(s.handle_ready(&"a", 1, None), [2]);
        s.handle_setup(&"a", 2);
        assert_eq!(s.handle_need(&"a", 3, |_| Room::Open, |_| true), Need::Own);
    }

    #[test]
    fn full_connections_send_uploads_to_a_new_one_but_a_silent_server_is_waited_for() {
        let mut s = S::default();
        s.handle_setup(&"a", 1);
        s.handle_ready(&"a", 1, Some(10));
        // Its stream limit unknown yet: wait, do not open more connections.
        assert_eq!(s.handle_need(&"a", 2, |_| Room::Soon, |_| false), Need::Wait);
        assert_eq!(s.handle_room(&"a", true, |_| true), [2]);
        // At its limit: a second connection.
        assert_eq!(s.handle_need(&"a", 2, |_| Room::Full, |_| false), Need::Own);
        s.handle_setup(&"a", 2);
        assert_eq!(s.handle_need(&"a", 3, |_| Room::Full, |_| true), Need::Wait);
        assert_eq!(s.handle_need(&"a", 4, |_| Room::Full, |_| true), Need::Wait);
        // A stream ended: one waiter still waiting takes it.
        assert_eq!(s.handle_room(&"a", false, |k| k != 4), [3]);
        s.handle_closed(&"a", 10);
        assert_eq!(s.handle_need(&"a", 5, |_| Room::Open, |_| false), Need::Own);
    }
}
