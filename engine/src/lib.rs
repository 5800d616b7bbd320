//! The uploadtask engine: one `mio` event loop on its own thread driving
//! thousands of `multipart/form-data` uploads over HTTP/1.1 and HTTPS.
//!
//! What it is for: submitting uploads from any thread ([`Engine::submit`]),
//! aborting them ([`Engine::abort`]), and receiving progress and outcomes
//! through an [`EventSink`]. Progress counts only bytes the kernel accepted
//! (on TLS: whose records were written whole).
//!
//! What it is not for: the documented `uploadFile` API, `internal://` paths
//! or callbacks on another thread; the `uploadtask` facade crate builds
//! those on this one.
//!
//! Layers, from pure to I/O:
//! - [`upload::Upload`]: one upload's life (resolve, connect to each address,
//!   TLS, timeouts, one retry of a stale pooled connection), sans-I/O.
//! - [`exchange::Exchange`]: one request/response, sans-I/O (`handle_*`/`poll_*`).
//! - [`pump`]: writes and reads between an exchange and a [`Transport`] until
//!   `WouldBlock`; shared by the loop and the scripted tests.
//! - the driver (private): `Poll`, a `Slab` of uploads and one of connections,
//!   timers, the idle pool, commands through a channel and `mio::Waker`.
//!
//! ```no_run
//! use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};
//!
//! let engine = Engine::new(EngineConfig::default()).unwrap();
//! let (tx, rx) = std::sync::mpsc::channel();
//! let request = UploadRequest::new("http://127.0.0.1:8080/upload")
//!     .field("user", "42")
//!     .file(FileInput::path("file", "/tmp/photo.png"));
//! engine.submit(request, move |event: Event| {
//!     if let Event::Done(result) = event {
//!         let _ = tx.send(result);
//!     }
//! });
//! match rx.recv().unwrap() {
//!     Ok(response) => println!("status {}", response.status),
//!     Err(error) => println!("fail {} {}", error.code(), error),
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod driver;
pub mod error;
pub mod io;
pub mod proto;

// The modules keep their short paths (`uploadtask_engine::exchange`, …).
pub use io::{pump, resolver, scripted, sendq, source, tls, transport};
pub use proto::{ack, exchange, names, progress, proxy, race, redirect, resumable, retry, reuse, upload};
// The driver's glue, by its short paths inside the crate.
use driver::{prepare, recycle};
use io::sigpipe;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use error::{ErrorKind, TlsFailure, UploadError};
pub use exchange::Response;
pub use progress::Progress;
pub use resolver::{Resolver, StaticResolver, ThreadPoolResolver};
pub use source::{BodySource, FileSource, MemorySource};
pub use transport::{Connector, TcpConnector, Transport};
pub use uploadtask_http1::{Header, Headers, Limits};

/// Identifies one submitted upload. Never reused within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(pub u64);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upload#{}", self.0)
    }
}

/// What an upload reports, in this order: progress events (never after
/// `Done`), then exactly one `Done`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Body bytes on the wire rose (see [`progress`] for when).
    Progress(Progress),
    /// The request head went out whole (its bytes), when the request asked
    /// for heads ([`UploadRequest::report_headers`]); again after a redirect.
    RequestHead(Vec<u8>),
    /// Response heads arrived, as received: every 1xx interim head and the
    /// final one, also those of redirects that are followed (for tracing,
    /// as curl's `-v`), when the request asked for heads
    /// ([`UploadRequest::report_headers`]).
    ResponseHeadBytes(Vec<u8>),
    /// The final response head arrived (status code).
    ResponseHead(u16),
    /// The final response head's status and headers, right after
    /// `ResponseHead`, when the request asked for them
    /// ([`UploadRequest::report_headers`]).
    Headers(u16, Headers),
    /// A resumable upload's resource was learned or lost (for a store that
    /// resumes the upload after a restart).
    Resumable(resumable::UrlChange),
    /// The outcome: a response (any status) or an error.
    Done(Result<Response, UploadError>),
}

