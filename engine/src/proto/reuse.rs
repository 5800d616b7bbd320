//! Connection reuse decisions, with no I/O: how long an idle connection
//! may wait in the pool, whether a request that failed on a reused
//! connection is sent again, and which origins are not worth pooling for.
//!
//! ```text
//!  answer on a keep-alive connection ──pool_until──► pooled until min(pool expiry,
//!                                                     Keep-Alive timeout − margin)
//!  peer closes a connection right after its only answer ──handle_early_close──► strike
//!       3 strikes in a row ──► the origin is not pooled for NO_POOL_FOR
//!  a reused connection answers ──handle_reuse_answered──► strikes cleared
//! ```
//!
//! The resend rule ([`may_resend`]) is the one browsers and curl use: a
//! request that failed on a *reused* connection before any byte of a
//! response arrived is sent once more on a new connection. RFC 9110 §9.2.2
//! allows it for idempotent requests and leaves the rest to the client's
//! judgement: a server that closed an idle connection never read the
//! request; one that read all of it and died without a byte cannot be told
//! apart, and that request arrives twice. Callers who need at most once
//! turn the rule off, and then only a request whose body the server cannot
//! have received whole (some of it never left the client) is sent again. A
//! resumable upload never resends a piece: it asks the server what it kept
//! and goes on from there ([`Resend::Never`]).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use uploadtask_engine::proto::reuse::{pool_until, Origins};
//!
//! let now = Instant::now();
//! // `Keep-Alive: timeout=5`: retired a second before the server would close it.
//! assert_eq!(pool_until(now, Duration::from_secs(30), Some(5)), Some(now + Duration::from_secs(4)));
//! let mut origins = Origins::new(16);
//! for _ in 0..3 {
//!     origins.handle_early_close(&"example.com", now);
//! }
//! assert!(!origins.poll_pooling(&"example.com", now));
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::proto::exchange::Exchange;

/// Connections closed by the peer right after their only answer, in a row,
/// before an origin stops being pooled.
pub const STRIKES: u8 = 3;
/// How long an origin whose connections die after one answer is not pooled;
/// then pooling is tried again.
pub const NO_POOL_FOR: Duration = Duration::from_secs(60);
/// A close this soon after a connection's only answer counts as a strike.
pub const EARLY_CLOSE: Duration = Duration::from_secs(1);
/// The most a connection is retired before the server's `Keep-Alive`
/// timeout: the request needs time to reach it.
pub const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// `Some(keep-alive timeout)` when the exchange ended so that its
/// connection can carry another (and the engine keeps connections alive).
pub(crate) fn kept_alive(exchange: Option<&Exchange>, keep_alive: bool) -> Option<Option<u32>> {
    exchange
        .filter(|e| keep_alive && e.reusable() && e.is_finished())
        .map(|e| e.keep_alive_secs())
}

/// Until when an idle connection may wait in the pool, from `now`: the
/// pool's own expiry, or the server's `Keep-Alive: timeout=N` less a margin
/// (a second, or half the timeout when it is shorter than two), whichever
/// comes first. `None` when the connection must not be pooled at all
/// (`timeout=0`). A pool expiry too long for `Instant` is the far future.
pub fn pool_until(now: Instant, pool_idle: Duration, keep_alive_secs: Option<u32>) -> Option<Instant> {
    let mut keep = pool_idle;
    if let Some(secs) = keep_alive_secs {
        let timeout = Duration::from_secs(u64::from(secs));
        let usable = timeout.saturating_sub(KEEP_ALIVE_MARGIN).max(timeout / 2);
        if usable.is_zero() {
            return None;
        }
        keep = keep.min(usable);
    }
    Some(now.checked_add(keep).unwrap_or_else(|| far_future(now)))
}

fn far_future(now: Instant) -> Instant {
    // About 30 years: past any run of a program.
    now.checked_add(Duration::from_secs(1 << 30)).unwrap_or(now)
}

/// What is known of a request that failed on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The connection had carried an earlier exchange.
    pub reused: bool,
    /// A byte of a response arrived.
    pub response_started: bool,
    /// Every body byte was accepted by the transport (the server may have
    /// the whole request).
    pub whole_body_accepted: bool,
    /// A transport failure (reset, EOF, broken pipe), not a protocol error.
    pub transport: bool,
    /// This request was already sent again once.
    pub resent: bool,
}

/// Which requests that failed on a reused connection are sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Any, as browsers and curl do (the default).
    Always,
    /// Only one the server cannot have received whole (at most once).
    IfNotWhole,
    /// None: a resumable upload's own recovery asks the server what it
    /// kept and goes on from there, which a resend of the same piece would
    /// not.
    Never,
}

impl Resend {
    /// The rule for the caller's `resend_reused` choice.
    pub fn from_choice(resend_reused: bool) -> Resend {
        if resend_reused {
            Resend::Always
        } else {
            Resend::IfNotWhole
        }
    }
}

/// Whether a failed request is sent again on a new connection; see the
/// module doc.
pub fn may_resend(failure: Failure, rule: Resend) -> bool {
    let Failure {
        reused,
        response_started,
        whole_body_accepted,
        transport,
        resent,
    } = failure;
    let allowed = match rule {
        Resend::Always => true,
        Resend::IfNotWhole => !whole_body_accepted,
        Resend::Never => false,
    };
    reused && transport && !response_started && !resent && allowed
}

#[derive(Debug, Clone, Copy)]
struct History {
    strikes: u8,
    no_pool_until: Option<Instant>,
}

