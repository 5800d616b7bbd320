//! Performs a resumable upload's steps; [`crate::resumable`] decides them.
//! Each request is an exchange of the same upload (one slot, one place in
//! flight, one overall deadline); progress counts toward the whole body
//! and never goes back. A piece's `sha1` (tus checksum) is computed on a
//! thread of its own, never on the loop.

use std::time::Instant;

use super::Command;
use super::{deliver, kept_alive, Key, Loop};
use crate::prepare::{self, ResumeStep};
use crate::resumable::{tus_checksum, Answer, Next};
use crate::retry::{self, RetryPolicy};
use crate::source::sha1_of;
use crate::{ErrorKind, Event, UploadError, UploadId};

/// Attempts of a resumable upload without progress when neither the upload
/// nor the engine sets a retry policy (tus-js-client makes 4 retries).
const DEFAULT_ATTEMPTS: u32 = 5;

impl Loop {
    /// A request of a resumable upload ended: a final response or a failure.
    pub(super) fn resume_end(&mut self, key: Key, outcome: Result<crate::Response, UploadError>) {
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(resume) = slot.plan.as_mut().and_then(|p| p.resumable.as_mut()) else {
            return self.finish(key, outcome);
        };
        let next = match &outcome {
            Ok(response) => resume.session.handle_answer(&Answer {
                status: response.status,
                headers: &response.headers,
                unix_time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            }),
            Err(error) if retry::is_retryable(error) => resume.session.handle_failure(),
            // Abort, TLS, protocol and file errors end the upload.
            Err(_) => Next::Done,
        };
        let advanced = resume.session.take_advanced();
        while let Some(change) = resume.session.poll_url_change() {
            deliver(&mut *slot.sink, slot.id, Event::Resumable(change));
        }
        if advanced {
            if let Some(plan) = slot.plan.as_mut() {
                plan.attempts = 1;
            }
        }
        let keep = kept_alive(slot.exchange.as_ref(), self.config.keep_alive).filter(|_| outcome.is_ok());
        match next {
            Next::Send | Next::Interrupt => {
                slot.held_head.clear();
                self.resume_next(key, keep, None);
            }
            Next::Done => {
                for event in std::mem::take(&mut slot.held_head) {
                    deliver(&mut *slot.sink, slot.id, event);
                }
                self.finish_after_attempts(key, outcome);
            }
            Next::Fail(error) => self.finish(key, Err(error)),
            Next::Recover(status) => {
                slot.held_head.clear();
                let fallback = RetryPolicy {
                    attempts: DEFAULT_ATTEMPTS,
                    ..RetryPolicy::default()
                };
                // A status the policy does not list (a 500 from a tusd that
                // saw the request break) still resumes: the server keeps
                // what it stored, and the offset is asked first. Listed ones
                // keep their `Retry-After`.
                let listed = status.filter(|s| self.retry_statuses(key, &fallback).contains(s));
                let Some(delay) = self.retry_delay(key, &outcome, listed, Some(&fallback)) else {
                    return self.finish_after_attempts(key, outcome);
                };
                let now = self.now;
                if let Some(plan) = self.uploads.get(key).and_then(|slot| slot.plan.as_mut()) {
                    plan.attempts += 1;
                }
                self.resume_next(key, keep, Some(now.checked_add(delay).unwrap_or(now)));
            }
        }
    }

    /// A `104` showed that the request under way cannot go on: its
    /// connection is closed, then the session's next step goes (or the
    /// upload fails).
    pub(super) fn resume_interrupted(&mut self, key: Key, next: Next) {
        self.drop_conn(key);
        match next {
            Next::Fail(error) => self.finish(key, Err(error)),
            _ => {
                if let Some(slot) = self.uploads.get(key) {
                    slot.held_head.clear();
                }
                self.resume_next(key, None, None);
            }
        }
    }

