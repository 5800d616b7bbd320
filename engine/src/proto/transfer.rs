//! One upload's course across its exchanges, decided without I/O: what
//! follows a final response or a failed attempt (the outcome, a redirect
//! hop, the request again without `Expect`, a retry after a wait, a
//! resumable session's next request), which heads are held back until that
//! is known, and how a stale pooled connection is treated. The driver feeds
//! it what happened and does what it returns; it does not care whether the
//! exchange ran on an HTTP/1.1 connection or anything else.
//!
//! ```text
//!                    handle_response / handle_failure
//!  exchange ends ──────────────────────────────────────┐
//!                                                      ▼
//!        ┌── resumable? ── session.handle_answer ─► Resume(at) | Finish
//!        │
//!        ├── 417 and Expect sent ───────────────────► WithoutExpect
//!        ├── 3xx followed (redirect::decide) ───────► Follow(hop)
//!        └── the outcome ── retry::decide ──────────► Retry | Finish
//! ```
//!
//! Heads of a response that may be followed (a 3xx under a redirect
//! policy, any answer of a resumable session) are held
//! ([`Transfer::handle_head`]): a followed response is never heard of; an
//! outcome's heads are handed out with it ([`Transfer::take_held`]).

mod requests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use uploadtask_http1::request::Target;
use uploadtask_http1::Headers;

pub(crate) use self::requests::{invalid, url_of, write_head, Step};
use crate::error::{ErrorKind, UploadError};
use crate::proto::exchange::Response;
use crate::proto::proxy::ProxyUrl;
use crate::proto::redirect::{self, Hop, Policy};
use crate::proto::resumable::{Answer, Next as SessionNext, Session, UrlChange};
use crate::proto::retry::{self, RetryPolicy};
use crate::proto::reuse::Resend;

/// Bounds of the wait for `100 Continue` (4 × the connection's round trip
/// in between; the upper one when the round trip is not known).
pub(crate) const EXPECT_WAIT: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(1));

/// Retries of a resumable upload without progress when neither the upload
/// nor the engine sets a retry policy (tus-js-client makes 4).
pub(crate) const RESUMABLE_RETRIES: u32 = 5;

/// What follows an exchange's end.
#[derive(Debug)]
pub(crate) enum Next {
    /// The upload ends with this outcome (its held heads first:
    /// [`Transfer::take_held`]).
    Finish(Result<Response, UploadError>),
    /// The same request again without `Expect: 100-continue` (a 417).
    WithoutExpect,
    /// The request to a redirect's target.
    Follow(Hop),
    /// The same request again from byte 0, once the wait is over
    /// ([`Transfer::poll_timeout`]).
    Retry,
    /// A resumable session's next request: now, or once `at` has come.
    Resume(Option<Instant>),
}

/// A head held back while it is not known whether it is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Held {
    /// The final head's status.
    Status(u16),
    /// The final head's status and headers.
    Headers(u16, Headers),
}

/// What a decision needs from outside: the time (both clocks), a random
/// draw for jitter, and the upload's bounds.
pub(crate) struct Moment<'a> {
    pub(crate) now: Instant,
    /// Seconds since the Unix epoch (for a `Retry-After` date, an
    /// `Upload-Limit`'s `max-age`).
    pub(crate) unix_secs: u64,
    /// A random draw, asked only when a retry is considered.
    pub(crate) random: &'a mut dyn FnMut() -> u64,
    /// When the upload was submitted (a retry policy's `max_time`).
    pub(crate) submitted: Instant,
    /// The overall deadline, if any.
    pub(crate) deadline: Option<Instant>,
    /// The engine's retry policy (an upload may have its own).
    pub(crate) engine_retry: &'a RetryPolicy,
}

/// A resumable upload's protocol state, and the checksum of the piece it
/// sends when the protocol asks for one.
#[derive(Debug)]
pub(crate) struct Resume {
    pub(crate) session: Session,
    /// The whole body's length.
    pub(crate) total: u64,
    /// `Upload-Checksum` of the piece `(start, len)`, once computed.
    pub(crate) checksum: Option<((u64, u64), String)>,
    /// When the request waiting for its checksum may go.
    pub(crate) resume_at: Option<Instant>,
}

/// The request as the user gave it, as redirects, retries and a resumable
/// session change it, and the state of those decisions.
/// Times one request is sent again after an HTTP/2 server refused it
/// unprocessed.
pub(crate) const MAX_REFUSED: u8 = 10;

#[derive(Debug)]
pub(crate) struct Transfer {
    /// `POST` (the default) without a string of its own.
    pub(crate) method: Cow<'static, str>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) policy: Policy,
    /// Hops followed so far.
    pub(crate) hops: u32,
    /// Send `Expect: 100-continue` and wait before the body.
    pub(crate) expect: bool,
    /// The proxy the current URL goes through.
    pub(crate) proxy: Option<Box<ProxyUrl>>,
    /// This upload's retry policy when it has its own (else the engine's).
    pub(crate) retry: Option<Box<RetryPolicy>>,
    /// Attempts made (1 during the first).
    pub(crate) attempts: u32,
    /// When the next attempt begins, while waiting for it.
    pub(crate) retry_at: Option<Instant>,
    /// A resumable upload's protocol state.
    pub(crate) resumable: Option<Box<Resume>>,
    /// This upload's resend rule when it has its own (else the engine's).
    pub(crate) resend_reused: Option<bool>,
    /// Heads held while it is not known whether the response is followed.
    held: Vec<Held>,
    /// Times an HTTP/2 server refused the request unprocessed.
    refused: u8,
}

