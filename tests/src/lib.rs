//! End-to-end tests of uploadtask against independent peers on 127.0.0.1.
//! The tests live in `tests/`; this library holds what they share: TLS
//! material from rcgen, raw TCP peers that misbehave on purpose, files with
//! known digests, and a descriptor count.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub mod resumable_server;
use uploadtask_engine::{Engine, Event, Progress, Response, UploadError, UploadRequest};

/// A CA and a `localhost` leaf it signed: the server's config and the CA's PEM.
pub fn tls_material() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "uploadtask test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    (Arc::new(config), ca_cert.pem().into_bytes())
}

/// A fresh directory under the system temp dir, removed with everything in
/// it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Its path.
    pub fn path(&self) -> PathBuf {
        self.0.clone()
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory under the system temp dir; see [`TempDir`].
pub fn temp_dir(tag: &str) -> TempDir {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "uploadtask-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// Writes `len` pseudo-random bytes to `dir/name`; returns the path and hex sha256.
pub fn make_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, String) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write file");
    (path, sha256_hex(&bytes))
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// What one upload reported.
#[derive(Debug)]
pub struct Outcome {
    /// Progress events in order.
    pub progress: Vec<Progress>,
    /// The result.
    pub result: Result<Response, UploadError>,
    /// Events that came after `Done` (must be zero).
    pub late_events: usize,
}

/// Submits and waits (at most 120 s) for the outcome.
pub fn run_upload(engine: &Engine, request: UploadRequest) -> Outcome {
    let (id_tx, rx) = submit_collect(engine, request);
    let _ = id_tx;
    rx.recv_timeout(Duration::from_secs(120))
        .expect("upload did not finish within 120 s")
}

/// Submits; the receiver gets the outcome once done.
pub fn submit_collect(
    engine: &Engine,
    request: UploadRequest,
) -> (uploadtask_engine::UploadId, mpsc::Receiver<Outcome>) {
    let (tx, rx) = mpsc::channel();
    let mut progress = Vec::new();
    let mut done = false;
    let mut tx = Some(tx);
    let id = engine.submit(request, move |event: Event| match event {
        Event::Progress(p) => {
            assert!(!done, "progress after done");
            progress.push(p);
        }
        Event::Done(result) => {
            assert!(!done, "two outcomes");
            done = true;
            if let Some(tx) = tx.take() {
                let _ = tx.send(Outcome {
                    progress: std::mem::take(&mut progress),
                    result,
                    late_events: 0,
                });
            }
        }
        _ => assert!(!done, "event after done"),
    });
    (id, rx)
}

/// Checks the documented progress rules on a successful upload.
pub fn assert_progress_rules(progress: &[Progress], total: u64) {
    assert!(!progress.is_empty(), "no progress event");
    let mut last = 0;
    for p in progress {
        assert!(
            p.total_bytes_sent > last,
            "progress repeated or went back: {progress:?}"
        );
        assert_eq!(p.total_bytes_expected_to_send, total);
        assert_eq!(u64::from(p.progress), p.total_bytes_sent * 100 / total);
        last = p.total_bytes_sent;
    }
    let end = progress.last().map(|p| (p.progress, p.total_bytes_sent));
    assert_eq!(end, Some((100, total)));
}

/// A raw TCP peer on 127.0.0.1 running `handler` for each connection on its
/// own thread; stops (and joins its threads) when dropped.
pub struct RawServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawServer {
    /// Starts the peer.
    pub fn start(handler: impl Fn(TcpStream, &AtomicBool) + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = Arc::clone(&handler);
                let flag = Arc::clone(&flag);
                workers.push(std::thread::spawn(move || handler(stream, &flag)));
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        RawServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a request head (up to the empty line) from any stream; returns it.
pub fn read_head<R: Read>(stream: &mut R) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Waits, polling `stop` every 10 ms, for at most `limit`.
pub fn idle_until_stopped(stop: &AtomicBool, limit: Duration) {
    let started = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The soft limit on open files.
pub fn nofile_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Sets the soft limit on open files (the hard limit stays).
pub fn set_nofile_limit(soft: u64) {
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current = Some(soft);
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).expect("setrlimit");
}

/// The Content-Length of a request head (0 when absent).
pub fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads one request (head, then a Content-Length body) from any stream;
/// returns the head and body.
pub fn read_request<R: Read>(stream: &mut R) -> (Vec<u8>, Vec<u8>) {
    let head = read_head(stream);
    let mut body = vec![0u8; content_length(&head)];
    let _ = stream.read_exact(&mut body);
    (head, body)
}
