//! The engine against independent peers on 127.0.0.1: the hyper + multer
//! receiver over plain TCP and TLS, and raw TCP peers that misbehave.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use uploadtask_cli::serve::{Receiver, ReceiverConfig, UploadSummary};
use uploadtask_engine::{Engine, EngineConfig, ErrorKind, Event, FileInput, Sendfile, StaticResolver, UploadRequest};
use uploadtask_tests::*;

fn summary(body: &[u8]) -> UploadSummary {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[test]
fn plain_uploads_with_sendfile() {
    plain_uploads_arrive_byte_exact_with_fields_and_names(Sendfile::Always);
}

#[test]
fn plain_uploads_through_the_loop_buffer() {
    plain_uploads_arrive_byte_exact_with_fields_and_names(Sendfile::Never);
}

fn plain_uploads_arrive_byte_exact_with_fields_and_names(sendfile: Sendfile) {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let engine = Engine::new(EngineConfig {
        sendfile,
        ..EngineConfig::default()
    })
    .unwrap();
    let dir = temp_dir("plain");
    for (i, len) in [0usize, 1, 16 * 1024, 5 * 1024 * 1024 + 7].into_iter().enumerate() {
        let (path, digest) = make_file(&dir, &format!("photo {i}.png"), len, i as u64);
        let request = UploadRequest::new(format!("http://{}/upload?x=1", receiver.addr()))
            .header("X-Token", "t")
            .field("user", "42")
            .field("note", "a \"quoted\" é value")
            .file(FileInput::path("testImg", &path));
        let outcome = run_upload(&engine, request);
        let response = outcome.result.unwrap();
        assert_eq!(response.status, 200);
        let got = summary(&response.body);
        assert_eq!(got.fields.len(), 2);
        assert_eq!(
            (got.fields[0].name.as_str(), got.fields[0].value.as_str()),
            ("user", "42")
        );
        assert_eq!(got.fields[1].value, "a \"quoted\" é value");
        assert_eq!(got.files.len(), 1);
        let file = &got.files[0];
        assert_eq!(
            (file.field.as_str(), file.filename.as_str()),
            ("testImg", format!("photo {i}.png").as_str())
        );
        assert_eq!(file.content_type, "image/png");
        assert_eq!((file.size, file.sha256.as_str()), (len as u64, digest.as_str()));
        let total = outcome
            .progress
            .last()
            .map(|p| p.total_bytes_expected_to_send)
            .unwrap_or(0);
        assert!(total > len as u64);
        assert_progress_rules(&outcome.progress, total);
    }
    engine.shutdown();
}

#[test]
fn tls_uploads_arrive_byte_exact() {
    let (server_tls, ca_pem) = tls_material();
    let receiver = Receiver::start(ReceiverConfig {
        tls: Some(server_tls),
        ..Default::default()
    })
    .unwrap();
    let mut config = EngineConfig::default();
    config.add_root_pem(&ca_pem).unwrap();
    config.resolver = Some(Arc::new(
        StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
    ));
    let engine = Engine::new(config).unwrap();
    let dir = temp_dir("tls");
    for (i, len) in [0usize, 100, 3 * 1024 * 1024 + 1].into_iter().enumerate() {
        let (path, digest) = make_file(&dir, &format!("f{i}.bin"), len, 99 + i as u64);
        let request = UploadRequest::new(format!("https://localhost:{}/u", receiver.addr().port()))
            .field("k", "v")
            .file(FileInput::path("file", &path));
        let outcome = run_upload(&engine, request);
        let response = outcome.result.unwrap();
        let got = summary(&response.body);
        assert_eq!(
            (got.files[0].size, got.files[0].sha256.as_str()),
            (len as u64, digest.as_str())
        );
        let total = outcome.progress.last().unwrap().total_bytes_expected_to_send;
        assert_progress_rules(&outcome.progress, total);
    }
    // An engine without the test CA refuses the certificate: 1000, kind Tls.
    let strict = Engine::new(EngineConfig {
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        ..EngineConfig::default()
    })
    .unwrap();
    let request = UploadRequest::new(format!("https://localhost:{}/u", receiver.addr().port()))
        .file(FileInput::memory("file", "a.txt", b"x".to_vec()));
    let error = run_upload(&strict, request).result.unwrap_err();
    assert_eq!((error.kind, error.code()), (ErrorKind::Tls, 1000), "{error}");
    // The cause has a kind a program can match, words instead of a Debug
    // dump, and the rustls error as its source.
    assert_eq!(error.tls_failure(), Some(uploadtask_engine::TlsFailure::UnknownIssuer));
    assert_eq!(
        error.message,
        "TLS certificate problem: unable to get local issuer certificate for localhost (add its CA to the trusted roots)"
    );
    assert!(std::error::Error::source(&error).is_some());
    // A name the certificate does not cover.
    let mut config = EngineConfig::default();
    config.add_root_pem(&ca_pem).unwrap();
    config.resolver = Some(Arc::new(
        StaticResolver::new().insert("other.test", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
    ));
    let other = Engine::new(config).unwrap();
    let request = UploadRequest::new(format!("https://other.test:{}/u", receiver.addr().port()))
        .file(FileInput::memory("file", "a.txt", b"x".to_vec()));
    let error = run_upload(&other, request).result.unwrap_err();
    assert_eq!(
        error.tls_failure(),
        Some(uploadtask_engine::TlsFailure::NameMismatch),
        "{error}"
    );
    assert!(error.message.contains("not valid for other.test"), "{error}");
}

#[test]
fn ten_thousand_uploads_with_a_thousand_in_flight() {
    let receiver = Receiver::start(ReceiverConfig {
        workers: Some(2),
        ..Default::default()
    })
    .unwrap();
    let engine = Engine::new(EngineConfig {
        max_in_flight: 1000,
        ..EngineConfig::default()
    })
    .unwrap();
    let payload: bytes::Bytes = (0..16 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let digest = sha256_hex(&payload);
    let (tx, rx) = std::sync::mpsc::channel();
    const TOTAL: usize = 10_000;
    for i in 0..TOTAL {
        let tx = tx.clone();
        let request = UploadRequest::new(format!("http://{}/bulk", receiver.addr()))
            .field("i", i.to_string())
            .file(FileInput::memory("file", "blob.bin", payload.clone()));
        engine.submit(request, move |event| {
            if let uploadtask_engine::Event::Done(result) = event {
                let _ = tx.send(result);
            }
        });
    }
    let mut ok = 0;
    for _ in 0..TOTAL {
        let result = rx.recv_timeout(Duration::from_secs(120)).expect("uploads stalled");
        let response = result.unwrap_or_else(|e| panic!("upload failed: {} {e}", e.code()));
        let got = summary(&response.body);
        assert_eq!(got.files[0].sha256, digest);
        ok += 1;
    }
    assert_eq!(ok, TOTAL);
    assert_eq!(receiver.uploads(), TOTAL as u64);
    engine.shutdown();
}

#[test]
fn early_413_with_close_is_the_result() {
    let server = RawServer::start(|mut stream, _| {
        let _ = read_head(&mut stream);
        let mut some = [0u8; 1000];
        let _ = stream.read(&mut some);
        let _ = stream
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big!");
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // Then drop: unread bytes make the kernel reset the connection.
    });
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let big: bytes::Bytes = vec![7u8; 64 * 1024 * 1024].into();
    let outcome = run_upload(
        &engine,
        UploadRequest::new(server.url("/")).file(FileInput::memory("f", "big.bin", big)),
    );
    let response = outcome.result.unwrap();
    assert_eq!((response.status, response.body.as_slice()), (413, &b"too big!"[..]));
}

#[test]
fn oversized_and_malformed_responses_fail_with_1000() {
    let cases: Vec<(&'static [u8], &str)> = vec![
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "conflicting Content-Length",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"garbage\r\n\r\n", "not HTTP/1.x"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            "16 hex digits",
        ),
    ];
    let engine = Engine::new(EngineConfig::default()).unwrap();
    for (reply, message) in cases {
        let server = RawServer::start(move |mut stream, _| {
            let _ = read_head(&mut stream);
            let _ = stream.write_all(reply);
            std::thread::sleep(Duration::from_millis(50));
        });
        let request = UploadRequest::new(server.url("/")).file(FileInput::memory("f", "a", b"x".to_vec()));
        let error = run_upload(&engine, request).result.unwrap_err();
        assert_eq!(error.code(), 1000);
        assert!(error.message.contains(message), "{error} lacks {message}");
    }
    // A head over 64 KiB.
    let server = RawServer::start(|mut stream, _| {
        let _ = read_head(&mut stream);
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        reply.extend(
            std::iter::repeat_n(b"X-Pad: 0123456789012345678901234567890123456789\r\n".to_vec(), 2000).flatten(),
        );
        let _ = stream.write_all(&reply);
    });
    let request = UploadRequest::new(server.url("/")).file(FileInput::memory("f", "a", b"x".to_vec()));
    let error = run_upload(&engine, request).result.unwrap_err();
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::Protocol, "response head too large")
    );
}

