//! Runs an S3 multipart upload on an [`Engine`]: the session's steps
//! become uploads (parts are windows of the one open file, sent with
//! `sendfile` where the transport allows), several parts at once; their
//! events come back on a channel to the calling thread, which feeds the
//! session and reports progress as the sum of the parts' exact bytes.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use uploadtask_engine::retry::RetryPolicy;
use uploadtask_engine::source::{BodySource, FileWindow};
use uploadtask_engine::{Engine, ErrorKind, Event, Response, SourceSpec, UploadError, UploadId, UploadRequest};

use crate::multipart::{Outcome, Session, Step};
use crate::plan::Plan;
use crate::sigv4::{self, Credentials, SignRequest};
use crate::target::Target;

/// How requests are authorized.
#[derive(Clone)]
pub enum Auth {
    /// Every request signed here (SigV4) with these keys.
    Keys(Credentials),
    /// Every request's URL presigned by someone else (the app's server,
    /// which holds the keys: the Uppy companion model); no keys here.
    Presigned(Arc<dyn Presigner>),
    /// Nothing added (a store that checks no credentials).
    Anonymous,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Keys(keys) => f.debug_tuple("Keys").field(keys).finish(),
            Auth::Presigned(_) => f.write_str("Presigned"),
            Auth::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// Hands out presigned URLs for the requests of one object's upload.
pub trait Presigner: Send + Sync {
    /// A URL that lets its holder send `method` on the object with these
    /// query parameters (`uploads`; `uploadId`; `partNumber` and
    /// `uploadId`; …), or why not.
    fn presign(&self, method: &str, query: &[(&str, &str)]) -> Result<String, String>;
}

/// Keeps upload ids between runs, so that a restarted upload sends only
/// the parts the store lacks.
pub trait UploadIdStore: Send + Sync {
    /// The id kept for `key`.
    fn get(&self, key: &str) -> Option<String>;
    /// Keeps `id` for `key`.
    fn put(&self, key: &str, id: &str);
    /// Forgets `key`.
    fn remove(&self, key: &str);
}

/// One file to one object.
#[derive(Clone)]
pub struct S3Upload {
    /// The object.
    pub target: Target,
    /// Keys, presigned URLs, or nothing.
    pub auth: Auth,
    /// The file.
    pub path: PathBuf,
    /// Bytes per part ([`Plan::new`] chooses when `None`).
    pub part_size: Option<u64>,
    /// Parts in flight at once. Default 4.
    pub parallel: usize,
    /// The object's `Content-Type`.
    pub content_type: Option<String>,
    /// Where the upload id is kept for a restart; with it, a kept upload
    /// of the same file is resumed.
    pub store: Option<Arc<dyn UploadIdStore>>,
    /// Each request's retries; the engine's when `None`.
    pub retry: Option<RetryPolicy>,
}

impl S3Upload {
    /// `path` to `target` with `auth`, 4 parts at once, sizes chosen.
    pub fn new(target: Target, auth: Auth, path: impl Into<PathBuf>) -> S3Upload {
        S3Upload {
            target,
            auth,
            path: path.into(),
            part_size: None,
            parallel: 4,
            content_type: None,
            store: None,
            retry: None,
        }
    }
}

/// What the upload did, besides its answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Parts in the object.
    pub parts: u32,
    /// Parts the store had from an earlier run (not sent again).
    pub resumed_parts: u32,
    /// Part requests sent (retries included).
    pub part_requests: u32,
}

struct Flight {
    token: u64,
    id: UploadId,
    step: Step,
}

/// Uploads `job.path` to `job.target` on `engine`; `progress(sent, total)`
/// after each rise of the parts' summed bytes. Returns the answer that
/// ended it: CompleteMultipartUpload's `200` on success, or the store's
/// refusal (a `403`, say), after which the store's upload was aborted.
/// `cancel` set: every request stops, the store's upload is aborted, and
/// the result is an [`ErrorKind::Aborted`] error.
pub fn upload(
    engine: &Engine,
    job: &S3Upload,
    cancel: &AtomicBool,
    progress: impl FnMut(u64, u64),
) -> Result<(Response, Summary), UploadError> {
    let file = File::open(&job.path).map_err(|e| {
        let kind = ErrorKind::File;
        UploadError::new(kind, format!("cannot open {}: {e}", job.path.display())).with_source(e)
    })?;
    upload_file(engine, job, file, cancel, progress)
}

