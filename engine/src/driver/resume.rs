//! Performs a resumable upload's steps; [`crate::proto::resumable`] decides them
//! (through the upload's transfer).
//! Each request is an exchange of the same upload (one slot, one place in
//! flight, one overall deadline); progress counts toward the whole body
//! and never goes back. A piece's `sha1` (tus checksum) is computed on a
//! thread of its own, never on the loop.

use std::time::Instant;

use super::Command;
use super::{deliver, Key, Loop};
use crate::error::{ErrorKind, UploadError};
use crate::events::{Event, UploadId};
use crate::io::source::{sha1_of, BodySource};
use crate::proto::resumable::tus_checksum;
use crate::proto::transfer::{Next, Step};

impl Loop {
    /// A `104` showed that the request under way cannot go on: its
    /// connection is closed, then the session's next step goes (or the
    /// upload fails).
    pub(super) fn resume_interrupted(&mut self, key: Key, next: Next) {
        self.drop_conn(key);
        match next {
            Next::Finish(outcome) => self.finish(key, outcome),
            _ => self.resume_next(key, None, None),
        }
    }

    /// Sends the session's next request, at `at` (after a wait) or now;
    /// first the piece's checksum when the protocol asks for one.
    pub(super) fn resume_next(&mut self, key: Key, keep: Option<Option<u32>>, at: Option<Instant>) {
        self.leave_conn(key, keep);
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        let Some(transfer) = slot.transfer.as_mut() else { return };
        transfer.retry_at = at.filter(|&at| at > now);
        let waits = transfer.retry_at.is_some();
        match transfer.resume_step(slot.exchange.as_ref(), self.config.limits, &self.proxies) {
            Err(error) => self.finish(key, Err(error)),
            Ok(Step::Ready(target, mut exchange)) => {
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
            Ok(Step::NeedsChecksum(start, len)) => {
                // No timer may start the last exchange again meanwhile.
                let at = transfer.retry_at.take();
                if let Some(resume) = transfer.resumable.as_mut() {
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
        let Some(transfer) = slot.transfer.as_mut() else { return };
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
        let at = transfer.resumable.as_mut().and_then(|r| r.resume_at.take());
        if let Some(resume) = transfer.resumable.as_mut() {
            resume.checksum = Some((piece, value));
        }
        self.resume_next(key, None, at);
    }
}

fn digest(source: &dyn BodySource, start: u64, len: u64) -> Result<String, String> {
    sha1_of(source, start, len)
        .map(|d| tus_checksum(&d))
        .map_err(|e| e.to_string())
}
