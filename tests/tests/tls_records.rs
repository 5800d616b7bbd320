//! How many TLS records an upload's request takes: the head, the multipart
//! framing and the body go into full records together (16 KiB of plaintext
//! each), not one record per piece. Every record costs the server a
//! decryption and a read call; a small upload sent as head, framing, body
//! and closing line in four records costs it twice what two would.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::Arc;

use uploadtask_engine::{Engine, EngineConfig, FileInput, StaticResolver, UploadRequest};
use uploadtask_tests::*;

const RECORD_PLAINTEXT: usize = 16 * 1024;
const APPLICATION_DATA: u8 = 23;

fn server_config() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (Arc::new(config), cert.der().to_vec())
}

/// Counts the application-data records in the raw bytes it is given,
/// across reads (a record header may be split between two).
#[derive(Default)]
struct RecordCounter {
    header: Vec<u8>,
    skip: usize,
    application_data: usize,
}

impl RecordCounter {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 5 {
                if self.header[0] == APPLICATION_DATA {
                    self.application_data += 1;
                }
                self.skip = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
            }
        }
    }
}

/// The request's length on the wire: head and form for one part of `len`
/// bytes named as below, with the engine's 43-byte boundary.
fn request_len(url: &str, len: usize) -> usize {
    let body = uploadtask_multipart::Form::new()
        .file(uploadtask_multipart::FilePart::new("file", "r.bin", len as u64))
        .boundary("x".repeat(43).as_str())
        .build()
        .unwrap();
    let target = uploadtask_http1::request::Target::parse(url).unwrap();
    let mut head = Vec::new();
    uploadtask_http1::request::RequestHead::new(&target, body.content_type(), body.content_length())
        .write(&mut head)
        .unwrap();
    head.len() + body.content_length() as usize
}

#[test]
fn head_framing_and_body_share_full_records() {
    let (config, cert) = server_config();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://localhost:{}/records", listener.local_addr().unwrap().port());
    // Sizes: a part smaller than a record, one whose request just passes a
    // record, and one spanning several, from memory and then from a file
    // (read into the loop's buffer).
    let sizes = [
        1_000,
        RECORD_PLAINTEXT,
        5 * RECORD_PLAINTEXT + 123,
        5 * RECORD_PLAINTEXT + 123,
    ];
    let dir = temp_dir("tls-records");
    let (path, _) = make_file(&dir.path(), "r.bin", sizes[3], 7);
    let lens: Vec<usize> = sizes.iter().map(|&size| request_len(&url, size)).collect();
    let server = {
        let lens = lens.clone();
        std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
            serve(&mut tcp, config, &lens)
        })
    };
    let engine = Engine::new(EngineConfig {
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        extra_roots: vec![cert.into()],
        ..EngineConfig::default()
    })
    .unwrap();
    for (i, size) in sizes.into_iter().enumerate() {
        let part = match i {
            3 => FileInput::path("file", &path),
            _ => FileInput::memory("file", "r.bin", vec![7u8; size]),
        };
        let request = UploadRequest::new(url.as_str()).file(part);
        assert_eq!(run_upload(&engine, request).result.unwrap().status, 200);
    }
    let records = server.join().unwrap();
    let fewest: Vec<usize> = lens.iter().map(|len| len.div_ceil(RECORD_PLAINTEXT)).collect();
    assert_eq!(records, fewest, "records per request (request lengths {lens:?})");
}

/// Serves one kept-alive connection carrying one request of each length in
/// turn, answering each with an empty 200; returns the application-data
/// records each request took.
fn serve(tcp: &mut TcpStream, config: Arc<rustls::ServerConfig>, lens: &[usize]) -> Vec<usize> {
    let mut tls = rustls::ServerConnection::new(config).unwrap();
    let mut counter = RecordCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    let mut counts = Vec::new();
    // Records counted before the current request (after the handshake's
    // `Finished`, which TLS 1.3 sends as application data too).
    let mut before = 1;
    for &len in lens {
        while have < len {
            let n = tcp.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed early: {have} of {len} bytes");
            counter.feed(&buf[..n]);
            // rustls takes at most a few records per call.
            let mut raw = buf[..n].to_vec();
            let mut plain = vec![0u8; 64 * 1024];
            while !raw.is_empty() {
                let taken = tls.read_tls(&mut raw.as_slice()).unwrap();
                raw.drain(..taken);
                tls.process_new_packets().unwrap();
                loop {
                    match tls.reader().read(&mut plain) {
                        Ok(0) => break,
                        Ok(n) => have += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            while tls.wants_write() {
                tls.write_tls(tcp).unwrap();
            }
        }
        assert_eq!(have, len, "one request at a time");
        have = 0;
        counts.push(counter.application_data - before);
        before = counter.application_data;
        tls.writer()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        while tls.wants_write() {
            tls.write_tls(tcp).unwrap();
        }
    }
    counts
}