/// As [`upload`], with `job.path` already open as `file` (a sandbox that
/// opens paths its own way); the path still names the file in the store.
pub fn upload_file(
    engine: &Engine,
    job: &S3Upload,
    file: File,
    cancel: &AtomicBool,
    mut progress: impl FnMut(u64, u64),
) -> Result<(Response, Summary), UploadError> {
    let metadata = file
        .metadata()
        .map_err(|e| UploadError::new(ErrorKind::File, e.to_string()))?;
    if !metadata.is_file() {
        return Err(UploadError::new(
            ErrorKind::File,
            format!("not a regular file: {}", job.path.display()),
        ));
    }
    let size = metadata.len();
    let plan = Plan::new(size, job.part_size).map_err(|e| UploadError::new(ErrorKind::InvalidArgument, e.0))?;
    let file = Arc::new(file);
    let store_key = store_key(job, size, &metadata);
    let kept = job.store.as_ref().and_then(|s| s.get(&store_key));
    let mut session = Session::new(plan, job.parallel, kept.clone());
    let mut summary = Summary {
        parts: plan.parts(),
        ..Summary::default()
    };
    // Each request's events, tagged with its token.
    let (tx, rx) = mpsc::channel::<(u64, Event)>();
    let mut flights: Vec<Flight> = Vec::new();
    let mut next_token = 0u64;
    // Each part's most bytes sent (its attempts included), and their sum.
    let mut best = vec![0u64; plan.parts() as usize];
    let mut sent = 0u64;
    let mut stored = kept;
    let mut listed = false;
    let mut last: Option<Response> = None;
    let mut cancelled = false;
    loop {
        if cancel.load(Ordering::Relaxed) && !cancelled {
            cancelled = true;
            session.handle_cancel();
        }
        // Stop the parts the session no longer waits for.
        flights.retain(|f| match f.step {
            Step::Part { number, .. } if !session.is_in_flight(number) => {
                engine.abort(f.id);
                false
            }
            _ => true,
        });
        if session.upload_id() != stored.as_deref() {
            stored = session.upload_id().map(str::to_string);
            if let Some(store) = &job.store {
                match &stored {
                    Some(id) => store.put(&store_key, id),
                    None => store.remove(&store_key),
                }
            }
        }
        if !listed && session.is_sending() {
            listed = true;
            summary.resumed_parts = session.done().0;
            for (i, b) in best.iter_mut().enumerate() {
                if session.has_part(i as u32 + 1) {
                    *b = plan.window(i as u32 + 1).1;
                    sent += *b;
                }
            }
        }
        while let Some(step) = session.poll_step() {
            if let Step::Part { number, start, len } = step {
                summary.part_requests += 1;
                if matches!(job.auth, Auth::Keys(_)) {
                    match crc32c_of(&file, start, len) {
                        Ok(sum) => session.set_checksum(number, sum),
                        Err(e) => {
                            session.handle_failure(&step, &e.to_string());
                            continue;
                        }
                    }
                }
            }
            let token = next_token;
            next_token += 1;
            let request = match request_for(job, &session, &step, &file) {
                Ok(request) => request,
                Err(why) => {
                    session.handle_failure(&step, &why);
                    continue;
                }
            };
            let sender = tx.clone();
            let id = engine.submit(request, move |event: Event| {
                let _ = sender.send((token, event));
            });
            flights.push(Flight { token, id, step });
        }
        if let Some(outcome) = session.poll_outcome() {
            for flight in flights.drain(..) {
                engine.abort(flight.id);
            }
            if let Some(store) = &job.store {
                store.remove(&store_key);
            }
            return match outcome {
                Outcome::Completed(_) | Outcome::Refused { .. } => last
                    .map(|r| (r, summary))
                    .ok_or_else(|| UploadError::new(ErrorKind::Internal, "no answer kept")),
                Outcome::Failed(why) => Err(UploadError::new(ErrorKind::Network, why)),
                Outcome::Cancelled => Err(UploadError::new(ErrorKind::Aborted, "the upload was aborted")),
            };
        }
        let Ok((token, event)) = rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        let Some(at) = flights.iter().position(|f| f.token == token) else {
            continue; // a stopped request's late event
        };
        match event {
            Event::Progress(p) => {
                if let Step::Part { number, .. } = flights[at].step {
                    let b = &mut best[number as usize - 1];
                    if p.total_bytes_sent > *b {
                        sent += p.total_bytes_sent - *b;
                        *b = p.total_bytes_sent;
                        progress(sent, size);
                    }
                }
            }
            Event::Done(result) => {
                let flight = flights.swap_remove(at);
                match result {
                    Ok(response) => {
                        let etag = response
                            .headers
                            .get("etag")
                            .map(|v| String::from_utf8_lossy(v).into_owned());
                        session.handle_answer(&flight.step, response.status, etag.as_deref(), &response.body);
                        let ends = !(200..300).contains(&response.status) || flight.step == Step::Complete;
                        if ends && !matches!(flight.step, Step::Abort) {
                            last = Some(response);
                        }
                    }
                    Err(error) => session.handle_failure(&flight.step, &error.to_string()),
                }
            }
            _ => {}
        }
    }
}

