//! Heap allocations per small upload on kept-alive connections, counted for
//! the whole process: the engine, the caller building each request, and a
//! receiver written to allocate nothing once its connections are open.
//!
//! The caller shares its URL and names (`Arc<str>`), so what is left per
//! upload is the caller's list of files and callback box, and what the
//! caller receives (the response's headers). The engine's own storage (request head, framing, segments,
//! sources, the form) is recycled from uploads that ended.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};
use uploadtask_http1::request::{RequestHead, Target};
use uploadtask_multipart::{FilePart, Form};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const IN_FLIGHT: usize = 8;
const BODY: usize = 1024;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// Answers each request once its whole body is in: the request's length is
/// known (the engine's head and framing for a 1 KiB part named as below),
/// so the receiver needs no parser and no allocation.
fn serve(mut stream: TcpStream, request_len: usize, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 16 * 1024];
    let mut have = 0;
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        while have >= request_len {
            have -= request_len;
            if stream.write_all(RESPONSE).is_err() {
                return;
            }
        }
    }
}

/// The URL and the part's names, shared by every request.
struct Names {
    url: Arc<str>,
    name: Arc<str>,
    filename: Arc<str>,
}

fn run(engine: &Engine, names: &Names, payload: &bytes::Bytes, count: usize) {
    let (tx, rx) = mpsc::sync_channel::<bool>(IN_FLIGHT);
    let submit = || {
        let tx = tx.clone();
        let file = FileInput::memory(Arc::clone(&names.name), Arc::clone(&names.filename), payload.clone());
        let request = UploadRequest::new(Arc::clone(&names.url)).file(file);
        engine.submit(request, move |event: Event| {
            if let Event::Done(result) = event {
                let _ = tx.send(matches!(result, Ok(ref r) if r.status == 200));
            }
        });
    };
    let mut submitted = 0;
    while submitted < count.min(IN_FLIGHT) {
        submit();
        submitted += 1;
    }
    for _ in 0..count {
        assert!(rx.recv().expect("an outcome"), "an upload failed");
        if submitted < count {
            submit();
            submitted += 1;
        }
    }
}

#[test]
fn a_small_upload_allocates_only_the_callers_list_and_callback_and_the_response() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}/up");
    let payload: bytes::Bytes = vec![b'x'; BODY].into();
    // The request's exact length: the same head and framing with another
    // boundary of the same length (the engine's are 43 bytes).
    let boundary = "x".repeat(43);
    let body = Form::new()
        .file(FilePart::new("file", "s.bin", BODY as u64))
        .boundary(boundary.as_str())
        .build()
        .expect("form");
    let target = Target::parse(&url).expect("url");
    let mut head = Vec::new();
    RequestHead::new(&target, body.content_type(), body.content_length())
        .write(&mut head)
        .expect("head");
    let request_len = head.len() + body.content_length() as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut handlers = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let stop = Arc::clone(&stop);
                handlers.push(std::thread::spawn(move || serve(stream, request_len, stop)));
            }
            handlers
        })
    };
    let engine = Engine::new(EngineConfig {
        max_in_flight: IN_FLIGHT,
        ..EngineConfig::default()
    })
    .expect("engine");
    let names = Names {
        url: url.as_str().into(),
        name: "file".into(),
        filename: "s.bin".into(),
    };
    // Warm up: every connection open and pooled, every buffer grown.
    run(&engine, &names, &payload, 2_000);

    let _profiler = dhat::Profiler::builder().testing().build();
    let count = 5_000;
    let before = dhat::HeapStats::get().total_blocks;
    run(&engine, &names, &payload, count);
    let per_upload = (dhat::HeapStats::get().total_blocks - before) as f64 / count as f64;

    stop.store(true, Ordering::Relaxed);
    drop(engine);
    // Wakes the accepting thread, which then sees `stop`.
    let _ = TcpStream::connect(addr);
    for handler in server.join().expect("server") {
        let _ = handler.join();
    }
    // The caller's 2 (files list, callback box) and the response's
    // headers: 3. Anything the engine allocates per upload shows as 4 or
    // more.
    assert!(per_upload < 3.5, "{per_upload:.2} heap allocations per upload");
}