#[test]
fn bad_arguments_and_missing_files_fail_with_their_codes() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let memory = || FileInput::memory("f", "a.txt", b"x".to_vec());
    let cases = [
        (
            UploadRequest::new("ftp://127.0.0.1/").file(memory()),
            202,
            "unsupported url scheme",
        ),
        (UploadRequest::new("not a url").file(memory()), 202, "invalid url"),
        (
            UploadRequest::new("http://127.0.0.1:9/")
                .header("X-A", "1\r\n2")
                .file(memory()),
            202,
            "invalid header value for \"X-A\"",
        ),
        (
            UploadRequest::new("http://127.0.0.1:9/")
                .header("Content-Length", "1")
                .file(memory()),
            202,
            "Content-Length",
        ),
        (
            UploadRequest::new("http://127.0.0.1:9/").file(FileInput::path("f", "/nonexistent/x.png")),
            300,
            "file not found: /nonexistent/x.png",
        ),
        (
            UploadRequest::new("http://127.0.0.1:9/").file(FileInput::path("f", "/tmp")),
            300,
            "not a regular file",
        ),
    ];
    for (request, code, message) in cases {
        let error = run_upload(&engine, request).result.unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(error.message.contains(message), "{error} lacks {message}");
    }
    // Nothing listens on this port: refused, 1000.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = run_upload(
        &engine,
        UploadRequest::new(format!("http://127.0.0.1:{port}/")).file(memory()),
    )
    .result
    .unwrap_err();
    assert_eq!((error.kind, error.code()), (ErrorKind::Network, 1000), "{error}");
    // An unknown host name: 1000.
    let engine = Engine::new(EngineConfig {
        resolver: Some(Arc::new(StaticResolver::new())),
        ..Default::default()
    })
    .unwrap();
    let error = run_upload(&engine, UploadRequest::new("http://nowhere.invalid/").file(memory()))
        .result
        .unwrap_err();
    assert_eq!(error.code(), 1000);
    assert!(error.message.contains("cannot resolve nowhere.invalid"), "{error}");
}

