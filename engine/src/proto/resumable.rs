//! Resumable uploads, decided without I/O: which request goes next (create
//! the upload resource, learn its offset, append a piece) and what a
//! response or a failure means. The driver sends [`Session::poll_step`]'s
//! request, reports back with `handle_*`, and performs the [`Next`] it gets.
//!
//! Two protocols:
//! - **tus 1.0.0** (tus.io): core, creation, creation-with-upload, checksum
//!   (`sha1`), expiration (read), termination (the facade sends `DELETE`).
//! - **Resumable Uploads for HTTP**, draft-ietf-httpbis-resumable-upload
//!   (-09 to -12 and the editor's copy that keeps interop version 8): sends
//!   interop version 8 ([`IETF_INTEROP_VERSION`]) and recognises a `104` of
//!   versions 7 and 8 ([`IETF_INTEROP_VERSIONS`]), whose wire format is the
//!   same for a client.
//!
//! ```text
//!  Create ──2xx + Location──────────────► Append(offset)   (ietf: 2xx + Upload-Complete: ?1 ──► Done)
//!    ietf, chunked: careful, an empty creation first (a server that ignores
//!    the protocol never stores a piece as the whole upload)
//!    ietf ──refused (400/412 with no 104 before it, no Location to a
//!           careful creation)──► Plain (the whole body, no protocol) ──► Done
//!    ietf ──a tus answer (tusd refusing the version)──► Fail, saying so
//!  Probe (HEAD) ──2xx + Upload-Offset───► Append(offset)
//!        tus: all there ──► Done; ietf Upload-Complete: ?1 ──► Fail (answer lost)
//!  Append ──2xx, more to send──────────► Append(next piece)
//!         ──2xx, tus offset = length / ietf Upload-Complete: ?1──► Done
//!         ──409──► Probe (ietf: the 409's Upload-Offset ──► Append)
//!         ──460 (tus checksum mismatch)──► Append (the same piece again)
//!         ──413 (ietf, resource known)──► Probe, smaller pieces
//!  ietf: any answer with Upload-Complete: ?1 ──► Done (an error status is
//!        the server's error: resuming would not resolve it)
//!  Probe, Append ──404, 410──► tus: Create from byte 0 (once);
//!        ietf: 404 ──► Fail (not sent again); 410 (completed-upload) ──► Done
//!  ietf: limits the upload breaks (a 104's max-size) ──► Cancel (DELETE) ──► Fail
//!  any ──failure, 5xx, 408, 423, 429──► Recover: after the retry policy's wait,
//!        Probe when the resource is known (ietf: a 104 names it early), else Create
//!  any ──other status──► Done (that response is the outcome)
//! ```
//!
//! A success is only ever a final `2xx` answer to the request that completed
//! the upload (tus: an answer saying the server has every byte).
//!
//! An advancing offset is progress: the driver resets its attempt count.
//! Answers that never advance (409, 460) are bounded by [`MAX_STALLS`].
//!
//! ```
//! use uploadtask_engine::resumable::{Next, Protocol, Resumable, Session};
//! use uploadtask_http1::Headers;
//!
//! let config = Resumable { chunk_size: Some(4), ..Resumable::new(Protocol::Tus) };
//! let mut session = Session::new(config, "http://127.0.0.1:1080/files/", 6, &[]);
//! assert_eq!(session.poll_step().method, "POST");
//! let created: Headers = [("Location", "/files/abc")].into_iter().collect();
//! assert_eq!(session.handle_response(201, &created), Next::Send);
//! let step = session.poll_step();
//! assert_eq!((step.method, step.url.as_str(), step.start, step.len), ("PATCH", "http://127.0.0.1:1080/files/abc", 0, 4));
//! let moved: Headers = [("Upload-Offset", "4")].into_iter().collect();
//! assert_eq!(session.handle_response(204, &moved), Next::Send);
//! assert_eq!((session.poll_step().start, session.poll_step().len), (4, 2));
//! let done: Headers = [("Upload-Offset", "6")].into_iter().collect();
//! assert_eq!(session.handle_response(204, &done), Next::Done);
//! ```

use uploadtask_http1::Headers;

use crate::error::{ErrorKind, UploadError};