/// Receives an upload's events on the engine thread. Keep it quick: the loop
/// waits while it runs.
pub trait EventSink: Send + 'static {
    /// Called with each event of the upload.
    fn event(&mut self, event: Event);
}

impl<F: FnMut(Event) + Send + 'static> EventSink for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}

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
    /// Retries for this upload; the engine's [`EngineConfig::retry`] when
    /// `None`.
    pub retry: Option<retry::RetryPolicy>,
    /// Most redirects followed for this upload; the engine's
    /// [`EngineConfig::max_redirects`] when `None`; 0 follows none.
    pub max_redirects: Option<u32>,
    /// Report the request head ([`Event::RequestHead`]) when it went out and
    /// the final head's headers ([`Event::Headers`]) when they arrive,
    /// before the body (costs a copy of each). Default off.
    pub report_headers: bool,
    /// Send the raw body as a resumable upload ([`resumable`]): `url` is the
    /// endpoint that creates upload resources, `raw_body` the data, sent in
    /// pieces from the server's offset after any failure. Retries follow
    /// `retry` (or the engine's); with neither, 5 attempts without progress.
    /// Redirects are not followed. [`Event::Resumable`] reports the upload
    /// resource, for a store.
    pub resumable: Option<resumable::Resumable>,
    /// Progress counts body bytes the peer acknowledged, not those the
    /// kernel accepted ([`ack`]); also on for every upload with
    /// [`EngineConfig::progress_acked`].
    pub progress_acked: bool,
    /// Whether a request that failed on a reused connection before any
    /// response byte is sent again once on a new connection, even when the
    /// server may have received all of it ([`reuse`]); the engine's
    /// [`EngineConfig::resend_reused`] when `None`.
    pub resend_reused: Option<bool>,
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

/// When file regions go out with `sendfile(2)` on plain TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sendfile {
    /// Except to loopback peers (the default). Measured on loopback,
    /// `sendfile` costs more than a copy: there is no device to save work
    /// for, and the receiver's path (which loopback runs in the sender's
    /// context) handles page fragments more slowly. See the README.
    #[default]
    Auto,
    /// Always, where the platform has it.
    Always,
    /// Never: file bytes are read into the loop's buffer and written.
    Never,
}

