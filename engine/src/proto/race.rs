//! Happy Eyeballs (RFC 8305), decided without I/O: which address to
//! connect to next, and when. Addresses alternate between families (the
//! first answer's family first); a new attempt starts every `delay` while
//! the earlier ones stay under way, or at once when one fails; the first to
//! connect wins and the driver closes the others. The whole race lives
//! inside the upload's one connect timeout ([`crate::proto::upload`]).
//!
//! ```text
//!  new ──► Connect(a1) ─┬─ delay passed ──────────► Connect(a2) …
//!                       ├─ a failed, more left ───► Connect(next) at once
//!                       ├─ a failed, others under way ──► Wait
//!                       ├─ a failed, none left, none under way ──► Exhausted
//!                       └─ a connected ──► won (the others are closed)
//! ```
//!
//! ```
//! use std::time::{Duration, Instant};
//! use uploadtask_engine::proto::race::{Race, Step};
//!
//! let now = Instant::now();
//! let (v6, v4) = ("[2001:db8::1]:80".parse().unwrap(), "192.0.2.1:80".parse().unwrap());
//! let delay = Duration::from_millis(250);
//! let (mut race, step) = Race::new(vec![v6, v4], delay, now);
//! assert_eq!(step, Step::Connect(v6));
//! assert_eq!(race.handle_timeout(delay, now + Duration::from_millis(100)), None);
//! assert_eq!(race.handle_timeout(delay, now + Duration::from_millis(250)), Some(Step::Connect(v4)));
//! assert_eq!(race.handle_won(v4), Some(vec![v6]), "the address that lost");
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start a connect to this address (the others under way go on).
    Connect(SocketAddr),
    /// Nothing now: attempts are under way.
    Wait,
    /// Every address was tried and failed.
    Exhausted,
}

/// One race for a connection; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct Race {
    addrs: Vec<SocketAddr>,
    /// Addresses started so far.
    next: u32,
    /// Attempts under way.
    pending: u32,
    next_at: Option<Instant>,
}

impl Race {
    /// A race over `addrs` (interleaved by family), and its first step.
    pub fn new(addrs: Vec<SocketAddr>, delay: Duration, now: Instant) -> (Race, Step) {
        let mut race = Race {
            addrs: interleave_families(addrs),
            next: 0,
            pending: 0,
            next_at: None,
        };
        let step = race.start(delay, now);
        (race, step)
    }

    /// The next address, if any is left: its attempt starts now, the one
    /// after it `delay` later.
    fn start(&mut self, delay: Duration, now: Instant) -> Step {
        let Some(&addr) = self.addrs.get(self.next as usize) else {
            self.next_at = None;
            return if self.pending > 0 { Step::Wait } else { Step::Exhausted };
        };
        self.next += 1;
        self.pending += 1;
        self.next_at = ((self.next as usize) < self.addrs.len())
            .then(|| now.checked_add(delay))
            .flatten();
        Step::Connect(addr)
    }

    /// An attempt failed: the next address starts at once (RFC 8305 §5).
    pub fn handle_failed(&mut self, delay: Duration, now: Instant) -> Step {
        self.pending = self.pending.saturating_sub(1);
        self.start(delay, now)
    }

    /// `addr` connected: the race is over. Returns the addresses whose
    /// attempts lost (tried, not `addr`), for the trace.
    pub fn handle_won(&mut self, addr: SocketAddr) -> Option<Vec<SocketAddr>> {
        self.next_at = None;
        self.pending = 0;
        let losers: Vec<SocketAddr> = self.tried().iter().copied().filter(|&a| a != addr).collect();
        (!losers.is_empty()).then_some(losers)
    }

    /// When the next attempt is due, while addresses are left.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Time passed: the next attempt when it is due.
    pub fn handle_timeout(&mut self, delay: Duration, now: Instant) -> Option<Step> {
        match self.next_at {
            Some(at) if at <= now => Some(self.start(delay, now)),
            _ => None,
        }
    }

    /// The addresses tried so far, in order.
    pub fn tried(&self) -> &[SocketAddr] {
        &self.addrs[..self.next as usize]
    }

    /// Every address of the race, in the order they are tried.
    #[cfg(any(test, feature = "testing"))]
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// Alternates address families, starting with the first address's (RFC
/// 8305 §4), keeping each family's order.
pub fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut preferred, mut other): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut ordered = Vec::with_capacity(preferred.len() + other.len());
    preferred.reverse();
    other.reverse();
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => return ordered,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const D: Duration = Duration::from_millis(250);

    fn v4(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 80))
    }

    fn v6(last: u16) -> SocketAddr {
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, last], 80))
    }

    #[test]
    fn attempts_start_every_delay_and_at_once_after_a_failure() {
        let t = Instant::now();
        let (mut race, step) = Race::new(vec![v6(1), v6(2), v4(1), v4(2)], 250 * MS, t);
        assert_eq!(race.addrs(), [v6(1), v4(1), v6(2), v4(2)], "families alternate");
        assert_eq!(step, Step::Connect(v6(1)));
        assert_eq!(race.poll_timeout(), Some(t + 250 * MS));
        assert_eq!(race.handle_timeout(D, t + 249 * MS), None);
        assert_eq!(race.handle_timeout(D, t + 250 * MS), Some(Step::Connect(v4(1))));
        // A failure starts the next at once, and the clock restarts.
        assert_eq!(race.handle_failed(D, t + 300 * MS), Step::Connect(v6(2)));
        assert_eq!(race.poll_timeout(), Some(t + 550 * MS));
        assert_eq!(race.handle_timeout(D, t + 550 * MS), Some(Step::Connect(v4(2))));
        assert_eq!(race.poll_timeout(), None, "none left");
        // Failures while others are under way wait; the last one exhausts.
        assert_eq!(race.handle_failed(D, t + 600 * MS), Step::Wait);
        assert_eq!(race.handle_failed(D, t + 600 * MS), Step::Wait);
        assert_eq!(race.handle_failed(D, t + 600 * MS), Step::Exhausted);
        assert_eq!(race.tried().len(), 4);
    }

    #[test]
    fn the_winner_names_the_losers() {
        let t = Instant::now();
        let (mut race, _) = Race::new(vec![v4(1)], 250 * MS, t);
        assert_eq!(race.poll_timeout(), None, "one address: no second attempt");
        assert_eq!(race.handle_won(v4(1)), None);
        let (mut race, _) = Race::new(vec![v6(1), v4(1)], 250 * MS, t);
        let _ = race.handle_timeout(D, t + 250 * MS);
        assert_eq!(race.handle_won(v4(1)), Some(vec![v6(1)]));
        assert_eq!(race.poll_timeout(), None);
        let (mut race, step) = Race::new(Vec::new(), 250 * MS, t);
        assert_eq!(step, Step::Exhausted);
        assert_eq!(race.handle_failed(D, t), Step::Exhausted);
    }
}
