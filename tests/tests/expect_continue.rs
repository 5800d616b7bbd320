//! `Expect: 100-continue` end to end against three raw
//! peers: one that answers `100 Continue`, one that ignores `Expect`, one
//! that answers 417 (the request goes again without it); plus an early 413
//! that stops the body, and small bodies sent without `Expect`.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use uploadtask_engine::{Engine, EngineConfig, UploadRequest};
use uploadtask_tests::*;

const BIG: usize = 3 << 20;

/// How a peer treats `Expect`.
#[derive(Clone, Copy)]
enum Peer {
    Continue,
    Ignore,
    Refuse417,
    Early413,
}

/// Heads seen and body bytes received per request.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

fn peer(kind: Peer, seen: Seen) -> RawServer {
    RawServer::start(move |mut stream, _| loop {
        let head = String::from_utf8_lossy(&read_head(&mut stream)).into_owned();
        if head.is_empty() {
            return;
        }
        let expects = head.contains("\r\nExpect: 100-continue\r\n");
        let length = content_length(head.as_bytes());
        let mut body = vec![0u8; length];
        match kind {
            Peer::Refuse417 if expects => {
                let _ = stream.write_all(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
                seen.lock().unwrap().push((head, Vec::new()));
                continue; // keep-alive: the body never comes; the next request does
            }
            Peer::Early413 => {
                let _ = stream.write_all(b"HTTP/1.1 413 Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(300)));
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got);
                seen.lock().unwrap().push((head, got));
                return;
            }
            Peer::Continue if expects => {
                let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            _ => {}
        }
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        let answer = sha256_hex(&body);
        seen.lock().unwrap().push((head, body));
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = stream.write_all(reply.as_bytes());
        return;
    })
}

fn raw_request(url: String, dir: &TempDir, len: usize) -> (UploadRequest, String) {
    let (path, digest) = make_file(dir, &format!("e{len}.bin"), len, 3);
    (
        UploadRequest::new(url).raw_body(uploadtask_engine::SourceSpec::Path(path)),
        digest,
    )
}

#[test]
fn continue_ignore_and_417() {
    let dir = temp_dir("expect");
    let engine = Engine::new(EngineConfig::default()).unwrap();
    for kind in [Peer::Continue, Peer::Ignore, Peer::Refuse417] {
        let seen: Seen = Arc::default();
        let server = peer(kind, Arc::clone(&seen));
        let (request, digest) = raw_request(server.url("/"), &dir, BIG);
        let response = run_upload(&engine, request).result.unwrap();
        assert_eq!(String::from_utf8_lossy(&response.body), digest, "byte-exact");
        let seen = seen.lock().unwrap();
        assert!(seen[0].0.contains("Expect: 100-continue"), "{}", seen[0].0);
        if let Peer::Refuse417 = kind {
            assert_eq!(seen.len(), 2);
            assert!(
                !seen[1].0.contains("Expect"),
                "sent again without Expect: {}",
                seen[1].0
            );
        }
    }
    // A small body goes at once, without Expect.
    let seen: Seen = Arc::default();
    let server = peer(Peer::Continue, Arc::clone(&seen));
    let (request, _) = raw_request(server.url("/"), &dir, 1000);
    run_upload(&engine, request).result.unwrap();
    assert!(!seen.lock().unwrap()[0].0.contains("Expect"));
    engine.shutdown();
}

#[test]
fn a_final_answer_to_expect_stops_the_body() {
    let dir = temp_dir("expect413");
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let seen: Seen = Arc::default();
    let server = peer(Peer::Early413, Arc::clone(&seen));
    let (request, _) = raw_request(server.url("/"), &dir, 64 << 20);
    let outcome = run_upload(&engine, request);
    assert_eq!(outcome.result.unwrap().status, 413);
    drop(server); // waits for the peer to finish counting
    let received = seen.lock().unwrap()[0].1.len();
    assert!(received < 64 << 20, "the body stopped: {received} bytes arrived");
    engine.shutdown();
}
