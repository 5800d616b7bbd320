//! The exchange and pump over a scripted transport: short writes,
//! `WouldBlock` at every offset, resets and EOF at chosen points. The
//! outcome equals the unperturbed run or the documented failure, and the
//! bytes counted as sent equal the bytes the transport accepted.

use std::io;
use std::time::Instant;

use proptest::prelude::*;
use uploadtask_engine::exchange::{Exchange, ExchangeError, Response};
use uploadtask_engine::pump::{pump_read, pump_write, Scratch};
use uploadtask_engine::scripted::{ReadStep, ScriptedTransport, WriteStep};
use uploadtask_engine::{BodySource, Limits, MemorySource};
use uploadtask_multipart::{FilePart, Form};

const HEAD: &[u8] = b"POST /up HTTP/1.1\r\nHost: h\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";

fn setup(file: &[u8]) -> (Exchange, Vec<Box<dyn BodySource>>) {
    let body = Form::new()
        .text("k", "v")
        .file(FilePart::new("f", "x.bin", file.len() as u64))
        .boundary("BB")
        .build()
        .unwrap();
    let sources: Vec<Box<dyn BodySource>> = vec![Box::new(MemorySource(bytes::Bytes::copy_from_slice(file)))];
    (Exchange::new(HEAD.to_vec(), body, Limits::default()), sources)
}

/// The bytes an unperturbed run writes.
fn expected_wire(file: &[u8]) -> Vec<u8> {
    let (mut exchange, sources) = setup(file);
    let mut transport = ScriptedTransport::default();
    let mut scratch = Scratch::new(7);
    pump_write(1, &mut exchange, &mut transport, &sources, &mut scratch, usize::MAX).unwrap();
    transport.written
}

struct Run {
    outcome: Result<Response, ExchangeError>,
    written: Vec<u8>,
    body_bytes_sent: u64,
    last_progress: Option<u64>,
}

/// Drives an exchange to its outcome (bounded by the scripts' length).
fn drive(file: &[u8], transport: &mut ScriptedTransport, scratch_len: usize) -> Run {
    let (mut exchange, sources) = setup(file);
    let mut scratch = Scratch::new(scratch_len);
    let mut read_buf = [0u8; 13];
    let mut last_progress = None;
    for _ in 0..100_000 {
        let (flow, _) = pump_write(1, &mut exchange, transport, &sources, &mut scratch, 64).unwrap();
        let _ = flow;
        pump_read(&mut exchange, transport, &mut read_buf);
        while let Some(p) = exchange.poll_progress(Instant::now()) {
            assert!(
                last_progress.is_none_or(|l| p.total_bytes_sent > l),
                "progress must rise"
            );
            last_progress = Some(p.total_bytes_sent);
        }
        if let Some(outcome) = exchange.poll_outcome() {
            let body_bytes_sent = exchange.body_bytes_sent();
            return Run {
                outcome,
                written: std::mem::take(&mut transport.written),
                body_bytes_sent,
                last_progress,
            };
        }
    }
    panic!("no outcome");
}

/// Accepts `accepted` bytes one at a time, then fails.
fn fail_after(accepted: usize, kind: io::ErrorKind) -> Vec<WriteStep> {
    let mut steps = vec![WriteStep::Accept(1); accepted];
    steps.push(WriteStep::Fail(kind));
    steps
}

/// Reads that block while `written` bytes go out, then end.
fn eof_later(written: usize) -> Vec<ReadStep> {
    let mut steps = vec![ReadStep::WouldBlock; written + 4];
    steps.push(ReadStep::Eof);
    steps
}

fn response_reads(cuts: &[usize]) -> Vec<ReadStep> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % RESPONSE.len()).collect();
    points.push(0);
    points.push(RESPONSE.len());
    points.sort_unstable();
    points.dedup();
    let mut steps = Vec::new();
    for pair in points.windows(2) {
        steps.push(ReadStep::WouldBlock);
        steps.push(ReadStep::Data(RESPONSE[pair[0]..pair[1]].to_vec()));
    }
    steps
}

fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn one_byte_writes_and_would_block_everywhere() {
    let file = file_bytes(300);
    let wire = expected_wire(&file);
    let mut writes = Vec::new();
    for _ in 0..wire.len() {
        writes.push(WriteStep::WouldBlock);
        writes.push(WriteStep::Accept(1));
    }
    let mut reads = vec![ReadStep::WouldBlock; wire.len() * 2];
    reads.extend(response_reads(&[1, 2, 3, 30, 40]));
    let mut transport = ScriptedTransport::new(writes, reads);
    let run = drive(&file, &mut transport, 5);
    assert_eq!(run.outcome.unwrap().body, b"hello world");
    assert_eq!(run.written, wire);
    assert_eq!(run.body_bytes_sent, (wire.len() - HEAD.len()) as u64);
    assert_eq!(run.last_progress, Some(run.body_bytes_sent));
}

#[test]
fn reset_mid_body_counts_exactly_what_was_accepted() {
    let file = file_bytes(1000);
    for accepted in [0, 10, HEAD.len(), HEAD.len() + 1, 500, 900] {
        let mut transport = ScriptedTransport::new(
            fail_after(accepted, io::ErrorKind::ConnectionReset),
            eof_later(accepted),
        );
        let run = drive(&file, &mut transport, 4096);
        let body_sent = accepted.saturating_sub(HEAD.len()) as u64;
        assert_eq!(run.written.len(), accepted);
        assert_eq!(run.body_bytes_sent, body_sent);
        let error = run.outcome.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("connection reset after {body_sent} body bytes")
        );
        assert!(run.last_progress.unwrap_or(0) <= body_sent);
    }
}

