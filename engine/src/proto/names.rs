//! Name lookups shared between uploads, decided without I/O: one lookup per
//! name at a time (uploads that need a name being looked up wait for that
//! answer), and answers kept for a while, as curl keeps them (its DNS
//! cache, 60 s by default). A thousand uploads to one new host cost one
//! lookup, not a thousand queued on the resolver's threads.
//!
//! ```text
//!   handle_need(name) ──▶ Known(addrs)   kept and fresh
//!                    ├──▶ Ask            none under way: start one lookup
//!                    └──▶ Wait           one under way: its answer comes
//!   handle_answer(name, result) ──▶ every upload that asked or waited
//!   handle_unreachable(name)   ──▶ the kept answer is dropped
//!   handle_connected(name, addr) ──▶ addr is tried first next time
//! ```
//!
//! The address that last connected (the race's winner, [`crate::proto::race`]) is
//! remembered per name for [`PREFERRED_FOR`] and put first in the next
//! answer, so a broken family costs one race, not one per upload.
//!
//! Failures are not kept: the next upload asks again. At most
//! [`MAX_NAMES`] answers are kept; past that, expired ones go first, then
//! all.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use uploadtask_engine::proto::names::{Lookup, Names};
//!
//! let (now, addr, host) = (Instant::now(), "127.0.0.1:80".parse().unwrap(), Arc::from("example.test"));
//! let mut names = Names::new(Duration::from_secs(60), Duration::from_secs(30));
//! assert_eq!(names.handle_need(&host, 80, 1, now), Lookup::Ask);
//! assert_eq!(names.handle_need(&host, 80, 2, now), Lookup::Wait);
//! assert_eq!(names.handle_answer(&host, 80, Ok(&[addr][..]), now), [1, 2]);
//! assert_eq!(names.handle_need(&host, 80, 3, now), Lookup::Known(vec![addr]));
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers kept at most.
pub const MAX_NAMES: usize = 1024;
/// How long the address that last connected is tried first.
pub const PREFERRED_FOR: Duration = Duration::from_secs(600);

/// What an upload that needs `name` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// These addresses, kept from an earlier lookup.
    Known(Vec<SocketAddr>),
    /// Start a lookup; its answer goes to [`Names::handle_answer`].
    Ask,
    /// A lookup is under way; its answer will include this upload.
    Wait,
}

/// Kept answers and lookups under way; `K` names an upload.
#[derive(Debug)]
pub struct Names<K> {
    keep_for: Duration,
    ask_again_after: Duration,
    answers: HashMap<(Arc<str>, u16), (Vec<SocketAddr>, Instant)>,
    /// When the lookup was (last) started, and who waits for it.
    asking: HashMap<(Arc<str>, u16), (Instant, Vec<K>)>,
    /// The address that last connected, and until when it goes first.
    preferred: HashMap<(Arc<str>, u16), (SocketAddr, Instant)>,
}

impl<K> Names<K> {
    /// Answers are kept for `keep_for` (zero: never kept; lookups under way
    /// are still shared). A lookup unanswered after `ask_again_after` (the
    /// connect timeout: its uploads have failed by then) is started again by
    /// the next upload that needs the name, so a resolver that never answers
    /// cannot hold a name forever.
    pub fn new(keep_for: Duration, ask_again_after: Duration) -> Self {
        Names {
            keep_for,
            ask_again_after,
            answers: HashMap::new(),
            asking: HashMap::new(),
            preferred: HashMap::new(),
        }
    }

    /// `addr` of `host`:`port` connected (won the race) at `now`.
    pub fn handle_connected(&mut self, host: &Arc<str>, port: u16, addr: SocketAddr, now: Instant) {
        let Some(until) = now.checked_add(PREFERRED_FOR) else {
            return;
        };
        if self.preferred.len() >= MAX_NAMES {
            self.preferred.retain(|_, (_, until)| now < *until);
            if self.preferred.len() >= MAX_NAMES {
                self.preferred.clear();
            }
        }
        self.preferred.insert((Arc::clone(host), port), (addr, until));
    }

