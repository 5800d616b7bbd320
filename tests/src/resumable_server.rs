//! A resumable-upload server for the tests, written from the specs (tus
//! 1.0.0 and draft-ietf-httpbis-resumable-upload-12, interop version 8),
//! over plain `std` sockets: it must send `104` interim responses, which
//! hyper's server cannot. Its state outlives the listener, so a test can
//! kill it mid-upload (every socket reset) and start it again on the same
//! port, as a tusd with a file store would come back.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use sha1::Digest as _;

/// Which protocol the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// tus 1.0.0 under `/files/`.
    Tus,
    /// The IETF draft under `/upload`.
    Ietf,
}

/// One upload resource.
#[derive(Debug, Default, Clone)]
pub struct Stored {
    /// Bytes received so far (the offset is their length).
    pub data: Vec<u8>,
    /// The announced length.
    pub length: Option<u64>,
    /// tus `Upload-Metadata`, decoded.
    pub metadata: HashMap<String, String>,
    /// The creation request's `Content-Type` and `Content-Disposition` (ietf).
    pub content_type: Option<String>,
    /// See above.
    pub disposition: Option<String>,
    /// ietf: marked complete.
    pub complete: bool,
}

/// Faults to inject, and what happened.
#[derive(Debug, Default)]
pub struct Faults {
    /// Reset every connection once any upload holds this many bytes (the
    /// server "dies"); `killed` is then set.
    pub kill_at: Option<u64>,
    /// Answer the next append with 409 (its body read and dropped).
    pub conflict_once: bool,
    /// Treat the next checksum as wrong: 460 (tus).
    pub checksum_mismatch_once: bool,
    /// Keep half of the next append, then answer 500 and close (as tusd
    /// does when it stops reading a request).
    pub half_then_500_once: bool,
    /// Stop reading once any upload holds this many bytes, until
    /// [`ServerState::release`] is set (`paused` says it happened).
    pub pause_at: Option<u64>,
    /// ietf: the application fails once it has the whole upload: the
    /// completing request gets `500` with `Upload-Complete: ?1`.
    pub app_error_on_complete: bool,
    /// ietf: the completing request's answer is lost once (the connection
    /// resets after the upload completed); the server then forgets
    /// completed uploads (404), or with `gone_as_completed` answers 410
    /// with the `completed-upload` problem type.
    pub lose_final_answer_once: bool,
    /// See `lose_final_answer_once`.
    pub gone_as_completed: bool,
    /// ietf: the `Upload-Limit` of the creation's `104`.
    pub limit_104: Option<String>,
    /// ietf: requests with more body than this get 413 with
    /// `Upload-Limit: max-append-size=N` (the body read and dropped).
    pub max_append: Option<u64>,
}

/// How the ietf server meets a client.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum IetfPeer {
    /// Interop version 8, as written from the draft.
    #[default]
    Draft,
    /// A server that ignores the protocol: every POST is a whole upload.
    Ignores,
    /// As tusd: interop versions 3 to 6, anything else answered as plain
    /// tus (412 with `Tus-Resumable`) before the body.
    Tusd,
    /// As NIOResumableUpload: versions 3, 5, 6, else 400 before the body;
    /// a request with no resumable header passes to the application.
    Nio,
    /// A server at interop version 9: it never sends a `104` to a client
    /// that says 8, and otherwise answers as the draft says.
    Interop9,
}

/// The server's state, shared by its runs.
#[derive(Debug, Default)]
pub struct ServerState {
    /// Upload resources by id.
    pub uploads: Mutex<HashMap<String, Stored>>,
    /// Faults to inject.
    pub faults: Mutex<Faults>,
    /// `METHOD path offset len` of each request, in order.
    pub log: Mutex<Vec<String>>,
    /// Body bytes received over all requests (kept or not).
    pub received: Mutex<u64>,
    /// Set when `kill_at` fired.
    pub killed: AtomicBool,
    /// Set when `pause_at` fired.
    pub paused: AtomicBool,
    /// Ends a pause.
    pub release: AtomicBool,
    /// How the ietf server meets a client.
    pub peer: Mutex<IetfPeer>,
}

impl ServerState {
    /// The one upload resource's bytes (panics when there is not exactly one).
    pub fn only_upload(&self) -> Stored {
        let uploads = self.uploads.lock().unwrap();
        assert_eq!(uploads.len(), 1, "upload resources: {:?}", uploads.keys());
        uploads.values().next().unwrap().clone()
    }

    /// Requests with this method so far.
    pub fn count(&self, method: &str) -> usize {
        let prefix = format!("{method} ");
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .count()
    }
}