impl Transfer {
    /// A transfer of `method` with `headers`, under a redirect `policy`.
    pub(crate) fn new(method: Cow<'static, str>, headers: Vec<(String, String)>, policy: Policy) -> Self {
        Transfer {
            method,
            headers,
            policy,
            hops: 0,
            expect: false,
            proxy: None,
            retry: None,
            attempts: 1,
            retry_at: None,
            resumable: None,
            resend_reused: None,
            held: Vec::new(),
            refused: 0,
        }
    }

    /// A resumable session's transfer; its requests are the session's
    /// (redirects are not followed within it).
    pub(crate) fn resumable(session: Session, total: u64) -> Self {
        let policy = Policy {
            max: 0,
            allow_https_to_http: false,
        };
        let mut transfer = Transfer::new("POST".into(), Vec::new(), policy);
        transfer.resumable = Some(Box::new(Resume {
            session,
            total,
            checksum: None,
            resume_at: None,
        }));
        transfer
    }

    /// The rule for a request that failed on a reused connection: this
    /// upload's, else the engine's (`engine_resends`). A resumable upload
    /// never sends a piece again implicitly: it asks the server what it kept.
    pub(crate) fn resend_rule(&self, engine_resends: bool) -> Resend {
        match self.resumable {
            Some(_) => Resend::Never,
            None => Resend::from_choice(self.resend_reused.unwrap_or(engine_resends)),
        }
    }

    /// How long a body of `body_len` bytes waits for `100 Continue` on a
    /// connection whose round trip is `rtt`: `None` when it does not wait
    /// (no `Expect` sent, or no body).
    pub(crate) fn expect_wait(&self, body_len: u64, rtt: Option<Duration>) -> Option<Duration> {
        let (min, max) = EXPECT_WAIT;
        (self.expect && body_len > 0).then(|| rtt.map_or(max, |rtt| rtt.saturating_mul(4).clamp(min, max)))
    }

    /// A final head arrived: `Some(head)` to report it now, `None` when it
    /// is held (its response may be followed).
    pub(crate) fn handle_head(&mut self, head: Held) -> Option<Held> {
        let status = match &head {
            Held::Status(status) | Held::Headers(status, _) => *status,
        };
        let followable = (redirect::is_redirect(status) && self.policy.max > 0) || self.resumable.is_some();
        if !followable {
            return Some(head);
        }
        self.held.push(head);
        None
    }

    /// The heads held for the outcome, in order.
    pub(crate) fn take_held(&mut self) -> Vec<Held> {
        std::mem::take(&mut self.held)
    }

    /// An interim (1xx) response of a resumable session: `Some` when the
    /// request under way cannot go on (its connection is to be closed).
    pub(crate) fn handle_interim(&mut self, status: u16, headers: &Headers) -> Option<Next> {
        let resume = self.resumable.as_mut()?;
        let next = resume.session.handle_interim(status, headers)?;
        self.held.clear();
        Some(match next {
            SessionNext::Fail(error) => Next::Finish(Err(error)),
            _ => Next::Resume(None),
        })
    }

    /// A resource learned or lost by the resumable session, to report.
    pub(crate) fn poll_url_change(&mut self) -> Option<UrlChange> {
        self.resumable.as_mut()?.session.poll_url_change()
    }

