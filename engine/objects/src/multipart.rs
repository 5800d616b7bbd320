//! An S3 multipart upload, decided without I/O: which request goes next
//! (create the upload, list the parts a store already has, send parts,
//! complete, or abort) and what each answer means. The runner
//! ([`crate::run`]) sends [`Session::poll_step`]'s steps, several parts at
//! once, and reports back with [`Session::handle_answer`] and
//! [`Session::handle_failure`].
//!
//! ```text
//!  Create ──200 + UploadId──► Parts          (resume: List first)
//!  List ──200──► Parts, skipping those the store has whole (paged)
//!       ──404 NoSuchUpload──► Create
//!  Parts: up to `parallel` in flight, each answered 200 + ETag
//!       part ──500, 503, a failure the engine's retries did not fix──► the part again (bounded)
//!       part ──404 NoSuchUpload (the upload expired)──► Create, every part again (once)
//!       part ──other status──► Abort ──► that answer is the outcome
//!  all parts in ──► Complete (ETags in order) ──200, no <Error>──► Done
//!                  ──5xx, or 200 with <Error> (S3 answers so)──► Complete again (bounded)
//!  cancel, final failure ──► Abort (DELETE) ──► Failed
//! ```
//!
//! A success is only ever a `200` answer to CompleteMultipartUpload whose
//! body is not an error.
//!
//! ```
//! use uploadtask_objects::multipart::{Session, Step};
//! use uploadtask_objects::plan::Plan;
//!
//! let plan = Plan::new(12 << 20, Some(5 << 20)).unwrap(); // 3 parts
//! let mut session = Session::new(plan, 2, None);
//! assert_eq!(session.poll_step(), Some(Step::Create));
//! assert_eq!(session.poll_step(), None); // waits for the answer
//! let created = b"<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>";
//! session.handle_answer(&Step::Create, 200, None, created);
//! let first = session.poll_step().unwrap();
//! let second = session.poll_step().unwrap();
//! assert_eq!(session.poll_step(), None); // two in flight
//! session.handle_answer(&first, 200, Some("\"e1\""), b"");
//! session.handle_answer(&second, 200, Some("\"e2\""), b"");
//! let third = session.poll_step().unwrap();
//! session.handle_answer(&third, 200, Some("\"e3\""), b"");
//! let Some(Step::Complete) = session.poll_step() else { panic!() };
//! assert!(session.complete_body().contains("<PartNumber>3</PartNumber><ETag>\"e3\"</ETag>"));
//! session.handle_answer(&Step::Complete, 200, None, b"<CompleteMultipartUploadResult/>");
//! assert!(matches!(session.poll_outcome(), Some(uploadtask_objects::multipart::Outcome::Completed(_))));
//! ```

use std::collections::VecDeque;

use crate::plan::Plan;
use crate::xml;

/// Attempts of one part before the upload fails (the engine's own
/// retries run inside each).
pub const PART_ATTEMPTS: u32 = 5;
/// Attempts of CompleteMultipartUpload.
pub const COMPLETE_ATTEMPTS: u32 = 3;

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// CreateMultipartUpload: `POST ?uploads`.
    Create,
    /// ListParts: `GET ?uploadId=…&part-number-marker=…`.
    List {
        /// Parts after this number.
        marker: u32,
    },
    /// UploadPart: `PUT ?partNumber=…&uploadId=…` with the file's window.
    Part {
        /// From 1.
        number: u32,
        /// The window of the file.
        start: u64,
        /// Its length.
        len: u64,
    },
    /// CompleteMultipartUpload: `POST ?uploadId=…` with
    /// [`Session::complete_body`].
    Complete,
    /// AbortMultipartUpload: `DELETE ?uploadId=…`.
    Abort,
}

/// How the upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// CompleteMultipartUpload answered 200 with no error: its body.
    Completed(Vec<u8>),
    /// The store refused a request (403, 400, …): that answer's status and
    /// body (S3's error document). The upload was aborted.
    Refused {
        /// Status code.
        status: u16,
        /// The error document.
        body: Vec<u8>,
    },
    /// A request failed for good (the network, the file), or the upload
    /// was cancelled: why. The upload was aborted.
    Failed(String),
    /// Cancelled ([`Session::handle_cancel`]); the upload was aborted.
    Cancelled,
}

