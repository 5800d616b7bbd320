//! The storage of ended uploads, handed to new ones: on a kept-alive
//! connection a small upload allocates nothing of its own for its request
//! head, its multipart framing and segments, the list of its sources, or
//! the form it is framed from. What the caller receives (the response's
//! headers and body) is the caller's.
//!
//! ```text
//!   prepare ── head(), body(), sources(), form ──▶ upload in flight
//!      ▲                                                  │
//!      └──────────── keep(exchange, sources) ◀── finish ──┘
//! ```
//!
//! At most [`KEPT`] of each kind wait here, none larger than [`MAX_BYTES`]:
//! the pool's memory is bounded whatever the uploads were.

use uploadtask_multipart::{Form, Spare};

use crate::io::source::Source;
use crate::proto::exchange::Exchange;

/// Spares of each kind kept.
pub(crate) const KEPT: usize = 256;
/// Larger storage is freed, not kept.
pub(crate) const MAX_BYTES: usize = 4096;

/// Spare storage, and the one form every upload is framed from.
#[derive(Default)]
pub(crate) struct Recycle {
    pub(crate) form: Form,
    heads: Vec<Vec<u8>>,
    bodies: Vec<Spare>,
    sources: Vec<Vec<Source>>,
}

impl Recycle {
    /// Storage for a request head (empty).
    pub(crate) fn head(&mut self) -> Vec<u8> {
        self.heads.pop().unwrap_or_default()
    }

    /// Storage for a body's framing.
    pub(crate) fn body(&mut self) -> Spare {
        self.bodies.pop().unwrap_or_default()
    }

    /// An empty list of sources.
    pub(crate) fn sources(&mut self) -> Vec<Source> {
        self.sources.pop().unwrap_or_default()
    }

    /// Takes back the storage of an upload that ended (its sources are
    /// dropped: files close here).
    pub(crate) fn keep(&mut self, exchange: Option<Exchange>, mut sources: Vec<Source>) {
        sources.clear();
        if self.sources.len() < KEPT && sources.capacity() > 0 && sources.capacity() <= 16 {
            self.sources.push(sources);
        }
        let Some(exchange) = exchange else { return };
        let (mut head, body) = exchange.into_storage();
        head.clear();
        if self.heads.len() < KEPT && head.capacity() > 0 && head.capacity() <= MAX_BYTES {
            self.heads.push(head);
        }
        if self.bodies.len() < KEPT && (1..=MAX_BYTES).contains(&body.bytes()) {
            self.bodies.push(body);
        }
    }

    /// Bytes held by spares (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.heads.iter().map(Vec::capacity).sum::<usize>() + self.bodies.iter().map(Spare::bytes).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uploadtask_multipart::Body;

    fn exchange(head: Vec<u8>, body: Body) -> Exchange {
        Exchange::new(head, body, uploadtask_http1::Limits::default())
    }

    #[test]
    fn storage_comes_back_and_is_bounded() {
        let mut recycle = Recycle::default();
        let head = Vec::with_capacity(200);
        let at = head.as_ptr();
        recycle.keep(Some(exchange(head, Body::raw(1, "text/plain"))), Vec::with_capacity(1));
        let again = recycle.head();
        assert_eq!((again.as_ptr(), again.len()), (at, 0));
        assert!(recycle.sources().capacity() >= 1);
        assert_eq!(
            recycle.body().bytes(),
            "text/plain".len() + std::mem::size_of::<uploadtask_multipart::Segment>()
        );

        // Too large, or past KEPT: freed.
        recycle.keep(
            Some(exchange(Vec::with_capacity(MAX_BYTES + 1), Body::raw(0, ""))),
            Vec::new(),
        );
        assert_eq!(recycle.held(), 0);
        for _ in 0..KEPT + 10 {
            recycle.keep(Some(exchange(Vec::with_capacity(10), Body::raw(0, "x"))), Vec::new());
        }
        assert_eq!(recycle.heads.len(), KEPT);
        assert_eq!(recycle.bodies.len(), KEPT);
    }
}