/// The tus protocol version sent in `Tus-Resumable`.
pub const TUS_VERSION: &str = "1.0.0";
/// The interop version sent in `Upload-Draft-Interop-Version`: the newest
/// this client implements.
pub const IETF_INTEROP_VERSION: &str = "8";
/// Interop versions whose `104` is recognised (a `104` with another, or
/// none, is ignored, as the draft says).
pub const IETF_INTEROP_VERSIONS: [&str; 2] = ["7", "8"];
/// Answers in a row that move nothing (409, 460) before the upload fails.
pub const MAX_STALLS: u32 = 5;

/// The resumable protocol an upload speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// tus 1.0.0.
    Tus,
    /// draft-ietf-httpbis-resumable-upload-12 (interop version 8).
    Ietf,
    /// Google Cloud Storage resumable uploads: a `POST` with
    /// `x-goog-resumable: start` (the XML API; the JSON API's
    /// `?uploadType=resumable` endpoint takes it too) names a session URI
    /// in `Location`; pieces go by `PUT` with `Content-Range: bytes
    /// S-E/TOTAL`, answered `308` with `Range: bytes=0-N` until the last;
    /// `Content-Range: bytes */TOTAL` asks the offset.
    Gcs,
}

/// How an upload is made resumable ([`crate::request::UploadRequest::resumable`]).
/// The request's URL is the endpoint that creates upload resources; its
/// body is its one raw source, sent in pieces from any offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    /// The protocol.
    pub protocol: Protocol,
    /// The upload resource of an earlier run, to continue (from a store).
    pub upload_url: Option<String>,
    /// Most body bytes per request; `None` sends the rest in one request.
    pub chunk_size: Option<u64>,
    /// tus checksum extension: each append carries `Upload-Checksum: sha1 …`.
    pub checksum: bool,
    /// tus creation-with-upload: the first piece rides on the creation `POST`.
    pub creation_with_upload: bool,
    /// `filename`, `filetype` and other pairs: tus `Upload-Metadata`; for
    /// ietf, `filename` becomes `Content-Disposition` and `filetype`
    /// `Content-Type` of the creation request.
    pub metadata: Vec<(String, String)>,
}

impl Resumable {
    /// Whole-body requests, no checksum, no metadata.
    pub fn new(protocol: Protocol) -> Self {
        Resumable {
            protocol,
            upload_url: None,
            chunk_size: None,
            checksum: false,
            creation_with_upload: false,
            metadata: Vec::new(),
        }
    }
}

/// One request to send: `len` body bytes of the source from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `POST` (or the upload's method) to create, `HEAD`, `PATCH`.
    pub method: &'static str,
    /// The endpoint or the upload resource.
    pub url: String,
    /// Protocol headers, then the user's (content headers only on creation).
    pub headers: Vec<(String, String)>,
    /// First body byte, as an offset in the source.
    pub start: u64,
    /// Body bytes.
    pub len: u64,
    /// Add `Upload-Checksum: sha1 <base64>` of the piece.
    pub checksum: bool,
    /// Report `104` interim heads to [`Session::handle_interim`].
    pub interim: bool,
}

/// What the driver does after a response or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send [`Session::poll_step`] now.
    Send,
    /// A failure worth another try: ask the retry policy (with this status,
    /// or as a network failure when `None`), wait, then send
    /// [`Session::poll_step`].
    Recover(Option<u16>),
    /// The last response is the outcome.
    Done,
    /// The upload fails.
    Fail(UploadError),
    /// Stop the request under way (close its connection), then send
    /// [`Session::poll_step`] (a `104` showed it cannot go on as it is).
    Interrupt,
}

/// A final answer to the request in flight, as [`Session::handle_answer`]
/// reads it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: &'a Headers,
    /// The wall clock, seconds since the Unix epoch (`max-age` becomes a
    /// date for the store).
    pub unix_time: u64,
}

/// A change of the known upload resource, for the embedder's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlChange {
    /// The server created (or named) the upload resource.
    Learned(String),
    /// The server no longer has it (404, 410).
    Forgotten,
    /// tus `Upload-Expires`: when the server drops the resource (an
    /// HTTP-date, verbatim), so that a store stops offering it after.
    Expires(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Create,
    Probe,
    Append,
    /// `DELETE` of the resource, then the upload fails with `failure`.
    Cancel,
    /// The server does not speak the protocol: the whole body as a plain
    /// request to the endpoint.
    Plain,
}

