//! Acknowledged progress against a receiver that reads
//! slowly (about 1 MiB/s) with a small receive buffer (`SO_RCVBUF` 32 KiB
//! on its listening socket, so the kernel's window stays small): the bytes
//! reported stay within 128 KiB + one progress interval of what the
//! receiver has read, plain and over TLS. The default (kernel-accepted)
//! mode is measured too and its lead printed: it runs ahead by what the
//! client's send buffer holds.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uploadtask_engine::resolver::StaticResolver;
use uploadtask_engine::{Engine, EngineConfig, Event, SourceSpec, UploadRequest};
use uploadtask_tests::*;

const LEN: usize = 1536 * 1024;
const PIECE: usize = 16 * 1024;
/// Read pace: one piece per this (about 1 MiB/s).
const PACE: Duration = Duration::from_millis(15);
/// What may sit between the receiver's reads and the acknowledged count:
/// its kernel buffer (and TLS records in flight), bounded by the issue at
/// 128 KiB, plus what one progress interval (100 ms) at the pace moves.
const BOUND: u64 = 128 * 1024 + 110 * 1024;

fn slow_listener() -> TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(8).unwrap();
    socket.into()
}

/// Serves one upload, reading the body slowly; `read` counts body bytes
/// read so far. Returns the body's sha256.
fn serve_slowly<S: Read + Write>(stream: &mut S, read: &AtomicU64) -> String {
    let head = read_head(stream);
    let len = content_length(&head);
    let mut body = Vec::with_capacity(len);
    let mut buf = vec![0u8; PIECE];
    while body.len() < len {
        let want = PIECE.min(len - body.len());
        let n = stream.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "the client went away");
        body.extend_from_slice(&buf[..n]);
        read.store(body.len() as u64, Ordering::SeqCst);
        std::thread::sleep(PACE);
    }
    let digest = sha256_hex(&body);
    let reply = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{digest}",
        digest.len()
    );
    stream.write_all(reply.as_bytes()).unwrap();
    stream.flush().unwrap();
    digest
}

/// Uploads `LEN` bytes; returns the largest lead of a reported count over
/// the receiver's reads, and whether the last report was the whole body.
fn run(tls: bool, acked: bool) -> (u64, bool) {
    let listener = slow_listener();
    let port = listener.local_addr().unwrap().port();
    let read = Arc::new(AtomicU64::new(0));
    let (server_tls, ca_pem) = tls_material();
    let counter = Arc::clone(&read);
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        if tls {
            let connection = rustls::ServerConnection::new(server_tls).unwrap();
            let mut stream = rustls::StreamOwned::new(connection, stream);
            serve_slowly(&mut stream, &counter)
        } else {
            let mut stream = stream;
            serve_slowly(&mut stream, &counter)
        }
    });
    let mut config = EngineConfig::default();
    config.add_root_pem(&ca_pem).unwrap();
    config.resolver = Some(Arc::new(
        StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
    ));
    let engine = Engine::new(config).unwrap();
    let body: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let digest = sha256_hex(&body);
    let scheme = if tls { "https" } else { "http" };
    let request = UploadRequest {
        raw_body: Some(SourceSpec::Memory(body.into())),
        progress_acked: acked,
        ..UploadRequest::new(format!("{scheme}://localhost:{port}/"))
    };
    let lead = Arc::new(Mutex::new((0u64, 0u64, 0usize)));
    let seen = Arc::clone(&lead);
    let (tx, rx) = std::sync::mpsc::channel();
    engine.submit(request, move |event: Event| match event {
        Event::Progress(p) => {
            let had = read.load(Ordering::SeqCst);
            let mut lead = seen.lock().unwrap();
            lead.0 = lead.0.max(p.total_bytes_sent.saturating_sub(had));
            lead.1 = p.total_bytes_sent;
            lead.2 += 1;
        }
        Event::Done(result) => {
            let _ = tx.send(result);
        }
        _ => {}
    });
    let response = rx.recv_timeout(Duration::from_secs(60)).unwrap().expect("uploaded");
    assert_eq!(String::from_utf8(response.body).unwrap(), digest);
    assert_eq!(server.join().unwrap(), digest);
    let (lead, last, events) = *lead.lock().unwrap();
    eprintln!("tls={tls} acked={acked}: {events} progress events");
    if acked {
        assert!(
            events >= 10,
            "progress came along the way, not only at the end: {events}"
        );
    }
    (lead, last == LEN as u64)
}

#[test]
fn acknowledged_progress_stays_with_what_the_receiver_has() {
    for tls in [false, true] {
        let (lead, whole) = run(tls, true);
        eprintln!("acked mode, tls={tls}: at most {lead} bytes ahead of the receiver's reads");
        assert!(lead <= BOUND, "tls={tls}: {lead} bytes ahead of the receiver");
        assert!(whole, "100% comes once the whole body was acknowledged");
    }
}

#[test]
fn default_progress_runs_ahead_by_the_send_buffer() {
    let (lead, whole) = run(false, false);
    eprintln!("default mode: at most {lead} bytes ahead of the receiver's reads");
    assert!(whole);
}