#[test]
fn keep_alive_reuses_connections_and_drops_one_the_server_closed() {
    // The first connection answers one request, then the server closes it
    // while it is idle in the pool: the second upload must go over a fresh
    // connection (see robustness.rs for the retry rule), the third reuses it.
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let (closed_tx, closed) = std::sync::mpsc::channel::<()>();
    let closed_tx = std::sync::Mutex::new(closed_tx);
    let server = RawServer::start(move |mut stream, _| {
        let connection = counter.fetch_add(1, Ordering::SeqCst);
        loop {
            let (head, _) = read_request(&mut stream);
            if head.is_empty() {
                return;
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            if connection == 0 {
                drop(stream); // on loopback the FIN is queued at the client before this returns
                let _ = closed_tx.lock().unwrap().send(());
                return;
            }
        }
    });
    let engine = Engine::new(EngineConfig::default()).unwrap();
    for upload in 0..3 {
        if upload == 1 {
            closed.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        let request = UploadRequest::new(server.url("/")).file(FileInput::memory("f", "a", vec![1u8; 1000]));
        let outcome = run_upload(&engine, request);
        assert_eq!(outcome.result.unwrap().body, b"ok");
        assert_progress_rules(
            &outcome.progress,
            outcome.progress.last().unwrap().total_bytes_expected_to_send,
        );
    }
    // One connection for the first upload, a fresh one for the second,
    // reused by the third.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // Against the hyper receiver, successive uploads share one connection.
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    for _ in 0..5 {
        let request =
            UploadRequest::new(format!("http://{}/", receiver.addr())).file(FileInput::memory("f", "a", vec![1u8; 10]));
        assert_eq!(run_upload(&engine, request).result.unwrap().status, 200);
    }
    engine.shutdown();
}

/// A file that shrinks or grows while it is being sent fails with 300, with
/// and without sendfile; the peer never gets more bytes than announced.
#[test]
fn file_changing_size_fails_with_300() {
    for sendfile in [Sendfile::Always, Sendfile::Never] {
        for shrink in [true, false] {
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let go_rx = std::sync::Mutex::new(go_rx);
            let server = RawServer::start(move |mut stream, _| {
                let announced = content_length(&read_head(&mut stream)) as u64;
                let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(60));
                let mut received = 0u64;
                let mut buf = [0u8; 65536];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received += n as u64;
                }
                assert!(received <= announced, "peer got {received} > {announced} bytes");
            });
            let dir = temp_dir("changing");
            let (path, _) = make_file(&dir, "f.bin", 64 << 20, 3);
            let engine = Engine::new(EngineConfig {
                sendfile,
                ..EngineConfig::default()
            })
            .unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let progressed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = std::sync::Arc::clone(&progressed);
            engine.submit(
                UploadRequest::new(server.url("/")).file(FileInput::path("f", &path)),
                move |e: Event| match e {
                    Event::Progress(_) => flag.store(true, Ordering::SeqCst),
                    Event::Done(r) => {
                        let _ = tx.send(r);
                    }
                    _ => {}
                },
            );
            // Some bytes are out (socket buffers full), then change the file.
            while !progressed.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            if shrink {
                file.set_len(1 << 20).unwrap();
            } else {
                file.set_len(65 << 20).unwrap();
            }
            go_tx.send(()).unwrap();
            let error = rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap_err();
            assert_eq!(
                (error.kind, error.code()),
                (ErrorKind::File, 300),
                "{sendfile:?} shrink={shrink}: {error}"
            );
            assert_eq!(error.message, "file changed size during the upload");
            engine.shutdown();
        }
    }
}

