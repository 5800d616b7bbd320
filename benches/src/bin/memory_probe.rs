//! Memory per in-flight upload: N uploads of 16 KiB all in flight at once
//! (the sink holds every response until told), RSS growth divided by N.
//!
//! `memory_probe [N]` — starts its own holding sink as a child process
//! (`memory_probe --hold-sink`), so only the client's memory is measured.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A sink that reads each request whole, then holds the answer until a
/// line arrives on stdin.
fn hold_sink() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let listener = socket.listen(16384).expect("listen");
        println!("{}", listener.local_addr().expect("addr"));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let _ = release_tx.send(true);
        });
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let mut release = release_rx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                let (head_end, length) = loop {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (end + 4, uploadtask_benches::content_length(&got[..end]));
                    }
                };
                let mut have = got.len() - head_end;
                while have < length {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    have += n;
                }
                let _ = release.wait_for(|r| *r).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--hold-sink") {
        return hold_sink();
    }
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let (mut sink, addr) = uploadtask_benches::sink_child("--hold-sink");
    let url = format!("http://{addr}/hold");

    let engine = Engine::new(EngineConfig {
        max_in_flight: count,
        ..EngineConfig::default()
    })
    .expect("engine");
    let payload: bytes::Bytes = vec![0x42u8; 16 * 1024].into();
    // Requests built before the baseline, so only in-flight state is counted.
    let requests: Vec<UploadRequest> = (0..count)
        .map(|_| UploadRequest::new(url.as_str()).file(FileInput::memory("file", "m.bin", payload.clone())))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_kib();
    let sent = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for request in requests {
        let sent = Arc::clone(&sent);
        let done_tx = done_tx.clone();
        engine.submit(request, move |event: Event| match event {
            Event::Progress(p) if p.progress == 100 => {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Event::Done(result) => {
                let _ = done_tx.send(result.is_ok());
            }
            _ => {}
        });
    }
    let started = Instant::now();
    while sent.load(Ordering::Relaxed) < count && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let in_flight = sent.load(Ordering::Relaxed);
    let peak = rss_kib();
    if let Some(stdin) = sink.stdin.as_mut() {
        let _ = writeln!(stdin, "release");
    }
    let ok = (0..count)
        .filter(|_| done_rx.recv_timeout(Duration::from_secs(120)).unwrap_or(false))
        .count();
    println!(
        "{in_flight} uploads in flight: RSS {base} KiB -> {peak} KiB, {:.0} bytes per in-flight upload; {ok}/{count} succeeded",
        (peak.saturating_sub(base) * 1024) as f64 / in_flight.max(1) as f64
    );
    let _ = sink.kill();
    let _ = sink.wait();
}
