//! Resumable uploads end to end: a tus 1.0.0 server and
//! an IETF-draft server (tests/src/resumable_server.rs) killed and started
//! again mid-upload; the upload goes on from the server's offset, sends no
//! byte twice beyond what the protocol makes it, and the stored file is
//! byte-exact. 409, 460 and lost resources are recovered from.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uploadtask_engine::resumable::{Protocol, Resumable, UrlChange};
use uploadtask_engine::retry::RetryPolicy;
use uploadtask_engine::{Engine, EngineConfig, Event, SourceSpec, UploadRequest};
use uploadtask_tests::resumable_server::{wait_killed, Flavor, ResumableServer, ServerState};
use uploadtask_tests::*;

const LEN: usize = 2 * 1024 * 1024 + 12_345;

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).expect("engine")
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 20,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    }
}

fn request(url: String, path: &std::path::Path, resumable: Resumable) -> UploadRequest {
    UploadRequest {
        raw_body: Some(SourceSpec::Path(path.to_path_buf())),
        retry: Some(retry()),
        timeout: Some(Duration::from_secs(60)),
        resumable: Some(resumable),
        ..UploadRequest::new(url)
    }
}

/// Submits and collects the outcome, the progress and the resource changes.
fn run(engine: &Engine, request: UploadRequest) -> (Outcome, Vec<UrlChange>) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&changes);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut progress = Vec::new();
    engine.submit(request, move |event: Event| match event {
        Event::Progress(p) => progress.push(p),
        Event::Resumable(change) => seen.lock().unwrap().push(change),
        Event::Done(result) => {
            let _ = tx.send(Outcome {
                progress: std::mem::take(&mut progress),
                result,
                late_events: 0,
            });
        }
        _ => {}
    });
    let outcome = rx.recv_timeout(Duration::from_secs(120)).expect("done within 120 s");
    let changes = changes.lock().unwrap().clone();
    (outcome, changes)
}

/// Kills the server once `state` fired its `kill_at`, then starts it again
/// on the same port.
fn restart_when_killed(
    flavor: Flavor,
    state: Arc<ServerState>,
    server: ResumableServer,
) -> std::thread::JoinHandle<ResumableServer> {
    std::thread::spawn(move || {
        wait_killed(&state);
        let port = server.port();
        drop(server);
        ResumableServer::start(flavor, state, port)
    })
}

fn assert_monotone(progress: &[uploadtask_engine::Progress], total: u64) {
    assert!(
        progress
            .windows(2)
            .all(|w| w[0].total_bytes_sent < w[1].total_bytes_sent),
        "never back"
    );
    assert!(progress.iter().all(|p| p.total_bytes_expected_to_send == total));
    assert_eq!(progress.last().map(|p| p.total_bytes_sent), Some(total));
}

#[test]
fn tus_survives_a_server_restart_mid_upload() {
    let dir = temp_dir("tus-restart");
    let (path, digest) = make_file(&dir, "big.bin", LEN, 7);
    let state = Arc::new(ServerState::default());
    state.faults.lock().unwrap().kill_at = Some(700 * 1024);
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let url = format!("{}/files/", server.origin());
    let restarted = restart_when_killed(Flavor::Tus, Arc::clone(&state), server);
    let config = Resumable {
        chunk_size: Some(512 * 1024),
        metadata: vec![
            ("filename".into(), "big.bin".into()),
            ("filetype".into(), "application/octet-stream".into()),
        ],
        ..Resumable::new(Protocol::Tus)
    };
    let engine = engine();
    let (outcome, changes) = run(&engine, request(url, &path, config));
    let _server = restarted.join().unwrap();
    let response = outcome.result.expect("uploaded");
    assert_eq!(response.status, 204);
    let stored = state.only_upload();
    assert_eq!(sha256_hex(&stored.data), digest, "byte-exact");
    assert_eq!(stored.metadata.get("filename").map(String::as_str), Some("big.bin"));
    assert_eq!(state.count("POST"), 1, "created once");
    assert!(state.count("HEAD") >= 1, "the offset was asked for after the restart");
    assert_eq!(
        *state.received.lock().unwrap(),
        LEN as u64,
        "no byte the server kept was sent again"
    );
    assert!(
        matches!(&changes[..], [UrlChange::Learned(u), UrlChange::Expires(e)] if u.contains("/files/u1") && e.ends_with("GMT")),
        "{changes:?}"
    );
    assert_monotone(&outcome.progress, LEN as u64);
    assert!(state.killed.load(Ordering::SeqCst));
}