/// Over TLS a close-delimited body ends only with close_notify; a bare TCP
/// close there could be a truncation attack, so it fails (1000, Tls).
#[test]
fn tls_close_delimited_body_needs_close_notify() {
    let (server_tls, ca_pem) = tls_material();
    let mut config = EngineConfig::default();
    config.add_root_pem(&ca_pem).unwrap();
    config.resolver = Some(Arc::new(
        StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
    ));
    let engine = Engine::new(config).unwrap();
    for notify in [true, false] {
        let server_tls = Arc::clone(&server_tls);
        let server = RawServer::start(move |stream, _| {
            let connection = rustls::ServerConnection::new(Arc::clone(&server_tls)).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let _ = read_request(&mut tls);
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nclose-delimited body");
            if notify {
                tls.conn.send_close_notify();
            }
            let _ = tls.flush();
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
        });
        let request = UploadRequest::new(format!("https://localhost:{}/", server.addr().port()))
            .file(FileInput::memory("f", "a.txt", b"hello".to_vec()));
        let result = run_upload(&engine, request).result;
        if notify {
            assert_eq!(result.unwrap().body, b"close-delimited body");
        } else {
            let error = result.unwrap_err();
            assert_eq!((error.kind, error.code()), (ErrorKind::Tls, 1000), "{error}");
        }
    }
}