    /// When a retry's wait ends.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.retry_at
    }

    /// An HTTP/2 server did not process the request (REFUSED_STREAM, or
    /// above a GOAWAY's last stream id; RFC 9113 §8.7): `true` to send it
    /// again at once, whatever the retry policy says, as nothing of it was
    /// processed; `false` once that happened [`MAX_REFUSED`] times (a
    /// server that refuses everything must not loop forever).
    pub(crate) fn handle_refused(&mut self) -> bool {
        self.refused = self.refused.saturating_add(1);
        self.refused <= MAX_REFUSED
    }

    /// A timer fired: `true` when the wait for the next attempt is over.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        let due = self.retry_at.is_some_and(|at| at <= now);
        if due {
            self.retry_at = None;
        }
        due
    }

    /// A final response to the request sent to `target`.
    pub(crate) fn handle_response(&mut self, response: Response, target: &Target, moment: &mut Moment<'_>) -> Next {
        if self.resumable.is_some() {
            return self.resumable_end(Ok(response), moment);
        }
        if response.status == 417 && self.expect {
            self.held.clear();
            return Next::WithoutExpect;
        }
        if redirect::is_redirect(response.status) {
            let location = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("location"))
                .map(|h| String::from_utf8_lossy(h.value));
            let url = url_of(target);
            let request = redirect::Request {
                url: &url,
                method: &self.method,
                hops: self.hops,
            };
            match redirect::decide(&self.policy, &request, response.status, location.as_deref()) {
                redirect::Next::Done => {}
                redirect::Next::Fail(error) => {
                    self.held.clear();
                    return Next::Finish(Err(error));
                }
                redirect::Next::Follow(hop) => {
                    self.held.clear();
                    return Next::Follow(hop);
                }
            }
        }
        self.end_attempt(Ok(response), moment)
    }

    /// The attempt failed before a final response (and the upload's life
    /// did not recover it).
    pub(crate) fn handle_failure(&mut self, error: UploadError, moment: &mut Moment<'_>) -> Next {
        match self.resumable {
            Some(_) => self.resumable_end(Err(error), moment),
            None => self.end_attempt(Err(error), moment),
        }
    }

    /// The outcome, or (per the retry policy) another attempt after a wait.
    /// The body goes again from byte 0; progress never goes back.
    fn end_attempt(&mut self, outcome: Result<Response, UploadError>, moment: &mut Moment<'_>) -> Next {
        let status = outcome.as_ref().ok().map(|r| r.status);
        match self.retry_delay(&outcome, status, None, moment) {
            Some(delay) => {
                self.held.clear();
                self.attempts += 1;
                let at = moment.now.checked_add(delay).unwrap_or(moment.now);
                self.retry_at = Some(at);
                Next::Retry
            }
            None => self.finish_after_attempts(outcome),
        }
    }

    /// A request of a resumable session ended: a final response or a failure.
    fn resumable_end(&mut self, outcome: Result<Response, UploadError>, moment: &mut Moment<'_>) -> Next {
        let Some(resume) = self.resumable.as_mut() else {
            return Next::Finish(outcome);
        };
        let next = match &outcome {
            Ok(response) => resume.session.handle_answer(&Answer {
                status: response.status,
                headers: &response.headers,
                unix_time: moment.unix_secs,
            }),
            Err(error) if retry::is_retryable(error) => resume.session.handle_failure(),
            // Abort, TLS, protocol and file errors end the upload.
            Err(_) => SessionNext::Done,
        };
        if resume.session.take_advanced() {
            self.attempts = 1;
        }
        match next {
            SessionNext::Send | SessionNext::Interrupt => {
                self.held.clear();
                Next::Resume(None)
            }
            SessionNext::Done => self.finish_after_attempts(outcome),
            SessionNext::Fail(error) => {
                self.held.clear();
                Next::Finish(Err(error))
            }
            SessionNext::Recover(status) => {
                self.held.clear();
                let fallback = RetryPolicy {
                    attempts: RESUMABLE_RETRIES,
                    ..RetryPolicy::default()
                };
                // A status the policy does not list (a 500 from a tusd that
                // saw the request break) still resumes: the server keeps
                // what it stored, and the offset is asked first. Listed ones
                // keep their `Retry-After`.
                let listed = status.filter(|s| self.policy_for(moment.engine_retry, &fallback).statuses.contains(s));
                let Some(delay) = self.retry_delay(&outcome, listed, Some(&fallback), moment) else {
                    return self.finish_after_attempts(outcome);
                };
                self.attempts += 1;
                let now = moment.now;
                Some(now.checked_add(delay).unwrap_or(now))
                    .filter(|&at| at > now)
                    .map_or(Next::Resume(None), |at| Next::Resume(Some(at)))
            }
        }
    }

    /// The policy that applies: this upload's, else the engine's, else
    /// `fallback` when neither retries.
    fn policy_for<'p>(&'p self, engine: &'p RetryPolicy, fallback: &'p RetryPolicy) -> &'p RetryPolicy {
        let policy = self.retry.as_deref().unwrap_or(engine);
        if policy.attempts == 0 {
            fallback
        } else {
            policy
        }
    }

    /// Whether the upload goes again after `outcome`, and after what wait.
    /// `status` is the response's status to judge; `None` judges the error
    /// (a response judged as an error is a network failure).
    fn retry_delay(
        &self,
        outcome: &Result<Response, UploadError>,
        status: Option<u16>,
        fallback: Option<&RetryPolicy>,
        moment: &mut Moment<'_>,
    ) -> Option<Duration> {
        let mut policy = self.retry.as_deref().unwrap_or(moment.engine_retry);
        if policy.attempts == 0 {
            policy = fallback?;
        }
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
            made: self.attempts,
            deadline: moment.deadline,
            started: moment.submitted,
            now: moment.now,
            wall_clock_secs: moment.unix_secs,
            random: (moment.random)(),
        };
        match retry::decide(policy, &attempt, cause) {
            retry::Next::Done => None,
            retry::Next::RetryAfter(delay) => Some(delay),
        }
    }

    /// The outcome; an error says how many attempts it took.
    fn finish_after_attempts(&self, outcome: Result<Response, UploadError>) -> Next {
        Next::Finish(outcome.map_err(|e| {
            match self.attempts {
                1 => e,
                made => UploadError::new(e.kind, format!("{} (after {made} attempts)", e.message))
                    .with_shared_source(e.shared_source()),
            }
        }))
    }
}
