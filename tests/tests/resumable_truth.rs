//! IETF resumable uploads against servers that answer as real ones do
//! (tests/src/resumable_server.rs): an application that fails after the
//! whole upload, a server that ignores the protocol, answers lost after
//! completion, tusd's and NIOResumableUpload's refusals of interop version
//! 8, and limits in `104`s and 413s. A server's error is never reported as
//! success, no piece is stored as the whole upload, nothing is sent twice
//! after a lost answer.

use std::sync::Arc;
use std::time::Duration;

use uploadtask_engine::resumable::{Protocol, Resumable};
use uploadtask_engine::retry::RetryPolicy;
use uploadtask_engine::{Engine, EngineConfig, SourceSpec, UploadRequest};
use uploadtask_tests::resumable_server::{Flavor, IetfPeer, ResumableServer, ServerState};
use uploadtask_tests::*;

const LEN: usize = 300_000;

/// A file of `LEN` bytes, a server in `peer` mode with `faults` set, and
/// the outcome of an IETF upload of the file in pieces of `chunk`.
fn upload(
    peer: IetfPeer,
    chunk: Option<u64>,
    faults: impl FnOnce(&ServerState),
) -> (Outcome, Arc<ServerState>, String) {
    upload_of(LEN, peer, chunk, faults)
}

fn upload_of(
    len: usize,
    peer: IetfPeer,
    chunk: Option<u64>,
    faults: impl FnOnce(&ServerState),
) -> (Outcome, Arc<ServerState>, String) {
    let dir = temp_dir("resumable-truth");
    let (path, digest) = make_file(&dir, "f.bin", len, 21);
    let state = Arc::new(ServerState::default());
    *state.peer.lock().unwrap() = peer;
    faults(&state);
    let server = ResumableServer::start(Flavor::Ietf, Arc::clone(&state), 0);
    let request = UploadRequest {
        raw_body: Some(SourceSpec::Path(path)),
        retry: Some(RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        }),
        timeout: Some(Duration::from_secs(60)),
        resumable: Some(Resumable {
            chunk_size: chunk,
            ..Resumable::new(Protocol::Ietf)
        }),
        ..UploadRequest::new(format!("{}/upload", server.origin()))
    };
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let outcome = run_upload(&engine, request);
    engine.shutdown();
    drop(server);
    (outcome, state, digest)
}

#[test]
fn an_application_error_after_the_whole_upload_is_the_outcome() {
    for chunk in [None, Some(100_000)] {
        let (outcome, state, _) = upload(IetfPeer::Draft, chunk, |s| {
            s.faults.lock().unwrap().app_error_on_complete = true;
        });
        let response = outcome.result.expect("the server's answer");
        assert_eq!(response.status, 500, "chunk {chunk:?}");
        assert_eq!(response.body, b"the application failed");
        assert_eq!(state.count("HEAD"), 0, "not resumed: resuming would not resolve it");
    }
}

#[test]
fn a_server_that_ignores_the_protocol_never_stores_a_piece_as_the_upload() {
    let (outcome, state, digest) = upload(IetfPeer::Ignores, Some(100_000), |_| {});
    let response = outcome.result.expect("uploaded plainly");
    assert_eq!(response.status, 200);
    assert!(String::from_utf8_lossy(&response.body).contains(&digest));
    let uploads = state.uploads.lock().unwrap();
    for stored in uploads.values() {
        // The careful creation is empty; the fallback is the whole file.
        let len = stored.data.len();
        assert!(len == 0 || len == LEN, "a stored piece of {len} bytes");
    }
    assert!(uploads.values().any(|s| sha256_hex(&s.data) == digest));
}

#[test]
fn a_lost_answer_after_completion_is_never_sent_again() {
    // 404: fails, saying why; 410 (a completed upload): the server's answer.
    for gone in [false, true] {
        let (outcome, state, digest) = upload(IetfPeer::Draft, Some(100_000), |s| {
            let mut faults = s.faults.lock().unwrap();
            faults.lose_final_answer_once = true;
            faults.gone_as_completed = gone;
        });
        match outcome.result {
            Ok(response) => {
                assert!(gone);
                assert_eq!(response.status, 410);
            }
            Err(error) => {
                assert!(!gone);
                assert_eq!(error.code(), 1000);
                assert!(error.message.contains("not sent again"), "{error}");
            }
        }
        assert_eq!(state.count("POST"), 1, "never created again");
        assert_eq!(*state.received.lock().unwrap(), LEN as u64, "no byte sent twice");
        assert_eq!(sha256_hex(&state.only_upload().data), digest);
    }
}

#[test]
fn interop_refusals_fall_back_or_say_so() {
    // NIOResumableUpload (versions 3, 5, 6) refuses 8 with 400 and no 104:
    // a plain upload, careful or optimistic.
    for (len, chunk) in [(LEN, Some(100_000)), (LEN, None)] {
        let (outcome, state, digest) = upload_of(len, IetfPeer::Nio, chunk, |_| {});
        let response = outcome.result.expect("uploaded plainly");
        assert_eq!(response.status, 200, "chunk {chunk:?}");
        assert!(String::from_utf8_lossy(&response.body).contains(&digest));
        let uploads = state.uploads.lock().unwrap();
        assert_eq!(uploads.len(), 1, "only the plain upload is stored");
    }
    // An interop-9 server sends no 104 to a client that says 8; the
    // creation's own answer names the resource, in pieces or whole.
    for chunk in [None, Some(100_000)] {
        let (outcome, state, digest) = upload(IetfPeer::Interop9, chunk, |_| {});
        assert_eq!(outcome.result.expect("uploaded").status, 200, "chunk {chunk:?}");
        assert_eq!(sha256_hex(&state.only_upload().data), digest);
    }
    // tusd (3 to 6) answers as plain tus: said clearly.
    let (outcome, _, _) = upload(IetfPeer::Tusd, Some(100_000), |_| {});
    let error = outcome.result.unwrap_err();
    assert!(error.message.contains("speaks tus 1.0.0"), "{error}");
}

#[test]
fn limits_act_at_once() {
    // A 104 whose max-size is below the length: the request stops and the
    // resource is deleted.
    let big = 16 << 20;
    let (outcome, state, _) = upload_of(big, IetfPeer::Draft, None, |s| {
        s.faults.lock().unwrap().limit_104 = Some("max-size=1000".into());
    });
    let error = outcome.result.unwrap_err();
    assert!(error.message.contains("at most 1000 bytes"), "{error}");
    assert_eq!(state.count("DELETE"), 1);
    assert!(*state.received.lock().unwrap() < big as u64, "stopped early");
    // 413 with max-append-size: smaller pieces, byte-exact.
    let (outcome, state, digest) = upload(IetfPeer::Draft, Some(150_000), |s| {
        s.faults.lock().unwrap().max_append = Some(60_000);
    });
    assert_eq!(outcome.result.expect("uploaded").status, 200);
    assert_eq!(sha256_hex(&state.only_upload().data), digest);
}
