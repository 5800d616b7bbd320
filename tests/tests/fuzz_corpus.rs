//! Replays the checked-in seed corpus of every fuzz target on stable, with
//! the very functions the fuzz targets call.

#[allow(dead_code, missing_docs)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_logic;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn response_head_corpus() {
    replay("response_head", fuzz_logic::response_head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", fuzz_logic::chunked);
}

#[test]
fn request_multipart_corpus() {
    replay("request_multipart", fuzz_logic::request_multipart);
}

#[test]
fn exchange_corpus() {
    replay("exchange", fuzz_logic::exchange);
}

#[test]
fn multipart_roundtrip_corpus() {
    replay("multipart_roundtrip", fuzz_logic::multipart_roundtrip);
}

#[test]
fn internal_paths_corpus() {
    replay("internal_paths", fuzz_logic::internal_paths);
    fuzz_logic::remove_fixture();
}

#[test]
fn resumable_corpus() {
    replay("resumable", fuzz_logic::resumable);
}

#[test]
fn s3_session_corpus() {
    replay("s3_session", fuzz_logic::s3_session);
}

#[test]
fn h2_frames_corpus() {
    replay("h2_frames", fuzz_logic::h2_frames);
}

#[test]
fn hpack_corpus() {
    replay("hpack", fuzz_logic::hpack);
}

#[test]
fn h2_client_corpus() {
    replay("h2_client", fuzz_logic::h2_client);
}
