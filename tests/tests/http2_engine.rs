//! The engine over HTTP/2 against hyper's HTTP/2 server (the `h2` crate:
//! independent of our codec) with multer checking every byte: over TLS
//! where ALPN picks `h2`, and over plain TCP with prior knowledge (h2c);
//! many uploads at once sharing few connections, small server windows,
//! streams refused above the server's limit and sent again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use uploadtask_cli::serve::{Http2Settings, Receiver, ReceiverConfig, UploadSummary};
use uploadtask_engine::{Engine, EngineConfig, FileInput, HttpVersion, StaticResolver, UploadRequest};
use uploadtask_tests::*;

fn summary(body: &[u8]) -> UploadSummary {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// A receiver speaking HTTP/2 with small windows and a stream limit.
fn receiver(tls: Option<Arc<rustls::ServerConfig>>, max_streams: u32) -> Receiver {
    Receiver::start(ReceiverConfig {
        tls,
        http2: Some(Http2Settings {
            max_concurrent_streams: Some(max_streams),
            stream_window: Some(16 * 1024),
            connection_window: Some(64 * 1024),
        }),
        ..ReceiverConfig::default()
    })
    .unwrap()
}

fn localhost_engine(ca_pem: Option<&[u8]>, http: HttpVersion, max_in_flight: usize) -> Engine {
    let mut config = EngineConfig {
        http,
        max_in_flight,
        resolver: Some(Arc::new(
            StaticResolver::new().insert("localhost", &["127.0.0.1".parse::<IpAddr>().unwrap()]),
        )),
        ..EngineConfig::default()
    };
    if let Some(pem) = ca_pem {
        config.add_root_pem(pem).unwrap();
    }
    Engine::new(config).unwrap()
}

/// Sends `count` uploads of assorted sizes at once to `url`; checks every
/// byte, field and name the server saw, the progress rules and the
/// protocol version of every response.
fn upload_many(engine: &Engine, url: &str, count: usize, version: u8) {
    let dir = temp_dir("h2");
    let sizes = [0usize, 1, 16 * 1024 - 1, 16 * 1024 + 1, 100_000, 300_000];
    let mut waiting = HashMap::new();
    for i in 0..count {
        let len = sizes[i % sizes.len()];
        let (path, digest) = make_file(&dir, &format!("f{i}.bin"), len, i as u64);
        let request = UploadRequest::new(url)
            .field("n", i.to_string())
            .file(FileInput::path("file", &path));
        let (_, rx) = submit_collect(engine, request);
        waiting.insert(i, (rx, len, digest));
    }
    for (i, (rx, len, digest)) in waiting {
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("upload ended");
        let response = outcome.result.unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert_eq!((response.status, response.version), (200, version), "upload {i}");
        let got = summary(&response.body);
        assert_eq!(got.fields.len(), 1);
        assert_eq!(
            (got.fields[0].name.as_str(), got.fields[0].value.clone()),
            ("n", i.to_string())
        );
        assert_eq!(got.files.len(), 1);
        assert_eq!(
            (got.files[0].field.as_str(), got.files[0].filename.clone()),
            ("file", format!("f{i}.bin"))
        );
        assert_eq!(
            (got.files[0].size, got.files[0].sha256.as_str()),
            (len as u64, digest.as_str()),
            "upload {i}"
        );
        let total = outcome
            .progress
            .last()
            .map(|p| p.total_bytes_expected_to_send)
            .unwrap_or(0);
        assert_progress_rules(&outcome.progress, total);
    }
}

#[test]
fn h2c_with_prior_knowledge_many_uploads_share_few_connections() {
    let server = receiver(None, 50);
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 300);
    upload_many(
        &engine,
        &format!("http://localhost:{}/up", server.addr().port()),
        300,
        2,
    );
    let stats = engine.stats().unwrap();
    assert_eq!((stats.uploads, stats.in_flight, stats.queued), (0, 0, 0));
    // 300 uploads in flight, 50 streams a connection: a handful of
    // connections, not 300 (each still open, idle, in the pool).
    assert!(stats.connections <= 12, "{stats:?}");
    assert_eq!(server.uploads(), 300);
    engine.shutdown();
}

#[test]
fn tls_alpn_picks_h2_and_uploads_arrive_byte_exact() {
    let (tls, ca_pem) = tls_material();
    let server = receiver(Some(tls), 100);
    let engine = localhost_engine(Some(&ca_pem), HttpVersion::Auto, 200);
    upload_many(
        &engine,
        &format!("https://localhost:{}/up", server.addr().port()),
        200,
        2,
    );
    let stats = engine.stats().unwrap();
    assert!(stats.connections <= 6, "{stats:?}");
    engine.shutdown();
}

#[test]
fn http1_only_and_servers_without_h2_stay_on_http1() {
    let (tls, ca_pem) = tls_material();
    // The client asks for HTTP/1.1 only: the server's h2 is not used.
    let server = receiver(Some(Arc::clone(&tls)), 100);
    let engine = localhost_engine(Some(&ca_pem), HttpVersion::Http1, 20);
    upload_many(
        &engine,
        &format!("https://localhost:{}/up", server.addr().port()),
        20,
        1,
    );
    engine.shutdown();
    // A server without h2: ALPN falls back to HTTP/1.1.
    let plain_tls = Receiver::start(ReceiverConfig {
        tls: Some(tls),
        ..ReceiverConfig::default()
    })
    .unwrap();
    let engine = localhost_engine(Some(&ca_pem), HttpVersion::Auto, 20);
    upload_many(
        &engine,
        &format!("https://localhost:{}/up", plain_tls.addr().port()),
        20,
        1,
    );
    engine.shutdown();
}

#[test]
fn a_thousand_uploads_at_once_go_on_one_connection() {
    let server = Receiver::start(ReceiverConfig {
        http2: Some(Http2Settings {
            max_concurrent_streams: Some(1000),
            ..Http2Settings::default()
        }),
        ..ReceiverConfig::default()
    })
    .unwrap();
    let engine = localhost_engine(None, HttpVersion::Http2PriorKnowledge, 1000);
    let url = format!("http://localhost:{}/up", server.addr().port());
    let mut waiting = Vec::new();
    for i in 0..1000u32 {
        let bytes: Vec<u8> = (0..16 * 1024u32).map(|b| (b * 7 + i) as u8).collect();
        let digest = sha256_hex(&bytes);
        let request = UploadRequest::new(url.as_str()).file(FileInput::memory("file", format!("{i}.bin"), bytes));
        waiting.push((submit_collect(&engine, request).1, digest));
    }
    for (rx, digest) in waiting {
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("upload ended");
        let response = outcome.result.unwrap();
        assert_eq!(response.version, 2);
        assert_eq!(summary(&response.body).files[0].sha256, digest);
    }
    let stats = engine.stats().unwrap();
    assert_eq!((stats.connections, stats.resent), (1, 0), "{stats:?}");
    engine.shutdown();
}