#[test]
fn broken_pipe_with_a_response_waiting_takes_the_response() {
    let file = file_bytes(1000);
    let mut transport = ScriptedTransport::new(
        [WriteStep::Accept(100), WriteStep::Fail(io::ErrorKind::BrokenPipe)],
        [ReadStep::Data(
            b"HTTP/1.1 413 Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig!".to_vec(),
        )],
    );
    let run = drive(&file, &mut transport, 4096);
    assert_eq!(run.outcome.unwrap().status, 413);
}

#[test]
fn eof_and_reset_inside_the_response() {
    let file = file_bytes(10);
    let cases: Vec<(Vec<ReadStep>, &str)> = vec![
        (
            vec![ReadStep::Data(b"HTTP/1.1 200".to_vec()), ReadStep::Eof],
            "before a response",
        ),
        (
            vec![ReadStep::Data(RESPONSE[..45].to_vec()), ReadStep::Eof],
            "connection closed after 6 response body bytes",
        ),
        (
            vec![
                ReadStep::Data(RESPONSE[..45].to_vec()),
                ReadStep::Fail(io::ErrorKind::ConnectionReset),
            ],
            "connection reset after",
        ),
        (
            vec![ReadStep::Fail(io::ErrorKind::ConnectionReset)],
            "connection reset after",
        ),
    ];
    for (reads, message) in cases {
        let mut transport = ScriptedTransport::new([], reads);
        let run = drive(&file, &mut transport, 4096);
        let error = run.outcome.unwrap_err().to_string();
        assert!(error.contains(message), "{error:?} lacks {message:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_short_writes_and_splits_give_the_same_outcome(
        len in 0usize..2000,
        steps in proptest::collection::vec(prop_oneof![
            (1usize..50).prop_map(WriteStep::Accept),
            Just(WriteStep::WouldBlock),
        ], 0..200),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        scratch_len in 1usize..64,
    ) {
        let file = file_bytes(len);
        let wire = expected_wire(&file);
        let mut reads = vec![ReadStep::WouldBlock; 50];
        reads.extend(response_reads(&cuts));
        let mut transport = ScriptedTransport::new(steps, reads);
        let run = drive(&file, &mut transport, scratch_len);
        let response = run.outcome.unwrap();
        prop_assert_eq!(response.status, 200);
        prop_assert_eq!(response.body, b"hello world");
        prop_assert_eq!(&run.written, &wire);
        prop_assert_eq!(run.body_bytes_sent, (wire.len() - HEAD.len()) as u64);
        prop_assert_eq!(run.last_progress, Some(run.body_bytes_sent));
    }

    #[test]
    fn failure_at_any_write_offset_is_documented(
        len in 0usize..500,
        fail_at in 0usize..700,
        kind in prop_oneof![Just(io::ErrorKind::ConnectionReset), Just(io::ErrorKind::BrokenPipe)],
    ) {
        let file = file_bytes(len);
        let wire = expected_wire(&file);
        let fail_at = fail_at.min(wire.len() - 1);
        let mut transport = ScriptedTransport::new(fail_after(fail_at, kind), eof_later(fail_at));
        let run = drive(&file, &mut transport, 64);
        prop_assert_eq!(&run.written[..], &wire[..fail_at]);
        let body_sent = fail_at.saturating_sub(HEAD.len()) as u64;
        prop_assert_eq!(run.body_bytes_sent, body_sent);
        prop_assert!(run.last_progress.unwrap_or(0) <= body_sent);
        let message = run.outcome.unwrap_err().to_string();
        prop_assert!(message.ends_with(&format!("after {body_sent} body bytes")), "{}", message);
    }
}

/// A transport that takes nothing (`Ok(0)`) is a write error (1000), on the
/// gathered path and on the large-file path alike, never "file changed size".
#[test]
fn a_zero_byte_write_is_a_write_error_on_every_path() {
    for (file_len, scratch_len) in [(10, 4096), (100_000, 7)] {
        let file = file_bytes(file_len);
        let (mut exchange, sources) = setup(&file);
        let mut transport = ScriptedTransport::new([WriteStep::Accept(HEAD.len() + 60), WriteStep::Accept(0)], []);
        let mut scratch = Scratch::new(scratch_len);
        for _ in 0..10 {
            let result = pump_write(1, &mut exchange, &mut transport, &sources, &mut scratch, usize::MAX);
            assert!(result.is_ok(), "{file_len}: {result:?}");
        }
        let mut read_buf = [0u8; 64];
        pump_read(&mut exchange, &mut transport, &mut read_buf);
        let mut transport = ScriptedTransport::new([], [ReadStep::Eof]);
        pump_read(&mut exchange, &mut transport, &mut read_buf);
        let outcome = exchange.poll_outcome().expect("an outcome");
        assert!(
            matches!(
                outcome,
                Err(ExchangeError::Io {
                    kind: io::ErrorKind::WriteZero,
                    ..
                })
            ),
            "{file_len}: {outcome:?}"
        );
    }
}
