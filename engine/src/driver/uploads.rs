//! Uploads and admission: the slab of upload slots, the FIFO of uploads
//! waiting for a place in flight, the count of places taken, and the count
//! of uploads admitted (submitted and not ended, shared with the
//! submitters, which bounds in flight plus queued).
//!
//! A place in flight belongs to the slot that took it ([`UploadSlot`]'s
//! `in_flight`): removing the slot ([`Uploads::remove`], the only way out)
//! gives it back, whatever phase the upload had reached, and takes the
//! upload off the admitted count.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;
use uploadtask_http1::request::Target;

use super::keys::ConnKey;
pub(crate) use super::keys::Key;
use crate::events::EventSink;
use crate::events::UploadId;
use crate::io::source::Source;
use crate::proto::exchange::Exchange;
use crate::proto::transfer::Transfer;
use crate::proto::upload::Upload;
use crate::request::UploadRequest;

/// Room for requests given a place in flight at submission kept between
/// loop turns.
const READY_KEPT: usize = 256;

pub(crate) struct UploadSlot {
    generation: u32,
    pub(crate) id: UploadId,
    pub(crate) sink: Box<dyn EventSink>,
    /// Phase, addresses, deadlines, retry: the sans-I/O life of the upload.
    pub(crate) life: Upload,
    /// The request while it waits for a place in flight.
    pub(crate) request: Option<Box<UploadRequest>>,
    pub(crate) target: Option<Target>,
    pub(crate) exchange: Option<Exchange>,
    pub(crate) sources: Vec<Source>,
    pub(crate) conn: Option<ConnKey>,
    /// The HTTP/2 stream carrying the exchange on `conn`, when it multiplexes.
    pub(crate) stream: Option<u32>,
    /// May go over HTTP/2 (its version allows it, and so does what it
    /// asks: not acknowledged progress).
    pub(crate) h2: crate::request::HttpVersion,
    /// Connect attempts under way beside `conn`'s (Happy Eyeballs), boxed:
    /// most uploads never race; the winner becomes `conn`.
    #[allow(clippy::box_collection)] // 8 bytes in every slot, not 24
    pub(crate) racing: Option<Box<Vec<ConnKey>>>,
    pub(crate) timer_at: Option<Instant>,
    /// When it was submitted (retries' `max_time` counts from here).
    pub(crate) submitted: Instant,
    /// The request's course across its exchanges (redirects, retries, a
    /// resumable session), from its start.
    pub(crate) transfer: Option<Transfer>,
    /// A `CONNECT` exchange under way.
    pub(crate) tunnel: Option<Box<crate::proto::proxy::Tunnel>>,
    /// Waits for a connection another upload sets up (HTTP/2).
    pub(crate) waiting: bool,
    /// Holds a place in flight.
    in_flight: bool,
    /// Response bytes this upload holds, counted in the engine's budget.
    buffered: usize,
}

impl UploadSlot {
    /// Where the upload connects: its proxy, or its origin.
    pub(crate) fn connect_point(&self) -> (Arc<str>, u16) {
        match (
            self.transfer.as_ref().and_then(|t| t.proxy.as_ref()),
            self.target.as_ref(),
        ) {
            (Some(proxy), _) => (Arc::from(proxy.host.as_str()), proxy.port),
            (None, Some(target)) => (target.host.clone(), target.port),
            (None, None) => (Arc::from(""), 0),
        }
    }
}

/// The slab, the queue and the counts; see the module doc.
pub(crate) struct Uploads {
    slab: Slab<UploadSlot>,
    ids: HashMap<UploadId, usize>,
    queue: VecDeque<Key>,
    /// Uploads given a place in flight when submitted, with their requests
    /// (not boxed), to start at the end of the loop's turn: after the
    /// turn's events, which may say a pooled connection closed.
    ready: VecDeque<(Key, UploadRequest)>,
    in_flight: usize,
    max_in_flight: usize,
    buffered: usize,
    next_generation: u32,
    /// Uploads submitted and not ended (admitted), shared with the
    /// submitters.
    admitted: Arc<AtomicUsize>,
}

impl Uploads {
    pub(crate) fn new(max_in_flight: usize, admitted: Arc<AtomicUsize>) -> Self {
        Uploads {
            slab: Slab::new(),
            ids: HashMap::new(),
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
            buffered: 0,
            next_generation: 0,
            admitted,
        }
    }