/// What is learnt per origin (bounded: the oldest entries go first); see
/// the module doc.
#[derive(Debug)]
pub struct Origins<K> {
    map: HashMap<K, History>,
    order: std::collections::VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Origins<K> {
    /// Remembers at most `capacity` origins.
    pub fn new(capacity: usize) -> Self {
        Origins {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// The peer closed a connection to `origin` within [`EARLY_CLOSE`] of its
    /// only answer (found idle, or when a reuse failed). Returns true when
    /// this strike stops pooling for the origin.
    pub fn handle_early_close(&mut self, origin: &K, now: Instant) -> bool {
        if !self.map.contains_key(origin) {
            if self.map.len() >= self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.map.remove(&oldest);
                }
            }
            self.order.push_back(origin.clone());
            self.map.insert(
                origin.clone(),
                History {
                    strikes: 0,
                    no_pool_until: None,
                },
            );
        }
        let Some(history) = self.map.get_mut(origin) else {
            return false;
        };
        if history.no_pool_until.is_some_and(|until| until > now) {
            return false;
        }
        history.strikes = history.strikes.saturating_add(1);
        if history.strikes < STRIKES {
            return false;
        }
        history.strikes = 0;
        history.no_pool_until = Some(now.checked_add(NO_POOL_FOR).unwrap_or(now));
        true
    }

    /// A reused connection to `origin` carried an answer: its connections
    /// do live past one answer.
    pub fn handle_reuse_answered(&mut self, origin: &K) {
        if let Some(history) = self.map.get_mut(origin) {
            history.strikes = 0;
        }
    }

    /// Whether connections to `origin` go to the pool now.
    pub fn poll_pooling(&self, origin: &K, now: Instant) -> bool {
        self.map
            .get(origin)
            .and_then(|h| h.no_pool_until)
            .is_none_or(|until| until <= now)
    }

    /// Origins not pooled at `now`.
    pub fn not_pooled(&self, now: Instant) -> usize {
        self.map
            .values()
            .filter(|h| h.no_pool_until.is_some_and(|until| until > now))
            .count()
    }

    /// Origins remembered.
    #[cfg(any(test, feature = "testing"))]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            reused: true,
            response_started: false,
            whole_body_accepted: true,
            transport: true,
            resent: false,
        }
    }

    #[test]
    fn the_resend_rule() {
        // (change to the base failure, resend with the rule on, with it off)
        type Case = (&'static str, fn(&mut Failure), bool, bool);
        let cases: [Case; 7] = [
            ("whole body accepted", |_| {}, true, false),
            ("body not all accepted", |f| f.whole_body_accepted = false, true, true),
            ("a new connection", |f| f.reused = false, false, false),
            ("a response byte came", |f| f.response_started = true, false, false),
            ("a protocol error", |f| f.transport = false, false, false),
            ("already resent", |f| f.resent = true, false, false),
            (
                "already resent, body short",
                |f| {
                    f.resent = true;
                    f.whole_body_accepted = false
                },
                false,
                false,
            ),
        ];
        for (name, change, on, off) in cases {
            let mut f = failure();
            change(&mut f);
            assert_eq!(may_resend(f, Resend::Always), on, "{name}, rule on");
            assert_eq!(may_resend(f, Resend::IfNotWhole), off, "{name}, rule off");
            assert!(!may_resend(f, Resend::Never), "{name}, never");
        }
    }

    #[test]
    fn pool_expiry_follows_keep_alive() {
        let now = Instant::now();
        let pool = Duration::from_secs(30);
        let at = |secs| pool_until(now, pool, secs).map(|t| t - now);
        assert_eq!(at(None), Some(pool));
        assert_eq!(at(Some(5)), Some(Duration::from_secs(4)));
        assert_eq!(at(Some(1)), Some(Duration::from_millis(500)));
        assert_eq!(at(Some(3)), Some(Duration::from_secs(2)));
        assert_eq!(at(Some(100)), Some(pool));
        assert_eq!(at(Some(0)), None);
        assert!(pool_until(now, Duration::MAX, None).is_some_and(|t| t > now));
    }

    #[test]
    fn an_origin_whose_connections_die_after_one_answer_is_not_pooled() {
        let now = Instant::now();
        let mut origins = Origins::new(4);
        assert!(origins.poll_pooling(&1, now));
        assert!(!origins.handle_early_close(&1, now));
        assert!(!origins.handle_early_close(&1, now));
        // A reused connection answered: the strikes start again.
        origins.handle_reuse_answered(&1);
        assert!(!origins.handle_early_close(&1, now));
        assert!(!origins.handle_early_close(&1, now));
        assert!(origins.poll_pooling(&1, now));
        assert!(origins.handle_early_close(&1, now));
        assert!(!origins.poll_pooling(&1, now));
        assert_eq!(origins.not_pooled(now), 1);
        assert!(origins.poll_pooling(&2, now), "other origins are pooled");
        // Strikes while not pooling change nothing.
        assert!(!origins.handle_early_close(&1, now));
        let later = now + NO_POOL_FOR;
        assert!(origins.poll_pooling(&1, later), "tried again later");
    }

    #[test]
    fn the_history_is_bounded() {
        let now = Instant::now();
        let mut origins = Origins::new(2);
        for origin in 0..10 {
            for _ in 0..STRIKES {
                origins.handle_early_close(&origin, now);
            }
        }
        assert_eq!(origins.len(), 2);
        assert!(!origins.poll_pooling(&9, now));
        assert!(origins.poll_pooling(&0, now), "forgotten");
    }
}