#[test]
fn tus_recovers_from_409_and_460_with_checksums() {
    let dir = temp_dir("tus-faults");
    let (path, digest) = make_file(&dir, "f.bin", 300_000, 3);
    let state = Arc::new(ServerState::default());
    {
        let mut faults = state.faults.lock().unwrap();
        faults.conflict_once = true;
        faults.checksum_mismatch_once = true;
    }
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let config = Resumable {
        chunk_size: Some(100_000),
        checksum: true,
        creation_with_upload: true,
        ..Resumable::new(Protocol::Tus)
    };
    let engine = engine();
    let (outcome, _) = run(&engine, request(format!("{}/files/", server.origin()), &path, config));
    assert_eq!(outcome.result.expect("uploaded").status, 204);
    assert_eq!(sha256_hex(&state.only_upload().data), digest);
    // The creation carried piece 1; the 409 and the 460 each cost one piece.
    assert_eq!(*state.received.lock().unwrap(), 300_000 + 2 * 100_000);
    let log = state.log.lock().unwrap().clone();
    assert_eq!(log[0], "POST /files/ 0 100000");
    assert!(
        log.iter().any(|l| l.starts_with("HEAD")),
        "a 409 asks for the offset: {log:?}"
    );
    assert_monotone(&outcome.progress, 300_000);
}

/// tusd answers 500 when it stops reading a request (a read timeout); the
/// retry policy does not list 500, yet a resumable upload asks the offset
/// and goes on.
#[test]
fn tus_resumes_after_a_500() {
    let dir = temp_dir("tus-500");
    let (path, digest) = make_file(&dir, "f.bin", 200_000, 23);
    let state = Arc::new(ServerState::default());
    state.faults.lock().unwrap().half_then_500_once = true;
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let engine = engine();
    let config = Resumable::new(Protocol::Tus);
    let (outcome, _) = run(&engine, request(format!("{}/files/", server.origin()), &path, config));
    assert_eq!(outcome.result.expect("uploaded").status, 204);
    assert_eq!(sha256_hex(&state.only_upload().data), digest);
    assert_eq!(state.count("HEAD"), 1);
    assert_eq!(state.count("PATCH"), 2);
}

#[test]
fn tus_stored_resource_resumes_and_a_lost_one_starts_over() {
    let dir = temp_dir("tus-stored");
    let (path, digest) = make_file(&dir, "f.bin", 200_000, 5);
    let bytes = std::fs::read(&path).unwrap();
    let state = Arc::new(ServerState::default());
    state.uploads.lock().unwrap().insert(
        "u1".into(),
        uploadtask_tests::resumable_server::Stored {
            data: bytes[..150_000].to_vec(),
            length: Some(200_000),
            ..Default::default()
        },
    );
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let engine = engine();
    let config = Resumable {
        upload_url: Some(format!("{}/files/u1", server.origin())),
        ..Resumable::new(Protocol::Tus)
    };
    let (outcome, _) = run(&engine, request(format!("{}/files/", server.origin()), &path, config));
    assert_eq!(outcome.result.expect("uploaded").status, 204);
    assert_eq!(sha256_hex(&state.only_upload().data), digest);
    assert_eq!((state.count("POST"), state.count("HEAD")), (0, 1));
    assert_eq!(*state.received.lock().unwrap(), 50_000, "only the rest went");
    // Progress after a resume starts at the server's offset.
    assert_eq!(outcome.progress.first().map(|p| p.total_bytes_sent), Some(150_000));

    // A resource the server no longer has: created again, from byte 0.
    let config = Resumable {
        upload_url: Some(format!("{}/files/gone", server.origin())),
        ..Resumable::new(Protocol::Tus)
    };
    let (outcome, changes) = run(&engine, request(format!("{}/files/", server.origin()), &path, config));
    assert_eq!(outcome.result.expect("uploaded").status, 204);
    assert_eq!(changes.first(), Some(&UrlChange::Forgotten));
    assert!(matches!(changes.get(1), Some(UrlChange::Learned(_))));
    assert_eq!(sha256_hex(&state.uploads.lock().unwrap()["u2"].data), digest);
}

