//! An upload to submit: URL, method, headers, fields, file parts or a raw
//! body, and its own settings.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::UploadError;
use crate::io::source::BodySource;
use crate::proto::resumable;
use crate::proto::retry;

/// Opens a file part's source on the engine thread when the upload starts.
pub type Opener = Box<dyn FnOnce() -> Result<Box<dyn BodySource>, UploadError> + Send>;

/// Where a file part's bytes come from.
pub enum SourceSpec {
    /// A local path, opened when the upload starts.
    Path(PathBuf),
    /// Bytes in memory, shared without copies.
    Memory(bytes::Bytes),
    /// A custom opener (the facade uses it for `internal://` checks).
    Open(Opener),
}

impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Path(p) => f.debug_tuple("Path").field(p).finish(),
            SourceSpec::Memory(m) => write!(f, "Memory({} bytes)", m.len()),
            SourceSpec::Open(_) => f.write_str("Open(..)"),
        }
    }
}

/// One file part of a request. The names are shared strings: a caller
/// sending many uploads clones one `Arc<str>` instead of copying a string
/// for each.
#[derive(Debug)]
pub struct FileInput {
    /// Form field name.
    pub name: Arc<str>,
    /// Filename sent (the basename is used).
    pub filename: Arc<str>,
    /// Content type; guessed from the filename when `None`.
    pub content_type: Option<String>,
    /// The bytes.
    pub source: SourceSpec,
}

impl FileInput {
    /// The file at `path`, sent under its basename.
    pub fn path(name: impl Into<Arc<str>>, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let filename = path
            .file_name()
            .map_or_else(|| Arc::from(""), |n| Arc::from(n.to_string_lossy()));
        FileInput {
            name: name.into(),
            filename,
            content_type: None,
            source: SourceSpec::Path(path),
        }
    }

    /// Bytes in memory sent as `filename`.
    pub fn memory(name: impl Into<Arc<str>>, filename: impl Into<Arc<str>>, bytes: impl Into<bytes::Bytes>) -> Self {
        FileInput {
            name: name.into(),
            filename: filename.into(),
            content_type: None,
            source: SourceSpec::Memory(bytes.into()),
        }
    }
}

/// Which HTTP version carries an upload, as curl's `--http1.1`, `--http2`
/// and `--http2-prior-knowledge` choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// Over TLS, HTTP/2 when the server picks it (ALPN offers `h2` and
    /// `http/1.1`), else HTTP/1.1; plain `http://` is HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// As `Auto` (curl's `--http2`; a plain-text `Upgrade: h2c` is not
    /// tried: plain `http://` stays HTTP/1.1).
    Http2,
    /// HTTP/2 without asking, on plain `http://` too (h2c); over TLS, as
    /// `Auto`.
    Http2PriorKnowledge,
}

impl HttpVersion {
    /// Whether a connection with `https` (TLS) may carry HTTP/2.
    pub fn allows_h2(self, https: bool) -> bool {
        match self {
            HttpVersion::Http1 => false,
            HttpVersion::Auto | HttpVersion::Http2 => https,
            HttpVersion::Http2PriorKnowledge => true,
        }
    }
}

/// An upload to submit: URL, headers, text fields, file parts, timeout.
#[derive(Debug)]
#[must_use = "an UploadRequest does nothing until submitted"]
pub struct UploadRequest {
    /// `http` or `https` URL; a shared string, so that many uploads to one
    /// URL copy none.
    pub url: Arc<str>,
    /// Method, `POST` by default.
    pub method: std::borrow::Cow<'static, str>,
    /// User headers, in order.
    pub headers: Vec<(String, String)>,
    /// Text fields, in order; they precede the file parts.
    pub fields: Vec<(String, String)>,
    /// File parts.
    pub files: Vec<FileInput>,
    /// Overall deadline, from submission to the end of the response.
    pub timeout: Option<Duration>,
    /// A raw body instead of a form (a `PUT` of a file to a signed URL):
    /// sent as is with its exact `Content-Length`; the user's `Content-Type`
    /// header, if any, is sent as given. `fields` and `files` must then be
    /// empty (else 202).
    pub raw_body: Option<SourceSpec>,
    /// Retries for this upload; the engine's [`EngineConfig::retry`](crate::EngineConfig::retry) when
    /// `None`.
    pub retry: Option<retry::RetryPolicy>,
    /// Most redirects followed for this upload; the engine's
    /// [`EngineConfig::max_redirects`](crate::EngineConfig::max_redirects) when `None`; 0 follows none.
    pub max_redirects: Option<u32>,
    /// Report the request head ([`Event::RequestHead`](crate::Event::RequestHead)) when it went out and
    /// the final head's headers ([`Event::Headers`](crate::Event::Headers)) when they arrive,
    /// before the body (costs a copy of each). Default off.
    pub report_headers: bool,
    /// Send the raw body as a resumable upload ([`resumable`]): `url` is the
    /// endpoint that creates upload resources, `raw_body` the data, sent in
    /// pieces from the server's offset after any failure. Retries follow
    /// `retry` (or the engine's); with neither, 5 retries without progress.
    /// Redirects are not followed. [`Event::Resumable`](crate::Event::Resumable) reports the upload
    /// resource, for a store.
    pub resumable: Option<resumable::Resumable>,
    /// Progress counts body bytes the peer acknowledged, not those the
    /// kernel accepted; also on for every upload with
    /// [`EngineConfig::progress_acked`](crate::EngineConfig::progress_acked).
    pub progress_acked: bool,
    /// Whether a request that failed on a reused connection before any
    /// response byte is sent again once on a new connection, even when the
    /// server may have received all of it; the engine's
    /// [`EngineConfig::resend_reused`](crate::EngineConfig::resend_reused) when `None`.
    pub resend_reused: Option<bool>,
    /// The HTTP version; the engine's [`EngineConfig::http`](crate::EngineConfig::http) when `None`.
    pub http: Option<HttpVersion>,
}

impl UploadRequest {
    /// A `POST` to `url` with no parts yet.
    pub fn new(url: impl Into<Arc<str>>) -> Self {
        UploadRequest {
            url: url.into(),
            method: "POST".into(),
            headers: Vec::new(),
            fields: Vec::new(),
            files: Vec::new(),
            timeout: None,
            raw_body: None,
            retry: None,
            max_redirects: None,
            report_headers: false,
            resumable: None,
            progress_acked: false,
            resend_reused: None,
            http: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a text field.
    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Adds a file part.
    pub fn file(mut self, file: FileInput) -> Self {
        // Most requests carry one file: room for one, not the four a first
        // push makes (a queued request keeps it until it starts).
        if self.files.capacity() == 0 {
            self.files.reserve_exact(1);
        }
        self.files.push(file);
        self
    }

    /// Sets the overall timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Uses another method than `POST` (any token: `PUT`, `PATCH`, …).
    pub fn method(mut self, method: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.method = method.into();
        self
    }

    /// Sends `source` as the raw body instead of a form.
    pub fn raw_body(mut self, source: SourceSpec) -> Self {
        self.raw_body = Some(source);
        self
    }
}