/// `-X HEAD`: the answer's `Content-Length` describes a body that never
/// comes (RFC 9110 §9.3.2); the upload ends at the head instead of waiting
/// for it until the timeout.
#[test]
fn head_requests_end_at_the_head() {
    let server = RawServer::start(|mut stream, _| {
        let _ = read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
        let _ = stream.flush();
        std::thread::sleep(Duration::from_millis(300));
    });
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let mut request = UploadRequest::new(server.url("/f"));
    request.method = "HEAD".into();
    request.raw_body = Some(uploadtask_engine::SourceSpec::Memory(bytes::Bytes::new()));
    request.timeout = Some(Duration::from_secs(5));
    let response = run_upload(&engine, request).result.expect("the head is the answer");
    assert_eq!((response.status, response.body.len()), (200, 0));
}

/// How each TLS handshake a server saw went, in order.
type Handshakes = Arc<std::sync::Mutex<Vec<Option<rustls::HandshakeKind>>>>;

/// A TLS server for `localhost` answering one request per connection; the
/// kind of each handshake it saw; and an engine configuration trusting its
/// CA and resolving `localhost` to it.
fn handshake_recorder() -> (RawServer, Handshakes, EngineConfig) {
    let (server_tls, ca_pem) = tls_material();
    let kinds = Handshakes::default();
    let seen = Arc::clone(&kinds);
    let server = RawServer::start(move |stream, _| {
        let connection = rustls::ServerConnection::new(Arc::clone(&server_tls)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        let _ = read_request(&mut tls);
        seen.lock().unwrap().push(tls.conn.handshake_kind());
        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let mut config = EngineConfig::default();
    config.add_root_pem(&ca_pem).unwrap();
    config.resolver = Some(Arc::new(
        StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
    ));
    (server, kinds, config)
}

fn upload_to_recorder(engine: &Engine, server: &RawServer) {
    let request = UploadRequest::new(format!("https://localhost:{}/", server.addr().port())).file(FileInput::memory(
        "f",
        "a.txt",
        b"hello".to_vec(),
    ));
    assert_eq!(run_upload(engine, request).result.unwrap().body, b"ok");
}

/// A new TLS connection to a server seen before resumes the session (no
/// full handshake): rustls's client session cache is kept per engine.
#[test]
fn tls_sessions_resume_on_new_connections() {
    let (server, kinds, config) = handshake_recorder();
    let engine = Engine::new(config).unwrap();
    for _ in 0..3 {
        upload_to_recorder(&engine, &server);
    }
    let kinds = kinds.lock().unwrap().clone();
    use rustls::HandshakeKind::{Full, Resumed};
    assert_eq!(kinds, [Some(Full), Some(Resumed), Some(Resumed)]);
}

/// The engines of one client share one TLS configuration: a connection on
/// one engine resumes the session a connection on another made, as the
/// connections of one reqwest client or one curl multi handle do.
#[test]
fn the_engines_of_a_client_resume_each_others_tls_sessions() {
    let (server, kinds, engine) = handshake_recorder();
    let client = uploadtask::Client::new(uploadtask::ClientConfig {
        engine,
        engines: 2,
        ..uploadtask::ClientConfig::default()
    })
    .unwrap();
    let engines: Vec<&Engine> = client.engines().collect();
    for engine in [engines[0], engines[1], engines[0]] {
        upload_to_recorder(engine, &server);
    }
    let kinds = kinds.lock().unwrap().clone();
    use rustls::HandshakeKind::{Full, Resumed};
    assert_eq!(kinds, [Some(Full), Some(Resumed), Some(Resumed)]);
}

/// Counts lookups, answering as the static resolver does.
struct CountingResolver(StaticResolver, std::sync::atomic::AtomicUsize);

impl uploadtask_engine::Resolver for CountingResolver {
    fn resolve(&self, host: &str, port: u16, done: uploadtask_engine::resolver::ResolveDone) {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.resolve(host, port, done);
    }
}

#[test]
fn uploads_to_one_name_share_one_lookup_kept_for_the_next() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let resolver = Arc::new(CountingResolver(
        StaticResolver::new().insert("names.test", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        Default::default(),
    ));
    // A new connection for every upload: each one needs the name.
    let engine = Engine::new(EngineConfig {
        keep_alive: false,
        max_in_flight: 20,
        resolver: Some(resolver.clone()),
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://names.test:{}/u", receiver.addr().port());
    for round in 0..2 {
        let outcomes: Vec<_> = (0..20)
            .map(|i| submit_collect(&engine, UploadRequest::new(url.as_str()).field("i", i.to_string())).1)
            .collect();
        for outcome in outcomes {
            let outcome = outcome.recv_timeout(Duration::from_secs(60)).unwrap();
            assert_eq!(outcome.result.unwrap().status, 200);
        }
        assert_eq!(
            resolver.1.load(Ordering::SeqCst),
            1,
            "round {round}: 20 connections, one lookup"
        );
    }
}

/// Drops its first lookup without answering; answers the next ones.
struct ForgetfulResolver(StaticResolver, std::sync::atomic::AtomicBool);

impl uploadtask_engine::Resolver for ForgetfulResolver {
    fn resolve(&self, host: &str, port: u16, done: uploadtask_engine::resolver::ResolveDone) {
        if self.1.swap(true, Ordering::SeqCst) {
            self.0.resolve(host, port, done);
        }
    }
}

#[test]
fn a_lookup_dropped_unanswered_fails_its_uploads_at_once_and_the_name_is_asked_again() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let engine = Engine::new(EngineConfig {
        resolver: Some(Arc::new(ForgetfulResolver(
            StaticResolver::new().insert("names.test", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
            Default::default(),
        ))),
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://names.test:{}/u", receiver.addr().port());
    // A lookup error (not the connect timeout 30 s later).
    let error = run_upload(&engine, UploadRequest::new(url.as_str()).field("k", "v"))
        .result
        .unwrap_err();
    assert_eq!(
        error.message,
        "cannot resolve names.test: the resolver dropped the lookup"
    );
    let outcome = run_upload(&engine, UploadRequest::new(url.as_str()).field("k", "v"));
    assert_eq!(outcome.result.unwrap().status, 200);
}

/// Answers its first lookup with an address where nothing listens, the
/// next ones with the receiver's (a host that moved).
struct MovedResolver(std::sync::atomic::AtomicUsize);

impl uploadtask_engine::Resolver for MovedResolver {
    fn resolve(&self, _host: &str, port: u16, done: uploadtask_engine::resolver::ResolveDone) {
        let ip: IpAddr = match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => "127.0.0.2".parse().unwrap(),
            _ => "127.0.0.1".parse().unwrap(),
        };
        done(Ok(vec![std::net::SocketAddr::new(ip, port)]));
    }
}

#[test]
fn a_kept_answer_whose_every_address_refused_is_forgotten() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let resolver = Arc::new(MovedResolver(Default::default()));
    let engine = Engine::new(EngineConfig {
        resolver: Some(resolver.clone()),
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://moved.test:{}/u", receiver.addr().port());
    let error = run_upload(&engine, UploadRequest::new(url.as_str()).field("k", "v"))
        .result
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Network, "{error}");
    let outcome = run_upload(&engine, UploadRequest::new(url.as_str()).field("k", "v"));
    assert_eq!(outcome.result.unwrap().status, 200);
    assert_eq!(resolver.0.load(Ordering::SeqCst), 2);
}

#[test]
fn recycled_storage_never_carries_bytes_of_an_earlier_upload() {
    // Long then short then long: heads, framing and segments come back from
    // ended uploads of other sizes; each request must be exactly its own.
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let engine = Engine::new(EngineConfig {
        max_in_flight: 4,
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://{}/u", receiver.addr());
    let lengths = [300usize, 1, 40, 2_000, 3, 250, 0, 77, 1_000, 5];
    let outcomes: Vec<_> = (0..40)
        .map(|i| {
            let n = lengths[i % lengths.len()];
            let name = format!("f{}", "n".repeat(n));
            let value = "v".repeat(n * 2);
            let filename = format!("{}.{}", "x".repeat(n.max(1)), ["png", "txt", "bin"][i % 3]);
            let body = vec![b'a' + (i % 26) as u8; n * 3];
            let mut request = UploadRequest::new(url.as_str())
                .field(&name, &value)
                .file(FileInput::memory("file", filename.as_str(), body.clone()));
            if i % 4 == 0 {
                request = request.header("X-Pad", "p".repeat(n));
            }
            (
                name,
                value,
                filename,
                sha256_hex(&body),
                submit_collect(&engine, request).1,
            )
        })
        .collect();
    for (name, value, filename, digest, outcome) in outcomes {
        let response = outcome.recv_timeout(Duration::from_secs(60)).unwrap().result.unwrap();
        let got = summary(&response.body);
        assert_eq!(got.fields.len(), 1);
        assert_eq!(
            (got.fields[0].name.as_str(), got.fields[0].value.as_str()),
            (name.as_str(), value.as_str())
        );
        assert_eq!(got.files.len(), 1);
        let file = &got.files[0];
        assert_eq!(
            (file.filename.as_str(), file.sha256.as_str()),
            (filename.as_str(), digest.as_str())
        );
    }
}

/// Uploads beyond `max_in_flight` start in the order they were submitted.
/// A place freed and a new upload submitted in one batch of commands (an
/// abort and a submission from a job on the loop) must not let the new one
/// start before the one already waiting.
#[test]
fn waiting_uploads_start_in_submission_order() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    // Accepts nothing: an upload to it stays in flight until aborted.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let engine = Engine::new(EngineConfig {
        max_in_flight: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://{}/order", receiver.addr());
    let ended = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, all_ended) = std::sync::mpsc::channel();
    let record = |name: &'static str| {
        let (ended, tx) = (Arc::clone(&ended), tx.clone());
        move |event: Event| {
            if let Event::Done(result) = event {
                ended
                    .lock()
                    .unwrap()
                    .push((name, result.map(|r| r.status).map_err(|e| e.kind)));
                let _ = tx.send(());
            }
        }
    };
    let stalled = engine.submit(
        UploadRequest::new(format!("http://{}/", stall.local_addr().unwrap())).field("k", "v"),
        record("stalled"),
    );
    engine.submit(
        UploadRequest::new(url.as_str()).field("i", "waiting"),
        record("waiting"),
    );
    for _ in 0..600 {
        let stats = engine.stats().unwrap();
        if (stats.in_flight, stats.queued) == (1, 1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let on_loop = engine.clone();
    let late = record("late");
    engine.run_on_loop(move || {
        on_loop.abort(stalled);
        on_loop.submit(UploadRequest::new(url.as_str()).field("i", "late"), late);
    });
    for _ in 0..3 {
        all_ended.recv_timeout(Duration::from_secs(60)).expect("an outcome");
    }
    assert_eq!(
        *ended.lock().unwrap(),
        [
            ("stalled", Err(ErrorKind::Aborted)),
            ("waiting", Ok(200)),
            ("late", Ok(200))
        ]
    );
    let stats = engine.stats().unwrap();
    assert_eq!((stats.uploads, stats.in_flight, stats.queued), (0, 0, 0));
}