/// One resumable upload's protocol state; see the module doc.
#[derive(Debug)]
pub struct Session {
    config: Resumable,
    endpoint: String,
    method: &'static str,
    user_headers: Vec<(String, String)>,
    url: Option<String>,
    length: u64,
    offset: u64,
    chunk: u64,
    state: State,
    /// Body bytes of the request in flight.
    sent_len: u64,
    stalls: u32,
    recreated: bool,
    advanced: bool,
    url_changes: std::collections::VecDeque<UrlChange>,
    /// `Upload-Expires` (tus) as last seen, verbatim, or the date a `max-age`
    /// (ietf) ends at.
    expires: Option<String>,
    /// ietf: the creation sends no body (careful: chunked uploads).
    careful: bool,
    /// ietf: the `Location` a `104` gave for the creation request.
    interim_location: Option<String>,
    /// Smallest piece the server takes (but the last).
    min_append: u64,
    /// Why the upload fails once the `DELETE` of [`State::Cancel`] is done.
    failure: Option<UploadError>,
}

impl Session {
    /// A session for `length` body bytes to `endpoint`, with the user's
    /// headers (sent on every request but content headers, which only the
    /// creation request carries).
    pub fn new(config: Resumable, endpoint: &str, length: u64, user_headers: &[(String, String)]) -> Self {
        let state = if config.upload_url.is_some() {
            State::Probe
        } else {
            State::Create
        };
        let chunk = config.chunk_size.filter(|&c| c > 0).unwrap_or(u64::MAX);
        Session {
            careful: config.protocol == Protocol::Ietf && chunk < length,
            interim_location: None,
            min_append: 0,
            failure: None,
            chunk,
            url: config.upload_url.clone(),
            config,
            endpoint: endpoint.to_string(),
            method: "POST",
            user_headers: user_headers.to_vec(),
            length,
            offset: 0,
            state,
            sent_len: 0,
            stalls: 0,
            recreated: false,
            advanced: false,
            url_changes: std::collections::VecDeque::new(),
            expires: None,
        }
    }

    /// Creates with `method` (`POST` by default; ietf allows `PUT` and
    /// `PATCH`; tus creation is always `POST`).
    pub fn set_method(&mut self, method: &'static str) {
        if self.config.protocol == Protocol::Ietf {
            self.method = method;
        }
    }

    /// The offset the server has (as last learned).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The upload resource, once known.
    pub fn upload_url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// When the server drops the upload resource, as it said (`Upload-Expires`
    /// or `Upload-Limit: max-age`), verbatim.
    pub fn expires(&self) -> Option<&str> {
        self.expires.as_deref()
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        self.config.protocol
    }

    /// True once after the server's offset moved forward (progress: the
    /// driver starts counting attempts afresh).
    pub fn take_advanced(&mut self) -> bool {
        std::mem::take(&mut self.advanced)
    }

    /// The next change of the upload resource to report, once each.
    pub fn poll_url_change(&mut self) -> Option<UrlChange> {
        self.url_changes.pop_front()
    }