    /// Adds an upload. It takes a place in flight at once when one is free
    /// and none is waiting (its request is kept unboxed, for
    /// [`Uploads::admit_next`]); else it waits at the back of the queue, its
    /// request boxed in its slot.
    pub(crate) fn insert(
        &mut self,
        id: UploadId,
        sink: Box<dyn EventSink>,
        life: Upload,
        request: UploadRequest,
        submitted: Instant,
    ) -> Key {
        let flies = self.queue.is_empty() && self.in_flight < self.max_in_flight;
        let (waiting, ready) = if flies {
            self.in_flight += 1;
            (None, Some(request))
        } else {
            (Some(Box::new(request)), None)
        };
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let index = self.slab.insert(UploadSlot {
            generation,
            id,
            sink,
            life,
            request: waiting,
            target: None,
            exchange: None,
            sources: Vec::new(),
            conn: None,
            stream: None,
            waiting: false,
            h2: crate::request::HttpVersion::Http1,
            racing: None,
            timer_at: None,
            submitted,
            transfer: None,
            tunnel: None,
            in_flight: flies,
            buffered: 0,
        });
        self.ids.insert(id, index);
        let key = Key::new(index, generation);
        match ready {
            Some(request) => self.ready.push_back((key, request)),
            None => self.queue.push_back(key),
        }
        key
    }

    pub(crate) fn get(&mut self, key: Key) -> Option<&mut UploadSlot> {
        self.slab
            .get_mut(key.index())
            .filter(|slot| slot.generation == key.generation())
    }

    /// True while the upload waits for a connection another sets up.
    pub(crate) fn is_waiting(&self, key: Key) -> bool {
        self.slab
            .get(key.index())
            .is_some_and(|slot| slot.generation == key.generation() && slot.waiting)
    }

    /// The upload's phase, if it is still here.
    pub(crate) fn phase(&self, key: Key) -> Option<crate::proto::upload::Phase> {
        self.slab
            .get(key.index())
            .filter(|slot| slot.generation == key.generation())
            .map(|slot| slot.life.phase())
    }

    /// The instant of the upload's current timer entry.
    pub(crate) fn timer_at(&self, key: Key) -> Option<Instant> {
        self.slab
            .get(key.index())
            .filter(|s| s.generation == key.generation())
            .and_then(|s| s.timer_at)
    }

    pub(crate) fn key_of(&self, id: UploadId) -> Option<Key> {
        let index = *self.ids.get(&id)?;
        Some(Key::new(index, self.slab[index].generation))
    }

    pub(crate) fn keys(&self) -> Vec<Key> {
        self.slab
            .iter()
            .map(|(index, slot)| Key::new(index, slot.generation))
            .collect()
    }

    /// The next upload to start, with its request: first those given a
    /// place when submitted, then queued ones given a place while places are free.
    /// Requests of uploads that ended before starting are dropped here.
    /// (A queued slot without its request cannot be; it is handed over as
    /// `None`, for the caller to fail it.)
    pub(crate) fn admit_next(&mut self) -> Option<(Key, Option<UploadRequest>)> {
        while let Some((key, request)) = self.ready.pop_front() {
            if self.get(key).is_some() {
                return Some((key, Some(request)));
            }
        }
        if self.ready.capacity() > READY_KEPT {
            // After a burst, do not keep room for thousands of requests.
            self.ready.shrink_to(READY_KEPT);
        }
        while self.in_flight < self.max_in_flight {
            let key = self.queue.pop_front()?;
            let Some(slot) = self.get(key).filter(|slot| !slot.in_flight) else {
                continue;
            };
            slot.in_flight = true;
            let request = slot.request.take().map(|request| *request);
            self.in_flight += 1;
            return Some((key, request));
        }
        None
    }

    /// Sets the response bytes `key` holds; returns the total of all uploads.
    pub(crate) fn set_buffered(&mut self, key: Key, bytes: usize) -> usize {
        if let Some(slot) = self
            .slab
            .get_mut(key.index())
            .filter(|s| s.generation == key.generation())
        {
            self.buffered = self.buffered - slot.buffered + bytes;
            slot.buffered = bytes;
        }
        self.buffered
    }

    /// Takes the upload out: its place in flight, its buffered bytes and its
    /// count among the engine's uploads are given back.
    pub(crate) fn remove(&mut self, key: Key) -> Option<UploadSlot> {
        if self
            .slab
            .get(key.index())
            .is_none_or(|s| s.generation != key.generation())
        {
            return None;
        }
        let slot = self.slab.remove(key.index());
        self.ids.remove(&slot.id);
        if slot.in_flight {
            self.in_flight -= 1;
        }
        self.buffered -= slot.buffered;
        self.admitted.fetch_sub(1, Ordering::AcqRel);
        if self.queue.len() > 64 + 2 * self.slab.len() {
            let slab = &self.slab;
            self.queue
                .retain(|key| slab.get(key.index()).is_some_and(|s| s.generation == key.generation()));
        }
        Some(slot)
    }

    /// Gives back the submitters' count for an upload that never got a slot.
    pub(crate) fn release_admitted(&self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(crate) fn queued(&self) -> usize {
        self.slab.len() - self.in_flight
    }

    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    pub(crate) fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}