    /// The statuses the upload's retry policy retries.
    fn retry_statuses(&mut self, key: Key, fallback: &RetryPolicy) -> Vec<u16> {
        let plan = self.uploads.get(key).and_then(|slot| slot.plan.as_ref());
        let policy = plan.and_then(|p| p.retry.as_deref()).unwrap_or(&self.config.retry);
        let policy = if policy.attempts == 0 { fallback } else { policy };
        policy.statuses.clone()
    }

    /// Sends the session's next request, at `at` (after a wait) or now;
    /// first the piece's checksum when the protocol asks for one.
    pub(super) fn resume_next(&mut self, key: Key, keep: Option<Option<u32>>, at: Option<Instant>) {
        if let Some(conn) = self.uploads.get(key).and_then(|slot| slot.conn.take()) {
            self.release_conn(conn, keep);
        }
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(plan) = slot.plan.as_mut() else { return };
        plan.retry_at = at.filter(|&at| at > now);
        let waits = plan.retry_at.is_some();
        match prepare::resume_step(plan, slot.exchange.as_ref(), self.config.limits, &self.proxies) {
            Err(error) => self.finish(key, Err(error)),
            Ok(ResumeStep::Ready(target, mut exchange)) => {
                // Progress starts at the server's offset (after a resume).
                if let Some(progress) = exchange.poll_progress(now) {
                    deliver(&mut *slot.sink, slot.id, Event::Progress(progress));
                }
                slot.exchange = Some(*exchange);
                slot.target = Some(target);
                if waits {
                    slot.life.handle_wait();
                    self.schedule(key);
                } else {
                    self.begin_exchange(key);
                }
            }
            Ok(ResumeStep::NeedsChecksum(start, len)) => {
                // No timer may start the last exchange again meanwhile.
                let at = plan.retry_at.take();
                if let Some(resume) = plan.resumable.as_mut() {
                    resume.resume_at = at;
                }
                slot.life.handle_wait();
                let id = slot.id;
                let shared = slot.sources.first().and_then(|source| source.try_clone());
                let Some(source) = shared else {
                    // A source that cannot be shared: hashed here.
                    let result = match slot.sources.first() {
                        Some(source) => digest(&**source, start, len),
                        None => Err("no source".into()),
                    };
                    return self.on_checksum(id, (start, len), result);
                };
                let mailbox = self.mailbox.clone();
                let spawned = std::thread::Builder::new()
                    .name("uploadtask-sha1".into())
                    .spawn(move || {
                        let result = digest(&*source, start, len);
                        let _ = mailbox.send(Command::Checksum {
                            id,
                            piece: (start, len),
                            result,
                        });
                    });
                if let Err(e) = spawned {
                    let error = UploadError::new(ErrorKind::ResourceExhausted, format!("cannot start a thread: {e}"));
                    return self.finish(key, Err(error));
                }
                self.schedule(key);
            }
        }
    }

    /// A piece's checksum arrived: the request goes (now, or when its wait ends).
    pub(super) fn on_checksum(&mut self, id: UploadId, piece: (u64, u64), result: Result<String, String>) {
        let Some(key) = self.uploads.key_of(id) else { return };
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(plan) = slot.plan.as_mut() else { return };
        let value = match result {
            Ok(value) => value,
            Err(message) => {
                let error = UploadError::new(
                    ErrorKind::File,
                    format!("cannot read the file for its checksum: {message}"),
                );
                return self.finish(key, Err(error));
            }
        };
        let at = plan.resumable.as_mut().and_then(|r| r.resume_at.take());
        if let Some(resume) = plan.resumable.as_mut() {
            resume.checksum = Some((piece, value));
        }
        self.resume_next(key, None, at);
    }
}

fn digest(source: &dyn crate::source::BodySource, start: u64, len: u64) -> Result<String, String> {
    sha1_of(source, start, len)
        .map(|d| tus_checksum(&d))
        .map_err(|e| e.to_string())
}
