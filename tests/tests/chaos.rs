//! A bounded chaos run: a loopback server that, per request (seeded),
//! answers, answers chunked, closes, resets mid-body, takes the whole
//! request and closes without a word, stalls, answers an early 413, or
//! sends garbage; thousands of uploads of random sizes with
//! random aborts and timeouts. Every upload ends exactly once with a
//! documented outcome, no upload reaches the server whole twice when at
//! most once is asked (and otherwise only as often as the engine counts
//! resends), progress never decreases nor passes the body length, and the
//! engine's counts and this process's descriptors return to where
//! they started. Alone in its binary (it counts descriptors).
//!
//! The seed is printed; `CHAOS_SEED=N cargo test --test chaos` replays one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use uploadtask_engine::{Engine, EngineConfig, ErrorKind, Event, FileInput, UploadRequest};
use uploadtask_tests::{content_length, open_fds, read_head, RawServer};

const UPLOADS: u64 = 3000;

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The misbehaving server (a [`RawServer`] running `serve`), and how many
/// times each upload arrived whole.
struct ChaosServer {
    server: RawServer,
    whole: Arc<Seen>,
}

impl ChaosServer {
    fn start(seed: u64) -> ChaosServer {
        let requests = Arc::new(AtomicU64::new(0));
        let whole = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let seen = Arc::clone(&whole);
        let server = RawServer::start(move |stream, stop| serve(stream, seed, &requests, &seen, stop));
        ChaosServer { server, whole }
    }
}

fn read_exactly(stream: &mut TcpStream, mut len: usize) -> bool {
    let mut buf = [0u8; 16 * 1024];
    while len > 0 {
        match stream.read(&mut buf[..len.min(16 * 1024)]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => len -= n,
        }
    }
    true
}

fn reset(stream: TcpStream) {
    let socket = socket2::Socket::from(stream);
    let _ = socket.set_linger(Some(Duration::ZERO));
}

type Seen = Mutex<std::collections::HashMap<String, usize>>;

/// Reads the body; counts the upload when it arrived whole.
fn read_body(stream: &mut TcpStream, head: &[u8], seen: &Seen) -> bool {
    let whole = read_exactly(stream, content_length(head));
    if whole {
        let id = String::from_utf8_lossy(head)
            .lines()
            .find_map(|l| l.strip_prefix("X-Upload: ").map(str::to_string))
            .unwrap_or_default();
        *seen.lock().unwrap().entry(id).or_default() += 1;
    }
    whole
}

fn serve(mut stream: TcpStream, seed: u64, requests: &AtomicU64, seen: &Seen, stop: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        let head = read_head(&mut stream);
        if head.is_empty() || stop.load(Ordering::SeqCst) {
            return;
        }
        let length = content_length(&head);
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let behaviour = mix(seed ^ n) % 11;
        let sent = match behaviour {
            0..=3 => {
                read_body(&mut stream, &head, seen)
                    && stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_ok()
            }
            4 => {
                read_body(&mut stream, &head, seen)
                    && stream
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                        .is_ok()
            }
            5 => {
                let _ = read_exactly(&mut stream, length / 2);
                return reset(stream);
            }
            6 => {
                let _ = stream.write_all(
                    b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 8\r\n\r\ntoo big!",
                );
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let _ = read_body(&mut stream, &head, seen);
                return;
            }
            7 => {
                let _ = read_body(&mut stream, &head, seen);
                std::thread::sleep(Duration::from_millis(mix(n) % 300));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
                return;
            }
            8 => {
                let _ = read_body(&mut stream, &head, seen);
                let _ = stream.write_all(b"HTTP/1.1 2x0 OK\r\n\r\n");
                return;
            }
            9 => {
                // Takes the whole request, then closes without a word.
                let _ = read_body(&mut stream, &head, seen);
                return;
            }
            _ => {
                // Stall: say nothing until the client gives up.
                let _ = read_body(&mut stream, &head, seen);
                let started = Instant::now();
                let mut byte = [0u8; 1];
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(10) {
                    if matches!(stream.read(&mut byte), Ok(0)) {
                        return;
                    }
                }
                return;
            }
        };
        if !sent {
            return;
        }
    }
}

/// An upload's number and its status, or its error's kind, code and message.
type Ended = (u64, Result<u16, (ErrorKind, u32, String)>);

#[derive(Default)]
struct Tally {
    outcomes: Mutex<Vec<Ended>>,
    violations: Mutex<Vec<String>>,
    done: AtomicUsize,
}

/// How a run may send an upload twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Twice {
    /// At most once asked for (`resend_reused` off), no retries: never.
    Never,
    /// The default resend of a request that met a closing reused
    /// connection: only as often as the engine counts resends.
    Resends,
    /// With retries: a retry after the server took the whole body and
    /// failed to answer sends it again (what retries are, and why
    /// resumable uploads exist).
    Retries,
}

/// One test, so nothing else in this binary touches the descriptor count:
/// at most once, then with the default resend rule, then with retries.
#[test]
fn chaos_every_upload_ends_once_and_everything_is_given_back() {
    chaos(Twice::Never);
    chaos(Twice::Resends);
    chaos(Twice::Retries);
}

