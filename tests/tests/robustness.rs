//! A long-running engine that no caller mistake or hostile peer can stop:
//! refused calls give back their place, huge durations do not overflow,
//! FIFOs and devices do not block the loop, a hung resolver times out, a
//! trickling peer is cut off, and a request on a stale pooled connection
//! is sent again once (or, when at most once is asked, only when the server
//! cannot have the whole request).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uploadtask_engine::resolver::ResolveDone;
use uploadtask_engine::{Engine, EngineConfig, ErrorKind, Event, FileInput, Resolver, StaticResolver, UploadRequest};
use uploadtask_tests::*;

/// Answers every request on a connection with `200 ok`, kept alive.
fn ok_server() -> RawServer {
    RawServer::start(|mut stream, _| loop {
        let (head, _) = read_request(&mut stream);
        if head.is_empty() {
            return;
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    })
}

fn memory(len: usize) -> FileInput {
    FileInput::memory("f", "a.bin", vec![7u8; len])
}

#[test]
fn refused_calls_give_back_their_place_in_flight() {
    let server = ok_server();
    let engine = Engine::new(EngineConfig {
        max_in_flight: 2,
        ..EngineConfig::default()
    })
    .unwrap();
    for round in 0..4 {
        let refused = [
            UploadRequest::new(server.url("/"))
                .header("Content-Length", "1")
                .file(memory(1)),
            UploadRequest::new("ftp://127.0.0.1/").file(memory(1)),
            UploadRequest::new(server.url("/")).file(FileInput::path("f", "/nonexistent/x.bin")),
        ];
        for request in refused {
            let code = run_upload(&engine, request).result.unwrap_err().code();
            assert!(code == 202 || code == 300, "round {round}: {code}");
        }
    }
    let outcome = run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(10)));
    assert_eq!(outcome.result.unwrap().body, b"ok");
    assert_eq!(engine.stats().unwrap().in_flight, 0);
    assert_eq!(engine.stats().unwrap().uploads, 0);
    engine.shutdown();
}

#[test]
fn duration_max_everywhere_is_no_deadline() {
    let server = ok_server();
    let engine = Engine::new(EngineConfig {
        connect_timeout: Duration::MAX,
        idle_timeout: Duration::MAX,
        ..EngineConfig::default()
    })
    .unwrap();
    for _ in 0..2 {
        let request = UploadRequest::new(server.url("/"))
            .file(memory(100))
            .timeout(Duration::MAX);
        assert_eq!(run_upload(&engine, request).result.unwrap().status, 200);
    }
    engine.shutdown();
}

#[test]
fn fifo_and_devices_fail_with_300_without_blocking_the_loop() {
    let server = ok_server();
    let dir = temp_dir("fifo");
    let fifo = dir.join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let link = dir.join("link-to-zero");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let mut pending = Vec::new();
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero"), link.as_path()] {
        pending.push(
            submit_collect(
                &engine,
                UploadRequest::new(server.url("/")).file(FileInput::path("f", path)),
            )
            .1,
        );
        // Another upload finishes meanwhile.
        let outcome = run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(10)));
        assert_eq!(outcome.result.unwrap().status, 200);
    }
    for rx in pending {
        let error = rx.recv_timeout(Duration::from_secs(20)).unwrap().result.unwrap_err();
        assert_eq!((error.code(), error.kind), (300, ErrorKind::File), "{error}");
        assert!(error.message.contains("not a regular file"), "{error}");
    }
    engine.shutdown();
    drop(dir);
}

/// A resolver that never answers (keeps the callbacks until dropped).
#[derive(Default)]
struct SilentResolver(Mutex<Vec<ResolveDone>>);

impl Resolver for SilentResolver {
    fn resolve(&self, _host: &str, _port: u16, done: ResolveDone) {
        self.0.lock().unwrap().push(done);
    }
}

/// A resolver and a connector that panic (embedder code on the loop).
struct PanickingResolver;

impl Resolver for PanickingResolver {
    fn resolve(&self, _host: &str, _port: u16, _done: ResolveDone) {
        panic!("resolver bug");
    }
}

struct PanickingConnector;

impl uploadtask_engine::Connector for PanickingConnector {
    fn connect(&self, _: std::net::SocketAddr, _: &str) -> std::io::Result<Box<dyn uploadtask_engine::Transport>> {
        panic!("connector bug");
    }
}

