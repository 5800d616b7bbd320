//! Proxies end to end on 127.0.0.1, through a small proxy
//! written for the test that forwards absolute-form requests and opens
//! `CONNECT` tunnels, counting what passes: http through the proxy with
//! basic credentials, https through a tunnel (byte-exact, sha256), NO_PROXY
//! going direct, a 407, and connections pooled per (proxy, origin).

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use uploadtask_cli::serve::{Receiver, ReceiverConfig, UploadSummary};
use uploadtask_engine::proxy::{NoProxy, Proxies, ProxyUrl};
use uploadtask_engine::{Engine, EngineConfig, FileInput, StaticResolver, UploadRequest};
use uploadtask_tests::*;

/// The test proxy: what each accepted connection asked first.
struct TestProxy {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

impl TestProxy {
    /// `require`: the `Proxy-Authorization` value it demands, if any.
    fn start(require: Option<&'static str>) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, flag) = (Arc::clone(&asked), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            for client in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut client) = client else { continue };
                let seen = Arc::clone(&seen);
                workers.push(std::thread::spawn(move || {
                    let head = String::from_utf8_lossy(&read_head(&mut client)).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    if let Some(required) = require {
                        if !head.contains(&format!("Proxy-Authorization: {required}\r\n")) {
                            let _ = client
                                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
                            return;
                        }
                    }
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let tunnel = head.starts_with("CONNECT ");
                    let authority = if tunnel {
                        target
                    } else {
                        target
                            .trim_start_matches("http://")
                            .split('/')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    };
                    let Ok(origin) = TcpStream::connect(authority.as_str()) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                        return;
                    };
                    if tunnel {
                        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    } else {
                        let _ = (&origin).write_all(head.as_bytes());
                    }
                    let (c2, o2) = (client.try_clone().unwrap(), origin.try_clone().unwrap());
                    let up = std::thread::spawn(move || pipe(c2, o2));
                    pipe(origin, client);
                    let _ = up.join();
                }));
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        TestProxy {
            port,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, credentials: &str) -> ProxyUrl {
        ProxyUrl::parse(&format!("http://{credentials}127.0.0.1:{}", self.port)).unwrap()
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn engine(proxies: Proxies, configure: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = EngineConfig {
        proxies: Some(proxies),
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        ..EngineConfig::default()
    };
    configure(&mut config);
    Engine::new(config).unwrap()
}

fn summary(body: &[u8]) -> UploadSummary {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn http_through_a_forwarding_proxy_with_credentials_pooled() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let proxy = TestProxy::start(Some("Basic dTpw"));
    let through = proxy.url("u:p@");
    let engine = engine(
        Proxies {
            http: Some(through),
            ..Proxies::default()
        },
        |_| {},
    );
    let dir = temp_dir("proxy-http");
    let (path, digest) = make_file(&dir, "a.bin", 300_000, 1);
    for _ in 0..2 {
        let url = format!("http://127.0.0.1:{}/u", receiver.addr().port());
        let request = UploadRequest::new(url).file(FileInput::path("f", &path));
        let response = run_upload(&engine, request).result.unwrap();
        assert_eq!(summary(&response.body).files[0].sha256, digest);
    }
    let asked = proxy.asked();
    assert_eq!(asked.len(), 1, "both uploads on one pooled connection: {asked:?}");
    let first_line = format!("POST http://127.0.0.1:{}/u HTTP/1.1\r\n", receiver.addr().port());
    assert!(asked[0].starts_with(&first_line), "{}", asked[0]);
    engine.shutdown();
}

#[test]
fn https_through_a_connect_tunnel() {
    let (server_tls, ca_pem) = tls_material();
    let receiver = Receiver::start(ReceiverConfig {
        tls: Some(server_tls),
        ..Default::default()
    })
    .unwrap();
    let proxy = TestProxy::start(None);
    let engine = engine(
        Proxies {
            https: Some(proxy.url("")),
            ..Proxies::default()
        },
        |c| {
            c.add_root_pem(&ca_pem).unwrap();
        },
    );
    let dir = temp_dir("proxy-https");
    let (path, digest) = make_file(&dir, "b.bin", 2_000_000, 2);
    let url = format!("https://localhost:{}/u", receiver.addr().port());
    let outcome = run_upload(&engine, UploadRequest::new(url).file(FileInput::path("f", &path)));
    assert_eq!(summary(&outcome.result.unwrap().body).files[0].sha256, digest);
    let asked = proxy.asked();
    assert!(
        asked[0].starts_with(&format!("CONNECT localhost:{} HTTP/1.1\r\n", receiver.addr().port())),
        "{asked:?}"
    );
    engine.shutdown();
}

#[test]
fn no_proxy_goes_direct_and_407_says_so() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let proxy = TestProxy::start(Some("Basic dTpw"));
    let direct = engine(
        Proxies {
            http: Some(proxy.url("")),
            https: None,
            no_proxy: NoProxy::parse("127.0.0.0/8"),
        },
        |_| {},
    );
    let url = format!("http://127.0.0.1:{}/u", receiver.addr().port());
    let memory = || FileInput::memory("f", "a.txt", b"hi".to_vec());
    assert_eq!(
        run_upload(&direct, UploadRequest::new(url.clone()).file(memory()))
            .result
            .unwrap()
            .status,
        200
    );
    assert!(proxy.asked().is_empty(), "went direct");
    // https through a proxy that wants credentials we do not have: 407.
    let refused = engine(
        Proxies {
            https: Some(proxy.url("")),
            ..Proxies::default()
        },
        |_| {},
    );
    let request = UploadRequest::new(format!("https://localhost:{}/u", receiver.addr().port())).file(memory());
    let error = run_upload(&refused, request).result.unwrap_err();
    assert_eq!(error.code(), 1000);
    assert!(error.message.contains("requires authentication (407)"), "{error}");
}