    /// The request to send now.
    pub fn poll_step(&self) -> Step {
        let tus = self.config.protocol == Protocol::Tus;
        if self.state == State::Plain {
            let mut headers = self.user_headers.clone();
            self.content_headers(&mut headers);
            return Step {
                method: self.method,
                url: self.endpoint.clone(),
                headers,
                start: 0,
                len: self.length,
                checksum: false,
                interim: false,
            };
        }
        let mut headers = Vec::with_capacity(6 + self.user_headers.len());
        match self.config.protocol {
            Protocol::Tus => headers.push(("Tus-Resumable".to_string(), TUS_VERSION.to_string())),
            Protocol::Ietf => headers.push((
                "Upload-Draft-Interop-Version".to_string(),
                IETF_INTEROP_VERSION.to_string(),
            )),
            Protocol::Gcs => {}
        }
        let gcs = self.config.protocol == Protocol::Gcs;
        let url = self.url.clone().unwrap_or_else(|| self.endpoint.clone());
        let piece = |from: u64| self.chunk.min(self.length - from.min(self.length));
        let (method, start, len, creation) = match self.state {
            State::Create => {
                let empty = match self.config.protocol {
                    Protocol::Tus => !self.config.creation_with_upload,
                    Protocol::Ietf => self.careful,
                    // The session starts empty; the pieces follow.
                    Protocol::Gcs => true,
                };
                let len = if empty { 0 } else { piece(0) };
                (self.method, 0, len, true)
            }
            State::Probe if gcs => ("PUT", self.offset, 0, false),
            State::Probe => ("HEAD", self.offset, 0, false),
            State::Append if gcs => ("PUT", self.offset, piece(self.offset), false),
            State::Append => ("PATCH", self.offset, piece(self.offset), false),
            State::Cancel | State::Plain => ("DELETE", self.offset, 0, false),
        };
        let complete = start + len == self.length;
        match (self.config.protocol, self.state) {
            (Protocol::Tus, State::Create) => {
                headers.push(("Upload-Length".into(), self.length.to_string()));
                let metadata = tus_metadata(&self.config.metadata);
                if !metadata.is_empty() {
                    headers.push(("Upload-Metadata".into(), metadata));
                }
                if len > 0 {
                    headers.push(("Content-Type".into(), "application/offset+octet-stream".into()));
                }
            }
            (Protocol::Tus, State::Append) => {
                headers.push(("Upload-Offset".into(), start.to_string()));
                headers.push(("Content-Type".into(), "application/offset+octet-stream".into()));
            }
            (Protocol::Ietf, State::Create) => {
                headers.push(("Upload-Complete".into(), sf_bool(complete).into()));
                headers.push(("Upload-Length".into(), self.length.to_string()));
                self.content_headers(&mut headers);
            }
            (Protocol::Ietf, State::Append) => {
                headers.push(("Upload-Offset".into(), start.to_string()));
                headers.push(("Upload-Complete".into(), sf_bool(complete).into()));
                headers.push(("Content-Type".into(), "application/partial-upload".into()));
            }
            (Protocol::Gcs, State::Create) => {
                headers.push(("x-goog-resumable".into(), "start".into()));
                headers.push(("X-Upload-Content-Length".into(), self.length.to_string()));
                self.content_headers(&mut headers);
            }
            (Protocol::Gcs, State::Append) if len > 0 => {
                let range = format!("bytes {start}-{}/{}", start + len - 1, self.length);
                headers.push(("Content-Range".into(), range));
            }
            (Protocol::Gcs, State::Append | State::Probe) => {
                headers.push(("Content-Range".into(), format!("bytes */{}", self.length)));
            }
            (_, State::Probe | State::Cancel | State::Plain) => {}
        }
        for (name, value) in &self.user_headers {
            if creation || !is_content_header(name) {
                headers.push((name.clone(), value.clone()));
            }
        }
        Step {
            method,
            url,
            headers,
            start,
            len,
            // The checksum extension covers appends (`PATCH`).
            checksum: tus && self.config.checksum && len > 0 && self.state == State::Append,
            interim: !tus && matches!(self.state, State::Create | State::Append),
        }
    }

    /// ietf creation and the plain fallback: `filetype` as `Content-Type`
    /// (unless the user gave one), `filename` as `Content-Disposition`.
    fn content_headers(&self, headers: &mut Vec<(String, String)>) {
        for (name, value) in &self.config.metadata {
            match name.as_str() {
                "filetype" if !has_header(&self.user_headers, "content-type") => {
                    headers.push(("Content-Type".into(), value.clone()))
                }
                "filename" => headers.push(("Content-Disposition".into(), inline_disposition(value))),
                _ => {}
            }
        }
    }

    /// The request now sent carries `len` body bytes (`poll_step`'s).
    pub fn handle_sent(&mut self, step: &Step) {
        self.sent_len = step.len;
    }

    /// A `1xx` head of the request in flight: an ietf `104` of a recognised
    /// interop version names the upload resource (and may limit it) or says
    /// how far the server got. `Some` when the request cannot go on: a limit
    /// it breaks, or a `Location` other than an earlier one.
    pub fn handle_interim(&mut self, status: u16, headers: &Headers) -> Option<Next> {
        if status != 104 || self.config.protocol != Protocol::Ietf {
            return None;
        }
        let version = header(headers, "upload-draft-interop-version").map(str::trim);
        if !version.is_some_and(|v| IETF_INTEROP_VERSIONS.contains(&v)) {
            return None; // another draft's server: ignored, as the draft says
        }
        if self.state == State::Create {
            if let Some(location) = header(headers, "location") {
                let location = self.resolve(location);
                match &self.interim_location {
                    Some(earlier) if Some(earlier) != location.as_ref() => {
                        return Some(self.cancel("the 104 responses name different upload resources"));
                    }
                    _ => {}
                }
                if let Some(location) = location {
                    self.interim_location = Some(location.clone());
                    self.learn(location);
                }
            }
        }
        match self.apply_limits(headers, 0)? {
            // A piece larger than the server now takes: stop and go on in
            // smaller ones from the server's offset.
            Next::Send if self.url.is_some() => {
                self.state = State::Probe;
                Some(Next::Interrupt)
            }
            Next::Send => None,
            next => Some(next),
        }
    }