/// How an engine behaves. `Default` gives the documented defaults.
#[derive(Clone)]
pub struct EngineConfig {
    /// The name lookup and the race to connect, together (as curl's
    /// `--connect-timeout`). Default 30 s.
    pub connect_timeout: Duration,
    /// Happy Eyeballs (RFC 8305): while a connect is under way, the next
    /// address (alternating families) is tried after this long, the earlier
    /// attempts going on; the first to connect wins. curl's
    /// `--happy-eyeballs-timeout-ms` (200 ms there). Default 250 ms.
    pub happy_eyeballs_delay: Duration,
    /// No byte moved in either direction for this long fails the upload.
    /// Default 30 s.
    pub idle_timeout: Duration,
    /// How long an idle connection waits in the pool for the next upload to
    /// its origin; shortened to end a second before a server's `Keep-Alive:
    /// timeout=N` ([`reuse::pool_until`]). Default 30 s.
    pub pool_idle_timeout: Duration,
    /// A request that failed on a reused connection before any byte of a
    /// response arrived is sent again once on a new connection, as browsers
    /// and curl do, even when the server may have received it whole (RFC
    /// 9110 §9.2.2; see [`reuse`]). Off: only a request the server cannot
    /// have received whole is sent again (at most once delivery, at the
    /// cost of failures when a server closes an idle connection). Each
    /// resend is counted in [`Stats::resent`]. Resumable uploads never
    /// resend a piece: they ask the server what it kept. Default on.
    pub resend_reused: bool,
    /// Uploads in flight at once; the rest wait in FIFO order. Default 256.
    pub max_in_flight: usize,
    /// Response limits (head, headers, chunk lines, trailers, body kept).
    pub limits: Limits,
    /// Reuse connections for successive uploads to the same origin. Default on.
    pub keep_alive: bool,
    /// Idle connections kept per origin. Default 1024.
    pub max_idle_per_origin: usize,
    /// TLS client configuration; built from `webpki-roots` plus
    /// `extra_roots` when `None`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Extra trusted roots (DER), added to `webpki-roots`. A certificate
    /// given here and presented by a server as its own end-entity
    /// certificate is trusted too (a self-signed certificate), with its
    /// validity and name checked; see [`tls`].
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// A client certificate for mutual TLS.
    pub client_auth: Option<tls::ClientAuth>,
    /// DANGEROUS: accept any server certificate (expired, self-signed,
    /// another name). Only for tests against a throwaway server; the
    /// program's `-k/--insecure` sets it and warns. Default off.
    pub danger_accept_invalid_certs: bool,
    /// Name resolution; a pool of 2 threads when `None`.
    pub resolver: Option<Arc<dyn Resolver>>,
    /// How long a looked-up name's addresses serve new connections, as
    /// curl's DNS cache. Uploads needing a name that is being looked up
    /// wait for that one lookup. Default 60 s (curl's); zero keeps none.
    pub dns_cache_timeout: Duration,
    /// Bytes one upload may write per loop turn before others get a turn.
    pub write_budget: usize,
    /// When to use `sendfile(2)` on plain TCP.
    pub sendfile: Sendfile,
    /// Uploads waiting for a place in flight (submitted, not started) at
    /// most; one more fails at once with code 200 ("upload queue is full").
    /// Default 65,536.
    pub max_queued: usize,
    /// The low-speed limit, as curl's `--speed-limit`: an upload that moves
    /// fewer than this many bytes per second (both directions), averaged over
    /// `low_speed_time`, fails with a timeout (204). 0 turns it off.
    /// Default 1 byte/s.
    pub low_speed_limit: u64,
    /// The window of the low-speed limit, as curl's `--speed-time`.
    /// Default 30 s.
    pub low_speed_time: Duration,
    /// Response bytes kept in memory for all uploads together (each upload
    /// also has `limits.max_body_bytes`); an upload whose response would go
    /// over it fails with code 200. Default 256 MiB.
    pub max_buffered_response_bytes: usize,
    /// Retries with backoff (see [`retry`]); none by default.
    pub retry: retry::RetryPolicy,
    /// The HTTP proxies to use; see [`proxy`]. Default: the environment's
    /// (`http_proxy`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl reads
    /// them), read once when the engine starts; `Some(Proxies::default())`
    /// for none.
    pub proxies: Option<proxy::Proxies>,
    /// Bodies of at least this many bytes are sent with `Expect:
    /// 100-continue`: the body waits for `100 Continue`, or for a few round
    /// trips (4 × the connect RTT, at least 100 ms, at most 1 s) and then
    /// goes anyway; a final answer instead (401, 413…) is the result and no
    /// body is sent; a 417 sends it again without `Expect`. Default 1 MiB (as
    /// curl); `None` never.
    pub expect_continue_threshold: Option<u64>,
    /// Redirects followed (301/302/303 as browsers, 307/308 with the whole
    /// body again; see [`redirect`]). Default 10; 0 follows none.
    pub max_redirects: u32,
    /// Follow a redirect from `https` to `http`. Default off.
    pub allow_https_to_http: bool,
    /// Every upload's progress counts body bytes the peer acknowledged
    /// ([`UploadRequest::progress_acked`]). Default off: kernel-accepted.
    pub progress_acked: bool,
    /// Opens connections; plain TCP ([`TcpConnector`] with `sendfile`
    /// above) when `None`. TLS is layered on whatever it returns.
    pub connector: Option<Arc<dyn Connector>>,
    /// Raise this process's soft `RLIMIT_NOFILE` to its hard limit at start
    /// (the program does; a library leaves the process alone). Default off.
    pub raise_fd_limit: bool,
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("happy_eyeballs_delay", &self.happy_eyeballs_delay)
            .field("idle_timeout", &self.idle_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("resend_reused", &self.resend_reused)
            .field("max_in_flight", &self.max_in_flight)
            .field("limits", &self.limits)
            .field("keep_alive", &self.keep_alive)
            .field("sendfile", &self.sendfile)
            .field("max_queued", &self.max_queued)
            .field("low_speed_limit", &self.low_speed_limit)
            .field("low_speed_time", &self.low_speed_time)
            .field("max_buffered_response_bytes", &self.max_buffered_response_bytes)
            .field("raise_fd_limit", &self.raise_fd_limit)
            .field("extra_roots", &self.extra_roots.len())
            .field("client_auth", &self.client_auth.is_some())
            .field("danger_accept_invalid_certs", &self.danger_accept_invalid_certs)
            .field("max_idle_per_origin", &self.max_idle_per_origin)
            .field("tls", &self.tls.is_some())
            .field("resolver", &self.resolver.is_some())
            .field("dns_cache_timeout", &self.dns_cache_timeout)
            .field("write_budget", &self.write_budget)
            .field("retry", &self.retry)
            .field("proxies", &self.proxies.is_some())
            .field("expect_continue_threshold", &self.expect_continue_threshold)
            .field("max_redirects", &self.max_redirects)
            .field("allow_https_to_http", &self.allow_https_to_http)
            .field("progress_acked", &self.progress_acked)
            .field("connector", &self.connector.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            connect_timeout: Duration::from_secs(30),
            happy_eyeballs_delay: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(30),
            resend_reused: true,
            max_in_flight: 256,
            limits: Limits::default(),
            keep_alive: true,
            max_idle_per_origin: 1024,
            tls: None,
            extra_roots: Vec::new(),
            client_auth: None,
            danger_accept_invalid_certs: false,
            resolver: None,
            dns_cache_timeout: Duration::from_secs(60),
            write_budget: 4 << 20,
            sendfile: Sendfile::Auto,
            max_queued: 65_536,
            low_speed_limit: 1,
            low_speed_time: Duration::from_secs(30),
            max_buffered_response_bytes: 256 << 20,
            raise_fd_limit: false,
            connector: None,
            max_redirects: 10,
            retry: retry::RetryPolicy::default(),
            proxies: None,
            expect_continue_threshold: Some(1 << 20),
            allow_https_to_http: false,
            progress_acked: false,
        }
    }
}

