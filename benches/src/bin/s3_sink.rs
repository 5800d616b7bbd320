//! A shaped sink speaking enough S3 for a multipart upload: each
//! connection's bytes are read at `RATE` bytes/s (default 20 MB/s), as a
//! long path or a per-connection shaper would allow, so the speed-up of
//! parts in flight at once is measured, not assumed. It answers
//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload (saying how
//! many bytes the upload's parts held), AbortMultipartUpload, ListParts
//! (empty), PutObject and CreateBucket. For `benches/s3/run.sh`.
//!
//! `s3_sink [PORT]` prints `127.0.0.1:PORT` on its first line, then serves
//! (a thread per connection) until its standard input closes; each
//! completion is logged on standard error as `complete ID BYTES`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes received per upload id.
type Uploads = Arc<Mutex<HashMap<String, u64>>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Reads `len` body bytes (or a chunked body) at `rate` bytes/s.
fn read_body(reader: &mut BufReader<TcpStream>, len: Option<u64>, rate: f64) -> std::io::Result<u64> {
    let started = Instant::now();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let pace = |n: usize, total: &mut u64| {
        *total += n as u64;
        let due = Duration::from_secs_f64(*total as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    };
    match len {
        Some(left) => read_exact_paced(reader, left, &mut buf, &mut |n| pace(n, &mut total))?,
        None => loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            read_exact_paced(reader, size, &mut buf, &mut |n| pace(n, &mut total))?;
            line.clear();
            reader.read_line(&mut line)?;
        },
    }
    Ok(total)
}

/// Reads `left` bytes through `buf`, telling `pace` each read's size.
fn read_exact_paced(
    reader: &mut BufReader<TcpStream>,
    mut left: u64,
    buf: &mut [u8],
    pace: &mut dyn FnMut(usize),
) -> std::io::Result<()> {
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as u64;
        pace(n);
    }
    Ok(())
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

fn serve(stream: TcpStream, rate: f64, uploads: &Uploads) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let mut words = request_line.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if headers
            .get("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let chunked = headers
            .get("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        let len = if chunked {
            None
        } else {
            Some(headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0))
        };
        let received = read_body(&mut reader, len, rate)?;
        let upload_id = query_value(query, "uploadId").map(str::to_string);
        let (status, etag, body) = match (method, upload_id) {
            ("POST", None) if query_value(query, "uploads").is_some() => {
                let id = format!("u{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
                uploads.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), 0);
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>{path}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>"
                );
                ("200 OK", None, body)
            }
            ("PUT", Some(id)) => {
                let part = query_value(query, "partNumber").unwrap_or("0").to_string();
                if let Some(total) = uploads.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                    *total += received;
                }
                ("200 OK", Some(format!("\"{id}-{part}\"")), String::new())
            }
            ("POST", Some(id)) => {
                let total = uploads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
                    .unwrap_or(0);
                eprintln!("complete {id} {total}");
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>{path}</Key><ETag>\"{id}\"</ETag></CompleteMultipartUploadResult>"
                );
                ("200 OK", None, body)
            }
            ("DELETE", Some(id)) => {
                uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                ("204 No Content", None, String::new())
            }
            ("GET", Some(id)) => (
                "200 OK",
                None,
                format!("<ListPartsResult><UploadId>{id}</UploadId><IsTruncated>false</IsTruncated></ListPartsResult>"),
            ),
            _ => {
                if method == "PUT" && received > 0 {
                    eprintln!("put {path} {received}");
                }
                ("200 OK", Some("\"whole\"".to_string()), String::new())
            }
        };
        let etag = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
        let head = format!(
            "HTTP/1.1 {status}\r\n{etag}Content-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(body.as_bytes())?;
    }
}

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let rate: f64 = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20_000_000.0);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!("{}", listener.local_addr().expect("address"));
    let uploads: Uploads = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let uploads = Arc::clone(&uploads);
            std::thread::spawn(move || {
                let _ = serve(stream, rate, &uploads);
            });
        }
    });
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
