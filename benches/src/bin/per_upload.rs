//! What one small upload costs on a kept-alive connection: CPU time of the
//! engine thread (from `/proc/self/task/*/stat`) and heap allocations of
//! this process (dhat): the engine and the caller's `UploadRequest`; the
//! sink runs in a child process, so none of its work is counted.
//!
//! `cargo build --release -p uploadtask-benches && target/release/per_upload [N] [SIZE]`

use std::sync::{mpsc, Arc};
use std::time::Instant;

use uploadtask_benches::Sink;
use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const IN_FLIGHT: usize = 100;

/// Runs `count` uploads, `IN_FLIGHT` at a time (closed loop), all to `url`
/// with one part named `file` (the strings shared, as `load` does).
fn run(engine: &Engine, url: &Arc<str>, payload: &bytes::Bytes, count: usize) {
    let (tx, rx) = mpsc::channel::<bool>();
    let (name, filename): (Arc<str>, Arc<str>) = ("file".into(), "s.bin".into());
    let submit = |tx: mpsc::Sender<bool>| {
        let file = FileInput::memory(Arc::clone(&name), Arc::clone(&filename), payload.clone());
        let request = UploadRequest::new(Arc::clone(url)).file(file);
        engine.submit(request, move |e: Event| {
            if let Event::Done(r) = e {
                let _ = tx.send(matches!(r, Ok(ref r) if r.status == 200));
            }
        });
    };
    let mut submitted = 0;
    while submitted < count.min(IN_FLIGHT) {
        submit(tx.clone());
        submitted += 1;
    }
    for _ in 0..count {
        assert!(rx.recv().expect("an outcome"), "an upload failed");
        if submitted < count {
            submit(tx.clone());
            submitted += 1;
        }
    }
}

/// The engine thread's CPU time (user + system) in clock ticks.
fn engine_ticks() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "uploadtask-engi" {
            continue; // comm is cut at 15 bytes
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        // After the name: state is field 3; utime 14 and stime 15 (1-based).
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        total += field(14) + field(15);
    }
    total
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--sink") {
        let sink = Sink::start(0, 1).expect("sink");
        println!("{}", sink.addr());
        let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
        return;
    }
    let count: usize = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let size: usize = std::env::args().nth(2).and_then(|v| v.parse().ok()).unwrap_or(1024);
    let (mut sink, addr) = uploadtask_benches::sink_child("--sink");
    let url: Arc<str> = format!("http://{addr}/probe").into();
    let payload: bytes::Bytes = vec![0x42u8; size].into();
    let engine = Engine::new(EngineConfig {
        max_in_flight: IN_FLIGHT,
        ..EngineConfig::default()
    })
    .expect("engine");
    // Warm up: connections open and pooled, buffers grown.
    run(&engine, &url, &payload, 5_000);

    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let (before, started) = (engine_ticks(), Instant::now());
    run(&engine, &url, &payload, count);
    let (ticks, wall) = (engine_ticks() - before, started.elapsed());
    let cpu_us = ticks as f64 / ticks_per_sec * 1e6 / count as f64;
    println!(
        "{count} uploads of {size} B, {IN_FLIGHT} in flight on kept-alive connections: {:.0}/s, engine thread CPU {cpu_us:.2} µs per upload",
        count as f64 / wall.as_secs_f64()
    );

    // Allocations of this process: the engine, and the caller building
    // each `UploadRequest`.
    let profiler = dhat::Profiler::builder().testing().build();
    let allocs = count.min(10_000);
    let start = dhat::HeapStats::get();
    run(&engine, &url, &payload, allocs);
    let end = dhat::HeapStats::get();
    println!(
        "heap allocations per upload: {:.1} ({:.0} B), the caller's request and the engine's together",
        (end.total_blocks - start.total_blocks) as f64 / allocs as f64,
        (end.total_bytes - start.total_bytes) as f64 / allocs as f64
    );
    // No profile file: the counts above are the output.
    std::mem::forget(profiler);
    drop(sink.stdin.take());
    let _ = sink.wait();
}
