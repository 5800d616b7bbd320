//! How an attempt ends: the outcome, or another attempt after a wait (the
//! decision is [`crate::retry::decide`]'s), and the error that says how many
//! attempts were made.

use std::time::Duration;

use super::{kept_alive, Key, Loop};
use crate::{retry, ErrorKind, UploadError};

impl Loop {
    /// An attempt ended: the outcome, or (per the retry policy) another
    /// attempt after a wait. The body is sent again from byte 0; progress
    /// stays where it was (it never goes back).
    pub(super) fn end_attempt(&mut self, key: Key, outcome: Result<crate::Response, UploadError>) {
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(plan) = slot.plan.as_ref() else {
            return self.finish(key, outcome);
        };
        if plan.resumable.is_some() {
            return self.resume_end(key, outcome);
        }
        let status = outcome.as_ref().ok().map(|r| r.status);
        let Some(delay) = self.retry_delay(key, &outcome, status, None) else {
            return self.finish_after_attempts(key, outcome);
        };
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(plan) = slot.plan.as_mut() else { return };
        plan.attempts += 1;
        plan.retry_at = Some(now.checked_add(delay).unwrap_or(now));
        let keep = kept_alive(slot.exchange.as_ref(), self.config.keep_alive).filter(|_| outcome.is_ok());
        if let Some(exchange) = slot.exchange.as_mut() {
            exchange.restart();
        }
        slot.life.handle_wait();
        if let Some(conn) = slot.conn.take() {
            self.release_conn(conn, keep);
        }
        self.schedule(key);
    }

    /// Asks the retry policy (the upload's, else the engine's, else
    /// `fallback`) whether the upload goes again after `outcome`, and after
    /// what wait. `status` is the response's status to judge, `None` judges
    /// the error (a response judged as an error is a network failure).
    pub(super) fn retry_delay(
        &mut self,
        key: Key,
        outcome: &Result<crate::Response, UploadError>,
        status: Option<u16>,
        fallback: Option<&retry::RetryPolicy>,
    ) -> Option<Duration> {
        let now = self.now;
        let slot = self.uploads.get(key)?;
        let plan = slot.plan.as_ref()?;
        let mut policy = plan.retry.as_deref().unwrap_or(&self.config.retry);
        if policy.attempts == 0 {
            policy = fallback?;
        }
        // Only with retries on: a random draw and the wall clock.
        let random = self.entropy.u64();
        let wall_clock_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A response judged as an error (no status to judge) is a network
        // failure.
        let refused = match (outcome, status) {
            (Ok(response), None) => Some(UploadError::new(
                ErrorKind::Network,
                format!("the server answered {} {}", response.status, response.reason),
            )),
            _ => None,
        };
        let judged = match (outcome, status, &refused) {
            (_, _, Some(refused)) => Err(refused),
            (Ok(_), Some(status), None) => Ok(status),
            (Err(error), _, None) => Err(error),
            (Ok(_), None, None) => return None,
        };
        let header = |name: &str| {
            let response = outcome.as_ref().ok()?;
            let field = response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
            std::str::from_utf8(field.value).ok()
        };
        let cause = retry::Cause::of(judged, header);
        let attempt = retry::Attempt {
            made: plan.attempts,
            deadline: slot.life.deadline(),
            started: slot.submitted,
            now,
            wall_clock_secs,
            random,
        };
        match retry::decide(policy, &attempt, cause) {
            retry::Next::Done => None,
            retry::Next::RetryAfter(delay) => Some(delay),
        }
    }

    /// Ends the upload with `outcome`; an error says how many attempts it took.
    pub(super) fn finish_after_attempts(&mut self, key: Key, outcome: Result<crate::Response, UploadError>) {
        let made = self
            .uploads
            .get(key)
            .and_then(|slot| slot.plan.as_ref())
            .map_or(1, |plan| plan.attempts);
        let outcome = outcome.map_err(|e| match made {
            1 => e,
            made => UploadError::new(e.kind, format!("{} (after {made} attempts)", e.message))
                .with_shared_source(e.shared_source()),
        });
        self.finish(key, outcome)
    }
}