    /// Puts the address that last connected to `host`:`port` first (its
    /// family then leads the race), when it is among `addrs`.
    pub fn prefer(&self, host: &Arc<str>, port: u16, addrs: &mut [SocketAddr], now: Instant) {
        let Some((addr, until)) = self.preferred.get(&(Arc::clone(host), port)) else {
            return;
        };
        if now < *until {
            if let Some(at) = addrs.iter().position(|a| a == addr) {
                addrs[..=at].rotate_right(1);
            }
        }
    }

    /// Upload `key` needs `host`:`port` at `now`.
    pub fn handle_need(&mut self, host: &Arc<str>, port: u16, key: K, now: Instant) -> Lookup {
        let name = (Arc::clone(host), port);
        if let Some((addrs, until)) = self.answers.get(&name) {
            if now < *until {
                return Lookup::Known(addrs.clone());
            }
            self.answers.remove(&name);
        }
        match self.asking.get_mut(&name) {
            Some((started, waiting)) => {
                waiting.push(key);
                if now.saturating_duration_since(*started) < self.ask_again_after {
                    return Lookup::Wait;
                }
                *started = now;
                Lookup::Ask
            }
            None => {
                self.asking.insert(name, (now, vec![key]));
                Lookup::Ask
            }
        }
    }

    /// The lookup of `host`:`port` answered at `now`: the uploads that
    /// asked or waited, in order, each to be given `result`.
    pub fn handle_answer(
        &mut self,
        host: &Arc<str>,
        port: u16,
        result: Result<&[SocketAddr], ()>,
        now: Instant,
    ) -> Vec<K> {
        let name = (Arc::clone(host), port);
        let waiting = self
            .asking
            .remove(&name)
            .map(|(_, waiting)| waiting)
            .unwrap_or_default();
        if let (Ok(addrs), Some(until)) = (result, now.checked_add(self.keep_for)) {
            if !addrs.is_empty() && !self.keep_for.is_zero() {
                if self.answers.len() >= MAX_NAMES {
                    self.answers.retain(|_, (_, until)| now < *until);
                    if self.answers.len() >= MAX_NAMES {
                        self.answers.clear();
                    }
                }
                self.answers.insert(name, (addrs.to_vec(), until));
            }
        }
        waiting
    }

    /// Every address of `host`:`port` refused or timed out: its kept answer
    /// is dropped, so the next upload looks the name up again (a host that
    /// moved is found at once, not after the answer expires).
    pub fn handle_unreachable(&mut self, host: &Arc<str>, port: u16) {
        self.answers.remove(&(Arc::clone(host), port));
    }

