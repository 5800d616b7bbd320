//! Does what an upload's transfer decides after an exchange ends
//! ([`crate::proto::transfer`] decides): the outcome with its held heads,
//! the request again without `Expect`, a redirect hop, a retry after a
//! wait, a resumable session's next request.

use super::{deliver, event_of, unix_secs, Key, Loop};
use crate::error::UploadError;
use crate::events::Event;
use crate::proto::exchange::Response;
use crate::proto::reuse;
use crate::proto::transfer::{Moment, Next, Transfer};
use uploadtask_http1::request::Target;

impl Loop {
    /// A complete response: the transfer decides what follows.
    pub(super) fn on_response(&mut self, key: Key, response: Response) {
        if !self.has_transfer(key) {
            return self.finish(key, Ok(response));
        }
        let decided = self.decide(key, |transfer, target, moment| match target {
            Some(target) => Ok(transfer.handle_response(response, target, moment)),
            None => Err(response),
        });
        match decided {
            Some(Ok(next)) => self.carry_out(key, next, true),
            Some(Err(response)) => self.finish(key, Ok(response)),
            None => {}
        }
    }

    /// The attempt failed before a final response, and the upload's life
    /// did not recover it: the transfer decides what follows.
    pub(super) fn on_failure(&mut self, key: Key, error: UploadError) {
        if !self.has_transfer(key) {
            return self.finish(key, Err(error));
        }
        if let Some(next) = self.decide(key, |transfer, _, moment| transfer.handle_failure(error, moment)) {
            self.carry_out(key, next, false);
        }
    }

    /// True when the upload started (its transfer exists).
    fn has_transfer(&mut self, key: Key) -> bool {
        self.uploads.get(key).is_some_and(|slot| slot.transfer.is_some())
    }

    /// Runs `decision` on the upload's transfer with the moment (both
    /// clocks, a random draw, the upload's bounds); `None` when the upload
    /// has no transfer (it never started).
    fn decide<T>(
        &mut self,
        key: Key,
        decision: impl FnOnce(&mut Transfer, Option<&Target>, &mut Moment<'_>) -> T,
    ) -> Option<T> {
        let unix_secs = unix_secs();
        let slot = self.uploads.get(key)?;
        let transfer = slot.transfer.as_mut()?;
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
        Some(decision(transfer, slot.target.as_ref(), &mut moment))
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
                self.leave_conn(key, keep);
                self.schedule(key);
            }
            Next::Resume(at) => self.resume_next(key, keep, at),
        }
    }
}
