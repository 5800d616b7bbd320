//! The `uploadtask` program end to end: against its own `serve` and against
//! an independent raw peer; JSON outputs, exit statuses, progress lines,
//! `load` with 1,000 in flight, and `demo`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_uploadtask");

/// A file in a directory of its own, both removed when dropped.
struct TempFile(PathBuf);

impl std::ops::Deref for TempFile {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn temp_file(name: &str, len: usize) -> TempFile {
    let dir = std::env::temp_dir().join(format!("uploadtask-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    TempFile(path)
}

fn sha256_hex(path: &PathBuf) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run uploadtask")
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// One peer connection: reads a request, answers `reply`, returns the
/// head and the body.
fn answer_once(listener: &TcpListener, reply: &'static [u8]) -> (String, Vec<u8>) {
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream);
    let (mut head, mut length) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = v.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    reader.into_inner().write_all(reply).unwrap();
    (head, body)
}

/// `uploadtask serve` as a child process; killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start() -> Served {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["serve", "--addr", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "serve did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Served { child, addr }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn upload_json_results_and_exit_statuses_against_own_serve() {
    let served = Served::start();
    let url = format!("http://{}/up", served.addr);
    let a = temp_file("a.png", 70_000);
    let b = temp_file("b.txt", 5);
    let out = run(&[
        "upload",
        &url,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-F",
        "user=42",
        "-H",
        "X-Token: t",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    for (line, path) in lines.iter().zip([&a, &b]) {
        assert_eq!(line["file"], path.to_str().unwrap());
        assert_eq!(line["success"]["statusCode"], 200);
        assert_eq!(line["success"]["headers"]["content-type"], "application/json");
        let summary: Value = serde_json::from_str(line["success"]["data"].as_str().unwrap()).unwrap();
        assert_eq!(summary["fields"][0]["name"], "user");
        assert_eq!(summary["fields"][0]["value"], "42");
        assert_eq!(summary["files"][0]["sha256"], sha256_hex(path));
    }
    // One file: no "file" key. A missing file: fail 300, exit 1.
    let out = run(&["upload", &url, b.to_str().unwrap(), "--json"]);
    assert_eq!(json_lines(&out.stdout)[0].get("file"), None);
    let out = run(&["upload", &url, "/nonexistent/x.bin", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        json_lines(&out.stdout)[0],
        serde_json::json!({"fail": {"data": "file not found: /nonexistent/x.bin", "code": 300}})
    );
    // Usage errors: exit 2.
    assert_eq!(run(&["upload", &url]).status.code(), Some(2));
    assert_eq!(
        run(&["upload", &url, b.to_str().unwrap(), "-H", "no colon"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["upload", &url, b.to_str().unwrap(), "--progress", "fancy"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["nonsense"]).status.code(), Some(2));
    // Header mistakes on the command line are usage errors, whatever the
    // mistake: a bad name, or a header the engine sets itself.
    for header in [
        "bad header",
        "Content-Length: 3",
        "Transfer-Encoding: chunked",
        "X-A: a\u{1}b",
    ] {
        let out = run(&["upload", &url, b.to_str().unwrap(), "-H", header, "--json"]);
        assert_eq!(out.status.code(), Some(2), "{header:?}");
        assert!(out.stdout.is_empty(), "{header:?}");
    }
}

#[test]
fn progress_json_lines_only_rise_and_end_at_the_body_length() {
    let served = Served::start();
    let big = temp_file("big.bin", 24 << 20);
    for acked in [false, true] {
        let url = format!("http://{}/", served.addr);
        let mut args = vec!["upload", &url, big.to_str().unwrap(), "--progress", "json", "--json"];
        if acked {
            args.push("--progress-acked");
        }
        check_progress_lines(&run(&args));
    }
}

fn check_progress_lines(out: &Output) {
    assert_eq!(out.status.code(), Some(0));
    let progress = json_lines(&out.stderr);
    assert!(!progress.is_empty());
    let mut last = 0;
    for p in &progress {
        let sent = p["totalBytesSent"].as_u64().unwrap();
        let total = p["totalBytesExpectedToSend"].as_u64().unwrap();
        assert!(sent > last, "progress did not rise: {progress:?}");
        assert_eq!(p["progress"].as_u64().unwrap(), sent * 100 / total);
        last = sent;
    }
    let end = progress.last().unwrap();
    assert_eq!(end["totalBytesSent"], end["totalBytesExpectedToSend"]);
    assert_eq!(end["progress"], 100);
    assert!(end["totalBytesSent"].as_u64().unwrap() > 24 << 20);
}

#[test]
fn upload_against_an_independent_raw_peer() {
    // A peer that reads the request by hand and answers 201 with a header
    // given twice and a chunked body.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        stream
            .write_all(b"HTTP/1.1 201 Created\r\nX-Dup: 1\r\nX-Dup: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n\xef\xbb\xbfok\r\n0\r\n\r\n")
            .unwrap();
        body
    });
    let file = temp_file("raw.txt", 10);
    let out = run(&[
        "upload",
        &format!("http://{addr}/x"),
        file.to_str().unwrap(),
        "-n",
        "doc",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let line = &json_lines(&out.stdout)[0];
    assert_eq!(line["success"]["statusCode"], 201);
    assert_eq!(line["success"]["data"], "ok");
    assert_eq!(line["success"]["headers"]["X-Dup"], "1, 2");
    let body = String::from_utf8_lossy(&peer.join().unwrap()).to_string();
    assert!(body.contains(
        "Content-Disposition: form-data; name=\"doc\"; filename=\"raw.txt\"\r\nContent-Type: text/plain\r\n"
    ));
}

#[test]
fn load_with_a_thousand_in_flight_has_no_errors() {
    let out = run(&[
        "load",
        "-c",
        "1000",
        "-n",
        "5000",
        "--size",
        "16384",
        "--threads",
        "2",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = &json_lines(&out.stdout)[0];
    assert_eq!(report["uploads"], 5000);
    assert_eq!(report["successes"], 5000);
    assert_eq!(report["failures"], 0);
    assert_eq!(report["failed"], serde_json::json!({}));
    assert_eq!(report["statuses"]["200"], 5000);
    assert_eq!(report["threads"], 2);
    for key in ["min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"] {
        assert!(report["latencyMs"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    let buckets = report["histogram"].as_array().unwrap();
    assert_eq!(buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 5000);
    assert!(report["successesPerSec"].as_f64().unwrap() > 0.0);
    assert!(report["receiver"].as_str().unwrap().contains("same cores"));
}

/// Against a closed port: no throughput, the failures by kind with their
/// reason, exit 1 (the old report claimed 68,836 uploads/s).
#[test]
fn load_against_a_closed_port_counts_no_throughput() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let out = run(&["load", &url, "-n", "50", "-c", "10", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = &json_lines(&out.stdout)[0];
    assert_eq!(
        (report["successes"].as_u64(), report["failures"].as_u64()),
        (Some(0), Some(50))
    );
    assert_eq!(report["successesPerSec"], 0.0);
    assert_eq!(report["mbPerSec"], 0.0);
    assert_eq!(report["failed"]["1000 connection refused"], 50);
    let text = run(&["load", &url, "-n", "5", "-c", "5"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("1000 connection refused: 5"), "{text}");
    assert!(text.contains("Throughput:  0 successes/s"), "{text}");
}

/// `-F name=@file` parts go into every upload, next to the main part.
#[test]
fn load_sends_form_file_parts() {
    let served = Served::start();
    let extra = temp_file("extra.txt", 1000);
    let part = format!("notes=@{};type=text/plain", extra.display());
    let url = format!("http://{}/up", served.addr);
    let out = run(&[
        "load", &url, "-n", "3", "-c", "3", "--size", "100", "-F", "k=v", "-F", &part, "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = &json_lines(&out.stdout)[0];
    assert_eq!(report["successes"], 3);
    assert_eq!(report["bodyBytes"], 1100, "the parts' bytes count");
    let missing = run(&["load", &url, "-n", "1", "-F", "x=@/nonexistent/file"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// Open model for a duration with headers and fields; the HdrHistogram
/// interval log parses back with the hdrhistogram crate and holds every
/// success; the plot is an SVG.
#[test]
fn load_rate_duration_hdr_log_and_plot() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let dir = std::env::temp_dir().join(format!("uploadtask-cli-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, plot) = (dir.join("run.hlog"), dir.join("run.svg"));
    let out = run(&[
        "load",
        "-z",
        "1500ms",
        "--rate",
        "400",
        "-c",
        "50",
        "-H",
        "X-Run: 1",
        "-F",
        "k=v",
        "--hdr-log",
        log.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = &json_lines(&out.stdout)[0];
    let successes = report["successes"].as_u64().unwrap();
    // 1.5 s at 400/s: 600 intended starts, all made however late the loop.
    assert_eq!(successes, 600);
    assert_eq!(report["rate"], 400.0);
    let bytes = std::fs::read(&log).unwrap();
    let mut deserializer = Deserializer::new();
    let mut recorded = 0;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(interval) = entry.expect("a valid log entry") {
            let encoded = interval.encoded_histogram();
            let decoded = base64_decode(encoded);
            let histogram: hdrhistogram::Histogram<u64> = deserializer
                .deserialize(&mut decoded.as_slice())
                .expect("a V2 histogram");
            recorded += histogram.len();
            intervals += 1;
        }
    }
    assert_eq!(recorded, successes, "every success is in the log");
    assert!(intervals >= 2);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("successes per second"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("base64")
}

/// Ctrl-C prints the summary of what ended, and exits 130.
#[test]
fn load_prints_a_summary_on_ctrl_c() {
    let child = Command::new(BIN)
        .args(["load", "-z", "60s", "-c", "20", "--rate", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted (Ctrl-C)"), "{text}");
    assert!(text.contains("Summary:") && text.contains("Successes:"), "{text}");
}

#[test]
fn demo_proves_the_bytes_arrived() {
    let out = run(&["demo", "--size", "3000000"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("receiver: 3000000 bytes"), "{text}");
    assert!(text.contains("— matches"), "{text}");
    let given = temp_file("given.bin", 12345);
    let out = run(&["demo", given.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sha256_hex(&given)));
}

/// `--cacert` with a self-signed certificate (the `CA:TRUE` kind `openssl
/// req -x509` makes), `-k` with its warning, and the plain refusal: exit 1
/// with the cause in words.
#[test]
fn tls_trust_flags() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let receiver = uploadtask_cli::serve::Receiver::start(uploadtask_cli::serve::ReceiverConfig {
        tls: Some(std::sync::Arc::new(config)),
        ..Default::default()
    })
    .unwrap();
    let url = format!("https://127.0.0.1:{}/up", receiver.addr().port());
    let file = temp_file("tls.txt", 100);
    let pem = temp_file("self.pem", 0);
    std::fs::write(&*pem, cert.pem()).unwrap();
    let trusted = run(&[
        "upload",
        &url,
        file.to_str().unwrap(),
        "--cacert",
        pem.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        trusted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let insecure = run(&["upload", &url, file.to_str().unwrap(), "-k", "--json"]);
    assert_eq!(insecure.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("NOT checked"));
    let refused = run(&["upload", &url, file.to_str().unwrap(), "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    let line = &json_lines(&refused.stdout)[0];
    assert_eq!(line["fail"]["code"], 1000);
    assert!(
        line["fail"]["data"]
            .as_str()
            .unwrap()
            .contains("self-signed certificate"),
        "{line}"
    );
    // load takes the same flags.
    let load = run(&[
        "load",
        &url,
        "-c",
        "4",
        "-n",
        "20",
        "--size",
        "100",
        "--cacert",
        pem.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(load.status.code(), Some(0), "{}", String::from_utf8_lossy(&load.stderr));
    let report = &json_lines(&load.stdout)[0];
    assert_eq!(report["successes"], 20, "{report}");
}

/// curl's habits: `-F name=@path;type=T` file parts (several in one
/// request), `-T FILE` (a raw PUT), `-X METHOD`, and the usage errors.
#[test]
fn form_file_parts_raw_put_and_method() {
    let served = Served::start();
    let url = format!("http://{}/up", served.addr);
    let a = temp_file("fa.png", 1000);
    let b = temp_file("fb.bin", 10);
    let out = run(&[
        "upload",
        &url,
        "-F",
        &format!("one=@{};type=image/x-one", a.to_str().unwrap()),
        "-F",
        &format!("two=@{};filename=renamed.bin", b.to_str().unwrap()),
        "-F",
        "k=v",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line = &json_lines(&out.stdout)[0];
    let summary: Value = serde_json::from_str(line["success"]["data"].as_str().unwrap()).unwrap();
    let files: Vec<_> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap(),
                f["filename"].as_str().unwrap(),
                f["contentType"].as_str().unwrap(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("one", "fa.png", "image/x-one", sha256_hex(&a)),
            ("two", "renamed.bin", "application/octet-stream", sha256_hex(&b)),
        ]
    );
    assert_eq!(summary["fields"][0]["value"], "v");

    // -T: a raw PUT; -X overrides the method.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        [answer_once(&listener, created), answer_once(&listener, created)]
    });
    let url = format!("http://{addr}/bucket/key");
    let put = run(&[
        "upload",
        &url,
        "-T",
        a.to_str().unwrap(),
        "-H",
        "Content-Type: image/png",
    ]);
    assert_eq!(put.status.code(), Some(0), "{}", String::from_utf8_lossy(&put.stderr));
    let patch = run(&["upload", &url, "-T", b.to_str().unwrap(), "-X", "PATCH"]);
    assert_eq!(patch.status.code(), Some(0));
    let heads = peer.join().unwrap();
    assert!(heads[0].0.starts_with("PUT /bucket/key HTTP/1.1\r\n"), "{}", heads[0].0);
    assert!(heads[0].0.contains("Content-Type: image/png\r\n") && !heads[0].0.contains("multipart"));
    assert_eq!(heads[0].1, std::fs::read(&*a).unwrap());
    assert!(
        heads[1].0.starts_with("PATCH /bucket/key HTTP/1.1\r\n"),
        "{}",
        heads[1].0
    );
    assert!(
        !heads[1].0.contains("Content-Type"),
        "no Content-Type unless given: {}",
        heads[1].0
    );
    // Usage errors: exit 2.
    for args in [
        vec!["upload", url.as_str()],
        vec!["upload", url.as_str(), "-T", "x", "-F", "a=b"],
        vec!["upload", url.as_str(), "-F", "a=@"],
        vec!["upload", url.as_str(), "-F", "a=@x;size=3"],
    ] {
        assert_eq!(run(&args).status.code(), Some(2), "{args:?}");
    }
}

/// `-L` follows redirects as curl's does; without it the 3xx is the result.
#[test]
fn location_flag_follows_redirects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let moved =
            b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /new\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let new = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nnew";
        // Without -L: /old only; with -L: /old, then /new.
        let heads = [
            answer_once(&listener, moved),
            answer_once(&listener, moved),
            answer_once(&listener, new),
        ];
        heads.map(|(head, _)| head.split_whitespace().nth(1).unwrap_or("").to_string())
    });
    let file = temp_file("l.txt", 10);
    let url = format!("http://{addr}/old");
    let plain = run(&["upload", &url, file.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "308");
    let followed = run(&["upload", &url, file.to_str().unwrap(), "-L"]);
    assert_eq!(String::from_utf8_lossy(&followed.stdout).trim(), "200 new");
    assert_eq!(peer.join().unwrap(), ["/old", "/old", "/new"]);
}

/// curl's habits: --fail exits 22, -v shows both heads, -H 'K;' sends an
/// empty value, a body with line breaks stays on one line, a failure goes
/// to stderr, a bad URL is a usage error, `-` reads standard input.
#[test]
fn curl_habits() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/x");
    let peer = std::thread::spawn(move || {
        let first = answer_once(
            &listener,
            b"HTTP/1.1 413 Too Large\r\nContent-Length: 11\r\nConnection: close\r\n\r\nline1\nline2",
        );
        let second = answer_once(
            &listener,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        );
        (first.0, String::from_utf8_lossy(&second.1).into_owned())
    });
    let file = temp_file("habits.txt", 10);
    let out = run(&[
        "upload",
        &url,
        file.to_str().unwrap(),
        "--fail",
        "-v",
        "-H",
        "X-Empty;",
        "-H",
        "X-Gone:",
        "--connect-timeout",
        "5000",
    ]);
    assert_eq!(out.status.code(), Some(22));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413 line1\\nline2\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("> POST /x HTTP/1.1") && stderr.contains("< HTTP/1.1 413"),
        "{stderr}"
    );
    // Standard input as the file.
    let mut child = Command::new(BIN)
        .args(["upload", &url, "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"from stdin").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (first, second) = peer.join().unwrap();
    assert!(
        first.contains("\r\nX-Empty: \r\n") && !first.contains("X-Gone"),
        "{first}"
    );
    assert!(
        second.contains("\r\n\r\nfrom stdin\r\n--"),
        "the bytes of standard input: {second}"
    );
    // A failure line goes to stderr; a bad URL is a usage error.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = run(&["upload", &format!("http://{closed}/"), file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("fail 1000"));
    for bad in ["not a url", "ftp://127.0.0.1/x"] {
        assert_eq!(
            run(&["upload", bad, file.to_str().unwrap()]).status.code(),
            Some(2),
            "{bad}"
        );
    }
}

/// `-x` sends through a proxy (absolute-form for http); `--noproxy` lists
/// hosts that go direct.
#[test]
fn proxy_flags() {
    let served = Served::start();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let forwarder = std::thread::spawn(move || {
        let (client, _) = proxy.accept().unwrap();
        let mut reader = BufReader::new(client);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let authority = head
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let mut origin = TcpStream::connect(authority).unwrap();
        origin.write_all(head.as_bytes()).unwrap();
        let buffered = reader.buffer().to_vec();
        origin.write_all(&buffered).unwrap();
        let mut client = reader.into_inner();
        let (mut c2, mut o2) = (client.try_clone().unwrap(), origin.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut o2);
            // The client is gone: end the other direction too (the origin keeps alive).
            let _ = o2.shutdown(std::net::Shutdown::Both);
        });
        let _ = std::io::copy(&mut origin, &mut client);
        drop(client);
        let _ = up.join();
        head
    });
    let file = temp_file("px.txt", 1000);
    let url = format!("http://{}/up", served.addr);
    let out = run(&[
        "upload",
        &url,
        file.to_str().unwrap(),
        "-x",
        &format!("http://{proxy_addr}"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let head = forwarder.join().unwrap();
    assert!(head.starts_with(&format!("POST {url} HTTP/1.1\r\n")), "{head}");
    // --noproxy: direct (the proxy no longer listens: going through it would fail).
    let out = run(&[
        "upload",
        &url,
        file.to_str().unwrap(),
        "-x",
        &format!("http://{proxy_addr}"),
        "--noproxy",
        "127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--retry N` sends again after a failure worth it; the failure line says
/// how many attempts were made.
#[test]
fn retry_flag() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let file = temp_file("retry.txt", 10);
    let out = run(&[
        "upload",
        &format!("http://{closed}/"),
        file.to_str().unwrap(),
        "--retry",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(after 3 attempts)"), "{stderr}");
}

/// `--tus`: a run cut off by a server that dies leaves the upload resource
/// in the store; a second run (a new process) resumes it from the server's
/// offset, and the stored file is byte-exact. The same for `--resumable`.
#[test]
fn resumable_upload_resumes_when_run_again() {
    use std::sync::Arc;
    use uploadtask_tests::resumable_server::{wait_killed, Flavor, ResumableServer, ServerState};
    for (flavor, flag, path) in [
        (Flavor::Tus, "--tus", "/files/"),
        (Flavor::Ietf, "--resumable", "/upload"),
    ] {
        let file = temp_file("resume.bin", 3 * 1024 * 1024 + 7);
        let config = uploadtask_tests::temp_dir("cli-resume-store");
        let state = Arc::new(ServerState::default());
        state.faults.lock().unwrap().kill_at = Some(1024 * 1024);
        let server = ResumableServer::start(flavor, Arc::clone(&state), 0);
        let endpoint = format!("{}{path}", server.origin());
        let port = server.port();
        let watcher = {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                wait_killed(&state);
                drop(server); // and it stays down for this run
            })
        };
        let file_arg = file.0.to_string_lossy().into_owned();
        let args = [
            "upload",
            flag,
            &endpoint,
            &file_arg,
            "--chunk-size",
            "512K",
            "--retry",
            "1",
            "--json",
        ];
        let first = Command::new(BIN)
            .args(args)
            .env("XDG_CONFIG_HOME", &*config)
            .output()
            .expect("run");
        watcher.join().unwrap();
        assert_ne!(first.status.code(), Some(0), "the first run cannot finish");
        let stored: Vec<_> = std::fs::read_dir(config.join("uploadtask/resumable"))
            .unwrap()
            .collect();
        assert_eq!(stored.len(), 1, "the resource is stored for the next run");
        let kept = state.only_upload().data.len();
        assert!(kept >= 1024 * 1024, "the server kept {kept} bytes");

        let _server = ResumableServer::start(flavor, Arc::clone(&state), port);
        let second = Command::new(BIN)
            .args(args)
            .env("XDG_CONFIG_HOME", &*config)
            .output()
            .expect("run");
        assert_eq!(
            second.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&second.stderr)
        );
        assert_eq!(state.count("POST"), 1, "{flag}: created once, resumed after");
        let data = state.only_upload().data;
        assert_eq!(uploadtask_tests::sha256_hex(&data), sha256_hex(&file.0));
        assert_eq!(
            *state.received.lock().unwrap(),
            data.len() as u64,
            "{flag}: the second run sent only what the server lacked"
        );
        assert_eq!(
            std::fs::read_dir(config.join("uploadtask/resumable")).unwrap().count(),
            0,
            "finished uploads leave the store"
        );
    }
}

/// The page's two examples (`examples/js/`, only the URL and the file path
/// changed from the page, and its `${data)}` typo fixed) run as written in
/// one global scope: `abort()` right after the call gives `fail("abort",
/// 1000)`, and no progress listener runs after it.
#[test]
fn js_host_runs_the_pages_examples() {
    let served = Served::start();
    let root = std::env::temp_dir().join(format!("uploadtask-js-seed-{}", std::process::id()));
    std::fs::create_dir_all(root.join("download")).unwrap();
    std::fs::write(root.join("download/test.png"), vec![1u8; 200_000]).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/js");
    let mut scripts = Vec::new();
    for name in ["seed1.js", "seed2.js"] {
        let text = std::fs::read_to_string(examples.join(name)).unwrap();
        // The examples name a receiver on 127.0.0.1:8080; point them at this test's.
        let path = root.join(name);
        std::fs::write(&path, text.replace("127.0.0.1:8080", &served.addr)).unwrap();
        scripts.push(path);
    }
    let out = Command::new(BIN)
        .arg("run")
        .args(&scripts)
        .arg("--root")
        .arg(format!("mass={}", root.display()))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "handling fail, errMsg = abort\nhandling fail, errCode = 1000\n");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `import` and `require`, the success object's shape, listeners removed
/// by function and all at once, the documented fail codes, timers, and a
/// throwing `success` reported with the script's line while its
/// `complete` and the other uploads still run.
#[test]
fn js_host_follows_the_documented_semantics() {
    let served = Served::start();
    let root = std::env::temp_dir().join(format!("uploadtask-js-module-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("big.bin"), vec![3u8; 3_000_000]).unwrap();
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/module.js")).unwrap();
    let path = root.join("module.js");
    std::fs::write(&path, script.replace("RECEIVER", &format!("http://{}", served.addr))).unwrap();
    let out = Command::new(BIN)
        .arg("run")
        .arg(&path)
        .arg("--root")
        .arg(format!("mass={}", root.display()))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for expected in [
        "require gives the same module: true",
        "no url: 202",
        "no file: 300",
        "timer with arguments: xy",
        "success keys: data,headers,statusCode",
        "statusCode: 200",
        "field: user=42",
        "size: 3000000",
        "content-type: application/json",
        "complete ran after the throw",
        "removed listener calls: 0",
        "kept listener reached 100: true",
        "second upload complete, its listeners ran 0 times",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in:\n{stdout}");
    }
    let at = |line: &str| lines.iter().position(|l| *l == line).unwrap();
    assert!(at("statusCode: 200") < at("complete ran after the throw"));
    assert!(!stdout.contains("a cleared timer ran"));
    assert!(
        stderr.contains("Uncaught error in success: Error: thrown in success"),
        "{stderr}"
    );
    assert!(stderr.contains("module.js:20"), "the script's line: {stderr}");
}

/// Messages as curl users expect them: `-v` shows every head received
/// (the 3xx of `-L` too, with reason phrases), failures name the address
/// and the timeout, a URL without a scheme is http, `serve` takes a raw
/// `-T` body, and the top-level help lists every subcommand.
#[test]
fn curl_grade_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let see_other = b"HTTP/1.1 303 See Other\r\nLocation: /echo\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let done = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone";
        [answer_once(&listener, see_other).0, answer_once(&listener, done).0]
    });
    let file = temp_file("messages.txt", 10);
    let out = run(&["upload", &format!("{addr}/up"), file.to_str().unwrap(), "-L", "-v"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200 done");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "> POST /up HTTP/1.1",
        "< HTTP/1.1 303 See Other",
        "< Location: /echo",
        "> GET /echo HTTP/1.1",
        "< HTTP/1.1 200 OK",
        "< Content-Length: 4",
    ] {
        assert!(stderr.lines().any(|l| l == line), "{line:?} missing in:\n{stderr}");
    }
    let heads = peer.join().unwrap();
    assert!(
        heads[0].starts_with("POST /up ") && heads[1].starts_with("GET /echo "),
        "{heads:?}"
    );

    // A refused connect names the address; a timeout says which and how long.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = run(&["upload", &format!("http://{closed}/"), file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("fail 1000: connect to {closed} failed: Connection refused")),
        "{stderr}"
    );
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let out = run(&["upload", &url, file.to_str().unwrap(), "-t", "300"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fail 204: timeout: the overall timeout of 300 ms passed while exchanging"),
        "{stderr}"
    );
    drop(silent);

    // Our own receiver shows a raw PUT: its size and sha256.
    let served = Served::start();
    let out = run(&[
        "upload",
        "-T",
        file.to_str().unwrap(),
        &format!("{}/raw", served.addr),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line = &json_lines(&out.stdout)[0];
    assert_eq!(line["success"]["statusCode"], 200);
    let summary: Value = serde_json::from_str(line["success"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(summary["body"]["size"], 10);
    assert_eq!(summary["body"]["sha256"], sha256_hex(&file));

    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for command in ["upload", "demo", "serve", "load", "run"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command}: {help}"
        );
    }
}

/// HTTP/2 as curl's flags choose it: `-v` shows the HEADERS and the
/// protocol, `--json` says which carried the response; `load` reports the
/// connections that carried the job.
#[test]
fn http2_prior_knowledge_from_the_command_line() {
    let receiver = uploadtask_cli::serve::Receiver::start(uploadtask_cli::serve::ReceiverConfig {
        http2: Some(uploadtask_cli::serve::Http2Settings::default()),
        ..Default::default()
    })
    .unwrap();
    let url = format!("http://{}/up", receiver.addr());
    let file = temp_file("h2.txt", 100);
    let out = run(&[
        "upload",
        "-v",
        "--json",
        "--http2-prior-knowledge",
        &url,
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line = &json_lines(&out.stdout)[0];
    assert_eq!(line["protocol"], "HTTP/2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in ["> POST /up HTTP/2", "< HTTP/2 200", "< content-type: application/json"] {
        assert!(stderr.lines().any(|l| l == line), "{line:?} missing in:\n{stderr}");
    }
    assert!(stderr.contains("* using HTTP/2 with"), "{stderr}");
    // --http1.1 wins over the server's HTTP/2.
    let out = run(&["upload", "--json", "--http1.1", &url, file.to_str().unwrap()]);
    assert_eq!(json_lines(&out.stdout)[0]["protocol"], "HTTP/1.1");
    // Two of the flags at once is a usage error.
    let out = run(&["upload", "--http1.1", "--http2", &url, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // A load of 400 with 100 streams a connection: four connections.
    let out = run(&[
        "load",
        &url,
        "-n",
        "400",
        "-c",
        "400",
        "--threads",
        "1",
        "--http2-prior-knowledge",
        "--streams",
        "100",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = &json_lines(&out.stdout)[0];
    assert_eq!(report["successes"], 400);
    assert_eq!(
        (report["connections"].as_u64(), report["http2Connections"].as_u64()),
        (Some(4), Some(4))
    );
}
