//! The loop's timers: a binary heap of `(instant, target)` with lazy
//! deletion. An entry is current only while its target still stands for it
//! (the loop checks with [`Timers::pop_due`]'s caller); stale entries are
//! skipped when due and dropped once they outnumber live targets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::conns::ConnKey;
use super::uploads::Key;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerTarget {
    /// An upload's next deadline (`Upload::poll_timeout`).
    Upload(Key),
    /// An idle pooled connection's end.
    IdleConn(ConnKey),
    /// The deadline of an HTTP/2 connection's health ping.
    Ping(ConnKey),
}

/// The heap; see the module doc.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerTarget)>>,
}

impl Timers {
    pub(crate) fn push(&mut self, at: Instant, target: TimerTarget) {
        self.heap.push(Reverse((at, target)));
    }

    /// The earliest entry's instant, current or not.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerTarget)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops stale entries (for which `current` is false) once there are
    /// more than `64 + 2 × live` entries, or always when `force`.
    pub(crate) fn compact(&mut self, live: usize, force: bool, current: impl Fn(Instant, TimerTarget) -> bool) {
        if force || self.heap.len() > 64 + 2 * live {
            let entries = std::mem::take(&mut self.heap).into_vec();
            self.heap = entries
                .into_iter()
                .filter(|Reverse((at, target))| current(*at, *target))
                .collect();
        }
    }
}
