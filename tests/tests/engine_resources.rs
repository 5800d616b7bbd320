//! Every way an upload can end early frees its socket, file, slab slot and
//! timer: abort before start, during DNS, mid-body, mid-response; overall,
//! idle and connect timeouts. One test, alone in its binary, so that the
//! descriptor count is not disturbed by other tests.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uploadtask_engine::resolver::ResolveDone;
use uploadtask_engine::{Engine, EngineConfig, ErrorKind, Event, FileInput, Resolver, UploadRequest};
use uploadtask_tests::*;

/// A resolver that never answers (keeps the callbacks until dropped).
#[derive(Default)]
struct SilentResolver(Mutex<Vec<ResolveDone>>);

impl Resolver for SilentResolver {
    fn resolve(&self, _host: &str, _port: u16, done: ResolveDone) {
        self.0.lock().unwrap().push(done);
    }
}

/// Submits; waits for the first event matching `ready`; aborts; returns the error.
fn abort_when(engine: &Engine, request: UploadRequest, ready: fn(&Event) -> bool) -> uploadtask_engine::UploadError {
    let (tx, rx) = std::sync::mpsc::channel::<Option<Result<(), uploadtask_engine::UploadError>>>();
    let id = engine.submit(request, move |event: Event| {
        if ready(&event) {
            let _ = tx.send(None);
        }
        if let Event::Done(result) = event {
            let _ = tx.send(Some(result.map(|_| ())));
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60)).expect("no event");
    assert!(first.is_none(), "ended before it could be aborted: {first:?}");
    engine.abort(id);
    loop {
        if let Some(result) = rx.recv_timeout(Duration::from_secs(60)).expect("no outcome") {
            return result.unwrap_err();
        }
    }
}

fn stalling_server() -> RawServer {
    RawServer::start(|stream, stop| {
        idle_until_stopped(stop, Duration::from_secs(60));
        drop(stream);
    })
}

#[test]
fn every_early_end_frees_everything() {
    let dir = temp_dir("resources");
    let (big_path, _) = make_file(&dir, "big.bin", 64 * 1024 * 1024, 1);
    let fds_before = open_fds();
    {
        let stall = stalling_server();
        let partial_response = RawServer::start(|mut stream, stop| {
            let _ = read_head(&mut stream);
            let mut sink = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            while let Ok(n) = stream.read(&mut sink) {
                if n == 0 || sink[..n].ends_with(b"--\r\n") {
                    break;
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
            idle_until_stopped(stop, Duration::from_secs(60));
        });
        let resolver = Arc::new(SilentResolver::default());
        let engine = Engine::new(EngineConfig {
            max_in_flight: 1,
            idle_timeout: Duration::from_secs(60),
            ..EngineConfig::default()
        })
        .unwrap();

        // Abort mid-body: the stalling peer never reads; the kernel buffers fill.
        let request = UploadRequest::new(stall.url("/")).file(FileInput::path("f", &big_path));
        let error = abort_when(&engine, request, |e| matches!(e, Event::Progress(_)));
        assert_eq!(
            (error.kind, error.code(), error.message.as_str()),
            (ErrorKind::Aborted, 1000, "abort")
        );

        // Abort while queued: the single slot is taken by a stalled upload.
        let (_, first) = submit_collect(
            &engine,
            UploadRequest::new(stall.url("/")).file(FileInput::path("f", &big_path)),
        );
        let (queued, second) = submit_collect(
            &engine,
            UploadRequest::new(stall.url("/")).file(FileInput::memory("f", "a", vec![1])),
        );
        engine.abort(queued);
        let error = second
            .recv_timeout(Duration::from_secs(60))
            .unwrap()
            .result
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Aborted);
        engine.shutdown();
        let error = first.recv_timeout(Duration::from_secs(60)).unwrap().result.unwrap_err();
        assert_eq!(
            (error.kind, error.message.as_str()),
            (ErrorKind::Aborted, "engine shut down")
        );

        // Abort mid-response.
        let engine = Engine::new(EngineConfig::default()).unwrap();
        let request = UploadRequest::new(partial_response.url("/")).file(FileInput::memory("f", "a", vec![2; 100]));
        let error = abort_when(&engine, request, |e| matches!(e, Event::ResponseHead(200)));
        assert_eq!(error.kind, ErrorKind::Aborted);

        // Overall timeout, while the peer does nothing.
        let request = UploadRequest::new(stall.url("/"))
            .timeout(Duration::from_millis(300))
            .file(FileInput::path("f", &big_path));
        let error = run_upload(&engine, request).result.unwrap_err();
        assert_eq!(
            (error.kind, error.code(), error.message.as_str()),
            (
                ErrorKind::Timeout,
                204,
                "timeout: the overall timeout of 300 ms passed while exchanging"
            )
        );
        engine.shutdown();

        // Idle timeout.
        let engine = Engine::new(EngineConfig {
            idle_timeout: Duration::from_millis(300),
            ..EngineConfig::default()
        })
        .unwrap();
        let request = UploadRequest::new(stall.url("/")).file(FileInput::memory("f", "a", vec![3; 10]));
        let error = run_upload(&engine, request).result.unwrap_err();
        assert_eq!((error.kind, error.code()), (ErrorKind::Timeout, 204));
        assert!(error.message.starts_with("idle timeout"), "{error}");
        engine.shutdown();

        // Abort during DNS, and a timeout while resolving.
        let engine = Engine::new(EngineConfig {
            resolver: Some(resolver.clone()),
            ..EngineConfig::default()
        })
        .unwrap();
        let (id, rx) = submit_collect(
            &engine,
            UploadRequest::new("http://slow.example/").file(FileInput::memory("f", "a", vec![1])),
        );
        while resolver.0.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        engine.abort(id);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap()
                .result
                .unwrap_err()
                .kind,
            ErrorKind::Aborted
        );
        let request = UploadRequest::new("http://slow.example/")
            .timeout(Duration::from_millis(200))
            .file(FileInput::memory("f", "a", vec![1]));
        assert_eq!(run_upload(&engine, request).result.unwrap_err().code(), 204);
        engine.shutdown();
        // Late answers for finished uploads reach nothing.
        for done in resolver.0.lock().unwrap().drain(..) {
            done(Ok(vec![stall.addr()]));
        }

        // Connect timeout: a listener whose accept queue is full drops SYNs.
        let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        full.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        full.listen(0).unwrap();
        let full_addr = full.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let filler = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            filler.set_nonblocking(true).unwrap();
            let _ = filler.connect(&full_addr.into());
            fillers.push(filler);
        }
        std::thread::sleep(Duration::from_millis(100));
        let engine = Engine::new(EngineConfig {
            connect_timeout: Duration::from_millis(300),
            ..EngineConfig::default()
        })
        .unwrap();
        let request = UploadRequest::new(format!("http://{full_addr}/")).file(FileInput::memory("f", "a", vec![1]));
        let error = run_upload(&engine, request).result.unwrap_err();
        assert_eq!(
            (error.kind, error.message),
            (
                ErrorKind::Timeout,
                format!("connect timeout: {full_addr} did not answer in 300 ms")
            )
        );
        engine.shutdown();
        drop(fillers);
        drop(full);
        drop(resolver);
    }
    // Engines, peers and their threads are gone: the count is back.
    let mut fds_after = open_fds();
    for _ in 0..100 {
        if fds_after == fds_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        fds_after = open_fds();
    }
    assert_eq!(fds_after, fds_before, "descriptors leaked");
}