#[test]
fn a_panicking_resolver_or_connector_fails_its_upload_only() {
    let engine = Engine::new(EngineConfig {
        resolver: Some(Arc::new(PanickingResolver)),
        ..EngineConfig::default()
    })
    .unwrap();
    let error = run_upload(&engine, UploadRequest::new("http://name.test/").file(memory(1)))
        .result
        .unwrap_err();
    assert_eq!(error.code(), 1000, "{error}");
    assert!(error.message.contains("the resolver panicked"), "{error}");
    let server = ok_server();
    let literal = UploadRequest::new(server.url("/")).file(memory(1));
    assert_eq!(
        run_upload(&engine, literal).result.unwrap().status,
        200,
        "the engine goes on"
    );
    engine.shutdown(); // closes the pooled connection, so the server can stop
    let engine = Engine::new(EngineConfig {
        connector: Some(Arc::new(PanickingConnector)),
        ..EngineConfig::default()
    })
    .unwrap();
    let error = run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(1)))
        .result
        .unwrap_err();
    assert!(error.message.contains("the connector panicked"), "{error}");
    assert_eq!(engine.stats().unwrap().uploads, 0, "the engine still answers");
}

#[test]
fn a_resolver_that_never_answers_times_out() {
    let server = ok_server();
    let engine = Engine::new(EngineConfig {
        connect_timeout: Duration::from_millis(300),
        resolver: Some(Arc::new(SilentResolver::default())),
        ..EngineConfig::default()
    })
    .unwrap();
    let (_, hung) = submit_collect(&engine, UploadRequest::new("http://hung.test/").file(memory(1)));
    // An IP literal needs no lookup and goes through meanwhile.
    let literal = UploadRequest::new(server.url("/")).file(memory(1));
    assert_eq!(run_upload(&engine, literal).result.unwrap().status, 200);
    let error = hung.recv_timeout(Duration::from_secs(20)).unwrap().result.unwrap_err();
    assert_eq!((error.code(), error.kind), (204, ErrorKind::Timeout), "{error}");
    assert!(error.message.contains("still resolving hung.test"), "{error}");
    engine.shutdown();
}