impl EngineConfig {
    /// Checks the settings `Engine::new` relies on; the error names the field.
    /// Durations may be as long as `Duration::MAX` (no deadline), never zero.
    pub fn validate(&self) -> Result<(), UploadError> {
        let zero = [
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            ("low_speed_time", self.low_speed_time.is_zero()),
            ("max_in_flight", self.max_in_flight == 0),
            ("write_budget", self.write_budget == 0),
            ("limits.max_head_bytes", self.limits.max_head_bytes == 0),
            ("limits.max_headers", self.limits.max_headers == 0),
        ];
        match zero.iter().find(|(_, bad)| *bad) {
            Some((field, _)) => Err(UploadError::new(
                ErrorKind::InvalidArgument,
                format!("invalid engine config: {field} must be greater than zero"),
            )),
            None => Ok(()),
        }
    }

    /// Adds every certificate of a PEM file to the trusted roots; returns how
    /// many were added.
    pub fn add_root_pem(&mut self, pem: &[u8]) -> Result<usize, UploadError> {
        use rustls::pki_types::pem::PemObject;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| UploadError::new(ErrorKind::InvalidArgument, format!("bad PEM: {e}")))?;
            self.extra_roots.push(cert);
            added += 1;
        }
        if added == 0 {
            return Err(UploadError::new(ErrorKind::InvalidArgument, "no certificate in PEM"));
        }
        Ok(added)
    }

    /// The TLS configuration the engine will use (see [`tls`]).
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, UploadError> {
        tls::client_config(self)
    }

    /// Builds the TLS configuration now and keeps it in [`EngineConfig::tls`],
    /// so that engines started from clones of this configuration share it:
    /// one session cache (a new connection on any of them resumes a session
    /// another made) and one set of verified chains, as the connections of
    /// one reqwest client or one curl multi handle share theirs. A
    /// configuration with `tls` set already is left as it is.
    ///
    /// ```
    /// use uploadtask_engine::EngineConfig;
    ///
    /// let mut config = EngineConfig::default();
    /// config.share_tls().unwrap();
    /// let (a, b) = (config.clone(), config);
    /// assert!(std::sync::Arc::ptr_eq(a.tls.as_ref().unwrap(), b.tls.as_ref().unwrap()));
    /// ```
    pub fn share_tls(&mut self) -> Result<(), UploadError> {
        if self.tls.is_none() {
            self.tls = Some(self.tls_config()?);
        }
        Ok(())
    }

    /// Sets the client certificate (mutual TLS) from PEM: a chain, leaf
    /// first, and its private key.
    pub fn add_client_auth_pem(&mut self, certs_pem: &[u8], key_pem: &[u8]) -> Result<(), UploadError> {
        self.client_auth = Some(tls::ClientAuth::from_pem(certs_pem, key_pem)?);
        Ok(())
    }
}