#[test]
fn ietf_resumes_from_the_104_location_after_a_restart() {
    let dir = temp_dir("ietf-restart");
    let (path, digest) = make_file(&dir, "doc.pdf", LEN, 11);
    let state = Arc::new(ServerState::default());
    state.faults.lock().unwrap().kill_at = Some(900 * 1024);
    let server = ResumableServer::start(Flavor::Ietf, Arc::clone(&state), 0);
    let url = format!("{}/upload", server.origin());
    let restarted = restart_when_killed(Flavor::Ietf, Arc::clone(&state), server);
    let config = Resumable {
        metadata: vec![
            ("filename".into(), "doc.pdf".into()),
            ("filetype".into(), "application/pdf".into()),
        ],
        ..Resumable::new(Protocol::Ietf)
    };
    let engine = engine();
    let (outcome, changes) = run(&engine, request(url, &path, config));
    let _server = restarted.join().unwrap();
    let response = outcome.result.expect("uploaded");
    assert_eq!(response.status, 200);
    let body = String::from_utf8(response.body).unwrap();
    assert!(body.contains(&digest), "the resource's own answer: {body}");
    let stored = state.only_upload();
    assert!(stored.complete);
    assert_eq!(sha256_hex(&stored.data), digest);
    assert_eq!(stored.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(stored.disposition.as_deref(), Some("inline; filename=\"doc.pdf\""));
    assert_eq!(state.count("POST"), 1);
    assert_eq!(*state.received.lock().unwrap(), LEN as u64);
    // The HEAD's `Upload-Limit: max-age=3600` becomes a date for the store.
    assert!(
        matches!(&changes[..], [UrlChange::Learned(u), UrlChange::Expires(e)] if u.ends_with("/upload/u1") && e.ends_with(" GMT")),
        "{changes:?}"
    );
    assert_monotone(&outcome.progress, LEN as u64);
}

#[test]
fn ietf_pieces_recover_from_409() {
    let dir = temp_dir("ietf-409");
    let (path, digest) = make_file(&dir, "f.bin", 250_000, 13);
    let state = Arc::new(ServerState::default());
    state.faults.lock().unwrap().conflict_once = true;
    let server = ResumableServer::start(Flavor::Ietf, Arc::clone(&state), 0);
    let config = Resumable {
        chunk_size: Some(100_000),
        ..Resumable::new(Protocol::Ietf)
    };
    let engine = engine();
    let (outcome, _) = run(&engine, request(format!("{}/upload", server.origin()), &path, config));
    assert_eq!(outcome.result.expect("uploaded").status, 200);
    assert_eq!(sha256_hex(&state.only_upload().data), digest);
    assert_eq!(
        *state.received.lock().unwrap(),
        250_000 + 100_000,
        "the 409 cost one piece"
    );
    assert_eq!(state.count("HEAD"), 0, "the 409 said the offset");
}

#[test]
fn a_server_that_stays_down_fails_with_the_attempts_made() {
    let dir = temp_dir("tus-down");
    let (path, _) = make_file(&dir, "f.bin", 100_000, 1);
    let state = Arc::new(ServerState::default());
    state.faults.lock().unwrap().kill_at = Some(10_000);
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let url = format!("{}/files/", server.origin());
    let killer = std::thread::spawn(move || {
        wait_killed(&state);
        drop(server);
    });
    let config = Resumable {
        creation_with_upload: true,
        ..Resumable::new(Protocol::Tus)
    };
    let mut request = request(url, &path, config);
    request.retry = Some(RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    });
    let engine = engine();
    let (outcome, changes) = run(&engine, request);
    killer.join().unwrap();
    let error = outcome.result.expect_err("the server is gone");
    assert_eq!(error.kind.code(), 1000);
    assert!(error.message.contains("after 3 attempts"), "{}", error.message);
    assert!(changes.is_empty(), "no resource was ever created: {changes:?}");
    assert_eq!(engine.stats().map(|s| s.uploads), Some(0));
}

