//! Does what an upload's transfer decides after an exchange ends
//! ([`crate::proto::transfer`] decides): the outcome with its held heads,
//! the request again without `Expect`, a redirect hop, a retry after a
//! wait, a resumable session's next request.

use super::{deliver, event_of, unix_secs, Key, Loop};
use crate::error::UploadError;
use crate::events::Event;
use crate::proto::reuse;
use crate::proto::transfer::{Moment, Next};

impl Loop {
    /// The attempt failed before a final response, and the upload's life
    /// did not recover it: the transfer decides what follows.
    pub(super) fn on_failure(&mut self, key: Key, error: UploadError) {
        let unix_secs = unix_secs();
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(transfer) = slot.transfer.as_mut() else {
            return self.finish(key, Err(error));
        };
        let entropy = &mut self.entropy;
        let mut random = || entropy.u64();
        let mut moment = Moment {
            now: self.now,
            unix_secs,
            random: &mut random,
            submitted: slot.submitted,
            deadline: slot.life.deadline(),
            engine_retry: &self.config.retry,
        };
        let next = transfer.handle_failure(error, &mut moment);
        self.carry_out(key, next, false);
    }

    /// Does what the transfer decided. `answered`: the exchange ended with
    /// a response (its connection may carry another request).
    pub(super) fn carry_out(&mut self, key: Key, next: Next, answered: bool) {
        let Some(slot) = self.uploads.get(key) else { return };
        if let Some(transfer) = slot.transfer.as_mut() {
            while let Some(change) = transfer.poll_url_change() {
                deliver(&mut *slot.sink, slot.id, Event::Resumable(change));
            }
        }
        let keep = reuse::kept_alive(slot.exchange.as_ref(), self.config.keep_alive).filter(|_| answered);
        match next {
            Next::Finish(outcome) => {
                for head in slot.transfer.as_mut().map(|t| t.take_held()).unwrap_or_default() {
                    deliver(&mut *slot.sink, slot.id, event_of(head));
                }
                self.finish(key, outcome)
            }
            Next::WithoutExpect => {
                let again = match (slot.transfer.as_mut(), slot.exchange.as_ref(), slot.target.clone()) {
                    (Some(transfer), Some(exchange), Some(target)) => transfer.without_expect(target, exchange),
                    _ => return,
                };
                self.next_exchange(key, again)
            }
            Next::Follow(hop) => {
                let next = match (slot.transfer.as_mut(), slot.exchange.as_ref()) {
                    (Some(transfer), Some(exchange)) => transfer.follow(hop, exchange, &self.proxies),
                    _ => return,
                };
                self.next_exchange(key, next)
            }
            Next::Retry => {
                // The wait is the transfer's timeout; the body goes again
                // from byte 0 and progress stays where it was.
                if let Some(exchange) = slot.exchange.as_mut() {
                    exchange.restart();
                }
                slot.life.handle_wait();
                if let Some(conn) = slot.conn.take() {
                    self.release_conn(conn, keep);
                }
                self.schedule(key);
            }
            Next::Resume(at) => self.resume_next(key, keep, at),
        }
    }
}
