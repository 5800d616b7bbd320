//! The engine against a loopback sink, with the blocking write loop of the
//! same bytes measured in the same run as the reference:
//! - one 256 MiB upload from a file (bytes/s);
//! - 2,000 uploads of 16 KiB (uploads/s), the engine with 200 in flight,
//!   the reference one after another on one keep-alive connection.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::mpsc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use uploadtask_benches::{BlockingClient, Sink};
use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};

fn large(c: &mut Criterion) {
    let sink = Sink::start(0, 1).unwrap();
    let url = format!("http://{}/large", sink.addr());
    let path = std::env::temp_dir().join(format!("uploadtask-bench-{}.bin", std::process::id()));
    let len = 256u64 << 20;
    std::fs::write(&path, vec![0x5au8; len as usize]).unwrap();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let mut group = c.benchmark_group("large_upload_256MiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(len));
    group.bench_function("engine_sendfile", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            engine.submit(
                UploadRequest::new(&url).file(FileInput::path("file", &path)),
                move |e: Event| {
                    if let Event::Done(r) = e {
                        let _ = tx.send(r.map(|r| r.status));
                    }
                },
            );
            assert_eq!(rx.recv().unwrap().unwrap(), 200);
        })
    });
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
        max_in_flight: 200,
        ..EngineConfig::default()
    })
    .unwrap();
    let mut group = c.benchmark_group("small_uploads_2000x16KiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(COUNT));
    group.bench_function("engine_200_in_flight", |b| {
        b.iter(|| {
            let (tx, rx) = mpsc::channel();
            for _ in 0..COUNT {
                let tx = tx.clone();
                let request = UploadRequest::new(&url).file(FileInput::memory("file", "s.bin", payload.clone()));
                engine.submit(request, move |e: Event| {
                    if let Event::Done(r) = e {
                        let _ = tx.send(r.is_ok());
                    }
                });
            }
            assert!((0..COUNT).all(|_| rx.recv().unwrap()));
        })
    });
    let mut reference = BlockingClient::connect(sink.addr()).unwrap();
    let dummy = std::path::Path::new("/dev/null");
    group.bench_function("blocking_write_loop_sequential", |b| {
        b.iter(|| {
            for _ in 0..COUNT {
                reference.upload(&url, dummy, Some(&payload)).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, large, small);
criterion_main!(benches);
