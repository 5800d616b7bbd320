//! What an upload needs before it connects: its file sources opened (with
//! the documented error codes), the form framed, the head written. Runs on
//! the loop when the upload leaves the queue.

use std::io;

use uploadtask_http1::request::Target;
use uploadtask_multipart::{Body, FilePart, Form};

use super::recycle::Recycle;
use crate::error::{ErrorKind, UploadError};
use crate::io::source::{FileSource, MemorySource, Source};
use crate::proto::exchange::Exchange;
use crate::proto::proxy::Proxies;
use crate::proto::redirect::Policy;
use crate::proto::resumable::Session;
use crate::proto::transfer::{invalid, write_head, Step, Transfer};
use crate::request::{FileInput, SourceSpec, UploadRequest};

/// What an upload needs to connect, and to send again after a redirect.
pub(crate) struct Prepared {
    pub(crate) target: Target,
    pub(crate) exchange: Exchange,
    pub(crate) sources: Vec<Source>,
    pub(crate) transfer: Transfer,
}

/// The last URL parsed and its target: uploads to one endpoint (a load
/// run, a batch) skip URL parsing (and its IDNA pass) after the first.
#[derive(Debug, Default)]
pub(crate) struct TargetCache(Option<(String, Target)>);

impl TargetCache {
    fn parse(&mut self, url: &str) -> Result<Target, UploadError> {
        if let Some((last, target)) = &self.0 {
            if last == url {
                return Ok(target.clone());
            }
        }
        let target = Target::parse(url).map_err(|e| invalid(&e))?;
        self.0 = Some((url.to_string(), target.clone()));
        Ok(target)
    }
}

/// Everything an upload needs before connecting.
pub(crate) fn prepare(
    request: UploadRequest,
    limits: uploadtask_http1::Limits,
    policy: Policy,
    expect_threshold: Option<u64>,
    proxies: &Proxies,
    (entropy, targets, recycle): (&mut Entropy, &mut TargetCache, &mut Recycle),
) -> Result<Prepared, UploadError> {
    if request.resumable.is_some() {
        return prepare_resumable(request, limits, proxies);
    }
    let target = targets.parse(&request.url)?;
    let policy = Policy {
        max: request.max_redirects.unwrap_or(policy.max),
        ..policy
    };
    let (body, sources) = match request.raw_body {
        Some(raw) => {
            if !request.fields.is_empty() || !request.files.is_empty() {
                return Err(invalid(&"a raw body cannot have form fields or files"));
            }
            let source = open_source(raw)?;
            let body = Body::raw(source.len(), "");
            let mut sources = recycle.sources();
            sources.push(source);
            (body, sources)
        }
        None => form_body(request.fields, request.files, entropy, recycle)?,
    };
    let mut transfer = Transfer::new(request.method, request.headers, policy);
    transfer.expect = expect_threshold.is_some_and(|at| body.content_length() >= at.max(1));
    transfer.retry = request.retry.map(Box::new);
    transfer.resend_reused = request.resend_reused;
    transfer.route(&target, proxies);
    let head = write_head(&target, &transfer, &body, recycle.head())?;
    let mut exchange = Exchange::new(head, body, limits);
    transfer.mark_head_request(&mut exchange);
    exchange.set_report_headers(request.report_headers);
    Ok(Prepared {
        target,
        exchange,
        sources,
        transfer,
    })
}

/// A resumable upload: its one raw source, and its first request.
fn prepare_resumable(
    request: UploadRequest,
    limits: uploadtask_http1::Limits,
    proxies: &Proxies,
) -> Result<Prepared, UploadError> {
    let (Some(config), Some(raw)) = (request.resumable, request.raw_body) else {
        return Err(invalid(&"a resumable upload sends one file as a raw body"));
    };
    if !request.fields.is_empty() || !request.files.is_empty() {
        return Err(invalid(&"a resumable upload cannot have form fields or files"));
    }
    Target::parse(&request.url).map_err(|e| invalid(&e))?;
    let source = open_source(raw)?;
    let total = source.len();
    let mut session = Session::new(config, &request.url, total, &request.headers);
    session.set_method(match &*request.method {
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        _ => "POST",
    });
    let mut transfer = Transfer::resumable(session, total);
    transfer.retry = request.retry.map(Box::new);
    transfer.resend_reused = request.resend_reused;
    match transfer.resume_step(None, limits, proxies)? {
        Step::Ready(target, mut exchange) => {
            exchange.set_report_headers(request.report_headers);
            Ok(Prepared {
                target,
                exchange: *exchange,
                sources: vec![source],
                transfer,
            })
        }
        // Creation and offset requests carry no checksum.
        Step::NeedsChecksum(..) => Err(UploadError::new(ErrorKind::Internal, "a checksum before creation")),
    }
}

