//! When to report progress: when the integer percent rises, or
//! when bytes moved and 100 ms passed since the last report; never twice for
//! the same byte count, never backwards, and always at the end.

use std::time::{Duration, Instant};

/// Minimum time between two reports whose percent did not rise.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Progress of one upload's request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `floor(total_bytes_sent * 100 / total_bytes_expected_to_send)`.
    pub progress: u8,
    /// Body bytes the kernel has accepted (on TLS: whose records are on the
    /// wire); with acknowledged progress, those the peer acknowledged.
    pub total_bytes_sent: u64,
    /// The exact request body length.
    pub total_bytes_expected_to_send: u64,
}

/// Percent of `sent` in `total`, rounded down.
pub fn percent(sent: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    (u128::from(sent.min(total)) * 100 / u128::from(total)) as u8
}

/// Decides which byte counts become progress events.
#[derive(Debug, Clone)]
pub struct ProgressGate {
    total: u64,
    last_sent: u64,
    last_percent: u8,
    last_at: Option<Instant>,
}

impl ProgressGate {
    /// A gate for a body of `total` bytes.
    pub fn new(total: u64) -> Self {
        ProgressGate {
            total,
            last_sent: 0,
            last_percent: 0,
            last_at: None,
        }
    }

    /// Counts toward `total` from now on (a resumable upload's pieces all
    /// count toward the whole).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }

    /// The event to emit now that `sent` bytes are on the wire, if any.
    pub fn poll(&mut self, sent: u64, now: Instant) -> Option<Progress> {
        if sent <= self.last_sent || sent > self.total {
            return None;
        }
        let percent = percent(sent, self.total);
        let due = self
            .last_at
            .is_none_or(|at| now.saturating_duration_since(at) >= PROGRESS_INTERVAL);
        if percent > self.last_percent || due || sent == self.total {
            self.last_sent = sent;
            self.last_percent = percent;
            self.last_at = Some(now);
            return Some(Progress {
                progress: percent,
                total_bytes_sent: sent,
                total_bytes_expected_to_send: self.total,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rises_on_percent_or_time_and_ends_at_total() {
        let t0 = Instant::now();
        let mut gate = ProgressGate::new(1000);
        assert_eq!(gate.poll(0, t0), None);
        assert_eq!(gate.poll(5, t0).map(|p| p.progress), Some(0)); // first movement
        assert_eq!(gate.poll(6, t0), None); // same percent, too soon
        assert_eq!(
            gate.poll(6, t0 + PROGRESS_INTERVAL).map(|p| p.total_bytes_sent),
            Some(6)
        );
        assert_eq!(gate.poll(6, t0 + 2 * PROGRESS_INTERVAL), None); // no bytes moved
        assert_eq!(gate.poll(10, t0 + 2 * PROGRESS_INTERVAL).map(|p| p.progress), Some(1));
        assert_eq!(gate.poll(9, t0 + 9 * PROGRESS_INTERVAL), None); // never backwards
        let last = gate.poll(1000, t0 + 2 * PROGRESS_INTERVAL).unwrap();
        assert_eq!((last.progress, last.total_bytes_sent), (100, 1000));
        assert_eq!(gate.poll(1000, t0 + 9 * PROGRESS_INTERVAL), None);
    }

    #[test]
    fn percent_floors_without_overflow() {
        assert_eq!(percent(999, 1000), 99);
        assert_eq!(percent(u64::MAX - 1, u64::MAX), 99);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
    }
}
