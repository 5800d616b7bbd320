//! A receiver for uploads, built on `hyper` and `multer` (not on our own
//! codecs, so it checks independently what the engine sends). It answers
//! each `multipart/form-data` POST with a JSON summary:
//!
//! ```json
//! {"fields":[{"name":"user","value":"42"}],
//!  "files":[{"field":"file","filename":"a.png","contentType":"image/png","size":3,"sha256":"…"}]}
//! ```
//!
//! Any other body (a raw `PUT`, as curl's `-T`) is answered with its size
//! and sha256:
//!
//! ```json
//! {"fields":[],"files":[],"body":{"contentType":"application/octet-stream","size":3,"sha256":"…"}}
//! ```
//!
//! Used by `uploadtask serve`, `demo`, `load`, and the end-to-end tests.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// How to run a [`Receiver`].
#[derive(Clone, Default)]
pub struct ReceiverConfig {
    /// Address to listen on; `127.0.0.1:0` picks a free port.
    pub addr: Option<SocketAddr>,
    /// Where to store received files (by sha256), if anywhere.
    pub dir: Option<PathBuf>,
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Runtime worker threads (default 1, leaving the other core to clients).
    pub workers: Option<usize>,
    /// Speak HTTP/2 too: over TLS when the client offers `h2` (ALPN),
    /// over plain TCP when it starts with the HTTP/2 preface.
    pub http2: Option<Http2Settings>,
}

/// The receiver's HTTP/2 settings (hyper's defaults when `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Http2Settings {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: Option<u32>,
    /// Each stream's receive window.
    pub stream_window: Option<u32>,
    /// The connection's receive window.
    pub connection_window: Option<u32>,
}

/// One text field of an upload.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FieldSummary {
    /// Field name.
    pub name: String,
    /// Field value.
    pub value: String,
}

/// One file of an upload.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileSummary {
    /// Form field name.
    pub field: String,
    /// Filename as received.
    pub filename: String,
    /// Content type as received.
    pub content_type: String,
    /// Bytes received.
    pub size: u64,
    /// Hex sha256 of the bytes received.
    pub sha256: String,
}

/// A raw (not multipart) request body.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BodySummary {
    /// `Content-Type` as received (empty when absent).
    pub content_type: String,
    /// Bytes received.
    pub size: u64,
    /// Hex sha256 of the bytes received.
    pub sha256: String,
}

/// What the receiver answers for one upload.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, Default)]
pub struct UploadSummary {
    /// Text fields in order.
    pub fields: Vec<FieldSummary>,
    /// Files in order.
    pub files: Vec<FileSummary>,
    /// A raw body (not `multipart/form-data`), summed up whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodySummary>,
}

#[derive(Default)]
struct Stats {
    uploads: AtomicU64,
}

