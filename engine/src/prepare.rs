//! What an upload needs before it connects: its file sources opened (with
//! the documented error codes), the form framed, the head written. Runs on
//! the loop when the upload leaves the queue.

use std::io;

use uploadtask_http1::request::{RequestHead, Target};
use uploadtask_multipart::{Body, FilePart, Form};

use crate::exchange::Exchange;
use crate::source::{BodySource, FileSource, MemorySource};
use crate::{ErrorKind, SourceSpec, UploadError, UploadRequest};

/// The target, the framed exchange (head and multipart body), and the open
/// sources of an upload.
pub(crate) type Prepared = (Target, Exchange, Vec<Box<dyn BodySource>>);

/// Everything an upload needs before connecting.
pub(crate) fn prepare(
    request: UploadRequest,
    limits: uploadtask_http1::Limits,
    entropy: &mut Entropy,
) -> Result<Prepared, UploadError> {
    let invalid = |e: &dyn std::fmt::Display| UploadError::new(ErrorKind::InvalidArgument, e.to_string());
    let target = Target::parse(&request.url).map_err(|e| invalid(&e))?;
    if let Some(raw) = request.raw_body {
        if !request.fields.is_empty() || !request.files.is_empty() {
            return Err(invalid(&"a raw body cannot have form fields or files"));
        }
        let source = open_source(raw)?;
        let body = Body::raw(source.len(), "");
        let mut head = Vec::with_capacity(256);
        RequestHead::raw(&target, body.content_length())
            .method(&request.method)
            .headers(request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .write(&mut head)
            .map_err(|e| invalid(&e))?;
        let mut exchange = Exchange::new(head, body, limits);
        exchange.set_report_headers(request.report_headers);
        return Ok((target, exchange, vec![source]));
    }
    let mut form = Form::new();
    for (name, value) in &request.fields {
        form = form.text(name.as_str(), value.as_str());
    }
    let mut sources = Vec::with_capacity(request.files.len());
    for file in request.files {
        let source = open_source(file.source)?;
        let mut part = FilePart::new(file.name, &file.filename, source.len());
        if let Some(content_type) = file.content_type {
            part = part.content_type(content_type);
        }
        form = form.file(part);
        sources.push(source);
    }
    let body = form
        .build_with_entropy(&mut |bytes| entropy.fill(bytes))
        .map_err(|e| match e {
            uploadtask_multipart::FormError::Random => UploadError::new(ErrorKind::Internal, e.to_string()),
            e => invalid(&e),
        })?;
    let mut head = Vec::with_capacity(256);
    RequestHead::new(&target, body.content_type(), body.content_length())
        .method(&request.method)
        .headers(request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .write(&mut head)
        .map_err(|e| invalid(&e))?;
    head.shrink_to_fit();
    let mut exchange = Exchange::new(head, body, limits);
    exchange.set_report_headers(request.report_headers);
    Ok((target, exchange, sources))
}

/// Opens a file part's source on the loop, classifying errors as SPEC §3 says.
fn open_source(spec: SourceSpec) -> Result<Box<dyn BodySource>, UploadError> {
    match spec {
        SourceSpec::Memory(bytes) => Ok(Box::new(MemorySource(bytes))),
        SourceSpec::Open(open) => open(),
        SourceSpec::Path(path) => FileSource::open(&path)
            .map(|f| Box::new(f) as Box<dyn BodySource>)
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
