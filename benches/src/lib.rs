//! What the benches share: a minimal HTTP sink (hyper, optionally over
//! rustls; drains each body and answers with its length, keep-alive), and a
//! plain blocking client that writes the very same request bytes, as the
//! reference the engine is measured against in the same run.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use uploadtask_http1::request::{RequestHead, Target};
use uploadtask_multipart::{Chunk, FilePart, Form};

/// A sink running on its own runtime thread(s); stops when dropped.
pub struct Sink {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Sink {
    /// Starts a sink on 127.0.0.1 (port 0 picks one) with `workers` threads.
    pub fn start(port: u16, workers: usize) -> io::Result<Sink> {
        Sink::start_with(port, workers, None)
    }

    /// Starts a sink like [`Sink::start`], serving HTTPS with `tls` when
    /// given (rustls, ring: the same TLS stack as the clients measured).
    pub fn start_with(port: u16, workers: usize, tls: Option<Arc<rustls::ServerConfig>>) -> io::Result<Sink> {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?;
        let listener = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
            socket.listen(8192)
        })?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(drain);
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(Sink {
            addr,
            _runtime: runtime,
        })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn drain(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = request.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => received += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(_) => break,
        }
    }
    Ok(Response::new(Full::new(Bytes::from(received.to_string()))))
}

/// The Content-Length of an HTTP head, any case (0 when absent).
pub fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The request head and multipart body for one file part, as the engine
/// frames them.
pub fn frame_request(url: &str, file_len: u64) -> (Vec<u8>, uploadtask_multipart::Body) {
    let target = Target::parse(url).expect("url");
    let body = Form::new()
        .file(FilePart::new("file", "bench.bin", file_len))
        .build()
        .expect("form");
    let mut head = Vec::new();
    RequestHead::new(&target, body.content_type(), body.content_length())
        .write(&mut head)
        .expect("head");
    (head, body)
}

/// The reference client: a blocking loop that writes the same bytes the
/// engine sends (head, framing, file read with `pread` into a 256 KiB
/// buffer), then reads the response. One keep-alive connection.
pub struct BlockingClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl BlockingClient {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(BlockingClient {
            stream,
            buf: vec![0; 256 * 1024],
        })
    }

    /// Uploads `file` (or `memory` when given) and waits for the response.
    pub fn upload(&mut self, url: &str, file: &Path, memory: Option<&[u8]>) -> io::Result<()> {
        let len = match memory {
            Some(m) => m.len() as u64,
            None => std::fs::metadata(file)?.len(),
        };
        let (head, body) = frame_request(url, len);
        self.stream.write_all(&head)?;
        let opened = if memory.is_none() {
            Some(std::fs::File::open(file)?)
        } else {
            None
        };
        let mut cursor = body.cursor();
        while let Some(chunk) = body.chunk(&cursor) {
            let n = match chunk {
                Chunk::Bytes(bytes) => {
                    self.stream.write_all(bytes)?;
                    bytes.len()
                }
                Chunk::File { offset, len, .. } => {
                    let want = (len as usize).min(self.buf.len());
                    let n = match (&opened, memory) {
                        (Some(f), _) => f.read_at(&mut self.buf[..want], offset)?,
                        (None, Some(m)) => {
                            self.buf[..want].copy_from_slice(&m[offset as usize..offset as usize + want]);
                            want
                        }
                        (None, None) => 0,
                    };
                    self.stream.write_all(&self.buf[..n])?;
                    n
                }
            };
            cursor.advance(&body, n as u64);
        }
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<()> {
        let mut got = Vec::new();
        let mut byte = [0u8; 512];
        loop {
            let n = self.stream.read(&mut byte)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&byte[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let length = content_length(&got[..end]);
                while got.len() < end + 4 + length {
                    let n = self.stream.read(&mut byte)?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    got.extend_from_slice(&byte[..n]);
                }
                return Ok(());
            }
        }
    }
}

/// Runs this program again with `flag` as a child (a sink kept out of the
/// measured process), and reads the address it prints on its first line.
/// The child serves until its stdin closes: drop `child.stdin`, then wait.
pub fn sink_child(flag: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg(flag)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sink process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("sink address");
    (child, line.trim().to_string())
}
