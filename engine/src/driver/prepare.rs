//! What an upload needs before it connects: its file sources opened (with
//! the documented error codes), the form framed, the head written. Runs on
//! the loop when the upload leaves the queue.

use std::io;

use uploadtask_http1::request::{RequestHead, Target};
use uploadtask_multipart::{Body, FilePart, Form};

use crate::exchange::Exchange;
use crate::proxy::{self, Proxies, ProxyUrl};
use crate::recycle::Recycle;
use crate::redirect::{self, Hop, Policy};
use crate::resumable::Session;
use crate::source::{FileSource, MemorySource, Source};
use crate::{ErrorKind, SourceSpec, UploadError, UploadRequest};
use uploadtask_http1::request::Scheme;

/// What an upload needs to connect, and to send again after a redirect.
pub(crate) struct Prepared {
    pub(crate) target: Target,
    pub(crate) exchange: Exchange,
    pub(crate) sources: Vec<Source>,
    pub(crate) plan: Plan,
}

/// The request as the user gave it, kept for redirect hops (the current
/// URL is the slot's `Target`).
#[derive(Debug)]
pub(crate) struct Plan {
    /// `POST` (the default) without a string of its own.
    pub(crate) method: std::borrow::Cow<'static, str>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) policy: Policy,
    /// Hops followed so far.
    pub(crate) hops: u32,
    /// Send `Expect: 100-continue` and wait before the body.
    pub(crate) expect: bool,
    /// The proxy the current URL goes through.
    pub(crate) proxy: Option<Box<ProxyUrl>>,
    /// This upload's retry policy when it has its own (else the engine's).
    pub(crate) retry: Option<Box<crate::retry::RetryPolicy>>,
    /// Attempts made (1 during the first).
    pub(crate) attempts: u32,
    /// When the next attempt begins, while waiting for it.
    pub(crate) retry_at: Option<std::time::Instant>,
    /// A resumable upload's protocol state.
    pub(crate) resumable: Option<Box<Resume>>,
    /// This upload's resend rule when it has its own (else the engine's).
    pub(crate) resend_reused: Option<bool>,
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
    pub(crate) resume_at: Option<std::time::Instant>,
}

/// The next request of a resumable upload, or the checksum it waits for.
pub(crate) enum ResumeStep {
    Ready(Target, Box<Exchange>),
    NeedsChecksum(u64, u64),
}

/// Builds the resumable session's next request (after `previous`, whose
/// progress carries over). Redirects are not followed within it.
pub(crate) fn resume_step(
    plan: &mut Plan,
    previous: Option<&Exchange>,
    limits: uploadtask_http1::Limits,
    proxies: &Proxies,
) -> Result<ResumeStep, UploadError> {
    let internal = || UploadError::new(ErrorKind::Internal, "not a resumable upload");
    let resume = plan.resumable.as_mut().ok_or_else(internal)?;
    let step = resume.session.poll_step();
    let piece = (step.start, step.len);
    let checksum = match &resume.checksum {
        _ if !step.checksum => None,
        Some((at, value)) if *at == piece => Some(value.clone()),
        _ => return Ok(ResumeStep::NeedsChecksum(step.start, step.len)),
    };
    resume.session.handle_sent(&step);
    let total = resume.total;
    let target = Target::parse(&step.url).map_err(|e| invalid(&e))?;
    plan.method = step.method.into();
    plan.headers = step.headers;
    if let Some(value) = checksum {
        plan.headers.push(("Upload-Checksum".into(), value));
    }
    plan.route(&target, proxies);
    let body = Body::raw(step.len, "");
    let head = write_head(&target, plan, &plan.headers, &body, Vec::new())?;
    let mut exchange = match previous {
        Some(previous) => previous.follow(head, body),
        None => Exchange::new(head, body, limits),
    };
    exchange.set_window(step.start, total, step.method == "HEAD", step.interim);
    Ok(ResumeStep::Ready(target, Box::new(exchange)))
}

impl Plan {
    /// Picks the proxy for `target` (after a redirect, again).
    fn route(&mut self, target: &Target, proxies: &Proxies) {
        self.proxy = proxies
            .for_target(target.scheme == Scheme::Https, &target.host)
            .map(|p| Box::new(p.clone()));
    }
}