    /// The final response to the request in flight, with no body known and
    /// the whole request body sent (see [`Session::handle_answer`]).
    pub fn handle_response(&mut self, status: u16, headers: &Headers) -> Next {
        self.handle_answer(&Answer {
            status,
            headers,
            unix_time: 0,
        })
    }

    /// The final answer to the request in flight.
    pub fn handle_answer(&mut self, answer: &Answer<'_>) -> Next {
        let expires = header(answer.headers, "upload-expires").map(str::to_string);
        let next = self.decide(answer);
        if let Some(expires) = expires.filter(|e| self.expires.as_ref() != Some(e)) {
            self.expires = Some(expires.clone());
            if self.url.is_some() {
                self.url_changes.push_back(UrlChange::Expires(expires));
            }
        }
        next
    }

    fn decide(&mut self, answer: &Answer<'_>) -> Next {
        let (status, headers) = (answer.status, answer.headers);
        match self.state {
            State::Cancel => return Next::Fail(self.failure.take().unwrap_or_else(|| protocol_error("cancelled"))),
            State::Plain => return plain_outcome(status),
            _ => {}
        }
        if self.config.protocol == Protocol::Gcs {
            return self.decide_gcs(answer);
        }
        let ietf = self.config.protocol == Protocol::Ietf;
        if let Some(tus) = header(headers, "tus-resumable").filter(|_| ietf) {
            // tusd answers a draft version it does not speak as plain tus.
            return fail(&format!(
                "the server speaks tus {} and refused IETF resumable uploads (interop version \
                 {IETF_INTEROP_VERSION}, status {status}); upload with the tus protocol",
                tus.trim()
            ));
        }
        if ietf && self.refuses_the_protocol(answer) {
            return self.go_plain();
        }
        match self.apply_limits(headers, answer.unix_time) {
            // A final answer: the piece is over; the next ones are smaller.
            None | Some(Next::Send) => {}
            Some(next) => return next,
        }
        let complete_said = header(headers, "upload-complete").map(str::trim) == Some("?1");
        if ietf && complete_said && self.state != State::Probe {
            // The server processed the whole upload: its answer, whatever
            // the status, is the outcome (resuming would not resolve an
            // error), but a success only to the request that sent the end.
            let sent_the_end = self.offset + self.sent_len == self.length && !self.careful_creation();
            if (200..300).contains(&status) && !sent_the_end {
                return fail("the server said the upload is complete before it got the whole body");
            }
            return Next::Done;
        }
        match (status, self.state) {
            (200..=299, State::Create) => self.created(answer),
            (200..=299, State::Probe) => {
                let Some(offset) = header(headers, "upload-offset").and_then(parse_offset) else {
                    return fail("the server's offset answer has no valid Upload-Offset");
                };
                if ietf && complete_said {
                    return fail(
                        "the server has the whole upload, but its answer to it was lost; \
                         not sent again",
                    );
                }
                self.move_to(offset, State::Append)
            }
            (200..=299, State::Append) => {
                let sent_to = self.offset + self.sent_len;
                if ietf && sent_to == self.length {
                    return Next::Done;
                }
                let offset = match header(headers, "upload-offset").map(parse_offset) {
                    Some(Some(offset)) => offset,
                    Some(None) => return fail("Upload-Offset is not a number"),
                    None if ietf => sent_to,
                    None => return fail("the server's PATCH answer has no Upload-Offset"),
                };
                self.move_to(offset, State::Append)
            }
            (409, State::Append) => {
                let offset = header(headers, "upload-offset").and_then(parse_offset);
                match offset {
                    Some(offset) if ietf => self.stall(offset, State::Append),
                    _ => self.stall(self.offset, State::Probe),
                }
            }
            (460, State::Append) if !ietf => self.stall(self.offset, State::Append),
            (413, State::Create | State::Append) if ietf && self.url.is_some() => {
                // Smaller pieces (the limits, if the 413 gave them, are set).
                let smaller = (self.sent_len / 2).max(self.min_append).max(1);
                if smaller >= self.sent_len {
                    return Next::Done;
                }
                self.chunk = self.chunk.min(smaller);
                self.stall(self.offset, State::Probe)
            }
            (404 | 410, State::Probe | State::Append) if ietf => {
                self.url_changes.push_back(UrlChange::Forgotten);
                if status == 410 {
                    // The server keeps knowledge of the resource, which is
                    // no longer available: a completed upload (the
                    // `completed-upload` problem type says so on a PATCH);
                    // its answer is the outcome, never sent again.
                    return Next::Done;
                }
                fail(
                    "the upload resource is gone (404); not sent again: the server may \
                     have the whole upload already",
                )
            }
            (404 | 410, State::Probe | State::Append) => {
                // tus: the server no longer has the resource (it expired).
                self.start_over()
            }
            (423, _) => {
                // tus: the resource is locked by a request the server still
                // sees (the one that just broke): retry after a wait.
                self.recover();
                Next::Recover(None)
            }
            (408 | 429 | 500..=599, _) => {
                self.recover();
                Next::Recover(Some(status))
            }
            _ => Next::Done,
        }
    }