/// A running receiver on its own thread; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Binds and starts serving; returns once the socket listens.
    pub fn start(config: ReceiverConfig) -> io::Result<Receiver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers.unwrap_or(1).max(1))
            .thread_name("uploadtask-receiver")
            .enable_all()
            .build()?;
        let addr = config.addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = runtime.block_on(async {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(4096)
        })?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::new(State {
            dir: config.dir,
            stats: Arc::clone(&stats),
        });
        let http2 = config.http2;
        let tls = match (config.tls, http2) {
            (Some(tls), Some(_)) => {
                let mut tls = (*tls).clone();
                tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Some(Arc::new(tls))
            }
            (tls, _) => tls,
        };
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let thread = std::thread::Builder::new()
            .name("uploadtask-receiver-main".into())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, state, (acceptor, http2), stopped));
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        Ok(Receiver {
            addr,
            stats,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Uploads answered so far.
    pub fn uploads(&self) -> u64 {
        self.stats.uploads.load(Ordering::Relaxed)
    }

    /// Blocks until the receiver stops (it only stops when dropped).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct State {
    dir: Option<PathBuf>,
    stats: Arc<Stats>,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    (acceptor, http2): (Option<tokio_rustls::TlsAcceptor>, Option<Http2Settings>),
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // EMFILE and friends: back off briefly instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&state)));
            if let Some(settings) = http2 {
                return serve_both(stream, acceptor, settings, service).await;
            }
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

/// Serves one connection in HTTP/1.1 or HTTP/2, as the client chose.
async fn serve_both<S>(
    stream: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    settings: Http2Settings,
    service: S,
) where
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = Response<Full<Bytes>>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    {
        let mut h2 = builder.http2();
        h2.max_concurrent_streams(settings.max_concurrent_streams);
        if let Some(window) = settings.stream_window {
            h2.initial_stream_window_size(window);
        }
        if let Some(window) = settings.connection_window {
            h2.initial_connection_window_size(window);
        }
    }
    match acceptor {
        Some(acceptor) => {
            if let Ok(tls) = acceptor.accept(stream).await {
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            }
        }
        None => {
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error_reply(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": message }).to_string())
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != hyper::Method::POST && req.method() != hyper::Method::PUT {
        return Ok(error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST or PUT a body (multipart/form-data or raw)",
        ));
    }
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let summary = match multer::parse_boundary(&content_type) {
        Ok(boundary) if req.version() == hyper::Version::HTTP_2 => {
            // The whole body is read before the answer: answering at the
            // closing delimiter would reset the stream (RFC 9113 §8.1)
            // before the client sent its last bytes.
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let reader = tokio::spawn(read_all(req.into_body(), tx));
            let stream =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
            let summary = summarize(multer::Multipart::new(stream, boundary), &state).await;
            let _ = reader.await;
            summary
        }
        Ok(boundary) => {
            let stream = req.into_body().into_data_stream();
            summarize(multer::Multipart::new(stream, boundary), &state).await
        }
        Err(_) => summarize_raw(req.into_body(), content_type, &state).await,
    };
    match summary {
        Ok(summary) => {
            state.stats.uploads.fetch_add(1, Ordering::Relaxed);
            Ok(reply(
                StatusCode::OK,
                serde_json::to_string(&summary).unwrap_or_default(),
            ))
        }
        Err(message) => Ok(error_reply(StatusCode::BAD_REQUEST, &message)),
    }
}

/// Reads `body` to its end, passing its bytes on while anyone listens.
async fn read_all(mut body: Incoming, tx: tokio::sync::mpsc::Sender<Result<Bytes, hyper::Error>>) {
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    let _ = tx.send(Ok(data)).await;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

async fn summarize(mut multipart: multer::Multipart<'static>, state: &State) -> Result<UploadSummary, String> {
    let mut summary = UploadSummary::default();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or("").to_string();
        let Some(filename) = field.file_name().map(str::to_string) else {
            let value = field.text().await.map_err(|e| e.to_string())?;
            summary.fields.push(FieldSummary { name, value });
            continue;
        };
        let content_type = field.content_type().map(|m| m.to_string()).unwrap_or_default();
        let mut received = Received::start(state).await?;
        while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
            received.take(&chunk).await?;
        }
        let (size, sha256) = received.end().await?;
        summary.files.push(FileSummary {
            field: name,
            filename,
            content_type,
            size,
            sha256,
        });
    }
    Ok(summary)
}

/// A raw body: its size and sha256 (and, with a directory, the bytes).
async fn summarize_raw(mut body: Incoming, content_type: String, state: &State) -> Result<UploadSummary, String> {
    let mut received = Received::start(state).await?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(chunk) = frame.into_data() {
            received.take(&chunk).await?;
        }
    }
    let (size, sha256) = received.end().await?;
    Ok(UploadSummary {
        body: Some(BodySummary {
            content_type,
            size,
            sha256,
        }),
        ..UploadSummary::default()
    })
}

/// Bytes of one file or body as they arrive: counted, hashed, and stored
/// when the receiver has a directory.
struct Received {
    hasher: Sha256,
    size: u64,
    store: Option<TempFile>,
}

impl Received {
    async fn start(state: &State) -> Result<Received, String> {
        let store = match &state.dir {
            Some(dir) => Some(TempFile::create(dir).await.map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(Received {
            hasher: Sha256::new(),
            size: 0,
            store,
        })
    }

    async fn take(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        if let Some(store) = self.store.as_mut() {
            store.file.write_all(chunk).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The size and hex sha256; the stored file is named by the latter.
    async fn end(self) -> Result<(u64, String), String> {
        let sha256 = hex::encode(self.hasher.finalize());
        if let Some(store) = self.store {
            store.keep(&sha256).await.map_err(|e| e.to_string())?;
        }
        Ok((self.size, sha256))
    }
}

/// A file being received, renamed to its sha256 once complete.
struct TempFile {
    path: PathBuf,
    dir: PathBuf,
    file: tokio::fs::File,
}

impl TempFile {
    async fn create(dir: &Path) -> io::Result<TempFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            ".part-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = tokio::fs::File::create(&path).await?;
        Ok(TempFile {
            path,
            dir: dir.to_path_buf(),
            file,
        })
    }

    async fn keep(mut self, sha256: &str) -> io::Result<()> {
        self.file.flush().await?;
        tokio::fs::rename(&self.path, self.dir.join(sha256)).await
    }
}
