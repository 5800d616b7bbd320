//! Redirects end to end on 127.0.0.1: each code with its
//! method and body rule, the body re-sent whole for 307/308 (sha256 at the
//! end), credentials dropped on a hop to another origin, a loop cut off,
//! progress that never goes back, and `max_redirects: 0` returning the 3xx.

use std::io::Write;
use std::sync::{Arc, Mutex};

use uploadtask_engine::{Engine, EngineConfig, ErrorKind, FileInput, UploadRequest};
use uploadtask_tests::*;

/// What the redirector saw: (path, method, head, body) per request.
type Seen = Arc<Mutex<Vec<(String, String, String, Vec<u8>)>>>;

/// Answers by path: `/r/CODE/NEXT…` redirects with CODE to `/NEXT…`;
/// `/loop` to itself; `/to/PORT/…` to another origin; anything else 200
/// with the body's length.
fn redirector(seen: Seen) -> RawServer {
    RawServer::start(move |mut stream, _| loop {
        let (head, body) = read_request(&mut stream);
        if head.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split_whitespace();
        let (method, path) = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        seen.lock().unwrap().push((path.clone(), method, text, body.clone()));
        let reply = if let Some(rest) = path.strip_prefix("/r/") {
            let (code, next) = rest.split_once('/').unwrap_or((rest, ""));
            format!("HTTP/1.1 {code} Moved\r\nLocation: /{next}\r\nContent-Length: 5\r\n\r\nmoved")
        } else if path == "/loop" {
            "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".to_string()
        } else if let Some(rest) = path.strip_prefix("/to/") {
            let (port, next) = rest.split_once('/').unwrap_or((rest, ""));
            format!("HTTP/1.1 307 Temporary\r\nLocation: http://127.0.0.1:{port}/{next}\r\nContent-Length: 0\r\n\r\n")
        } else {
            let answer = format!("{} bytes", body.len());
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}", answer.len())
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    })
}

fn file(len: usize) -> (TempDir, std::path::PathBuf, String) {
    let dir = temp_dir("redirect");
    let (path, digest) = make_file(&dir, "f.bin", len, 9);
    (dir, path, digest)
}

#[test]
fn each_code_with_its_method_and_body_rule() {
    let seen: Seen = Arc::default();
    let server = redirector(Arc::clone(&seen));
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let (_dir, path, _) = file(200_000);
    // POST → 301 → GET → 302 → GET → 200.
    let request = UploadRequest::new(server.url("/r/301/r/302/end")).file(FileInput::path("f", &path));
    let outcome = run_upload(&engine, request);
    assert_eq!(outcome.result.unwrap().body, b"0 bytes");
    {
        let seen = seen.lock().unwrap();
        let steps: Vec<_> = seen
            .iter()
            .map(|(p, m, _, b)| (p.as_str(), m.as_str(), !b.is_empty()))
            .collect();
        assert_eq!(
            steps,
            [
                ("/r/301/r/302/end", "POST", true),
                ("/r/302/end", "GET", false),
                ("/end", "GET", false)
            ]
        );
        assert!(
            !seen[1].2.contains("Content-Length") && !seen[1].2.contains("Content-Type"),
            "{}",
            seen[1].2
        );
    }
    // POST → 307 → POST → 308 → POST: the whole body each time, byte-exact.
    seen.lock().unwrap().clear();
    let request = UploadRequest::new(server.url("/r/307/r/308/end")).file(FileInput::path("f", &path));
    let outcome = run_upload(&engine, request);
    let response = outcome.result.unwrap();
    let seen = seen.lock().unwrap();
    let steps: Vec<_> = seen.iter().map(|(p, m, _, _)| (p.as_str(), m.as_str())).collect();
    assert_eq!(
        steps,
        [("/r/307/r/308/end", "POST"), ("/r/308/end", "POST"), ("/end", "POST")]
    );
    assert!(
        seen.iter().all(|(_, _, _, body)| body == &seen[0].3),
        "the same body each time"
    );
    assert_eq!(response.body, format!("{} bytes", seen[0].3.len()).into_bytes());
    // Progress rose to the body's length once and never went back.
    let total = outcome.progress.last().unwrap().total_bytes_expected_to_send;
    assert_progress_rules(&outcome.progress, total);
    // 303 on a PUT: GET.
    drop(seen);
    let request = UploadRequest::new(server.url("/r/303/end"))
        .method("PUT")
        .raw_body(uploadtask_engine::SourceSpec::Path(path.clone()));
    run_upload(&engine, request).result.unwrap();
    engine.shutdown();
}

#[test]
fn credentials_stay_with_their_origin_and_loops_end() {
    let seen_a: Seen = Arc::default();
    let seen_b: Seen = Arc::default();
    let a = redirector(Arc::clone(&seen_a));
    let b = redirector(Arc::clone(&seen_b));
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let request = UploadRequest::new(a.url(&format!("/to/{}/end", b.addr().port())))
        .header("Authorization", "Bearer secret")
        .header("Cookie", "s=1")
        .header("X-Keep", "yes")
        .file(FileInput::memory("f", "a.txt", b"hello".to_vec()));
    assert_eq!(run_upload(&engine, request).result.unwrap().status, 200);
    let a_head = seen_a.lock().unwrap()[0].2.clone();
    let b_head = seen_b.lock().unwrap()[0].2.clone();
    assert!(a_head.contains("Authorization: Bearer secret") && a_head.contains("Cookie: s=1"));
    assert!(
        !b_head.contains("Authorization") && !b_head.contains("Cookie"),
        "{b_head}"
    );
    assert!(b_head.contains("X-Keep: yes"));
    // A loop: cut off after 10 hops with 1000.
    let request = UploadRequest::new(a.url("/loop")).file(FileInput::memory("f", "a.txt", b"x".to_vec()));
    let error = run_upload(&engine, request).result.unwrap_err();
    assert_eq!(
        (error.kind, error.code(), error.message.as_str()),
        (ErrorKind::Protocol, 1000, "too many redirects: 10 followed")
    );
    // max_redirects 0: the 3xx is the response.
    let mut request = UploadRequest::new(a.url("/r/302/end")).file(FileInput::memory("f", "a.txt", b"x".to_vec()));
    request.max_redirects = Some(0);
    let response = run_upload(&engine, request).result.unwrap();
    assert_eq!((response.status, response.body.as_slice()), (302, &b"moved"[..]));
    engine.shutdown();
}