    /// GCS: a session URI from the creation, `308` with the range the
    /// server holds, `200`/`201` with the object once it has every byte.
    fn decide_gcs(&mut self, answer: &Answer<'_>) -> Next {
        let (status, headers) = (answer.status, answer.headers);
        match (status, self.state) {
            (200..=299, State::Create) => {
                let Some(location) = header(headers, "location").and_then(|l| self.resolve(l)) else {
                    return fail("the server created no resumable upload session (no Location)");
                };
                self.learn(location);
                self.move_to(0, State::Append)
            }
            (200..=299, State::Append) if self.offset + self.sent_len != self.length => {
                fail("the server said the upload is complete before it got the whole body")
            }
            // The object exists whole: its answer is the outcome (to a
            // probe too: the answer to the last piece was lost, the object
            // it describes was not).
            (200..=299, State::Append | State::Probe) => Next::Done,
            (308, State::Append | State::Probe) => {
                let offset = match header(headers, "range") {
                    None => 0,
                    Some(range) => match parse_gcs_range(range) {
                        Some(end) => end + 1,
                        None => return fail("the server's 308 has no valid Range"),
                    },
                };
                if self.state == State::Append && offset <= self.offset && self.sent_len > 0 {
                    return self.stall(offset, State::Append);
                }
                self.move_to(offset, State::Append)
            }
            (404 | 410, State::Probe | State::Append) => {
                // The session expired (a week after its creation).
                self.start_over()
            }
            (408 | 429 | 500..=599, _) => {
                self.recover();
                Next::Recover(Some(status))
            }
            _ => Next::Done,
        }
    }

    /// The resource is gone: a new one, from byte 0, once; a second loss
    /// is the outcome.
    fn start_over(&mut self) -> Next {
        if self.recreated {
            return Next::Done;
        }
        self.recreated = true;
        self.url = None;
        self.url_changes.push_back(UrlChange::Forgotten);
        self.offset = 0;
        self.state = State::Create;
        Next::Send
    }

    /// The request in flight is a careful (empty) creation.
    fn careful_creation(&self) -> bool {
        self.state == State::Create && self.careful
    }

    /// A 2xx to the creation request.
    fn created(&mut self, answer: &Answer<'_>) -> Next {
        let ietf = self.config.protocol == Protocol::Ietf;
        let headers = answer.headers;
        if ietf && !self.careful && self.sent_len == self.length {
            // The whole body went in the creation request: the response is
            // the resource's own answer.
            return Next::Done;
        }
        match header(headers, "location") {
            Some(location) => {
                let location = self.resolve(location);
                if let (Some(earlier), Some(now)) = (&self.interim_location, &location) {
                    if earlier != now {
                        return self.cancel("the final answer names another upload resource than its 104");
                    }
                }
                if let Some(location) = location {
                    self.learn(location);
                }
            }
            // A careful creation that made no resource: the server does
            // not speak the protocol; it gets the whole body plainly.
            None if self.url.is_none() && self.careful => return self.go_plain(),
            None if self.url.is_none() => return fail("the server created no upload resource (no Location)"),
            None => {}
        }
        let offset = match header(headers, "upload-offset") {
            Some(value) => match parse_offset(value) {
                Some(offset) => offset,
                None => return fail("Upload-Offset is not a number"),
            },
            None if ietf => self.sent_len,
            None => 0,
        };
        self.move_to(offset, State::Append)
    }