/// Opens the files and frames the form (in the loop's one form and spare
/// storage).
fn form_body(
    fields: Vec<(String, String)>,
    files: Vec<FileInput>,
    entropy: &mut Entropy,
    recycle: &mut Recycle,
) -> Result<(Body, Vec<Source>), UploadError> {
    let mut sources = recycle.sources();
    let spare = recycle.body();
    let form = &mut recycle.form;
    let body = fill_form(form, fields, files, &mut sources).and_then(|()| {
        form.frame(spare, &mut |bytes| entropy.fill(bytes))
            .map_err(|e| match e {
                uploadtask_multipart::FormError::Random => UploadError::new(ErrorKind::Internal, e.to_string()),
                e => invalid(&e),
            })
    });
    // Emptied for the next upload, also after an error.
    form.clear();
    Ok((body?, sources))
}

/// Adds the fields and files to `form`, opening each file's source.
fn fill_form(
    form: &mut Form,
    fields: Vec<(String, String)>,
    files: Vec<FileInput>,
    sources: &mut Vec<Source>,
) -> Result<(), UploadError> {
    for (name, value) in fields {
        form.add_text(name, value);
    }
    for file in files {
        let source = open_source(file.source)?;
        let mut part = FilePart::new(file.name, file.filename, source.len());
        if let Some(content_type) = file.content_type {
            part = part.content_type(content_type);
        }
        form.add_file(part);
        sources.push(source);
    }
    Ok(())
}

/// Opens a file part's source on the loop, classifying errors as the fail codes say.
fn open_source(spec: SourceSpec) -> Result<Source, UploadError> {
    match spec {
        SourceSpec::Memory(bytes) => Ok(Source::Memory(MemorySource(bytes))),
        SourceSpec::Open(open) => open().map(Source::Boxed),
        SourceSpec::Path(path) => FileSource::open(&path)
            .map(|f| Source::Boxed(Box::new(f)))
            .map_err(|e| {
                let shown = path.display();
                let message = match e.kind() {
                    io::ErrorKind::NotFound => format!("file not found: {shown}"),
                    io::ErrorKind::PermissionDenied => format!("file not readable: {shown}"),
                    io::ErrorKind::InvalidInput => format!("not a regular file: {shown}"),
                    _ => format!("cannot open {shown}: {e}"),
                };
                let kind = if e.raw_os_error() == Some(rustix::io::Errno::MFILE.raw_os_error()) {
                    ErrorKind::ResourceExhausted
                } else {
                    ErrorKind::File
                };
                UploadError::new(kind, message).with_source(e)
            }),
    }
}

/// Random bytes for multipart boundaries, drawn from the system in 4 KiB
/// batches: every boundary still gets 16 fresh random bytes, at one
/// `getrandom(2)` per 256 uploads.
pub(crate) struct Entropy {
    pool: Box<[u8; 4096]>,
    used: usize,
}

impl Default for Entropy {
    fn default() -> Self {
        Entropy {
            pool: Box::new([0; 4096]),
            used: 4096,
        }
    }
}

impl Entropy {
    /// A random number (for retry jitter).
    pub(crate) fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 16];
        if !self.fill(&mut bytes) {
            return 0;
        }
        u64::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
        ])
    }

    fn fill(&mut self, out: &mut [u8; 16]) -> bool {
        if self.used + out.len() > self.pool.len() {
            if getrandom::fill(&mut self.pool[..]).is_err() {
                return false;
            }
            self.used = 0;
        }
        out.copy_from_slice(&self.pool[self.used..self.used + 16]);
        // Never hand out the same bytes twice.
        self.pool[self.used..self.used + 16].fill(0);
        self.used += 16;
        true
    }
}