#[derive(Debug, Clone, Default)]
struct Part {
    etag: Option<String>,
    checksum: Option<String>,
    in_flight: bool,
    attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    List,
    Parts,
    Complete,
    Abort,
    Done,
}

/// One multipart upload; see the module doc.
#[derive(Debug)]
pub struct Session {
    plan: Plan,
    parallel: usize,
    upload_id: Option<String>,
    parts: Vec<Part>,
    phase: Phase,
    /// A request of the phase is under way (Create, List, Complete, Abort).
    waiting: bool,
    list_marker: u32,
    /// Parts to send, in order.
    queue: VecDeque<u32>,
    complete_attempts: u32,
    recreated: bool,
    /// What ends the upload once the abort is answered.
    ending: Option<Outcome>,
    outcome: Option<Outcome>,
}

impl Session {
    /// An upload of `plan`'s parts, `parallel` at once; `resume` is an
    /// upload id kept from an earlier run (its parts are listed first).
    pub fn new(plan: Plan, parallel: usize, resume: Option<String>) -> Session {
        let count = plan.parts() as usize;
        let phase = if resume.is_some() { Phase::List } else { Phase::Create };
        Session {
            plan,
            parallel: parallel.max(1),
            upload_id: resume,
            parts: vec![Part::default(); count],
            phase,
            waiting: false,
            list_marker: 0,
            queue: (1..=count as u32).collect(),
            complete_attempts: 0,
            recreated: false,
            ending: None,
            outcome: None,
        }
    }

    /// The store's id of the upload, once created (or resumed).
    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    /// True once the parts go (the upload exists and its kept parts are
    /// known).
    pub fn is_sending(&self) -> bool {
        matches!(self.phase, Phase::Parts | Phase::Complete)
    }

    /// True when the store has part `number` whole.
    pub fn has_part(&self, number: u32) -> bool {
        self.parts.get(number as usize - 1).is_some_and(|p| p.etag.is_some())
    }

    /// The checksum of part `number`, once set.
    pub fn checksum(&self, number: u32) -> Option<&str> {
        self.parts.get(number as usize - 1).and_then(|p| p.checksum.as_deref())
    }

    /// Parts the store has whole, and their bytes.
    pub fn done(&self) -> (u32, u64) {
        let mut bytes = 0;
        let mut count = 0;
        for (i, part) in self.parts.iter().enumerate() {
            if part.etag.is_some() {
                count += 1;
                bytes += self.plan.window(i as u32 + 1).1;
            }
        }
        (count, bytes)
    }

    /// The next request to send now; `None` while the answers it needs
    /// are awaited, and once the upload is over.
    pub fn poll_step(&mut self) -> Option<Step> {
        if self.waiting {
            return None;
        }
        let step = match self.phase {
            Phase::Create => Step::Create,
            Phase::List => Step::List {
                marker: self.list_marker,
            },
            Phase::Complete => {
                self.complete_attempts += 1;
                Step::Complete
            }
            Phase::Abort => Step::Abort,
            Phase::Done => return None,
            Phase::Parts => {
                let in_flight = self.parts.iter().filter(|p| p.in_flight).count();
                if in_flight >= self.parallel {
                    return None;
                }
                let number = self.queue.pop_front()?;
                let part = &mut self.parts[number as usize - 1];
                part.in_flight = true;
                part.attempts += 1;
                let (start, len) = self.plan.window(number);
                return Some(Step::Part { number, start, len });
            }
        };
        self.waiting = true;
        Some(step)
    }

