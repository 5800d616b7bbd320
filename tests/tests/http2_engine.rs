//! The engine over HTTP/2 against hyper's HTTP/2 server (the `h2` crate:
//! independent of our codec) with multer checking every byte: over TLS
//! where ALPN picks `h2`, and over plain TCP with prior knowledge (h2c);
//! many uploads at once sharing few connections, small server windows,
//! streams refused above the server's limit and sent again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use uploadtask_cli::serve::{Http2Settings, Receiver, ReceiverConfig, UploadSummary};
use uploadtask_engine::{Engine, EngineConfig, FileInput, HttpVersion, StaticResolver, UploadRequest};
use uploadtask_tests::*;

fn summary(body: &[u8]) -> UploadSummary {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// A receiver speaking HTTP/2 with small windows and a stream limit.
fn receiver(tls: Option<Arc<rustls::ServerConfig>>, max_streams: u32) -> Receiver {
    Receiver::start(ReceiverConfig {
        tls,
        http2: Some(Http2Settings {
            max_concurrent_streams: Some(max_streams),
            stream_window: Some(16 * 1024),
            connection_window: Some(64 * 1024),
        }),
        ..ReceiverConfig::default()
    })
    .unwrap()
}

fn localhost_engine(ca_pem: Option<&[u8]>, http: HttpVersion, max_in_flight: usize) -> Engine {
    let mut config = EngineConfig {
        http,
        max_in_flight,
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        ..EngineConfig::default()
    };
    if let Some(pem) = ca_pem {
        config.add_root_pem(pem).unwrap();
    }
    Engine::new(config).unwrap()
}

/// Sends `count` uploads of assorted sizes at once to `url`; checks every
/// byte, field and name the server saw, the progress rules and the
/// protocol version of every response.
fn upload_many(engine: &Engine, url: &str, count: usize, version: u8) {
    let dir = temp_dir("h2");
    let sizes = [0usize, 1, 16 * 1024 - 1, 16 * 1024 + 1, 100_000, 300_000];
    let mut waiting = HashMap::new();
    for i in 0..count {
        let len = sizes[i % sizes.len()];
        let (path, digest) = make_file(&dir, &format!("f{i}.bin"), len, i as u64);
        let request = UploadRequest::new(url)
            .field("n", i.to_string())
            .file(FileInput::path("file", &path));
        let (_, rx) = submit_collect(engine, request);
        waiting.insert(i, (rx, len, digest));
    }
    for (i, (rx, len, digest)) in waiting {
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("upload ended");
        let response = outcome.result.unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert_eq!((response.status, response.version), (200, version), "upload {i}");
        let got = summary(&response.body);
        assert_eq!(got.fields.len(), 1);
        assert_eq!(
            (got.fields[0].name.as_str(), got.fields[0].value.clone()),
            ("n", i.to_string())
        );
        assert_eq!(got.files.len(), 1);
        assert_eq!(
            (got.files[0].field.as_str(), got.files[0].filename.clone()),
            ("file", format!("f{i}.bin"))
        );
        assert_eq!(
            (got.files[0].size, got.files[0].sha256.as_str()),
            (len as u64, digest.as_str()),
            "upload {i}"
        );
        let total = outcome
            .progress
            .last()
            .map(|p| p.total_bytes_expected_to_send)
            .unwrap_or(0);
        assert_progress_rules(&outcome.progress, total);
    }
}

#[test]
fn h2c_with_prior_knowledge_many_uploads_share_few_connections() {
    let server = receiver(None, 50);
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 300);
    upload_many(
        &engine,
        &format!("http://localhost:{}/up", server.addr().port()),
        300,
        2,
    );
    let stats = engine.stats().unwrap();
    assert_eq!((stats.uploads, stats.in_flight, stats.queued), (0, 0, 0));
    // 300 uploads in flight, 50 streams a connection: a handful of
    // connections, not 300 (each still open, idle, in the pool).
    assert!(stats.connections <= 12, "{stats:?}");
    assert_eq!(server.uploads(), 300);
    engine.shutdown();
}

#[test]
fn tls_alpn_picks_h2_and_uploads_arrive_byte_exact() {
    let (tls, ca_pem) = tls_material();
    let server = receiver(Some(tls), 100);
    let engine = localhost_engine(Some(&ca_pem), HttpVersion::Auto, 200);
    upload_many(
        &engine,
        &format!("https://localhost:{}/up", server.addr().port()),
        200,
        2,
    );
    let stats = engine.stats().unwrap();
    assert!(stats.connections <= 6, "{stats:?}");
    engine.shutdown();
}