#[test]
fn the_next_address_is_tried_after_any_connect_error() {
    let server = ok_server();
    // 127.0.0.2 (loopback, nothing listens there) refuses; then the server.
    let engine = Engine::new(EngineConfig {
        connect_timeout: Duration::from_millis(500),
        resolver: Some(Arc::new(StaticResolver::new().insert(
            "multi.test",
            &["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        ))),
        ..EngineConfig::default()
    })
    .unwrap();
    let url = format!("http://multi.test:{}/", server.addr().port());
    assert_eq!(
        run_upload(&engine, UploadRequest::new(url).file(memory(1)))
            .result
            .unwrap()
            .status,
        200
    );
    engine.shutdown();
}

#[test]
fn a_trickling_peer_is_cut_off_by_the_low_speed_limit() {
    let server = RawServer::start(|mut stream, stop| {
        let _ = read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        for _ in 0..600 {
            if stop.load(Ordering::SeqCst) || stream.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let engine = Engine::new(EngineConfig {
        low_speed_limit: 100,
        low_speed_time: Duration::from_secs(1),
        ..EngineConfig::default()
    })
    .unwrap();
    let error = run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(10)))
        .result
        .unwrap_err();
    assert_eq!((error.code(), error.kind), (204, ErrorKind::Timeout), "{error}");
    assert!(error.message.contains("too slow"), "{error}");
    engine.shutdown();
}

/// Counts requests whose body arrived whole, and connections.
#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    whole_requests: AtomicUsize,
}

#[test]
fn a_pooled_connection_the_server_closed_is_not_reused() {
    // Every connection answers one request and closes. The next upload is
    // submitted from the completion callback, on the loop, once the server
    // has closed (the callback waits for it): the pooled connection must be
    // found closed (by the next poll, or by the peek for one pooled this
    // turn) and a fresh one used. A close that has not reached the client
    // yet cannot be seen by anyone; that race ends per the retry rule.
    let counts = Arc::new(Counts::default());
    let seen = Arc::clone(&counts);
    let (closed_tx, closed) = std::sync::mpsc::channel::<()>();
    let closed_tx = Mutex::new(closed_tx);
    let server = RawServer::start(move |mut stream, _| {
        seen.connections.fetch_add(1, Ordering::SeqCst);
        let (head, body) = read_request(&mut stream);
        if head.is_empty() || body.len() != content_length(&head) {
            return;
        }
        seen.whole_requests.fetch_add(1, Ordering::SeqCst);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        drop(stream); // on loopback the FIN is queued at the client before this returns
        let _ = closed_tx.lock().unwrap().send(());
    });
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let second_engine = engine.clone();
    let url = server.url("/");
    let closed = Mutex::new(closed);
    engine.submit(
        UploadRequest::new(url.clone()).file(memory(100)),
        move |event: Event| {
            if let Event::Done(first) = event {
                let _ = closed.lock().unwrap().recv_timeout(Duration::from_secs(30));
                let tx = tx.clone();
                let first = first.map(|r| r.status);
                second_engine.submit(
                    UploadRequest::new(url.clone()).file(memory(100)),
                    move |event: Event| {
                        if let Event::Done(second) = event {
                            let _ = tx.send((first.clone(), second.map(|r| r.status)));
                        }
                    },
                );
            }
        },
    );
    let (first, second) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!((first, second), (Ok(200), Ok(200)));
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(counts.whole_requests.load(Ordering::SeqCst), 2);
    engine.shutdown();
}

#[test]
fn a_stale_connection_is_resent_once_unless_at_most_once_is_asked() {
    // Connection 0 answers its first request. On its second request it
    // either reads the whole request and closes without an answer (the
    // server may have acted on it) or reads only the head and closes (the
    // body cannot have arrived). By default both are sent again on a new
    // connection, as browsers and curl do; with `resend_reused` off, only
    // the request the server cannot have received whole is.
    for (whole_body_read, resend_reused) in [(true, true), (true, false), (false, true), (false, false)] {
        let counts = Arc::new(Counts::default());
        let seen = Arc::clone(&counts);
        let server = RawServer::start(move |mut stream, _| {
            let connection = seen.connections.fetch_add(1, Ordering::SeqCst);
            for request in 0.. {
                if connection == 0 && request == 1 && !whole_body_read {
                    let _ = read_head(&mut stream);
                    return; // unread bytes: the kernel resets the connection
                }
                let (head, body) = read_request(&mut stream);
                if head.is_empty() || body.len() != content_length(&head) {
                    return;
                }
                seen.whole_requests.fetch_add(1, Ordering::SeqCst);
                if connection == 0 && request == 1 {
                    return;
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        let engine = Engine::new(EngineConfig {
            resend_reused,
            ..EngineConfig::default()
        })
        .unwrap();
        let small = UploadRequest::new(server.url("/")).file(memory(10));
        assert_eq!(run_upload(&engine, small).result.unwrap().status, 200);
        // Large enough that the kernel cannot take it all before the reset.
        let size = if whole_body_read { 1000 } else { 32 << 20 };
        let second = run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(size)));
        let case = format!("whole body read {whole_body_read}, resend {resend_reused}");
        if whole_body_read && !resend_reused {
            let error = second.result.unwrap_err();
            assert_eq!(error.code(), 1000, "{case}: {error}");
            assert_eq!(
                counts.whole_requests.load(Ordering::SeqCst),
                2,
                "{case}: sent once only"
            );
            assert_eq!(counts.connections.load(Ordering::SeqCst), 1, "{case}");
            assert_eq!(engine.stats().unwrap().resent, 0, "{case}");
        } else {
            assert_eq!(second.result.unwrap().status, 200, "{case}");
            let whole = if whole_body_read { 3 } else { 2 };
            assert_eq!(counts.whole_requests.load(Ordering::SeqCst), whole, "{case}");
            assert_eq!(counts.connections.load(Ordering::SeqCst), 2, "{case}");
            assert_eq!(engine.stats().unwrap().resent, 1, "{case}");
        }
        engine.shutdown();
    }
}

#[test]
fn the_response_budget_is_engine_wide() {
    // Each response is within the per-upload limit, but together they
    // would hold more than the engine's budget: one fails with 200.
    let server = RawServer::start(|mut stream, stop| {
        let _ = read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        let _ = stream.write_all(&[b'r'; 60_000]);
        idle_until_stopped(stop, Duration::from_secs(30));
    });
    let engine = Engine::new(EngineConfig {
        max_buffered_response_bytes: 100_000,
        ..EngineConfig::default()
    })
    .unwrap();
    let (_, first) = submit_collect(&engine, UploadRequest::new(server.url("/")).file(memory(1)));
    let (_, second) = submit_collect(&engine, UploadRequest::new(server.url("/")).file(memory(1)));
    let either = |rx: &std::sync::mpsc::Receiver<Outcome>| rx.recv_timeout(Duration::from_millis(200)).ok();
    let started = std::time::Instant::now();
    let error = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no upload went over the budget"
        );
        if let Some(outcome) = either(&first).or_else(|| either(&second)) {
            break outcome.result.unwrap_err();
        }
    };
    assert_eq!(
        (error.code(), error.kind),
        (200, ErrorKind::ResourceExhausted),
        "{error}"
    );
    assert!(error.message.contains("budget of 100000 bytes"), "{error}");
    engine.shutdown();
}

#[test]
fn the_open_files_limit_is_raised_only_when_asked() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        return; // unlimited: nothing to raise
    };
    if hard < 2 {
        return;
    }
    set_nofile_limit(hard - 1);
    Engine::new(EngineConfig::default()).unwrap().shutdown();
    assert_eq!(nofile_limit(), hard - 1, "a library engine leaves the limit alone");
    Engine::new(EngineConfig {
        raise_fd_limit: true,
        ..EngineConfig::default()
    })
    .unwrap()
    .shutdown();
    assert_eq!(nofile_limit(), hard, "raised when asked");
    set_nofile_limit(soft.max(hard - 1));
}

#[test]
fn config_is_validated_at_start() {
    for (config, word) in [
        (
            EngineConfig {
                write_budget: 0,
                ..EngineConfig::default()
            },
            "write_budget",
        ),
        (
            EngineConfig {
                max_in_flight: 0,
                ..EngineConfig::default()
            },
            "max_in_flight",
        ),
        (
            EngineConfig {
                connect_timeout: Duration::ZERO,
                ..EngineConfig::default()
            },
            "connect_timeout",
        ),
    ] {
        let error = Engine::new(config).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains(word), "{error}");
    }
}

#[test]
fn a_full_queue_refuses_with_200() {
    let server = RawServer::start(|stream, stop| {
        idle_until_stopped(stop, Duration::from_secs(30));
        drop(stream);
    });
    let engine = Engine::new(EngineConfig {
        max_in_flight: 1,
        max_queued: 2,
        ..EngineConfig::default()
    })
    .unwrap();
    let mut ids = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let (id, rx) = submit_collect(&engine, UploadRequest::new(server.url("/")).file(memory(1)));
        ids.push(id);
        waiting.push(rx);
    }
    let (_, refused) = submit_collect(&engine, UploadRequest::new(server.url("/")).file(memory(1)));
    let error = refused
        .recv_timeout(Duration::from_secs(20))
        .unwrap()
        .result
        .unwrap_err();
    assert_eq!(
        (error.code(), error.kind),
        (200, ErrorKind::ResourceExhausted),
        "{error}"
    );
    assert!(error.message.contains("queue is full"), "{error}");
    for id in ids {
        engine.abort(id);
    }
    for rx in waiting {
        let error = rx.recv_timeout(Duration::from_secs(20)).unwrap().result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Aborted);
    }
    assert_eq!(engine.stats().unwrap().uploads, 0);
    engine.shutdown();
}