    /// ietf: the answer says the server does not take this protocol (or
    /// this interop version): 400 or 412 to the creation with no `104`
    /// before it (NIOResumableUpload answers 400, before reading the body).
    /// A server that speaks the version announces the resource first; one
    /// that rejects the content itself gets the body once more, plainly,
    /// and its answer to that is the outcome.
    fn refuses_the_protocol(&self, answer: &Answer<'_>) -> bool {
        self.state == State::Create && self.url.is_none() && matches!(answer.status, 400 | 412)
    }

    /// Sends the whole body as a plain request to the endpoint.
    fn go_plain(&mut self) -> Next {
        self.state = State::Plain;
        self.offset = 0;
        if self.url.take().is_some() {
            self.url_changes.push_back(UrlChange::Forgotten);
        }
        Next::Send
    }

    /// The upload cannot go on: `DELETE` the resource (when known), then fail.
    fn cancel(&mut self, why: &str) -> Next {
        let Next::Fail(error) = fail(why) else {
            return Next::Done;
        };
        if self.url.is_none() {
            return Next::Fail(error);
        }
        self.failure = Some(error);
        self.state = State::Cancel;
        Next::Interrupt
    }

    /// The request in flight failed without a response (reset, timeout…).
    pub fn handle_failure(&mut self) -> Next {
        match self.state {
            State::Cancel => Next::Fail(self.failure.take().unwrap_or_else(|| protocol_error("cancelled"))),
            State::Plain => Next::Recover(None),
            _ => {
                self.recover();
                Next::Recover(None)
            }
        }
    }

    /// After a failure: learn the offset if the resource is known, else create.
    fn recover(&mut self) {
        self.state = if self.url.is_some() {
            State::Probe
        } else {
            State::Create
        };
    }

    /// `location` resolved against the resource or the endpoint.
    fn resolve(&self, location: &str) -> Option<String> {
        let base = self.url.as_deref().unwrap_or(&self.endpoint);
        let url = url::Url::parse(base).and_then(|base| base.join(location.trim())).ok()?;
        Some(url.to_string())
    }

    fn learn(&mut self, url: String) {
        if self.url.as_deref() != Some(url.as_str()) {
            self.url_changes.push_back(UrlChange::Learned(url.clone()));
            self.url = Some(url);
        }
    }

    /// Goes on from the server's `offset`.
    fn move_to(&mut self, offset: u64, state: State) -> Next {
        if offset > self.length {
            return fail(&format!(
                "the server has {offset} bytes of a {}-byte upload",
                self.length
            ));
        }
        if offset > self.offset {
            self.advanced = true;
            self.stalls = 0;
        }
        self.offset = offset;
        self.state = state;
        if offset == self.length && self.config.protocol == Protocol::Tus {
            return Next::Done;
        }
        Next::Send
    }

    /// An answer that moved nothing (409, 460, 413), bounded.
    fn stall(&mut self, offset: u64, state: State) -> Next {
        self.stalls += 1;
        if self.stalls > MAX_STALLS {
            return fail(&format!("the server refused {MAX_STALLS} pieces in a row"));
        }
        if offset > self.length {
            return fail(&format!(
                "the server has {offset} bytes of a {}-byte upload",
                self.length
            ));
        }
        self.offset = offset;
        self.state = state;
        Next::Send
    }

    /// `Upload-Limit` (ietf; a void field changes nothing): pieces no
    /// larger than `max-append-size`, no smaller than `min-append-size`; a
    /// `max-size` below the length cancels the upload; `max-age` becomes a
    /// date for the store. `Some(Next::Send)` when the piece in flight is
    /// now too large; `Some` of a failure when the upload cannot go on.
    fn apply_limits(&mut self, headers: &Headers, unix_time: u64) -> Option<Next> {
        if self.config.protocol != Protocol::Ietf {
            return None;
        }
        let limit = limits::UploadLimit::parse(header(headers, "upload-limit")?)?;
        if let Some(max) = limit.max_size.filter(|&max| max < self.length) {
            let why = format!("the server takes at most {max} bytes; the upload has {}", self.length);
            return Some(self.cancel(&why));
        }
        if let Some(min) = limit.min_append_size {
            self.min_append = min;
        }
        if let Some(age) = limit.max_age.filter(|_| unix_time > 0) {
            let date = limits::http_date(unix_time.saturating_add(age));
            if self.url.is_some() && self.expires.as_ref() != Some(&date) {
                self.url_changes.push_back(UrlChange::Expires(date.clone()));
            }
            self.expires = Some(date);
        }
        let max_append = limit.max_append_size.filter(|&max| max > 0)?;
        self.chunk = self.chunk.min(max_append).max(self.min_append.min(max_append));
        (self.sent_len > max_append && matches!(self.state, State::Create | State::Append)).then_some(Next::Send)
    }
}