#[test]
fn http1_only_and_servers_without_h2_stay_on_http1() {
    let (tls, ca_pem) = tls_material();
    // The client asks for HTTP/1.1 only: the server's h2 is not used.
    let server = receiver(Some(Arc::clone(&tls)), 100);
    let engine = localhost_engine(Some(&ca_pem), HttpVersion::Http1, 20);
    upload_many(
        &engine,
        &format!("https://localhost:{}/up", server.addr().port()),
        20,
        1,
    );
    engine.shutdown();
    // A server without h2: ALPN falls back to HTTP/1.1.
    let plain_tls = Receiver::start(ReceiverConfig {
        tls: Some(tls),
        ..ReceiverConfig::default()
    })
    .unwrap();
    let engine = localhost_engine(Some(&ca_pem), HttpVersion::Auto, 20);
    upload_many(
        &engine,
        &format!("https://localhost:{}/up", plain_tls.addr().port()),
        20,
        1,
    );
    engine.shutdown();
}

#[test]
fn a_thousand_uploads_at_once_go_on_one_connection() {
    let server = Receiver::start(ReceiverConfig {
        http2: Some(Http2Settings {
            max_concurrent_streams: Some(1000),
            ..Http2Settings::default()
        }),
        ..ReceiverConfig::default()
    })
    .unwrap();
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 1000);
    let url = format!("http://localhost:{}/up", server.addr().port());
    let mut waiting = Vec::new();
    for i in 0..1000u32 {
        let bytes: Vec<u8> = (0..16 * 1024u32).map(|b| (b * 7 + i) as u8).collect();
        let digest = sha256_hex(&bytes);
        let request = UploadRequest::new(url.as_str()).file(FileInput::memory("file", format!("{i}.bin"), bytes));
        waiting.push((submit_collect(&engine, request).1, digest));
    }
    for (rx, digest) in waiting {
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("upload ended");
        let response = outcome.result.unwrap();
        assert_eq!(response.version, 2);
        assert_eq!(summary(&response.body).files[0].sha256, digest);
    }
    let stats = engine.stats().unwrap();
    assert_eq!((stats.connections, stats.resent), (1, 0), "{stats:?}");
    engine.shutdown();
}

/// What the scripted HTTP/2 peer saw.
#[derive(Default)]
struct Seen {
    connections: std::sync::atomic::AtomicUsize,
    /// Requests whose body ended in an error or whose handler hyper dropped
    /// unfinished: both are what a client's RST_STREAM does.
    cancelled: std::sync::atomic::AtomicUsize,
    /// DATA frames smaller than 1,024 bytes that did not end their body.
    tiny_frames: std::sync::atomic::AtomicUsize,
}

/// Counts a request as cancelled when its handler ends without answering:
/// hyper drops the handler of a stream the client reset while it waits.
struct Unanswered(Arc<Seen>, bool);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How the scripted peer behaves.
#[derive(Clone, Copy, Default)]
struct Script {
    max_streams: u32,
    stream_window: u32,
    /// Each connection says GOAWAY (gracefully) once it got this many requests.
    goaway_after: Option<usize>,
    /// The server reads each DATA frame this many ms after the last.
    read_delay_ms: u64,
}

/// hyper's HTTP/2 server (h2c) answering `LEN SHA256` of each body; at
/// `/too-large` a 413 at once, the body never read.
fn scripted(script: Script) -> (std::net::SocketAddr, Arc<Seen>, tokio::runtime::Runtime) {
    use http_body_util::BodyExt;
    use sha2::Digest;
    use std::sync::atomic::Ordering::Relaxed;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let all = Arc::clone(&seen);
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            all.connections.fetch_add(1, Relaxed);
            let seen = Arc::clone(&all);
            tokio::spawn(async move {
                let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let goaway = Arc::new(tokio::sync::Notify::new());
                let (count, notify) = (Arc::clone(&requests), Arc::clone(&goaway));
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let seen = Arc::clone(&seen);
                    let n = count.fetch_add(1, Relaxed) + 1;
                    if script.goaway_after == Some(n) {
                        notify.notify_one();
                    }
                    async move {
                        let reply = |status: u16, body: String| {
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                    .unwrap(),
                            )
                        };
                        let mut unanswered = Unanswered(Arc::clone(&seen), false);
                        if request.uri().path() == "/too-large" {
                            unanswered.1 = true;
                            return reply(413, "no".into());
                        }
                        let mut body = request.into_body();
                        let (mut hash, mut len, mut last) = (sha2::Sha256::new(), 0usize, None::<usize>);
                        while let Some(frame) = body.frame().await {
                            let Ok(frame) = frame else {
                                return reply(500, "cancelled".into());
                            };
                            if let Ok(data) = frame.into_data() {
                                if last.is_some_and(|l| l < 1024) {
                                    seen.tiny_frames.fetch_add(1, Relaxed);
                                }
                                last = Some(data.len());
                                hash.update(&data);
                                len += data.len();
                                if script.read_delay_ms > 0 {
                                    tokio::time::sleep(std::time::Duration::from_millis(script.read_delay_ms)).await;
                                }
                            }
                        }
                        unanswered.1 = true;
                        reply(200, format!("{len} {}", hex::encode(hash.finalize())))
                    }
                });
                let mut builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
                builder
                    .max_concurrent_streams(script.max_streams)
                    .initial_stream_window_size(script.stream_window);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = goaway.notified() => conn.as_mut().graceful_shutdown(),
                }
                let _ = conn.await;
            });
        }
    });
    (addr, seen, runtime)
}

