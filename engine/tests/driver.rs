//! Whole uploads through the real engine (loop, timers, pool, resend rule)
//! over scripted transports handed out by a `ScriptedConnector`: no socket
//! is opened. The address in the URLs is never reached.

use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uploadtask_engine::scripted::{ReadStep, ScriptedConnector, ScriptedTransport, WriteStep};
use uploadtask_engine::{
    Engine, EngineConfig, ErrorKind, Event, FileInput, Progress, Response, UploadError, UploadRequest,
};

const URL: &str = "http://192.0.2.1/up";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn start(connector: &Arc<ScriptedConnector>, config: EngineConfig) -> Engine {
    Engine::new(EngineConfig {
        connector: Some(Arc::clone(connector) as _),
        ..config
    })
    .unwrap()
}

fn request(len: usize) -> UploadRequest {
    UploadRequest::new(URL).file(FileInput::memory("f", "a.bin", vec![b'x'; len]))
}

fn run(engine: &Engine, request: UploadRequest) -> (Vec<Progress>, Result<Response, UploadError>) {
    let (tx, rx) = mpsc::channel();
    let mut progress = Vec::new();
    engine.submit(request, move |event: Event| match event {
        Event::Progress(p) => progress.push(p),
        Event::Done(result) => {
            let _ = tx.send((std::mem::take(&mut progress), result));
        }
        _ => {}
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("an outcome within 30 s")
}

fn body_of(wire: &[u8]) -> &[u8] {
    let at = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    &wire[at..]
}

#[test]
fn would_block_everywhere_through_the_real_loop() {
    let tap = Arc::new(Mutex::new(Vec::new()));
    let writes = (0..2000).flat_map(|_| [WriteStep::WouldBlock, WriteStep::Accept(13)]);
    let mut reads = vec![ReadStep::WouldBlock; 5];
    for byte in OK {
        reads.push(ReadStep::Data(vec![*byte]));
        reads.push(ReadStep::WouldBlock);
    }
    let transport = ScriptedTransport::new(writes, reads).with_tap(Arc::clone(&tap));
    let connector = Arc::new(ScriptedConnector::new([transport]));
    let engine = start(&connector, EngineConfig::default());
    let (progress, result) = run(&engine, request(5000));
    assert_eq!(result.unwrap().body, b"ok");
    let wire = tap.lock().unwrap().clone();
    let total = body_of(&wire).len() as u64;
    assert!(body_of(&wire).windows(5000).any(|w| w.iter().all(|b| *b == b'x')));
    let mut last = 0;
    for p in &progress {
        assert!(p.total_bytes_sent > last && p.total_bytes_sent <= total);
        last = p.total_bytes_sent;
    }
    assert_eq!(last, total);
    let stats = engine.stats().unwrap();
    assert_eq!((stats.uploads, stats.in_flight, stats.idle_connections), (0, 0, 1));
    engine.shutdown();
}

#[test]
fn a_request_that_failed_on_a_reused_connection_is_sent_again_once() {
    // Connection 1 answers the first upload; on the second its first write
    // fails: the upload goes again on connection 2.
    let first = ScriptedTransport::new(
        [
            WriteStep::Accept(usize::MAX),
            WriteStep::Fail(io::ErrorKind::BrokenPipe),
        ],
        [ReadStep::Data(OK.to_vec()), ReadStep::Eof],
    );
    let second = ScriptedTransport::new([], [ReadStep::WouldBlock, ReadStep::Data(OK.to_vec())]);
    let connector = Arc::new(ScriptedConnector::new([first, second]));
    let engine = start(&connector, EngineConfig::default());
    assert_eq!(run(&engine, request(10)).1.unwrap().status, 200);
    assert_eq!(run(&engine, request(10)).1.unwrap().status, 200);
    assert_eq!(connector.connects(), 2);
    assert_eq!(engine.stats().unwrap().resent, 1);
    engine.shutdown();

    // Here the reused connection takes the whole second request, then
    // closes without a byte: sent again on a new connection by default;
    // with at-most-once asked for (the request's own setting over the
    // engine's), it fails and is not sent again.
    for resend in [None, Some(false)] {
        let only = ScriptedTransport::new([], [ReadStep::Data(OK.to_vec()), ReadStep::Eof]);
        let again = ScriptedTransport::new([], [ReadStep::WouldBlock, ReadStep::Data(OK.to_vec())]);
        let connector = Arc::new(ScriptedConnector::new([only, again]));
        let engine = start(&connector, EngineConfig::default());
        assert_eq!(run(&engine, request(10)).1.unwrap().status, 200);
        let mut second = request(10);
        second.resend_reused = resend;
        let outcome = run(&engine, second).1;
        if resend.is_none() {
            assert_eq!(outcome.unwrap().status, 200);
            assert_eq!((connector.connects(), engine.stats().unwrap().resent), (2, 1));
        } else {
            let error = outcome.unwrap_err();
            assert_eq!((error.kind, error.code()), (ErrorKind::Network, 1000), "{error}");
            assert_eq!((connector.connects(), engine.stats().unwrap().resent), (1, 0));
        }
        engine.shutdown();
    }
}

#[test]
fn timers_of_the_real_loop_end_silent_and_slow_peers() {
    // The peer takes the request and never answers: idle timeout.
    let silent = ScriptedTransport::new([], []);
    let connector = Arc::new(ScriptedConnector::new([silent]));
    let engine = start(
        &connector,
        EngineConfig {
            idle_timeout: Duration::from_millis(200),
            ..EngineConfig::default()
        },
    );
    let error = run(&engine, request(10)).1.unwrap_err();
    assert_eq!(error.code(), 204);
    assert!(error.message.starts_with("idle timeout"), "{error}");
    // The overall deadline, with no idle limit at all.
    let silent = ScriptedTransport::new([], []);
    let connector = Arc::new(ScriptedConnector::new([silent]));
    let engine = start(
        &connector,
        EngineConfig {
            idle_timeout: Duration::MAX,
            low_speed_limit: 0,
            ..EngineConfig::default()
        },
    );
    let error = run(&engine, request(10).timeout(Duration::from_millis(200)))
        .1
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message.as_str()),
        (204, "timeout: the overall timeout of 200 ms passed while exchanging")
    );
    let stats = engine.stats().unwrap();
    assert_eq!((stats.uploads, stats.connections, stats.timers), (0, 0, 0));
    engine.shutdown();
}

