//! A sink that closes the connection after every answer without saying so
//! (no `Connection: close`), as a server whose keep-alive timeout is shorter
//! than a client's reuse does (Python's socketserver, a Node server with a
//! short `keepAliveTimeout`). With `IDLE_MS=N` it instead keeps each
//! connection until it has been idle N ms, and says so in each answer
//! (`Keep-Alive: timeout=S`, rounded up) when `KEEP_ALIVE=1`. For
//! `benches/closing/run.sh`.
//!
//! `closing_sink [PORT]` prints `127.0.0.1:PORT` on its first line, then
//! serves (a thread per connection) until its standard input closes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Reads one request (head, then a Content-Length body); false at EOF,
/// on an error, or after `idle` without a first byte.
fn read_request(stream: &mut TcpStream, idle: Option<Duration>) -> bool {
    let _ = stream.set_read_timeout(idle);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    }
    let length: usize = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).is_ok()
}

fn serve(mut stream: TcpStream, idle: Option<Duration>, answer: &[u8]) {
    while read_request(&mut stream, idle) {
        if stream.write_all(answer).is_err() || idle.is_none() {
            return;
        }
    }
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let idle = std::env::var("IDLE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let keep_alive = match idle {
        Some(idle) if std::env::var("KEEP_ALIVE").is_ok_and(|v| v == "1") => {
            format!("Keep-Alive: timeout={}\r\n", idle.as_millis().div_ceil(1000))
        }
        _ => String::new(),
    };
    let answer: &'static [u8] = format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{keep_alive}\r\nok")
        .leak()
        .as_bytes();
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, idle, answer));
        }
    });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
