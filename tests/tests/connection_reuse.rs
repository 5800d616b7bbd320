//! Servers that close kept-alive connections, as real ones do, with many
//! uploads in flight through the real loop: one that closes after every
//! answer (without `Connection: close`), one that closes connections idle
//! for a few milliseconds, and one that says `Keep-Alive: timeout=1` and
//! closes at that timeout. No upload fails, every body arrives whole, and a
//! request is sent again exactly when it reached a connection the server
//! had already given up (the server counts those: it shuts its side and
//! reads what still comes).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uploadtask_engine::{Engine, EngineConfig, FileInput, SourceSpec, UploadRequest};
use uploadtask_tests::{content_length, read_head, sha256_hex, submit_collect, RawServer};

/// When the server gives a kept-alive connection up.
#[derive(Clone, Copy)]
enum Closing {
    /// Right after each answer.
    AfterAnswer,
    /// After this long without a new request.
    Idle(Duration),
    /// As `Idle`, and each answer says `Keep-Alive: timeout=N` (seconds).
    KeepAlive(u64),
}

#[derive(Default)]
struct Counts {
    /// Whole requests answered.
    answered: AtomicUsize,
    /// Connections given up by the server that still received request bytes.
    raced: AtomicUsize,
    /// Connections the client closed while the server still waited.
    retired_by_client: AtomicUsize,
}

/// Reads until EOF (at most 5 s); true when any byte came.
fn drain(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 16 * 1024];
    let mut any = false;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        any = true;
    }
    any
}

/// Gives the connection up: shuts the server's side, counts a request that
/// raced the close.
fn give_up(mut stream: TcpStream, counts: &Counts) {
    let _ = stream.shutdown(Shutdown::Write);
    if drain(&mut stream) {
        counts.raced.fetch_add(1, Ordering::SeqCst);
    }
}

