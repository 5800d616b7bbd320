//! The engine against a loopback sink, each figure next to a fair twin
//! measured in the same run:
//! - one 256 MiB upload from a file (bytes/s): the engine with `sendfile`
//!   forced on (`Sendfile::Always`; `Auto` turns it off on loopback), the
//!   engine with it off (`Never`, `pread` into the loop's buffer), and a
//!   blocking write loop of the same bytes;
//! - 2,000 uploads of 16 KiB (uploads/s) with 200 at once: the engine on
//!   one thread, and 200 threads each running a blocking client on its own
//!   keep-alive connection (the same concurrency, one thread per
//!   connection).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::mpsc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uploadtask_benches::{BlockingClient, Sink};
use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, Sendfile, UploadRequest};

const IN_FLIGHT: usize = 200;

fn upload_once(engine: &Engine, url: &str, path: &std::path::Path) {
    let (tx, rx) = mpsc::channel();
    engine.submit(
        UploadRequest::new(url).file(FileInput::path("file", path)),
        move |e: Event| {
            if let Event::Done(r) = e {
                let _ = tx.send(r.map(|r| r.status));
            }
        },
    );
    assert_eq!(rx.recv().unwrap().unwrap(), 200);
}

fn large(c: &mut Criterion) {
    let sink = Sink::start(0, 1).unwrap();
    let url = format!("http://{}/large", sink.addr());
    let path = std::env::temp_dir().join(format!("uploadtask-bench-{}.bin", std::process::id()));
    let len = 256u64 << 20;
    std::fs::write(&path, vec![0x5au8; len as usize]).unwrap();
    let mut group = c.benchmark_group("large_upload_256MiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(len));
    for (name, sendfile) in [
        ("engine_sendfile_always", Sendfile::Always),
        ("engine_sendfile_never", Sendfile::Never),
    ] {
        let engine = Engine::new(EngineConfig {
            sendfile,
            ..EngineConfig::default()
        })
        .unwrap();
        group.bench_function(name, |b| b.iter(|| upload_once(&engine, &url, &path)));
    }
    let mut reference = BlockingClient::connect(sink.addr()).unwrap();
    group.bench_function("blocking_write_loop", |b| {
        b.iter(|| reference.upload(&url, &path, None).unwrap())
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

fn small(c: &mut Criterion) {
    const COUNT: u64 = 2000;
    let sink = Sink::start(0, 1).unwrap();
    let url = format!("http://{}/small", sink.addr());
    let payload: bytes::Bytes = vec![0x33u8; 16 * 1024].into();
    let engine = Engine::new(EngineConfig {
        max_in_flight: IN_FLIGHT,
        ..EngineConfig::default()
    })
    .unwrap();
    let mut group = c.benchmark_group("small_uploads_2000x16KiB_200_at_once");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(COUNT));
    group.bench_function("engine_one_thread", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            for _ in 0..COUNT {
                let tx = tx.clone();
                let request =
                    UploadRequest::new(url.as_str()).file(FileInput::memory("file", "s.bin", payload.clone()));
                engine.submit(request, move |e: Event| {
                    if let Event::Done(r) = e {
                        let _ = tx.send(r.is_ok());
                    }
                });
            }
            assert!((0..COUNT).all(|_| rx.recv().unwrap()));
        })
    });
    // The twin: 200 threads, each a blocking client on its own connection,
    // together making the same 2,000 uploads (connections made once).
    let addr = sink.addr();
    let clients: Vec<BlockingClient> = (0..IN_FLIGHT).map(|_| BlockingClient::connect(addr).unwrap()).collect();
    let clients = std::sync::Mutex::new(clients);
    let dummy = std::path::Path::new("/dev/null");
    group.bench_function("thread_per_connection_200", |b| {
        b.iter(|| {
            let mut clients = clients.lock().unwrap();
            std::thread::scope(|scope| {
                for client in clients.iter_mut() {
                    let (url, payload) = (&url, &payload);
                    scope.spawn(move || {
                        for _ in 0..COUNT as usize / IN_FLIGHT {
                            client.upload(url, dummy, Some(payload)).unwrap();
                        }
                    });
                }
            });
        })
    });
    group.finish();
}

criterion_group!(benches, large, small);
criterion_main!(benches);