/// Raw bodies of `len` bytes, sent at once; each answer checked against
/// the body's length and digest.
fn send_raw(engine: &Engine, url: &str, count: usize, len: usize) -> Vec<Outcome> {
    let mut waiting = Vec::new();
    for i in 0..count {
        let bytes: Vec<u8> = (0..len).map(|b| (b * 31 + i) as u8).collect();
        let expected = format!("{len} {}", sha256_hex(&bytes));
        let request = UploadRequest::new(url).raw_body(uploadtask_engine::SourceSpec::Memory(bytes.into()));
        waiting.push((submit_collect(engine, request).1, expected));
    }
    waiting
        .into_iter()
        .map(|(rx, expected)| {
            let outcome = rx
                .recv_timeout(std::time::Duration::from_secs(120))
                .expect("upload ended");
            if let Ok(response) = &outcome.result {
                if response.status == 200 {
                    assert_eq!(String::from_utf8_lossy(&response.body), expected);
                }
            }
            outcome
        })
        .collect()
}

#[test]
fn goaway_in_the_middle_of_a_load_loses_nothing() {
    let (addr, seen, _runtime) = scripted(Script {
        max_streams: 100,
        stream_window: 65_535,
        goaway_after: Some(40),
        read_delay_ms: 0,
    });
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 300);
    let url = format!("http://localhost:{}/up", addr.port());
    for outcome in send_raw(&engine, &url, 300, 20_000) {
        let response = outcome.result.unwrap();
        assert_eq!(response.status, 200);
        assert_progress_rules(&outcome.progress, 20_000);
    }
    // Each connection took 40 and closed: the rest went on new ones.
    assert!(seen.connections.load(std::sync::atomic::Ordering::Relaxed) >= 300 / 100);
    engine.shutdown();
}

#[test]
fn an_early_413_ends_its_stream_and_the_others_go_on() {
    let (addr, seen, _runtime) = scripted(Script {
        max_streams: 100,
        stream_window: 16 * 1024,
        ..Script::default()
    });
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 100);
    let base = format!("http://localhost:{}", addr.port());
    let (_, big) = submit_collect(
        &engine,
        UploadRequest::new(format!("{base}/too-large"))
            .raw_body(uploadtask_engine::SourceSpec::Memory(vec![7u8; 512 * 1024].into())),
    );
    for outcome in send_raw(&engine, &format!("{base}/up"), 20, 100_000) {
        assert_eq!(outcome.result.unwrap().status, 200);
    }
    let big = big.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    let response = big.result.unwrap();
    assert_eq!((response.status, &response.body[..]), (413, &b"no"[..]));
    // Progress stopped where the body stopped: never the whole of it.
    assert!(big.progress.last().is_none_or(|p| p.total_bytes_sent < 512 * 1024));
    assert_eq!(seen.connections.load(std::sync::atomic::Ordering::Relaxed), 1);
    engine.shutdown();
}

#[test]
fn a_window_that_opens_slowly_gets_real_frames_and_every_byte() {
    let (addr, seen, _runtime) = scripted(Script {
        max_streams: 100,
        stream_window: 16 * 1024,
        read_delay_ms: 2,
        ..Script::default()
    });
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 100);
    let url = format!("http://localhost:{}/up", addr.port());
    for outcome in send_raw(&engine, &url, 8, 300_000) {
        assert_eq!(outcome.result.unwrap().status, 200);
        assert_progress_rules(&outcome.progress, 300_000);
    }
    assert_eq!(seen.tiny_frames.load(std::sync::atomic::Ordering::Relaxed), 0);
    engine.shutdown();
}