/// Messages to the loop. `Submit` carries its request unboxed: boxing it
/// cost every upload an allocation (freed on another thread), while the
/// channel's larger blocks cost one allocation per 31 commands.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Submit {
        id: UploadId,
        at: Instant,
        request: UploadRequest,
        sink: Box<dyn EventSink>,
    },
    Abort(UploadId),
    Reject {
        error: UploadError,
        sink: Box<dyn EventSink>,
    },
    Run(Box<dyn FnOnce() + Send>),
    Stats(mpsc::Sender<Stats>),
    /// A name's lookup answered (for every upload that needs it).
    Resolved {
        host: Arc<str>,
        port: u16,
        result: std::io::Result<Vec<std::net::SocketAddr>>,
    },
    /// A resumable piece's checksum, computed off the loop.
    Checksum {
        id: UploadId,
        piece: (u64, u64),
        result: Result<String, String>,
    },
    Shutdown,
}

/// The way into the loop: a channel and a waker. A wake is only sent when
/// none is pending, so a burst of commands costs one `write(2)`; a command
/// sent from the loop's own thread (a callback starting an upload) needs
/// none, because the loop drains the channel before it blocks again.
#[derive(Clone)]
pub(crate) struct Mailbox {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    wake_pending: Arc<AtomicBool>,
    local_pending: Arc<AtomicBool>,
    loop_thread: Arc<std::sync::OnceLock<std::thread::ThreadId>>,
}

impl Mailbox {
    fn new(commands: mpsc::Sender<Command>, waker: Arc<mio::Waker>) -> Self {
        Mailbox {
            commands,
            waker,
            wake_pending: Arc::new(AtomicBool::new(false)),
            local_pending: Arc::new(AtomicBool::new(false)),
            loop_thread: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Hands the command back when the loop is gone (as the channel does).
    #[allow(clippy::result_large_err)]
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|e| e.0)?;
        if self.loop_thread.get() == Some(&std::thread::current().id()) {
            self.local_pending.store(true, Ordering::Release);
        } else if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A failed wake means the loop is gone; the command is then dropped.
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// True on the loop's own thread.
    pub(crate) fn on_loop_thread(&self) -> bool {
        self.loop_thread.get() == Some(&std::thread::current().id())
    }

    /// Called once by the loop, on its thread.
    pub(crate) fn set_loop_thread(&self) {
        let _ = self.loop_thread.set(std::thread::current().id());
    }

    /// True when the loop's own thread sent commands not yet drained.
    pub(crate) fn has_local(&self) -> bool {
        self.local_pending.load(Ordering::Acquire)
    }

    /// Called by the loop before it drains the channel.
    pub(crate) fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
        self.local_pending.store(false, Ordering::Release);
    }
}

