//! Retries with backoff end to end: a flaky server that
//! resets mid-body, then answers 503 with `Retry-After`, then takes the
//! file: it arrives byte-exact after the expected attempts, progress never
//! goes back, and when attempts run out the message says how many were made.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uploadtask::{Client, ClientConfig, RetryOptions, Roots, UploadOptions};
use uploadtask_engine::retry::RetryPolicy;
use uploadtask_engine::{Engine, EngineConfig, FileInput, UploadRequest};
use uploadtask_tests::*;

/// Request n (0-based) is treated by `plan[n]`: "reset", "503", "ok".
fn flaky(plan: &'static [&'static str]) -> (RawServer, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let server = RawServer::start(move |mut stream, _| loop {
        let head = read_head(&mut stream);
        if head.is_empty() {
            return;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let length = content_length(&head);
        match plan.get(n).copied().unwrap_or("ok") {
            "reset" => {
                let mut half = vec![0u8; length / 2];
                let _ = std::io::Read::read_exact(&mut stream, &mut half);
                let socket = socket2::Socket::from(stream);
                let _ = socket.set_linger(Some(Duration::ZERO));
                return;
            }
            what => {
                let mut body = vec![0u8; length];
                if std::io::Read::read_exact(&mut stream, &mut body).is_err() {
                    return;
                }
                let reply = if what == "503" {
                    "HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 4\r\n\r\nbusy".to_string()
                } else {
                    let digest = sha256_hex(&body);
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{digest}", digest.len())
                };
                if stream.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        }
    });
    (server, requests)
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

#[test]
fn a_reset_and_a_503_then_the_file_arrives_whole() {
    let dir = temp_dir("retry");
    let (path, _) = make_file(&dir, "r.bin", 4 << 20, 5);
    let (server, requests) = flaky(&["reset", "503", "ok"]);
    let engine = Engine::new(EngineConfig {
        retry: policy(3),
        ..EngineConfig::default()
    })
    .unwrap();
    let request = UploadRequest::new(server.url("/")).raw_body(uploadtask_engine::SourceSpec::Path(path.clone()));
    let outcome = run_upload(&engine, request);
    let response = outcome.result.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        sha256_hex(&std::fs::read(&path).unwrap())
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3, "three attempts");
    assert_progress_rules(&outcome.progress, 4 << 20);
    // Without retries the first reset is the outcome.
    let (server, requests) = flaky(&["reset"]);
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let request = UploadRequest::new(server.url("/")).raw_body(uploadtask_engine::SourceSpec::Path(path));
    assert_eq!(run_upload(&engine, request).result.unwrap_err().code(), 1000);
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[test]
fn attempts_run_out_and_the_message_says_so() {
    let (server, requests) = flaky(&["503", "503", "503", "503"]);
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let mut request = UploadRequest::new(server.url("/")).file(FileInput::memory("f", "a", b"x".to_vec()));
    request.retry = Some(policy(2));
    // A retryable status that stays: the last response is the outcome.
    assert_eq!(run_upload(&engine, request).result.unwrap().status, 503);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    // An error that stays: the message counts the attempts.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut request = UploadRequest::new(format!("http://{closed}/")).file(FileInput::memory("f", "a", b"x".to_vec()));
    request.retry = Some(policy(2));
    let error = run_upload(&engine, request).result.unwrap_err();
    assert!(error.message.ends_with("(after 3 attempts)"), "{error}");
    assert_eq!(error.code(), 1000);
}

#[test]
fn the_facade_takes_retry_options() {
    let dir = temp_dir("retry-facade");
    make_file(&dir, "a.bin", 1000, 1);
    let (server, requests) = flaky(&["503"]);
    let client = Client::new(ClientConfig {
        roots: Roots::new().root("mass", dir.path()),
        ..ClientConfig::default()
    })
    .unwrap();
    let options: UploadOptions = serde_json::from_value(serde_json::json!({
        "url": server.url("/"),
        "filePath": "internal://mass/a.bin",
        "name": "f",
        "retry": {"attempts": 2, "baseDelay": 10}
    }))
    .unwrap();
    assert_eq!(options.retry.as_ref().map(|r| r.attempts), Some(2));
    assert_eq!(client.upload_file(options).wait().unwrap().status_code, 200);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let _ = RetryOptions::default();
}