#[test]
fn an_abort_resets_its_stream_and_leaves_the_others_alone() {
    let (addr, seen, _runtime) = scripted(Script {
        max_streams: 100,
        stream_window: 16 * 1024,
        read_delay_ms: 5,
        ..Script::default()
    });
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 100);
    let url = format!("http://localhost:{}/up", addr.port());
    let (id, aborted) = submit_collect(
        &engine,
        // The server reads 16 KiB every 5 ms: 32 MiB take ten seconds, so the
        // body is under way when the abort comes.
        UploadRequest::new(url.as_str()).raw_body(uploadtask_engine::SourceSpec::Memory(vec![1u8; 32 << 20].into())),
    );
    let others = std::thread::scope(|scope| {
        let others = scope.spawn(|| send_raw(&engine, &url, 10, 50_000));
        std::thread::sleep(std::time::Duration::from_millis(200));
        engine.abort(id);
        others.join().unwrap()
    });
    for outcome in others {
        assert_eq!(outcome.result.unwrap().status, 200);
    }
    let error = aborted
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(error.kind, uploadtask_engine::ErrorKind::Aborted);
    // The server heard the reset (its body read failed), on the one connection.
    for _ in 0..200 {
        if seen.cancelled.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(seen.cancelled.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(seen.connections.load(std::sync::atomic::Ordering::Relaxed), 1);
    engine.shutdown();
}

#[test]
fn a_body_above_the_expect_threshold_goes_after_its_wait() {
    // hyper sends no `100 Continue` on HTTP/2 before the body is read: the
    // wait's end must release the body.
    let server = receiver(None, 100);
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 10);
    let url = format!("http://localhost:{}/up", server.addr().port());
    upload_many(&engine, &url, 1, 2);
    let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let digest = sha256_hex(&bytes);
    let request = UploadRequest::new(url.as_str()).file(FileInput::memory("file", "big.bin", bytes));
    let outcome = run_upload(&engine, request);
    let response = outcome.result.unwrap();
    assert_eq!((response.status, response.version), (200, 2));
    assert_eq!(summary(&response.body).files[0].sha256, digest);
    engine.shutdown();
}

/// A TCP relay to `upstream` whose connections can be frozen: a frozen
/// one stays open and moves no byte either way, as a connection does whose
/// path died silently (a NAT that forgot it, a peer that vanished).
struct FreezingRelay {
    server: RawServer,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    frozen_below: Arc<std::sync::atomic::AtomicUsize>,
}

impl FreezingRelay {
    fn start(upstream: std::net::SocketAddr) -> FreezingRelay {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let accepted = Arc::new(AtomicUsize::new(0));
        let frozen_below = Arc::new(AtomicUsize::new(0));
        let (count, frozen) = (Arc::clone(&accepted), Arc::clone(&frozen_below));
        let server = RawServer::start(move |client, stop| {
            let n = count.fetch_add(1, SeqCst);
            let Ok(server) = std::net::TcpStream::connect(upstream) else {
                return;
            };
            let mut ends = [client, server];
            for end in &ends {
                end.set_nonblocking(true).unwrap();
            }
            let mut buf = vec![0u8; 64 * 1024];
            let started = std::time::Instant::now();
            while !stop.load(SeqCst) && started.elapsed() < std::time::Duration::from_secs(120) {
                if n < frozen.load(SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                let mut moved = false;
                for from in 0..2 {
                    match ends[from].read(&mut buf) {
                        Ok(0) => return,
                        Ok(len) => {
                            ends[1 - from].set_nonblocking(false).unwrap();
                            if ends[1 - from].write_all(&buf[..len]).is_err() {
                                return;
                            }
                            ends[1 - from].set_nonblocking(true).unwrap();
                            moved = true;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
                if !moved {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        });
        FreezingRelay {
            server,
            accepted,
            frozen_below,
        }
    }

    /// Freezes every connection accepted so far.
    fn freeze_all(&self) {
        let accepted = self.accepted.load(std::sync::atomic::Ordering::SeqCst);
        self.frozen_below.store(accepted, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_pooled_connection_that_died_silently_is_found_by_ping_before_an_upload_takes_it() {
    let server = receiver(None, 100);
    let relay = FreezingRelay::start(server.addr());
    let engine = Engine::new(EngineConfig {
        http: HttpVersion::Http2PriorKnowledge,
        // Long enough that an upload stuck on the dead connection fails the
        // test instead of being saved by the idle timeout and a retry.
        idle_timeout: std::time::Duration::from_secs(60),
        // A reuse after 200 ms of quiet asks first, and a second without an
        // answer is death.
        http2_ping_after: std::time::Duration::from_millis(200),
        http2_ping_timeout: std::time::Duration::from_secs(1),
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://localhost:{}/up", relay.server.addr().port());
    // The first upload sets up the connection; the second reuses it once
    // its ping is answered.
    let quiet = || std::thread::sleep(std::time::Duration::from_millis(300));
    upload_many(&engine, &url, 1, 2);
    quiet();
    upload_many(&engine, &url, 1, 2);
    assert_eq!(relay.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    relay.freeze_all();
    // The pooled connection now answers nothing: its ping goes unanswered,
    // it is closed, and the upload goes on a new one.
    quiet();
    upload_many(&engine, &url, 1, 2);
    assert_eq!(relay.accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    let stats = engine.stats().unwrap();
    assert_eq!((stats.uploads, stats.resent), (0, 0), "{stats:?}");
    assert_eq!(server.uploads(), 3);
    engine.shutdown();
}