#[test]
fn refused_connects_try_every_address_then_fail() {
    let connector = Arc::new(ScriptedConnector::new([]));
    let engine = start(
        &connector,
        EngineConfig {
            resolver: Some(Arc::new(uploadtask_engine::StaticResolver::new().insert(
                "two.test",
                &["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            ))),
            ..EngineConfig::default()
        },
    );
    let request = UploadRequest::new("http://two.test/").file(FileInput::memory("f", "a", b"x".to_vec()));
    let error = run(&engine, request).1.unwrap_err();
    assert_eq!(error.code(), 1000);
    assert_eq!(
        error.message,
        "no address of two.test answered (tried 192.0.2.1:80, [2001:db8::1]:80); \
         last: connect to [2001:db8::1]:80 failed: connection refused"
    );
    assert_eq!(connector.connects(), 2);
    engine.shutdown();
}

/// Happy Eyeballs through the real loop: an address that never connects,
/// one that refuses, one that connects late, each beside a good one.
#[test]
fn connect_attempts_race_and_the_first_connected_wins() {
    use uploadtask_engine::scripted::ConnectStep;
    let two = || {
        Some(Arc::new(uploadtask_engine::StaticResolver::new().insert(
            "two.test",
            &["2001:db8::1".parse().unwrap(), "192.0.2.1".parse().unwrap()],
        )) as Arc<dyn uploadtask_engine::Resolver>)
    };
    let request = || UploadRequest::new("http://two.test/").file(FileInput::memory("f", "a", b"x".to_vec()));
    let cases = [
        ("never", ConnectStep::Never),
        ("refused", ConnectStep::Refused),
        ("late", ConnectStep::Late(Duration::from_millis(600))),
    ];
    for (name, first) in cases {
        let taps = [Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new()))];
        let loser = ScriptedTransport::new([], [ReadStep::WouldBlock, ReadStep::Data(OK.to_vec())])
            .with_connect(first)
            .with_tap(Arc::clone(&taps[0]));
        let winner = ScriptedTransport::new([], [ReadStep::WouldBlock, ReadStep::Data(OK.to_vec())])
            .with_tap(Arc::clone(&taps[1]));
        let connector = Arc::new(ScriptedConnector::new([loser, winner]));
        let engine = start(
            &connector,
            EngineConfig {
                resolver: two(),
                ..EngineConfig::default()
            },
        );
        assert_eq!(run(&engine, request()).1.unwrap().status, 200, "{name}");
        assert_eq!(connector.connects(), 2, "{name}");
        assert!(taps[0].lock().unwrap().is_empty(), "{name}: nothing went to the loser");
        assert!(!taps[1].lock().unwrap().is_empty(), "{name}");
        // The loser was closed: only the winner stays, pooled.
        let stats = engine.stats().unwrap();
        assert_eq!((stats.connections, stats.idle_connections), (1, 1), "{name}");
        engine.shutdown();
    }
    // Every address silent: one connect timeout for the whole race.
    let never = || ScriptedTransport::new([], []).with_connect(ConnectStep::Never);
    let connector = Arc::new(ScriptedConnector::new([never(), never()]));
    let engine = start(
        &connector,
        EngineConfig {
            resolver: two(),
            connect_timeout: Duration::from_millis(700),
            ..EngineConfig::default()
        },
    );
    let error = run(&engine, request()).1.unwrap_err();
    assert_eq!(
        (error.code(), error.message.as_str()),
        (
            204,
            "connect timeout: no address of two.test answered in 700 ms (tried [2001:db8::1]:80, 192.0.2.1:80)"
        )
    );
    assert_eq!(engine.stats().unwrap().connections, 0, "every attempt closed");
    engine.shutdown();
}