/// The facade: options from the documented JSON shape (camelCase), the
/// store written while the upload runs and emptied when it ends, and
/// `terminateOnAbort` deleting the resource on the server.
#[test]
fn facade_options_store_and_termination() {
    use uploadtask::resume::{MemoryStore, ResumeStore};
    use uploadtask::{Client, ClientConfig, Roots, UploadOptions};
    let dir = temp_dir("facade-resumable");
    let (_, digest) = make_file(&dir, "photo.png", 400_000, 17);
    let state = Arc::new(ServerState::default());
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let store = Arc::new(MemoryStore::default());
    let client = Client::new(ClientConfig {
        roots: Roots::new().root("mass", &*dir),
        resume_store: Some(store.clone()),
        ..ClientConfig::default()
    })
    .unwrap();
    let json = format!(
        r#"{{"url": "{}/files/", "filePath": "internal://mass/photo.png", "resumable": "tus",
            "chunkSize": 100000, "checksum": true, "formData": {{"album": "summer"}}}}"#,
        server.origin()
    );
    let options: UploadOptions = serde_json::from_str(&json).unwrap();
    let response = client.upload_file(options).wait().expect("uploaded");
    assert_eq!(response.status_code, 204);
    let stored = state.only_upload();
    assert_eq!(sha256_hex(&stored.data), digest);
    assert_eq!(stored.metadata.get("filename").map(String::as_str), Some("photo.png"));
    assert_eq!(stored.metadata.get("filetype").map(String::as_str), Some("image/png"));
    assert_eq!(stored.metadata.get("album").map(String::as_str), Some("summer"));
    assert!(
        format!("{store:?}").contains("{}"),
        "finished: nothing stored: {store:?}"
    );

    // Aborted with terminateOnAbort: the resource is deleted, nothing stored.
    state.uploads.lock().unwrap().clear();
    state.faults.lock().unwrap().pause_at = Some(200_000);
    make_file(&dir, "slow.bin", 1024 * 1024, 19);
    let json = format!(
        r#"{{"url": "{}/files/", "filePath": "internal://mass/slow.bin", "resumable": "tus",
            "chunkSize": 65536, "terminateOnAbort": true}}"#,
        server.origin()
    );
    let options: UploadOptions = serde_json::from_str(&json).unwrap();
    let task = client.upload_file(options);
    // Abort while the server holds a piece (the resource exists by then).
    for _ in 0..2000 {
        if state.paused.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    task.abort();
    let error = task.wait().expect_err("aborted");
    state.release.store(true, Ordering::SeqCst);
    assert_eq!(error.code(), 1000);
    for _ in 0..1000 {
        if state.count("DELETE") == 1 && state.uploads.lock().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(state.count("DELETE"), 1, "terminated: {:?}", state.log.lock().unwrap());
    assert!(state.uploads.lock().unwrap().is_empty());
    assert!(store.get("anything").is_none());
    assert!(
        format!("{store:?}").contains("{}"),
        "aborted with termination: nothing stored"
    );
}

/// A stored resource past its `Upload-Expires` is not offered: the upload
/// creates a new one instead of asking the old one's offset.
#[test]
fn an_expired_stored_resource_is_not_used() {
    use uploadtask::resume::{fingerprint, MemoryStore, ResumeStore, StoredUpload};
    use uploadtask::{Client, ClientConfig, ResumableProtocol, Roots, UploadOptions};
    let dir = temp_dir("tus-expired");
    let (path, digest) = make_file(&dir, "e.bin", 50_000, 29);
    let state = Arc::new(ServerState::default());
    let server = ResumableServer::start(Flavor::Tus, Arc::clone(&state), 0);
    let endpoint = format!("{}/files/", server.origin());
    let store = Arc::new(MemoryStore::default());
    let source = uploadtask_engine::source::FileSource::open(&path).unwrap();
    let file_path = path.to_string_lossy().into_owned();
    let key = fingerprint("tus", &endpoint, &file_path, &source).unwrap();
    store.put(
        &key,
        &StoredUpload {
            url: format!("{}/files/old", server.origin()),
            expires: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()),
        },
    );
    let client = Client::new(ClientConfig {
        roots: Roots::new().allow_plain_paths(),
        resume_store: Some(store.clone()),
        ..ClientConfig::default()
    })
    .unwrap();
    let options = UploadOptions::new(&endpoint, &file_path, "file").resumable(ResumableProtocol::Tus);
    assert_eq!(client.upload_file(options).wait().expect("uploaded").status_code, 204);
    assert_eq!(
        (state.count("HEAD"), state.count("POST")),
        (0, 1),
        "{:?}",
        state.log.lock().unwrap()
    );
    assert_eq!(sha256_hex(&state.only_upload().data), digest);
    assert!(store.get(&key).is_none(), "finished: the entry is gone");
}