/// The absolute URL of a target (for resolving a relative `Location`).
pub(crate) fn url_of(target: &Target) -> String {
    let scheme = match target.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    format!("{scheme}://{}{}", target.authority, target.path_and_query)
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
    let mut plan = Plan {
        method: request.method,
        headers: request.headers,
        policy,
        hops: 0,
        expect: expect_threshold.is_some_and(|at| body.content_length() >= at.max(1)),
        proxy: None,
        retry: request.retry.map(Box::new),
        attempts: 1,
        retry_at: None,
        resumable: None,
        resend_reused: request.resend_reused,
    };
    plan.route(&target, proxies);
    let head = write_head(&target, &plan, &plan.headers, &body, recycle.head())?;
    let mut exchange = Exchange::new(head, body, limits);
    mark_head_request(&mut exchange, &plan.method);
    exchange.set_report_headers(request.report_headers);
    Ok(Prepared {
        target,
        exchange,
        sources,
        plan,
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
    let mut plan = Plan {
        method: "POST".into(),
        headers: Vec::new(),
        policy: Policy {
            max: 0,
            allow_https_to_http: false,
        },
        hops: 0,
        expect: false,
        proxy: None,
        retry: request.retry.map(Box::new),
        attempts: 1,
        retry_at: None,
        resumable: Some(Box::new(Resume {
            session,
            total,
            checksum: None,
            resume_at: None,
        })),
        resend_reused: request.resend_reused,
    };
    match resume_step(&mut plan, None, limits, proxies)? {
        ResumeStep::Ready(target, mut exchange) => {
            exchange.set_report_headers(request.report_headers);
            Ok(Prepared {
                target,
                exchange: *exchange,
                sources: vec![source],
                plan,
            })
        }
        // Creation and offset requests carry no checksum.
        ResumeStep::NeedsChecksum(..) => Err(UploadError::new(ErrorKind::Internal, "a checksum before creation")),
    }
}

/// A `HEAD` request's response has no body, whatever its head says.
fn mark_head_request(exchange: &mut Exchange, method: &str) {
    if method == "HEAD" {
        let total = exchange.body().content_length();
        exchange.set_window(0, total, true, false);
    }
}

fn invalid(e: &dyn std::fmt::Display) -> UploadError {
    UploadError::new(ErrorKind::InvalidArgument, e.to_string())
}

/// Opens the files and frames the form (in the loop's one form and spare
/// storage).
fn form_body(
    fields: Vec<(String, String)>,
    files: Vec<crate::FileInput>,
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
    files: Vec<crate::FileInput>,
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

/// The request head for `body` (a form, raw bytes, or none) with `headers`,
/// in `spare` when it is about the right size, else at its exact size.
fn write_head(
    target: &Target,
    plan: &Plan,
    headers: &[(String, String)],
    body: &Body,
    mut spare: Vec<u8>,
) -> Result<Vec<u8>, UploadError> {
    let mut pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // Plain http through a proxy: the absolute-form target and the proxy's
    // credentials (https goes through a tunnel: the origin sees neither).
    let absolute;
    let target = match &plan.proxy {
        Some(proxy) if target.scheme == Scheme::Http => {
            if let Some(authorization) = &proxy.authorization {
                pairs.push(("Proxy-Authorization", authorization));
            }
            absolute = proxy::absolute_form(target);
            &absolute
        }
        _ => target,
    };
    let head = if body.content_type().is_empty() {
        RequestHead::raw(target, body.content_length())
    } else {
        RequestHead::new(target, body.content_type(), body.content_length())
    };
    let expect = plan.expect && body.content_length() > 0;
    let head = head.method(&plan.method).headers(pairs).expect_continue(expect);
    HEAD_SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        head.write(scratch).map_err(|e| invalid(&e))?;
        spare.clear();
        let exact = if crate::recycle::fits(spare.capacity(), scratch.len()) {
            spare.extend_from_slice(scratch);
            spare
        } else {
            scratch.to_vec()
        };
        if scratch.capacity() > 16 * 1024 {
            *scratch = Vec::new();
        }
        Ok(exact)
    })
}

thread_local! {
    /// Heads are written here first, then copied at their exact size (one
    /// allocation per head, none wasted while the upload is in flight).
    static HEAD_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The same request again without `Expect` (after a 417).
pub(crate) fn without_expect(
    plan: &mut Plan,
    target: Target,
    previous: &Exchange,
) -> Result<(Target, Exchange), UploadError> {
    plan.expect = false;
    let body = previous.body().clone();
    let head = write_head(&target, plan, &plan.headers, &body, Vec::new())?;
    let mut next = previous.follow(head, body);
    mark_head_request(&mut next, &plan.method);
    Ok((target, next))
}

/// The next request after a redirect: the same body (re-sent from byte 0)
/// or none, to the hop's URL; credentials dropped on another origin. The
/// plan follows the hop.
pub(crate) fn follow(
    plan: &mut Plan,
    hop: Hop,
    previous: &Exchange,
    proxies: &Proxies,
) -> Result<(Target, Exchange), UploadError> {
    let target = Target::parse(&hop.url).map_err(|e| invalid(&e))?;
    if hop.cross_origin {
        plan.headers.retain(|(name, _)| !redirect::is_credential(name));
    }
    let body = if hop.keep_body {
        previous.body().clone()
    } else {
        plan.headers.retain(|(name, _)| !redirect::is_content_header(name));
        Body::raw(0, "")
    };
    plan.method = hop.method.into();
    plan.hops += 1;
    plan.route(&target, proxies);
    let head = write_head(&target, plan, &plan.headers, &body, Vec::new())?;
    let mut next = previous.follow(head, body);
    mark_head_request(&mut next, &plan.method);
    Ok((target, next))
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