#[test]
fn a_pooled_connection_the_server_wrote_on_is_not_reused() {
    // The first connection answers, then sends bytes nobody asked for while
    // idle: the next upload must go over a fresh connection.
    let counts = Arc::new(Counts::default());
    let seen = Arc::clone(&counts);
    let (junk_tx, junk) = std::sync::mpsc::channel::<()>();
    let junk_tx = Mutex::new(junk_tx);
    let server = RawServer::start(move |mut stream, stop| {
        let connection = seen.connections.fetch_add(1, Ordering::SeqCst);
        loop {
            let (head, _) = read_request(&mut stream);
            if head.is_empty() {
                return;
            }
            seen.whole_requests.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            if connection == 0 {
                std::thread::sleep(Duration::from_millis(50));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\nstray");
                let _ = junk_tx.lock().unwrap().send(());
                idle_until_stopped(stop, Duration::from_secs(30));
                return;
            }
        }
    });
    let engine = Engine::new(EngineConfig::default()).unwrap();
    assert_eq!(
        run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(10)))
            .result
            .unwrap()
            .status,
        200
    );
    junk.recv_timeout(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // the bytes reach the client
    assert_eq!(
        run_upload(&engine, UploadRequest::new(server.url("/")).file(memory(10)))
            .result
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        counts.connections.load(Ordering::SeqCst),
        2,
        "a fresh connection for the second upload"
    );
    engine.shutdown();
}