    /// How the upload ended, once it has.
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    /// The CompleteMultipartUpload body: every part's number and ETag (and
    /// checksum), in order.
    pub fn complete_body(&self) -> String {
        let mut body = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (i, part) in self.parts.iter().enumerate() {
            let etag = part.etag.as_deref().unwrap_or_default();
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>",
                i + 1,
                xml::escape(etag)
            ));
            if let Some(checksum) = &part.checksum {
                body.push_str(&format!("<ChecksumCRC32C>{}</ChecksumCRC32C>", xml::escape(checksum)));
            }
            body.push_str("</Part>");
        }
        body.push_str("</CompleteMultipartUpload>");
        body
    }

    /// The checksum sent with part `number` (base64 CRC32C), for the
    /// completion.
    pub fn set_checksum(&mut self, number: u32, checksum: String) {
        if let Some(part) = self.parts.get_mut(number as usize - 1) {
            part.checksum = Some(checksum);
        }
    }

    /// `step` was answered: its status, the `ETag` header (parts) and body.
    pub fn handle_answer(&mut self, step: &Step, status: u16, etag: Option<&str>, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        let ok = (200..300).contains(&status);
        let no_such_upload = status == 404 && xml::error(&text).is_some_and(|(code, _)| code == "NoSuchUpload");
        match step {
            Step::Create => {
                self.waiting = false;
                let id = xml::first(&text, "UploadId").filter(|_| ok).filter(|id| !id.is_empty());
                if let Some(ending) = self.ending.take() {
                    self.upload_id = id;
                    return self.fail_with(ending);
                }
                match id {
                    Some(id) => {
                        self.upload_id = Some(id);
                        self.phase = Phase::Parts;
                    }
                    None if ok => self.finish(Outcome::Failed(
                        "CreateMultipartUpload answered without an UploadId".into(),
                    )),
                    None => self.finish(Outcome::Refused {
                        status,
                        body: body.to_vec(),
                    }),
                }
            }
            Step::List { .. } => {
                self.waiting = false;
                if no_such_upload {
                    // The kept upload is gone (completed, aborted, expired).
                    self.upload_id = None;
                    self.phase = Phase::Create;
                    return;
                }
                if !ok {
                    return self.fail_with(Outcome::Refused {
                        status,
                        body: body.to_vec(),
                    });
                }
                self.take_listed(&text);
                let truncated = xml::first(&text, "IsTruncated").is_some_and(|t| t == "true");
                let next = xml::first(&text, "NextPartNumberMarker").and_then(|m| m.parse::<u32>().ok());
                match next.filter(|&m| truncated && m > self.list_marker) {
                    Some(marker) => self.list_marker = marker,
                    None => {
                        let parts = &self.parts;
                        self.queue.retain(|&n| parts[n as usize - 1].etag.is_none());
                        self.phase = Phase::Parts;
                        self.check_parts_done();
                    }
                }
            }
            Step::Part { number, .. } => {
                let Some(part) = self.parts.get_mut(*number as usize - 1) else {
                    return;
                };
                if !part.in_flight || self.phase != Phase::Parts {
                    return; // an answer after the upload moved on
                }
                part.in_flight = false;
                match etag.filter(|_| ok) {
                    Some(etag) => {
                        part.etag = Some(etag.to_string());
                        self.check_parts_done();
                    }
                    None if ok => self.fail_with(Outcome::Failed(format!("part {number} answered without an ETag"))),
                    None if no_such_upload && !self.recreated => {
                        // The upload expired under us: once, from scratch.
                        self.recreated = true;
                        self.upload_id = None;
                        self.reset_parts();
                        self.phase = Phase::Create;
                    }
                    None if matches!(status, 500 | 503) && part.attempts < PART_ATTEMPTS => {
                        self.queue.push_front(*number);
                    }
                    None => self.fail_with(Outcome::Refused {
                        status,
                        body: body.to_vec(),
                    }),
                }
            }
            Step::Complete => {
                self.waiting = false;
                let error = xml::error(&text);
                if ok && error.is_none() {
                    return self.finish(Outcome::Completed(body.to_vec()));
                }
                let retry = status >= 500
                    || (ok
                        && error
                            .as_ref()
                            .is_some_and(|(code, _)| code.contains("Internal") || code == "SlowDown"));
                if retry && self.complete_attempts < COMPLETE_ATTEMPTS {
                    return; // Complete again
                }
                let status = if ok { 500 } else { status };
                self.fail_with(Outcome::Refused {
                    status,
                    body: body.to_vec(),
                })
            }
            Step::Abort => self.end_abort(),
        }
    }

    /// `step` failed without an answer (the engine's retries included):
    /// `why`.
    pub fn handle_failure(&mut self, step: &Step, why: &str) {
        match step {
            Step::Part { number, .. } => {
                let Some(part) = self.parts.get_mut(*number as usize - 1) else {
                    return;
                };
                if !part.in_flight || self.phase != Phase::Parts {
                    return;
                }
                part.in_flight = false;
                if part.attempts < PART_ATTEMPTS {
                    self.queue.push_front(*number);
                } else {
                    self.fail_with(Outcome::Failed(format!("part {number}: {why}")));
                }
            }
            Step::Complete if self.complete_attempts < COMPLETE_ATTEMPTS => self.waiting = false,
            Step::Abort => self.end_abort(),
            _ => {
                self.waiting = false;
                self.fail_with(Outcome::Failed(why.to_string()));
            }
        }
    }

    /// The upload is cancelled: parts in flight are forgotten (the runner
    /// aborts them), and the store is told to drop the upload.
    pub fn handle_cancel(&mut self) {
        if matches!(self.phase, Phase::Abort | Phase::Done) {
            return;
        }
        if self.phase == Phase::Create && self.waiting {
            // The creation under way may still make an upload: it is
            // aborted once its answer names it.
            self.ending = Some(Outcome::Cancelled);
            return;
        }
        self.fail_with(Outcome::Cancelled);
    }

    /// True while part `number` is awaited; a runner stops the requests
    /// of parts that are not (after a failure, a cancel, a new upload).
    pub fn is_in_flight(&self, number: u32) -> bool {
        self.parts
            .get((number as usize).wrapping_sub(1))
            .is_some_and(|p| p.in_flight)
    }

    /// The parts awaited now.
    pub fn in_flight(&self) -> impl Iterator<Item = u32> + '_ {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.in_flight)
            .map(|(i, _)| i as u32 + 1)
    }

    fn take_listed(&mut self, text: &str) {
        for listed in xml::all(text, "Part") {
            let number = xml::first(&listed, "PartNumber").and_then(|n| n.parse::<u32>().ok());
            let size = xml::first(&listed, "Size").and_then(|n| n.parse::<u64>().ok());
            let etag = xml::first(&listed, "ETag");
            let (Some(number), Some(size), Some(etag)) = (number, size, etag) else {
                continue;
            };
            if number == 0 || number > self.plan.parts() || size != self.plan.window(number).1 {
                continue; // not a part of this plan: sent again
            }
            let part = &mut self.parts[number as usize - 1];
            part.etag = Some(etag);
            part.checksum = xml::first(&listed, "ChecksumCRC32C");
        }
    }

    fn check_parts_done(&mut self) {
        if self.phase == Phase::Parts && self.parts.iter().all(|p| p.etag.is_some()) {
            self.phase = Phase::Complete;
            self.complete_attempts = 0;
        }
    }

    fn reset_parts(&mut self) {
        for part in &mut self.parts {
            *part = Part::default();
        }
        self.queue = (1..=self.plan.parts()).collect();
    }

    /// Ends through an abort of the store's upload, when there is one.
    fn fail_with(&mut self, outcome: Outcome) {
        for part in &mut self.parts {
            part.in_flight = false;
        }
        self.queue.clear();
        if self.upload_id.is_some() {
            self.ending = Some(outcome);
            self.phase = Phase::Abort;
            self.waiting = false;
        } else {
            self.finish(outcome);
        }
    }

    fn end_abort(&mut self) {
        self.waiting = false;
        self.upload_id = None;
        let outcome = self.ending.take().unwrap_or(Outcome::Cancelled);
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        self.phase = Phase::Done;
        self.waiting = false;
        self.outcome = Some(outcome);
    }
}

#[cfg(test)]
mod tests;