struct Shared {
    mailbox: Mailbox,
    next_id: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Uploads submitted and not yet ended (in the channel, queued or in
    /// flight); the loop gives each back when it ends.
    admitted: Arc<AtomicUsize>,
    /// Most uploads `admitted` may count: in flight plus queued.
    admit_limit: usize,
}

impl Shared {
    #[allow(clippy::result_large_err)]
    fn send(&self, command: Command) -> Result<(), Command> {
        self.mailbox.send(command)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.send(Command::Shutdown);
    }
}

/// A handle to one engine (one loop thread). Cheap to clone, `Send + Sync`.
/// The loop stops when the last handle is dropped or on [`Engine::shutdown`].
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts an engine thread with `config` (checked with
    /// [`EngineConfig::validate`]; an invalid one is `InvalidInput`).
    pub fn new(config: EngineConfig) -> std::io::Result<Engine> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if config.raise_fd_limit {
            raise_fd_limit();
        }
        let tls = config
            .tls_config()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let resolver = match &config.resolver {
            Some(resolver) => Arc::clone(resolver),
            None => Arc::new(ThreadPoolResolver::new(2)?),
        };
        let (commands, inbox) = mpsc::channel();
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), driver::WAKER)?);
        let mailbox = Mailbox::new(commands, waker);
        let admitted = Arc::new(AtomicUsize::new(0));
        let admit_limit = config.max_in_flight.saturating_add(config.max_queued);
        let proxies = match &config.proxies {
            Some(proxies) => proxies.clone(),
            None => proxy::Proxies::from_env().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        };
        let looper = driver::Loop::new(
            poll,
            config,
            tls,
            resolver,
            (inbox, mailbox.clone()),
            Arc::clone(&admitted),
            Arc::new(proxies),
        );
        let thread = std::thread::Builder::new()
            .name("uploadtask-engine".into())
            .spawn(move || looper.run())?;
        Ok(Engine {
            shared: Arc::new(Shared {
                mailbox,
                next_id: AtomicU64::new(1),
                thread: Mutex::new(Some(thread)),
                admitted,
                admit_limit,
            }),
        })
    }

    /// Submits an upload; returns at once, before any I/O. Its events go to
    /// `sink` on the engine thread, never inside this call. When the queue
    /// is full (see [`EngineConfig::max_queued`]) the upload fails with
    /// code 200; [`Engine::try_submit`] hands it back instead.
    pub fn submit(&self, request: UploadRequest, sink: impl EventSink) -> UploadId {
        match self.try_submit(request, sink) {
            Ok(id) => id,
            Err(refused) => {
                let error = UploadError::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "upload queue is full ({} uploads in flight or waiting)",
                        self.shared.admit_limit
                    ),
                );
                self.reject(error, refused.sink)
            }
        }
    }

    /// Submits an upload unless the engine already holds
    /// `max_in_flight + max_queued` of them; then hands it back untouched,
    /// so the caller can wait and try again (back-pressure).
    pub fn try_submit<S: EventSink>(&self, request: UploadRequest, sink: S) -> Result<UploadId, Box<Refused<S>>> {
        let admitted = &self.shared.admitted;
        let mut current = admitted.load(Ordering::Acquire);
        loop {
            if current >= self.shared.admit_limit {
                return Err(Box::new(Refused { request, sink }));
            }
            match admitted.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let id = UploadId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let command = Command::Submit {
            id,
            at: Instant::now(),
            request,
            sink: Box::new(sink),
        };
        if let Err(Command::Submit { sink, .. }) = self.shared.send(command) {
            admitted.fetch_sub(1, Ordering::AcqRel);
            report_elsewhere(sink, UploadError::new(ErrorKind::Aborted, "engine shut down"));
        }
        Ok(id)
    }

    /// Fails an upload that cannot be submitted (a bad argument found by the
    /// caller) through the same path as every outcome: `sink` gets
    /// `Done(Err(error))` on the engine thread, never inside this call.
    pub fn reject(&self, error: UploadError, sink: impl EventSink) -> UploadId {
        let id = UploadId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        if let Err(Command::Reject { error, sink }) = self.shared.send(Command::Reject {
            error,
            sink: Box::new(sink),
        }) {
            report_elsewhere(sink, error);
        }
        id
    }

    /// True when called on this engine's loop thread (inside an event sink
    /// or a job), where blocking on the engine would never return.
    pub fn on_engine_thread(&self) -> bool {
        self.shared.mailbox.on_loop_thread()
    }

    /// What the engine holds now: uploads, connections, timers. Taken on
    /// the loop between two turns, so the counts agree with each other.
    /// `None` when the engine has stopped, or when called on the engine
    /// thread itself (it cannot wait for its own loop).
    pub fn stats(&self) -> Option<Stats> {
        if self.shared.mailbox.on_loop_thread() {
            return None;
        }
        let (tx, rx) = mpsc::channel();
        self.shared.send(Command::Stats(tx)).ok()?;
        rx.recv().ok()
    }

    /// Runs `job` on the engine thread, after every command sent before it
    /// (the facade replays a progress event to a late listener this way, in
    /// order with the upload's other events). Dropped if the engine stopped.
    pub fn run_on_loop(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.shared.send(Command::Run(Box::new(job)));
    }

    /// Aborts an upload: it fails with [`ErrorKind::Aborted`] unless it has
    /// already ended. Unknown or finished ids are ignored.
    pub fn abort(&self, id: UploadId) {
        let _ = self.shared.send(Command::Abort(id));
    }

    /// Stops the loop: uploads in flight fail as aborted. Waits for the
    /// thread unless called from it.
    pub fn shutdown(&self) {
        let _ = self.shared.send(Command::Shutdown);
        let handle = self.shared.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// An upload [`Engine::try_submit`] did not take: the queue is full.
pub struct Refused<S> {
    /// The request, untouched.
    pub request: UploadRequest,
    /// The sink, never called.
    pub sink: S,
}

impl<S> fmt::Debug for Refused<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Refused(upload queue is full)")
    }
}

