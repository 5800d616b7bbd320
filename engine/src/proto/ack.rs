//! Progress the peer has acknowledged (opt-in), decided without I/O.
//!
//! After each write pass the driver records a checkpoint: the connection's
//! wire bytes handed to the kernel so far, and the body bytes among them
//! (on TLS, only body bytes whose records went out whole). When asked, the
//! kernel says how many wire bytes it still holds unsent or unacknowledged
//! ([`crate::io::sendq`]); the wire bytes acknowledged are the rest. The body
//! bytes acknowledged are those of the last checkpoint at or below that,
//! plus, inside the next checkpoint's span, what is acknowledged beyond its
//! other bytes (the head, TLS record overhead, earlier requests on the
//! connection), counted as if they all came first. So the count is in body
//! bytes, exact for plain bodies, at most a span's overhead late on TLS,
//! and never ahead of the peer.
//!
//! ```
//! use uploadtask_engine::proto::ack::AckTracker;
//!
//! let mut ack = AckTracker::default();
//! ack.handle_written(1_000, 900);   // head (100 B) + 900 body bytes handed over
//! ack.handle_written(5_000, 4_900);
//! assert_eq!(ack.handle_unacked(5_000, 4_950), 0);      // 50 wire bytes acked: part of the head
//! assert_eq!(ack.handle_unacked(5_000, 4_500), 400);    // 500 acked: the head and 400 body bytes
//! assert_eq!(ack.handle_unacked(5_000, 3_000), 1_900);  // 2,000 acked
//! assert_eq!(ack.handle_unacked(5_000, 0), 4_900);
//! ```

use std::collections::VecDeque;

/// Checkpoints kept; when more come, the oldest are dropped (the count
/// then waits for a later one: late, never ahead).
const MAX_CHECKPOINTS: usize = 64;

/// Body bytes the peer acknowledged, from checkpoints and kernel answers.
#[derive(Debug, Clone, Default)]
pub struct AckTracker {
    /// (wire bytes handed to the kernel, body bytes among them), rising.
    checkpoints: VecDeque<(u64, u64)>,
    /// The last checkpoint acknowledged whole.
    base: (u64, u64),
    acked_body: u64,
}

impl AckTracker {
    /// After a write pass: `wire` bytes were handed to the kernel on this
    /// connection so far, `body` body bytes of this request among them.
    pub fn handle_written(&mut self, wire: u64, body: u64) {
        match self.checkpoints.back_mut() {
            Some(last) if last.1 == body => last.0 = last.0.min(wire),
            Some(last) if last.1 > body || last.0 > wire => {}
            _ => {
                if self.checkpoints.len() == MAX_CHECKPOINTS {
                    self.checkpoints.pop_front();
                }
                self.checkpoints.push_back((wire, body));
            }
        }
    }

    /// The kernel holds `unacked` of the `wire` bytes handed to it: returns
    /// the body bytes acknowledged (never less than before).
    pub fn handle_unacked(&mut self, wire: u64, unacked: u64) -> u64 {
        let acked_wire = wire.saturating_sub(unacked);
        while let Some(&(at, body)) = self.checkpoints.front() {
            if at > acked_wire {
                // Inside this span: its other bytes count first.
                let (w0, b0) = self.base;
                let (span_wire, span_body) = (at.saturating_sub(w0), body.saturating_sub(b0));
                let other = span_wire.saturating_sub(span_body);
                let partial = acked_wire.saturating_sub(w0).saturating_sub(other).min(span_body);
                self.acked_body = self.acked_body.max(b0 + partial);
                break;
            }
            self.acked_body = self.acked_body.max(body);
            self.base = (at, body);
            self.checkpoints.pop_front();
        }
        self.acked_body
    }

    /// Body bytes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked_body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_ahead_and_never_back() {
        let mut ack = AckTracker::default();
        assert_eq!(ack.handle_unacked(0, 0), 0);
        ack.handle_written(300, 0); // the head only
        ack.handle_written(300 + 16_405, 16_384); // one TLS record: 21 bytes of overhead
        assert_eq!(ack.handle_unacked(16_705, 1), 16_383, "one byte of the record unacked");
        assert_eq!(
            ack.handle_unacked(16_705, 22),
            16_383,
            "overhead counts first: never ahead"
        );
        assert_eq!(ack.handle_unacked(16_705, 0), 16_384);
        assert_eq!(
            ack.handle_unacked(16_705, 16_705),
            16_384,
            "a wrong answer never lowers it"
        );
    }

    #[test]
    fn a_reused_connection_counts_from_its_earlier_bytes() {
        let mut ack = AckTracker::default();
        // 10,000 wire bytes of an earlier request on this connection.
        ack.handle_written(10_200, 0);
        ack.handle_written(12_200, 2_000);
        assert_eq!(ack.handle_unacked(12_200, 2_100), 0);
        assert_eq!(ack.handle_unacked(12_200, 1_000), 1_000);
        assert_eq!(ack.handle_unacked(12_200, 0), 2_000);
    }

    #[test]
    fn many_checkpoints_stay_bounded_and_late() {
        let mut ack = AckTracker::default();
        for i in 1..=1_000u64 {
            ack.handle_written(i * 100, i * 90);
        }
        assert!(ack.checkpoints.len() <= MAX_CHECKPOINTS);
        // Only the newest checkpoints are left: the dropped ones are one
        // span whose bytes all count as overhead first; late, never ahead.
        assert_eq!(ack.handle_unacked(100_000, 99_000), 0);
        assert!(ack.handle_unacked(100_000, 6_000) <= 94_000 * 9 / 10);
        assert_eq!(ack.handle_unacked(100_000, 0), 90_000);
    }
}