/// A running server; stops (every socket closed) when dropped.
pub struct ResumableServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl ResumableServer {
    /// Starts on `port` (0: any free one) with `state`.
    pub fn start(flavor: Flavor, state: Arc<ServerState>, port: u16) -> ResumableServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (flag, conns) = (Arc::clone(&stop), Arc::clone(&live));
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    conns.lock().unwrap().push(clone);
                }
                let state = Arc::clone(&state);
                workers.push(std::thread::spawn(move || serve(flavor, stream, &state, addr)));
            }
            drop(listener);
            for worker in workers {
                let _ = worker.join();
            }
        });
        ResumableServer {
            addr,
            stop,
            live,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for ResumableServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in self.live.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits (bounded) until the state's `kill_at` fired.
pub fn wait_killed(state: &ServerState) {
    for _ in 0..2000 {
        if state.killed.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the server was never killed");
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.header(name).and_then(|v| v.trim().parse().ok())
    }
}

fn parse(head: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    request.parse(head).ok()?;
    Some(Request {
        method: request.method?.to_string(),
        path: request.path?.to_string(),
        headers: request
            .headers
            .iter()
            .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
            .collect(),
    })
}

fn serve(flavor: Flavor, mut stream: TcpStream, state: &ServerState, addr: SocketAddr) {
    loop {
        let head = crate::read_head(&mut stream);
        if head.is_empty() {
            return;
        }
        let Some(request) = parse(&head) else { return };
        let reply = match flavor {
            Flavor::Tus => tus(&request, &mut stream, state, addr),
            Flavor::Ietf => ietf(&request, &mut stream, state, addr),
        };
        let Some(reply) = reply else {
            // Killed: the whole server goes when the test drops it. A lost
            // answer: this connection goes now (the clone kept for `Drop`
            // holds the socket open, so shut it first).
            if !state.killed.load(Ordering::SeqCst) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            let socket = socket2::Socket::from(stream);
            let _ = socket.set_linger(Some(Duration::ZERO));
            return;
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn reply(status: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

fn log(state: &ServerState, request: &Request, offset: u64, len: u64) {
    let line = format!("{} {} {offset} {len}", request.method, request.path);
    state.log.lock().unwrap().push(line);
}

/// Reads `len` body bytes; each piece goes to `sink` as it arrives. `None`
/// when the kill threshold fired (or the peer went away), after keeping
/// what came.
fn read_body(stream: &mut TcpStream, state: &ServerState, len: u64, mut sink: impl FnMut(&[u8]) -> u64) -> Option<()> {
    let mut left = len;
    let mut buf = [0u8; 16 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        left -= n as u64;
        *state.received.lock().unwrap() += n as u64;
        let stored = sink(&buf[..n]);
        let mut faults = state.faults.lock().unwrap();
        if faults.kill_at.is_some_and(|at| stored >= at) {
            faults.kill_at = None;
            state.killed.store(true, Ordering::SeqCst);
            return None;
        }
        if faults.pause_at.is_some_and(|at| stored >= at) {
            faults.pause_at = None;
            drop(faults);
            state.paused.store(true, Ordering::SeqCst);
            for _ in 0..2000 {
                if state.release.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    Some(())
}

fn append(stream: &mut TcpStream, state: &ServerState, id: &str, len: u64) -> Option<()> {
    read_body(stream, state, len, |bytes| {
        // A resource deleted meanwhile takes nothing more.
        let mut uploads = state.uploads.lock().unwrap();
        let Some(upload) = uploads.get_mut(id) else { return 0 };
        upload.data.extend_from_slice(bytes);
        upload.data.len() as u64
    })
}

fn discard(stream: &mut TcpStream, state: &ServerState, len: u64) -> Option<()> {
    read_body(stream, state, len, |_| 0)
}

/// What an append (PATCH) request may go on to.
enum Append {
    /// Append the body.
    Go,
    /// The offset is not the server's (`current`), or a 409 fault was due;
    /// the body was read and dropped.
    Conflict(u64),
    /// An early answer (404, 415); the body was read and dropped.
    Reply(String),
}

/// The checks both protocols make before an append: the resource exists,
/// the body has the protocol's `media_type`, `Upload-Offset` is the
/// server's. `None` when the peer went away (or the server was killed).
fn check_append(
    request: &Request,
    stream: &mut TcpStream,
    state: &ServerState,
    id: &str,
    media_type: &str,
    headers: &[(&str, String)],
) -> Option<Append> {
    let len = request.number("content-length").unwrap_or(0);
    let offset = request.number("upload-offset").unwrap_or(u64::MAX);
    log(state, request, offset, len);
    let current = state.uploads.lock().unwrap().get(id).map(|u| u.data.len() as u64);
    let Some(current) = current else {
        discard(stream, state, len)?;
        return Some(Append::Reply(reply("404 Not Found", headers, "")));
    };
    if request.header("content-type") != Some(media_type) {
        discard(stream, state, len)?;
        return Some(Append::Reply(reply("415 Unsupported Media Type", headers, "")));
    }
    let conflict = std::mem::take(&mut state.faults.lock().unwrap().conflict_once);
    if offset != current || conflict {
        discard(stream, state, len)?;
        return Some(Append::Conflict(current));
    }
    Some(Append::Go)
}

fn new_id(state: &ServerState) -> String {
    format!("u{}", state.uploads.lock().unwrap().len() + 1)
}

fn tus(request: &Request, stream: &mut TcpStream, state: &ServerState, addr: SocketAddr) -> Option<String> {
    let len = request.number("content-length").unwrap_or(0);
    let base = [("Tus-Resumable", "1.0.0".to_string())];
    if request.header("tus-resumable") != Some("1.0.0") {
        discard(stream, state, len)?;
        return Some(reply("412 Precondition Failed", &[("Tus-Version", "1.0.0".into())], ""));
    }
    let id = request.path.strip_prefix("/files/").unwrap_or("").to_string();
    let offset_of = |id: &str| state.uploads.lock().unwrap().get(id).map(|u| u.data.len() as u64);
    match request.method.as_str() {
        "POST" if request.path == "/files/" || request.path == "/files" => {
            let Some(length) = request.number("upload-length") else {
                discard(stream, state, len)?;
                return Some(reply("400 Bad Request", &base, "no Upload-Length"));
            };
            let id = new_id(state);
            let mut metadata = HashMap::new();
            for pair in request.header("upload-metadata").unwrap_or("").split(',') {
                let mut parts = pair.trim().splitn(2, ' ');
                let key = parts.next().unwrap_or("");
                if key.is_empty() {
                    continue;
                }
                let value = parts
                    .next()
                    .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default();
                metadata.insert(key.to_string(), value);
            }
            state.uploads.lock().unwrap().insert(
                id.clone(),
                Stored {
                    length: Some(length),
                    metadata,
                    ..Stored::default()
                },
            );
            log(state, request, 0, len);
            if len > 0 {
                append(stream, state, &id, len)?;
            }
            let offset = offset_of(&id).unwrap_or(0);
            let headers = [
                ("Tus-Resumable", "1.0.0".to_string()),
                ("Location", format!("http://{addr}/files/{id}")),
                ("Upload-Offset", offset.to_string()),
                ("Upload-Expires", "Wed, 25 Nov 2099 10:00:00 GMT".into()),
            ];
            Some(reply("201 Created", &headers, ""))
        }
        "HEAD" => {
            log(state, request, 0, 0);
            let uploads = state.uploads.lock().unwrap();
            let Some(upload) = uploads.get(&id) else {
                return Some(reply("404 Not Found", &base, ""));
            };
            let headers = [
                ("Tus-Resumable", "1.0.0".to_string()),
                ("Upload-Offset", upload.data.len().to_string()),
                ("Upload-Length", upload.length.unwrap_or(0).to_string()),
                ("Cache-Control", "no-store".into()),
            ];
            // A HEAD answer has no body, whatever its Content-Length.
            let mut out = "HTTP/1.1 200 OK\r\n".to_string();
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("Content-Length: 17\r\n\r\n");
            Some(out)
        }
        "PATCH" => {
            match check_append(request, stream, state, &id, "application/offset+octet-stream", &base)? {
                Append::Go => {}
                Append::Conflict(_) => return Some(reply("409 Conflict", &base, "offset mismatch")),
                Append::Reply(early) => return Some(early),
            }
            if std::mem::take(&mut state.faults.lock().unwrap().half_then_500_once) {
                append(stream, state, &id, len / 2)?;
                let headers = [
                    ("Tus-Resumable", "1.0.0".to_string()),
                    ("Connection", "close".to_string()),
                ];
                let _ = stream.write_all(reply("500 Internal Server Error", &headers, "ERR_READ_TIMEOUT").as_bytes());
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return None;
            }
            if let Some(checksum) = request.header("upload-checksum") {
                let mut body = Vec::new();
                read_body(stream, state, len, |bytes| {
                    body.extend_from_slice(bytes);
                    0
                })?;
                let digest = sha1::Sha1::digest(&body);
                let expected = format!("sha1 {}", base64::engine::general_purpose::STANDARD.encode(digest));
                let mismatch = std::mem::take(&mut state.faults.lock().unwrap().checksum_mismatch_once);
                if checksum != expected || mismatch {
                    return Some(reply("460 Checksum Mismatch", &base, ""));
                }
                state
                    .uploads
                    .lock()
                    .unwrap()
                    .get_mut(&id)?
                    .data
                    .extend_from_slice(&body);
            } else {
                append(stream, state, &id, len)?;
            }
            let headers = [
                ("Tus-Resumable", "1.0.0".to_string()),
                ("Upload-Offset", offset_of(&id).unwrap_or(0).to_string()),
            ];
            Some(reply("204 No Content", &headers, ""))
        }
        "DELETE" => {
            log(state, request, 0, 0);
            discard(stream, state, len)?;
            match state.uploads.lock().unwrap().remove(&id) {
                Some(_) => Some(reply("204 No Content", &base, "")),
                None => Some(reply("404 Not Found", &base, "")),
            }
        }
        _ => {
            discard(stream, state, len)?;
            Some(reply("405 Method Not Allowed", &base, ""))
        }
    }
}

/// A whole upload in one plain request, as a server without the protocol
/// stores it: the answer has the size and sha256 it kept.
fn plain_upload(request: &Request, stream: &mut TcpStream, state: &ServerState) -> Option<String> {
    let len = request.number("content-length").unwrap_or(0);
    let id = new_id(state);
    state.uploads.lock().unwrap().insert(
        id.clone(),
        Stored {
            length: Some(len),
            content_type: request.header("content-type").map(str::to_string),
            complete: true,
            ..Stored::default()
        },
    );
    log(state, request, 0, len);
    append(stream, state, &id, len)?;
    let uploads = state.uploads.lock().unwrap();
    let data = &uploads.get(&id)?.data;
    let body = format!("{{\"size\":{},\"sha256\":\"{}\"}}", data.len(), crate::sha256_hex(data));
    Some(reply(
        "200 OK",
        &[("Content-Type", "application/json".to_string())],
        &body,
    ))
}

fn ietf(request: &Request, stream: &mut TcpStream, state: &ServerState, addr: SocketAddr) -> Option<String> {
    let len = request.number("content-length").unwrap_or(0);
    let peer = *state.peer.lock().unwrap();
    let version = request.header("upload-draft-interop-version").map(str::trim);
    let resumable = version.is_some() || request.header("upload-complete").is_some();
    let refused = match peer {
        IetfPeer::Draft => None,
        IetfPeer::Ignores => return plain_upload(request, stream, state),
        IetfPeer::Tusd if !matches!(version, Some("3" | "4" | "5" | "6")) => Some(reply(
            "412 Precondition Failed",
            &[("Tus-Resumable", "1.0.0".into()), ("Tus-Version", "1.0.0".into())],
            "",
        )),
        IetfPeer::Nio if !resumable => return plain_upload(request, stream, state),
        IetfPeer::Nio if !matches!(version, Some("3" | "5" | "6")) => Some(reply("400 Bad Request", &[], "")),
        IetfPeer::Tusd | IetfPeer::Nio | IetfPeer::Interop9 => None,
    };
    if let Some(refusal) = refused {
        // Answered before the body, which is then read and dropped.
        log(state, request, 0, len);
        stream.write_all(refusal.as_bytes()).ok()?;
        discard(stream, state, len)?;
        return Some(String::new());
    }
    let max_append = state.faults.lock().unwrap().max_append;
    if let Some(max) = max_append.filter(|&max| len > max) {
        log(state, request, 0, len);
        discard(stream, state, len)?;
        let headers = [("Upload-Limit", format!("max-append-size={max}"))];
        return Some(reply("413 Content Too Large", &headers, ""));
    }
    let interop = [("Upload-Draft-Interop-Version", "8".to_string())];
    let id = request.path.strip_prefix("/upload/").unwrap_or("").to_string();
    let complete = request.header("upload-complete").map(str::trim) == Some("?1");
    let offset_of = |id: &str| state.uploads.lock().unwrap().get(id).map(|u| u.data.len() as u64);
    let finished = |id: &str| {
        let mut faults = state.faults.lock().unwrap();
        let mut uploads = state.uploads.lock().unwrap();
        let upload = uploads.get_mut(id).expect("upload");
        upload.complete = true;
        if std::mem::take(&mut faults.lose_final_answer_once) {
            return None; // the answer is lost: the connection resets
        }
        if faults.app_error_on_complete {
            let headers = [("Upload-Complete", "?1".to_string())];
            return Some(reply("500 Internal Server Error", &headers, "the application failed"));
        }
        let digest = crate::sha256_hex(&upload.data);
        let body = format!("{{\"size\":{},\"sha256\":\"{digest}\"}}", upload.data.len());
        let headers = [
            ("Upload-Complete", "?1".to_string()),
            ("Content-Type", "application/json".to_string()),
        ];
        Some(reply("200 OK", &headers, &body))
    };
    // A completed upload the server no longer offers (its answer was lost).
    let forgotten = |id: &str| {
        let completed = state.uploads.lock().unwrap().get(id).is_some_and(|u| u.complete);
        let faults = state.faults.lock().unwrap();
        match (completed, faults.gone_as_completed) {
            (false, _) => None,
            (true, false) => Some(reply("404 Not Found", &[], "")),
            (true, true) => Some(reply(
                "410 Gone",
                &[("Content-Type", "application/problem+json".to_string())],
                "{\"type\":\"https://iana.org/assignments/http-problem-types#completed-upload\"}",
            )),
        }
    };
    match request.method.as_str() {
        "POST" if request.path == "/upload" => {
            let id = new_id(state);
            state.uploads.lock().unwrap().insert(
                id.clone(),
                Stored {
                    length: request.number("upload-length"),
                    content_type: request.header("content-type").map(str::to_string),
                    disposition: request.header("content-disposition").map(str::to_string),
                    ..Stored::default()
                },
            );
            log(state, request, 0, len);
            let location = format!("http://{addr}/upload/{id}");
            let spoken = if peer == IetfPeer::Interop9 { "9" } else { "8" };
            if request.header("upload-draft-interop-version") == Some(spoken) {
                let limit = state.faults.lock().unwrap().limit_104.clone();
                let limit = limit.unwrap_or_else(|| "max-size=1000000000".into());
                let interim = format!(
                    "HTTP/1.1 104 Upload Resumption Supported\r\nLocation: {location}\r\nUpload-Draft-Interop-Version: {spoken}\r\nUpload-Limit: {limit}\r\n\r\n"
                );
                stream.write_all(interim.as_bytes()).ok()?;
            }
            append(stream, state, &id, len)?;
            if complete {
                return finished(&id);
            }
            let headers = [
                ("Location", location),
                ("Upload-Complete", "?0".to_string()),
                ("Upload-Offset", offset_of(&id).unwrap_or(0).to_string()),
            ];
            Some(reply("201 Created", &headers, ""))
        }
        "HEAD" => {
            log(state, request, 0, 0);
            if let Some(answer) = forgotten(&id) {
                return Some(answer);
            }
            let uploads = state.uploads.lock().unwrap();
            let Some(upload) = uploads.get(&id) else {
                return Some(reply("404 Not Found", &interop, ""));
            };
            let mut out = "HTTP/1.1 204 No Content\r\n".to_string();
            out.push_str(&format!("Upload-Offset: {}\r\n", upload.data.len()));
            out.push_str(&format!(
                "Upload-Complete: {}\r\n",
                if upload.complete { "?1" } else { "?0" }
            ));
            if let Some(length) = upload.length {
                out.push_str(&format!("Upload-Length: {length}\r\n"));
            }
            out.push_str("Upload-Limit: max-age=3600\r\nCache-Control: no-store\r\n\r\n");
            Some(out)
        }
        "PATCH" => {
            if let Some(answer) = forgotten(&id) {
                log(state, request, 0, len);
                discard(stream, state, len)?;
                return Some(answer);
            }
            let check = check_append(request, stream, state, &id, "application/partial-upload", &interop)?;
            if let Append::Reply(early) = check {
                return Some(early);
            }
            if let Append::Conflict(current) = check {
                let headers = [
                    ("Upload-Offset", current.to_string()),
                    ("Upload-Complete", "?0".to_string()),
                    ("Content-Type", "application/problem+json".to_string()),
                ];
                let body = "{\"type\":\"https://iana.org/assignments/http-problem-types#mismatching-upload-offset\"}";
                return Some(reply("409 Conflict", &headers, body));
            }
            append(stream, state, &id, len)?;
            if complete {
                return finished(&id);
            }
            Some(reply("204 No Content", &[("Upload-Complete", "?0".to_string())], ""))
        }
        "DELETE" => {
            log(state, request, 0, 0);
            discard(stream, state, len)?;
            state.uploads.lock().unwrap().remove(&id);
            Some(reply("204 No Content", &[], ""))
        }
        _ => {
            discard(stream, state, len)?;
            Some(reply("405 Method Not Allowed", &[], ""))
        }
    }
}