/// Counts of what an engine holds; see [`Engine::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Uploads in the slab (queued or in flight).
    pub uploads: usize,
    /// Uploads holding a place in flight.
    pub in_flight: usize,
    /// Uploads waiting for a place.
    pub queued: usize,
    /// Connections open (busy, connecting or idle).
    pub connections: usize,
    /// Idle connections in the pool.
    pub idle_connections: usize,
    /// Timer entries (stale ones dropped first).
    pub timers: usize,
    /// Response bytes held for uploads in flight.
    pub buffered_response_bytes: usize,
    /// Uploads submitted and not yet ended, as the submitters count them.
    pub admitted: usize,
    /// Requests sent again on a new connection after their reused
    /// connection failed before any response byte, since the engine started
    /// ([`EngineConfig::resend_reused`]).
    pub resent: u64,
    /// Origins not pooled for now, as their connections closed right after
    /// their first answer ([`reuse`]).
    pub origins_not_pooled: usize,
}

/// Reports an outcome when the loop cannot: on a short-lived thread, so
/// the sink never runs inside the caller's call.
fn report_elsewhere(mut sink: Box<dyn EventSink>, error: UploadError) {
    let spawned = std::thread::Builder::new()
        .name("uploadtask-report".into())
        .spawn(move || driver::deliver(&mut *sink, UploadId(0), Event::Done(Err(error))));
    if let Err(e) = spawned {
        log::error!("uploadtask: cannot start a thread to report a failure: {e}");
    }
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit (best effort).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