fn serve(mut stream: TcpStream, closing: Closing, counts: &Counts) {
    loop {
        let wait = match closing {
            Closing::AfterAnswer => None,
            Closing::Idle(wait) => Some(wait),
            Closing::KeepAlive(secs) => Some(Duration::from_secs(secs)),
        };
        let _ = stream.set_read_timeout(wait);
        let mut first = [0u8; 1];
        match stream.read(&mut first) {
            Ok(1) => {}
            Ok(_) => {
                counts.retired_by_client.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(_) => return give_up(stream, counts),
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut head = first.to_vec();
        head.extend(read_head(&mut stream));
        let mut body = vec![0u8; content_length(&head)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let digest = sha256_hex(&body);
        let keep_alive = match closing {
            Closing::KeepAlive(secs) => format!("Keep-Alive: timeout={secs}\r\n"),
            _ => String::new(),
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{keep_alive}\r\n{digest}",
            digest.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
        counts.answered.fetch_add(1, Ordering::SeqCst);
        if let Closing::AfterAnswer = closing {
            return give_up(stream, counts);
        }
    }
}

fn body(index: usize) -> Vec<u8> {
    let len = [0, 1, 1000, 1024, 5000, 64 * 1024][index % 6] + index;
    (0..len).map(|i| (i * 31 + index * 7) as u8).collect()
}

/// Submits `count` uploads at once; every one must succeed with the digest
/// of its body.
fn upload_wave(engine: &Engine, url: &str, first: usize, count: usize) {
    let waiting: Vec<_> = (first..first + count)
        .map(|index| {
            let bytes = body(index);
            let digest = sha256_hex(&bytes);
            let request = UploadRequest::new(url).raw_body(SourceSpec::Memory(bytes.into()));
            (index, digest, submit_collect(engine, request).1)
        })
        .collect();
    for (index, digest, outcome) in waiting {
        let outcome = outcome.recv_timeout(Duration::from_secs(60)).expect("upload hung");
        let response = outcome
            .result
            .unwrap_or_else(|e| panic!("upload {index} failed: {} {e}", e.code()));
        assert_eq!(response.status, 200);
        assert_eq!(String::from_utf8_lossy(&response.body), digest, "upload {index}");
    }
}

fn start(closing: Closing) -> (RawServer, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let seen = Arc::clone(&counts);
    (RawServer::start(move |stream, _| serve(stream, closing, &seen)), counts)
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        max_in_flight: 16,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// Stops the engine and the server (whose threads finish counting), then
/// checks that every raced request was sent again, and no other.
fn settle(engine: Engine, server: RawServer, counts: &Counts, uploads: usize) -> u64 {
    let stats = engine.stats().unwrap();
    engine.shutdown();
    drop(server);
    let raced = counts.raced.load(Ordering::SeqCst) as u64;
    assert_eq!(stats.resent, raced, "resends where a request raced the server's close");
    assert_eq!(
        counts.answered.load(Ordering::SeqCst),
        uploads,
        "each upload answered once"
    );
    raced
}

#[test]
fn a_server_closing_after_every_answer_loses_no_upload() {
    let (server, counts) = start(Closing::AfterAnswer);
    let engine = engine();
    let url = server.url("/up");
    upload_wave(&engine, &url, 0, 300);
    // Its connections die right after their first answer: not pooled now.
    assert_eq!(engine.stats().unwrap().origins_not_pooled, 1);
    settle(engine, server, &counts, 300);
}

#[test]
fn a_server_closing_idle_connections_loses_no_upload() {
    let (server, counts) = start(Closing::Idle(Duration::from_millis(20)));
    let engine = engine();
    let url = server.url("/up");
    let mut sent = 0;
    for wave in 0..8 {
        upload_wave(&engine, &url, sent, 40);
        sent += 40;
        // Pauses around the server's idle limit, to meet its closes.
        std::thread::sleep(Duration::from_millis(15 + 2 * wave));
    }
    settle(engine, server, &counts, sent);
}

#[test]
fn a_keep_alive_timeout_retires_connections_before_the_server_closes_them() {
    let (server, counts) = start(Closing::KeepAlive(1));
    let engine = engine();
    let url = server.url("/up");
    upload_wave(&engine, &url, 0, 32);
    let pooled = engine.stats().unwrap().idle_connections;
    assert!(pooled > 0, "kept alive");
    // The engine retires them half a second in, before the server's 1 s.
    for _ in 0..100 {
        if counts.retired_by_client.load(Ordering::SeqCst) == pooled {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts.retired_by_client.load(Ordering::SeqCst), pooled);
    assert_eq!(engine.stats().unwrap().idle_connections, 0);
    upload_wave(&engine, &url, 32, 32);
    assert_eq!(
        settle(engine, server, &counts, 64),
        0,
        "no request met a closing connection"
    );
}

#[test]
fn a_redirect_on_a_server_closing_after_every_answer_is_followed() {
    // 303 to a GET, then the server closes: the GET went out on the dead
    // connection and is sent again on a new one.
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&answered);
    let server = RawServer::start(move |mut stream, _| {
        let head = read_head(&mut stream);
        let mut body = vec![0u8; content_length(&head)];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let answer = if head.starts_with(b"POST ") {
            "HTTP/1.1 303 See Other\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n".to_string()
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone".to_string()
        };
        let _ = stream.write_all(answer.as_bytes());
        seen.fetch_add(1, Ordering::SeqCst);
        // Close a moment later, as a server's close after a write does.
        std::thread::sleep(Duration::from_millis(20));
    });
    let engine = Engine::new(EngineConfig::default()).unwrap();
    for _ in 0..3 {
        let request = UploadRequest::new(server.url("/up")).file(FileInput::memory("f", "f.bin", vec![7; 100]));
        let outcome = submit_collect(&engine, request)
            .1
            .recv_timeout(Duration::from_secs(60))
            .unwrap();
        let response = outcome.result.expect("the redirect is followed");
        assert_eq!((response.status, response.body.as_slice()), (200, &b"done"[..]));
    }
    assert!(
        engine.stats().unwrap().resent >= 1,
        "the GET met the closing connection"
    );
    engine.shutdown();
    drop(server); // its threads end: every answer is counted
    assert_eq!(answered.load(Ordering::SeqCst), 6);
}