/// The outcome of a plain (fallback) request: its answer, unless worth
/// another try.
fn plain_outcome(status: u16) -> Next {
    match status {
        408 | 429 | 500..=599 => Next::Recover(Some(status)),
        _ => Next::Done,
    }
}

fn protocol_error(message: &str) -> UploadError {
    UploadError::new(ErrorKind::Protocol, format!("resumable upload: {message}"))
}

fn fail(message: &str) -> Next {
    Next::Fail(protocol_error(message))
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

fn has_header(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn is_content_header(name: &str) -> bool {
    [
        "content-type",
        "content-length",
        "content-disposition",
        "content-encoding",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// A non-negative integer (tus: digits; ietf: a structured-field Integer).
fn parse_offset(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The last byte of GCS's `Range: bytes=0-N`.
fn parse_gcs_range(value: &str) -> Option<u64> {
    let (first, last) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    last.trim().parse().ok()
}

fn sf_bool(value: bool) -> &'static str {
    if value {
        "?1"
    } else {
        "?0"
    }
}

/// `Upload-Metadata`: `key base64(value)` pairs; keys with spaces or commas
/// (which the format cannot carry) are left out. Keys are unique, as tus
/// requires: a key given again keeps its place and takes the later value.
pub fn tus_metadata(pairs: &[(String, String)]) -> String {
    use base64::Engine as _;
    let mut unique: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match unique.iter_mut().find(|(k, _)| *k == key.as_str()) {
            Some(entry) => entry.1 = value,
            None => unique.push((key, value)),
        }
    }
    let mut out = String::new();
    for (key, value) in unique {
        if key.is_empty() || key.bytes().any(|b| b == b' ' || b == b',' || !b.is_ascii_graphic()) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        if !value.is_empty() {
            out.push(' ');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(value));
        }
    }
    out
}

/// `inline; filename="…"` (RFC 6266), with `filename*` for names that are
/// not plain ASCII.
fn inline_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '_',
        })
        .collect();
    if plain == name {
        return format!("inline; filename=\"{plain}\"");
    }
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("inline; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// The request that ends an upload resource for good (tus termination,
/// IETF cancellation): `DELETE` with the protocol's header and the user's
/// headers but content ones. Returns the method and the headers.
///
/// ```
/// use uploadtask_engine::resumable::{termination, Protocol};
///
/// let user = [("Authorization".to_string(), "t".to_string()), ("Content-Type".to_string(), "x/y".to_string())];
/// let (method, headers) = termination(Protocol::Tus, &user);
/// assert_eq!(method, "DELETE");
/// assert_eq!(headers, [("Tus-Resumable".to_string(), "1.0.0".to_string()), ("Authorization".to_string(), "t".to_string())]);
/// ```
pub fn termination(protocol: Protocol, user_headers: &[(String, String)]) -> (&'static str, Vec<(String, String)>) {
    let mut headers = match protocol {
        Protocol::Tus => vec![("Tus-Resumable".to_string(), TUS_VERSION.to_string())],
        Protocol::Ietf => vec![(
            "Upload-Draft-Interop-Version".to_string(),
            IETF_INTEROP_VERSION.to_string(),
        )],
        // A session URI takes a DELETE as it is (answered 499).
        Protocol::Gcs => Vec::new(),
    };
    headers.extend(
        user_headers
            .iter()
            .filter(|(name, _)| !is_content_header(name))
            .cloned(),
    );
    ("DELETE", headers)
}

/// `sha1 <base64>` for the tus checksum extension.
pub fn tus_checksum(digest: &[u8; 20]) -> String {
    use base64::Engine as _;
    format!("sha1 {}", base64::engine::general_purpose::STANDARD.encode(digest))
}

pub mod limits;
#[cfg(test)]
mod tests;