/// The request that carries `step`.
fn request_for(job: &S3Upload, session: &Session, step: &Step, file: &Arc<File>) -> Result<UploadRequest, String> {
    let id = session.upload_id().unwrap_or_default().to_string();
    let (method, query, body): (&'static str, Vec<(&str, String)>, Body) = match step {
        Step::Create => ("POST", vec![("uploads", String::new())], Body::Bytes(Vec::new())),
        Step::List { marker } => {
            let mut query = vec![("uploadId", id)];
            if *marker > 0 {
                query.push(("part-number-marker", marker.to_string()));
            }
            ("GET", query, Body::Bytes(Vec::new()))
        }
        Step::Part { number, start, len } => (
            "PUT",
            vec![("partNumber", number.to_string()), ("uploadId", id)],
            Body::Window(*start, *len),
        ),
        Step::Complete => (
            "POST",
            vec![("uploadId", id)],
            Body::Bytes(session.complete_body().into_bytes()),
        ),
        Step::Abort => ("DELETE", vec![("uploadId", id)], Body::Bytes(Vec::new())),
    };
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut headers: Vec<(String, String)> = Vec::new();
    match step {
        Step::Create => {
            let content_type = job.content_type.as_deref().unwrap_or("application/octet-stream");
            headers.push(("content-type".into(), content_type.into()));
            if matches!(job.auth, Auth::Keys(_)) {
                headers.push(("x-amz-checksum-algorithm".into(), "CRC32C".into()));
            }
        }
        Step::Complete => headers.push(("content-type".into(), "application/xml".into())),
        Step::Part { number, .. } => {
            if let Some(sum) = session.checksum(*number) {
                headers.push(("x-amz-checksum-crc32c".into(), sum.to_string()));
                headers.push(("x-amz-sdk-checksum-algorithm".into(), "CRC32C".into()));
            }
        }
        _ => {}
    }
    let url = match &job.auth {
        Auth::Presigned(presigner) => presigner.presign(method, &query)?,
        _ => job.target.url(&query),
    };
    if let Auth::Keys(keys) = &job.auth {
        let payload = match &body {
            Body::Bytes(bytes) => hex::encode(Sha256::digest(bytes)),
            Body::Window(..) => sigv4::UNSIGNED_PAYLOAD.to_string(),
        };
        let host = job.target.host();
        let path = job.target.path();
        let date = sigv4::amz_date(SystemTime::now());
        let signed_headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let signed = keys.sign(&SignRequest {
            method,
            host: &host,
            path: &path,
            query: &query,
            headers: &signed_headers,
            payload_sha256: &payload,
            region: &job.target.region,
            service: "s3",
            amz_date: &date,
        });
        headers.extend(signed.headers);
        headers.push(("authorization".into(), signed.authorization));
    }
    let mut request = UploadRequest::new(url.as_str()).method(method);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.retry = job.retry.clone();
    let source = match body {
        Body::Bytes(bytes) => SourceSpec::Memory(bytes.into()),
        Body::Window(start, len) => {
            let file = Arc::clone(file);
            SourceSpec::Open(Box::new(move || {
                Ok(Box::new(FileWindow::new(file, start, len)) as Box<dyn BodySource>)
            }))
        }
    };
    Ok(request.raw_body(source))
}

enum Body {
    Bytes(Vec<u8>),
    Window(u64, u64),
}

/// Base64 CRC32C of a window of `file`.
fn crc32c_of(file: &File, start: u64, len: u64) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut at, end) = (0u32, start, start + len);
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank",
            ));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes()))
}

/// The store's key for this file to this object: the object, the path,
/// the size and the modification time (a changed file starts over).
fn store_key(job: &S3Upload, size: u64, metadata: &std::fs::Metadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut hash = Sha256::new();
    for part in [
        job.target.endpoint.as_str(),
        &job.target.bucket,
        &job.target.key,
        &job.path.to_string_lossy(),
        &size.to_string(),
        &mtime.to_string(),
        &job.part_size.unwrap_or(0).to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("s3{}", hex::encode(hash.finalize()))
}