fn chaos(twice_allowed: Twice) {
    let retry = (twice_allowed == Twice::Retries).then(|| uploadtask_engine::retry::RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        ..Default::default()
    });
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| mix(std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64) % 1_000_000);
    println!("chaos seed {seed} (CHAOS_SEED={seed} replays it)");
    let fds_before = open_fds();
    {
        let server = ChaosServer::start(seed);
        let engine = Engine::new(EngineConfig {
            max_in_flight: 64,
            idle_timeout: Duration::from_millis(400),
            connect_timeout: Duration::from_secs(5),
            retry: retry.clone().unwrap_or_default(),
            resend_reused: twice_allowed != Twice::Never,
            ..EngineConfig::default()
        })
        .unwrap();
        let tally = Arc::new(Tally::default());
        let (abort_tx, abort_rx) = mpsc::channel::<(uploadtask_engine::UploadId, Duration)>();
        let aborter_engine = engine.clone();
        let aborter = std::thread::spawn(move || {
            for (id, after) in abort_rx {
                std::thread::sleep(after);
                aborter_engine.abort(id);
            }
        });
        let url = server.server.url("/chaos");
        for n in 0..UPLOADS {
            let r = mix(seed.wrapping_add(n).wrapping_mul(7919));
            let size = (r % 200_000) as usize;
            let mut request = UploadRequest::new(url.clone())
                .header("X-Upload", n.to_string())
                .file(FileInput::memory("f", "c.bin", vec![b'c'; size]));
            if r % 17 == 0 {
                request = request.timeout(Duration::from_millis(50 + (r >> 8) % 300));
            }
            let tally_here = Arc::clone(&tally);
            let mut last = 0u64;
            let mut ended = false;
            let id = engine.submit(request, move |event: Event| {
                let violation = |what: String| {
                    tally_here
                        .violations
                        .lock()
                        .unwrap()
                        .push(format!("upload {n}: {what}"))
                };
                match event {
                    Event::Progress(p) => {
                        if ended {
                            violation("progress after the outcome".into());
                        }
                        if p.total_bytes_sent <= last && last != 0
                            || p.total_bytes_sent > p.total_bytes_expected_to_send
                        {
                            violation(format!(
                                "progress {} after {last} of {}",
                                p.total_bytes_sent, p.total_bytes_expected_to_send
                            ));
                        }
                        last = p.total_bytes_sent;
                    }
                    Event::Done(result) => {
                        if ended {
                            violation("a second outcome".into());
                        }
                        ended = true;
                        let outcome = result
                            .map(|r| r.status)
                            .map_err(|e| (e.kind, e.code(), e.message.clone()));
                        tally_here.outcomes.lock().unwrap().push((n, outcome));
                        tally_here.done.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            });
            if r % 13 == 0 {
                let _ = abort_tx.send((id, Duration::from_micros((r >> 16) % 3000)));
            }
        }
        drop(abort_tx);
        let started = Instant::now();
        while tally.done.load(Ordering::SeqCst) < UPLOADS as usize {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "seed {seed}: {} of {UPLOADS} uploads ended",
                tally.done.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        aborter.join().unwrap();
        let violations = tally.violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
        let outcomes = tally.outcomes.lock().unwrap();
        assert_eq!(outcomes.len(), UPLOADS as usize);
        let mut by_code = std::collections::BTreeMap::<String, usize>::new();
        for (n, outcome) in outcomes.iter() {
            let label = match outcome {
                Ok(status) => {
                    assert!(matches!(status, 200 | 413), "seed {seed}: upload {n}: status {status}");
                    format!("status {status}")
                }
                Err((kind, code, message)) => {
                    let documented = matches!(
                        (kind, code),
                        (ErrorKind::Network | ErrorKind::Protocol | ErrorKind::Aborted, 1000)
                            | (ErrorKind::Timeout, 204)
                    );
                    assert!(documented, "seed {seed}: upload {n}: {kind:?} {code} {message}");
                    format!("{code} {kind:?}")
                }
            };
            *by_code.entry(label).or_default() += 1;
        }
        println!("seed {seed}: {by_code:?}");
        let twice: Vec<_> = server
            .whole
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        let extra_copies: u64 = twice.iter().map(|(_, n)| *n as u64 - 1).sum();
        let resent = engine.stats().unwrap().resent;
        let allowed = match twice_allowed {
            Twice::Never => 0,
            Twice::Resends => resent,
            Twice::Retries => u64::MAX,
        };
        assert!(
            extra_copies <= allowed,
            "seed {seed}: {twice_allowed:?}: uploads received whole more than once ({resent} resends): {twice:?}"
        );
        assert!(
            by_code.get("status 200").copied().unwrap_or(0) > UPLOADS as usize / 4,
            "{by_code:?}"
        );
        // Counts return to zero; only idle pooled connections (and their
        // timers) remain.
        let stats = engine.stats().unwrap();
        assert_eq!(
            (
                stats.uploads,
                stats.in_flight,
                stats.queued,
                stats.buffered_response_bytes,
                stats.admitted
            ),
            (0, 0, 0, 0, 0),
            "{stats:?}"
        );
        assert_eq!(stats.connections, stats.idle_connections, "{stats:?}");
        assert_eq!(stats.timers, stats.idle_connections, "{stats:?}");
        engine.shutdown();
        drop(server);
    }
    assert_eq!(open_fds(), fds_before, "seed {seed}: descriptors leaked");
}