    /// Lookups under way (for tests and stats).
    #[cfg(any(test, feature = "testing"))]
    pub fn asking(&self) -> usize {
        self.asking.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 80))
    }

    #[test]
    fn one_lookup_per_name_answers_kept_until_they_expire() {
        let now = Instant::now();
        let mut names = Names::new(Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(names.handle_need(&h("a.test"), 80, 1, now), Lookup::Ask);
        assert_eq!(names.handle_need(&h("a.test"), 80, 2, now), Lookup::Wait);
        assert_eq!(
            names.handle_need(&h("a.test"), 443, 3, now),
            Lookup::Ask,
            "another port"
        );
        assert_eq!(names.handle_need(&h("b.test"), 80, 4, now), Lookup::Ask, "another name");
        assert_eq!(names.asking(), 3);
        assert_eq!(
            names.handle_answer(&h("a.test"), 80, Ok(&[addr(1), addr(2)]), now),
            [1, 2]
        );
        assert_eq!(
            names.handle_need(&h("a.test"), 80, 5, now + Duration::from_secs(59)),
            Lookup::Known(vec![addr(1), addr(2)])
        );
        assert_eq!(
            names.handle_need(&h("a.test"), 80, 6, now + Duration::from_secs(60)),
            Lookup::Ask,
            "expired"
        );
        // A failure reaches every waiter and is not kept.
        assert_eq!(names.handle_need(&h("b.test"), 80, 7, now), Lookup::Wait);
        assert_eq!(names.handle_answer(&h("b.test"), 80, Err(()), now), [4, 7]);
        assert_eq!(names.handle_need(&h("b.test"), 80, 8, now), Lookup::Ask);
        // An answer nobody waits for (its uploads ended) is still kept.
        assert!(names.handle_answer(&h("c.test"), 80, Ok(&[addr(3)]), now).is_empty());
        assert_eq!(
            names.handle_need(&h("c.test"), 80, 9, now),
            Lookup::Known(vec![addr(3)])
        );
        // None of its addresses answered: asked again.
        names.handle_unreachable(&h("c.test"), 80);
        assert_eq!(names.handle_need(&h("c.test"), 80, 10, now), Lookup::Ask);
    }

    #[test]
    fn the_address_that_connected_goes_first_for_a_while() {
        let now = Instant::now();
        let mut names = Names::<u32>::new(Duration::from_secs(60), Duration::from_secs(30));
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let mut addrs = vec![v6, addr(1), addr(2)];
        names.prefer(&h("a.test"), 80, &mut addrs, now);
        assert_eq!(addrs, [v6, addr(1), addr(2)], "nothing known");
        names.handle_connected(&h("a.test"), 80, addr(2), now);
        names.prefer(&h("a.test"), 80, &mut addrs, now);
        assert_eq!(addrs, [addr(2), v6, addr(1)]);
        let mut other = vec![v6, addr(1)];
        names.prefer(&h("a.test"), 443, &mut other, now);
        assert_eq!(other, [v6, addr(1)], "another port");
        let mut later = vec![v6, addr(2)];
        names.prefer(&h("a.test"), 80, &mut later, now + PREFERRED_FOR);
        assert_eq!(later, [v6, addr(2)], "expired");
    }

    #[test]
    fn a_lookup_never_answered_is_asked_again_after_the_connect_timeout() {
        let now = Instant::now();
        let mut names = Names::new(Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(names.handle_need(&h("a.test"), 80, 1, now), Lookup::Ask);
        let later = now + Duration::from_secs(29);
        assert_eq!(names.handle_need(&h("a.test"), 80, 2, later), Lookup::Wait);
        let later = now + Duration::from_secs(30);
        assert_eq!(names.handle_need(&h("a.test"), 80, 3, later), Lookup::Ask);
        assert_eq!(names.handle_need(&h("a.test"), 80, 4, later), Lookup::Wait);
        // Whichever answer comes first reaches every upload still waiting.
        assert_eq!(
            names.handle_answer(&h("a.test"), 80, Ok(&[addr(1)]), later),
            [1, 2, 3, 4]
        );
        assert!(names.handle_answer(&h("a.test"), 80, Ok(&[addr(2)]), later).is_empty());
        assert_eq!(names.asking(), 0);
    }

    #[test]
    fn zero_keeps_nothing_and_the_kept_answers_are_bounded() {
        let now = Instant::now();
        let mut names = Names::new(Duration::ZERO, Duration::from_secs(30));
        assert_eq!(names.handle_need(&h("a.test"), 80, 1, now), Lookup::Ask);
        assert_eq!(names.handle_answer(&h("a.test"), 80, Ok(&[addr(1)]), now), [1]);
        assert_eq!(names.handle_need(&h("a.test"), 80, 2, now), Lookup::Ask);

        let mut names = Names::<u32>::new(Duration::from_secs(60), Duration::from_secs(30));
        for i in 0..MAX_NAMES + 5 {
            let _ = names.handle_answer(&h(&format!("n{i}.test")), 80, Ok(&[addr(1)]), now);
        }
        assert!(names.answers.len() <= MAX_NAMES);
        assert_eq!(
            names.handle_need(&h(&format!("n{}.test", MAX_NAMES + 4)), 80, 0, now),
            Lookup::Known(vec![addr(1)])
        );
    }
}
