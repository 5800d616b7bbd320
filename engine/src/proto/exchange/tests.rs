use super::*;
use uploadtask_multipart::{FilePart, Form};

fn exchange(file_len: u64) -> Exchange {
    let body = Form::new()
        .text("k", "v")
        .file(FilePart::new("f", "a.bin", file_len))
        .boundary("B")
        .build()
        .unwrap();
    Exchange::new(b"POST / HTTP/1.1\r\n\r\n".to_vec(), body, Limits::default())
}

/// Writes everything, `step` bytes at a time, returning the bytes written.
fn send_all(ex: &mut Exchange, step: usize) -> u64 {
    let mut written = 0u64;
    loop {
        let (pieces, count) = ex.poll_gather(1 << 20);
        if count == 0 {
            break;
        }
        let total: u64 = pieces[..count]
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.len() as u64,
                Piece::File { len, .. } => *len,
            })
            .sum();
        let n = (total as usize).min(step);
        assert!(n > 0);
        ex.handle_sent(n);
        written += n as u64;
    }
    written
}

#[test]
fn full_exchange_with_progress_to_the_end() {
    let mut ex = exchange(10);
    let total = ex.body().content_length();
    let written = send_all(&mut ex, 7);
    assert_eq!(written, total + 19);
    let p = ex.poll_progress(Instant::now()).unwrap();
    assert_eq!(
        (p.progress, p.total_bytes_sent, p.total_bytes_expected_to_send),
        (100, total, total)
    );
    assert_eq!(ex.poll_outcome(), None);
    ex.handle_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let response = ex.poll_outcome().unwrap().unwrap();
    assert_eq!((response.status, response.body.as_slice()), (200, &b"ok"[..]));
    assert!(ex.reusable());
}

#[test]
fn head_split_at_every_byte() {
    let wire = b"HTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    for cut in 0..wire.len() {
        let mut ex = exchange(1);
        send_all(&mut ex, usize::MAX);
        ex.handle_received(&wire[..cut]);
        ex.handle_received(&wire[cut..]);
        let response = ex.poll_outcome().unwrap().unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (201, &b"abc"[..]),
            "cut at {cut}"
        );
    }
}

#[test]
fn early_error_response_stops_sending_and_survives_reset_when_whole() {
    // A close-delimited body ends at the reset: the response stands.
    let mut ex = exchange(1 << 20);
    ex.handle_sent(100);
    ex.handle_received(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\ntoo big");
    assert!(!ex.wants_write());
    assert_eq!(ex.poll_gather(1 << 20).1, 0);
    ex.handle_read_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    let response = ex.poll_outcome().unwrap().unwrap();
    assert_eq!((response.status, response.body.as_slice()), (413, &b"too big"[..]));
    assert!(!ex.reusable());
    // A body with a length that arrived whole was delivered before the reset.
    let mut ex = exchange(1 << 20);
    ex.handle_sent(100);
    ex.handle_received(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\ntoo");
    assert_eq!(ex.poll_outcome().unwrap().unwrap().body, b"too");
}

#[test]
fn early_error_response_cut_short_by_a_reset_fails() {
    for wire in [
        &b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 100\r\n\r\nhello"[..],
        &b"HTTP/1.1 413 Payload Too Large\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"[..],
    ] {
        let mut ex = exchange(1 << 20);
        ex.handle_sent(100);
        ex.handle_received(wire);
        ex.handle_read_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let error = ex.poll_outcome().unwrap().unwrap_err();
        assert!(
            matches!(
                error,
                ExchangeError::Io {
                    kind: std::io::ErrorKind::ConnectionReset,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.shared_source().is_some(), "the io::Error is kept");
    }
}

#[test]
fn early_success_response_waits_for_the_body_to_be_sent() {
    let mut ex = exchange(50);
    ex.handle_sent(10);
    ex.handle_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(ex.wants_write());
    assert_eq!(ex.poll_outcome(), None);
    send_all(&mut ex, 1000);
    assert_eq!(ex.poll_outcome().unwrap().unwrap().status, 200);
}

#[test]
fn write_error_then_close_fails_with_byte_count() {
    let mut ex = exchange(1000);
    ex.handle_sent(19 + 30);
    ex.handle_write_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(!ex.wants_write());
    ex.handle_eof();
    let error = ex.poll_outcome().unwrap().unwrap_err();
    assert_eq!(error.to_string(), "connection reset after 30 body bytes");
}

#[test]
fn progress_waits_for_unflushed_bytes() {
    let mut ex = exchange(100);
    let total = ex.body().content_length();
    send_all(&mut ex, usize::MAX);
    ex.handle_unflushed(40);
    assert_eq!(ex.poll_progress(Instant::now()).unwrap().total_bytes_sent, total - 40);
    ex.handle_unflushed(0);
    assert_eq!(ex.poll_progress(Instant::now()).unwrap().total_bytes_sent, total);
}

#[test]
fn eof_inside_body_and_head() {
    let mut ex = exchange(1);
    send_all(&mut ex, usize::MAX);
    ex.handle_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab");
    ex.handle_eof();
    assert!(matches!(
        ex.poll_outcome(),
        Some(Err(ExchangeError::Body(BodyError::Incomplete { received: 2 })))
    ));
    let mut ex = exchange(1);
    send_all(&mut ex, usize::MAX);
    ex.handle_received(b"HTTP/1.1 200 O");
    ex.handle_eof();
    assert!(matches!(
        ex.poll_outcome(),
        Some(Err(ExchangeError::ClosedBeforeResponse { .. }))
    ));
}

#[test]
fn close_delimited_body_ends_at_eof_and_bytes_after_body_prevent_reuse() {
    let mut ex = exchange(1);
    send_all(&mut ex, usize::MAX);
    ex.handle_received(b"HTTP/1.1 200 OK\r\n\r\nuntil close");
    assert_eq!(ex.poll_outcome(), None);
    ex.handle_eof();
    assert_eq!(ex.poll_outcome().unwrap().unwrap().body, b"until close");
    let mut ex = exchange(1);
    send_all(&mut ex, usize::MAX);
    ex.handle_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxGARBAGE");
    assert!(ex.poll_outcome().unwrap().is_ok());
    assert!(!ex.reusable());
}

#[test]
fn restart_keeps_progress_monotonic() {
    let mut ex = exchange(1000);
    ex.handle_sent(500);
    let first = ex.poll_progress(Instant::now()).unwrap().total_bytes_sent;
    ex.restart();
    ex.handle_sent(100);
    assert_eq!(ex.poll_progress(Instant::now()), None);
    ex.handle_sent(500);
    assert!(ex.poll_progress(Instant::now()).unwrap().total_bytes_sent > first);
}

#[test]
fn a_success_response_then_eof_before_the_body_went_out_fails() {
    // Found by the `exchange` fuzz target: the request could not be written,
    // a 200 (keep-alive framing, so no reason to stop sending) arrived whole,
    // then EOF. The server never got the file: not a success.
    let mut ex = exchange(1000);
    ex.handle_write_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    ex.handle_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(ex.poll_outcome(), None);
    ex.handle_eof();
    let error = ex.poll_outcome().unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            ExchangeError::Io {
                kind: std::io::ErrorKind::ConnectionReset,
                ..
            }
        ),
        "{error:?}"
    );
    // The same without a write error: closed while the body was going out.
    let mut ex = exchange(1000);
    ex.handle_sent(30);
    ex.handle_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    ex.handle_eof();
    let total = ex.body().content_length();
    let error = ex.poll_outcome().unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("connection closed after 11 of {total} body bytes were sent")
    );
}

#[test]
fn a_write_error_after_a_success_head_fails() {
    // Found by the `exchange` fuzz target: a 200 with keep-alive framing
    // arrived while the body was going out, then a write failed. The 200
    // gave no reason to stop sending; the server did not get the file.
    let mut ex = exchange(1000);
    ex.handle_sent(30);
    ex.handle_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    ex.handle_write_error(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    let error = ex.poll_outcome().unwrap().unwrap_err();
    assert!(
        matches!(
            error,
            ExchangeError::Io {
                kind: std::io::ErrorKind::BrokenPipe,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn expect_continue_waits_for_100_or_the_wait_and_a_final_answer_costs_no_body() {
    let t = Instant::now();
    let wait = std::time::Duration::from_millis(300);
    // 100 Continue releases the body.
    let mut ex = exchange(5000);
    ex.expect_continue(wait);
    let (pieces, count) = ex.poll_gather(1 << 20);
    assert_eq!(
        (count, pieces[0]),
        (1, Piece::Bytes(b"POST / HTTP/1.1\r\n\r\n")),
        "only the head"
    );
    ex.handle_sent(19);
    assert_eq!(ex.poll_gather(1 << 20).1, 0, "the body waits");
    assert!(!ex.handle_time(t));
    assert_eq!(ex.poll_timeout(), Some(t + wait));
    ex.handle_received(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(!ex.awaiting_continue());
    assert!(ex.poll_gather(1 << 20).1 > 0, "the body goes");
    // No answer: the body goes when the wait is over.
    let mut ex = exchange(5000);
    ex.expect_continue(wait);
    ex.handle_sent(19);
    assert!(!ex.handle_time(t));
    assert!(ex.handle_time(t + wait));
    assert!(ex.poll_gather(1 << 20).1 > 0);
    // A final answer instead: the result, no body byte, not reusable.
    let mut ex = exchange(5000);
    ex.expect_continue(wait);
    ex.handle_sent(19);
    ex.handle_received(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(ex.poll_outcome().unwrap().unwrap().status, 413);
    assert_eq!((ex.body_bytes_sent(), ex.reusable()), (0, false));
}

/// A `HEAD` (a resumable upload's offset question) gets a head with a
/// `Content-Length` and no body: the exchange ends at the head (before the
/// window it waited for bytes that never come), and the connection stays
/// reusable.
#[test]
fn head_request_responses_have_no_body() {
    let mut ex = Exchange::new(
        b"HEAD /f/1 HTTP/1.1\r\n\r\n".to_vec(),
        Body::raw(0, ""),
        Limits::default(),
    );
    ex.set_window(1_000, 5_000, true, false);
    send_all(&mut ex, 64);
    ex.handle_received(b"HTTP/1.1 200 OK\r\nUpload-Offset: 1000\r\nContent-Length: 17\r\n\r\n");
    assert!(ex.is_finished());
    let response = ex.poll_outcome().unwrap().unwrap();
    assert_eq!((response.status, response.body.len()), (200, 0));
    assert!(ex.reusable());
}

/// A piece of a longer body: file reads start at the window, progress
/// counts toward the whole, and a 104's headers are kept when asked.
#[test]
fn windows_shift_file_offsets_and_progress() {
    let mut ex = Exchange::new(
        b"PATCH /f/1 HTTP/1.1\r\n\r\n".to_vec(),
        Body::raw(10, ""),
        Limits::default(),
    );
    ex.set_window(4_096, 8_192, false, true);
    let (pieces, count) = ex.poll_gather(1 << 20);
    assert_eq!(count, 2);
    assert_eq!(
        pieces[1],
        Piece::File {
            part: 0,
            offset: 4_096,
            len: 10
        }
    );
    send_all(&mut ex, 1 << 20);
    let progress = ex.poll_progress(std::time::Instant::now()).unwrap();
    assert_eq!(
        (progress.total_bytes_sent, progress.total_bytes_expected_to_send),
        (4_106, 8_192)
    );
    ex.handle_received(b"HTTP/1.1 104 Upload Resumption Supported\r\nLocation: /u/9\r\n\r\n");
    let (status, headers) = ex.poll_interim().unwrap();
    assert_eq!((status, headers.get("location")), (104, Some(&b"/u/9"[..])));
}

/// A file region larger than the room (the buffer for file bytes) is cut to
/// it after the head and framing, so that one write carries both (over TLS,
/// the head shares a full record with the body's start); first in line, it
/// is returned whole and alone.
#[test]
fn gather_cuts_a_large_region_to_the_room() {
    let mut ex = exchange(100_000);
    let (pieces, count) = ex.poll_gather(1000);
    let lens: Vec<(bool, u64)> = pieces[..count]
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => (false, b.len() as u64),
            Piece::File { len, .. } => (true, *len),
        })
        .collect();
    assert_eq!(lens.last(), Some(&(true, 1000)), "{lens:?}");
    let before_file: u64 = lens.iter().filter(|(file, _)| !file).map(|(_, len)| len).sum();
    ex.handle_sent(before_file as usize + 1000);
    let (pieces, count) = ex.poll_gather(1000);
    assert!(
        matches!(
            pieces[..count],
            [Piece::File {
                len: 99_000,
                offset: 1000,
                ..
            }]
        ),
        "the rest of the region, whole and alone: {:?}",
        &pieces[..count]
    );
}

#[test]
fn keep_alive_hints_shape_reuse() {
    let answer = |extra: &str| {
        let mut ex = exchange(3);
        send_all(&mut ex, usize::MAX);
        ex.handle_received(format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{extra}\r\n").as_bytes());
        assert!(ex.poll_outcome().unwrap().is_ok());
        (ex.reusable(), ex.keep_alive_secs())
    };
    assert_eq!(answer(""), (true, None));
    assert_eq!(answer("Keep-Alive: timeout=5, max=100\r\n"), (true, Some(5)));
    assert_eq!(answer("Keep-Alive: timeout=5, max=0\r\n"), (false, Some(5)));
    assert_eq!(answer("Keep-Alive: timeout=99999999999\r\n"), (true, Some(u32::MAX)));
}

/// An exchange on an HTTP/2 stream, its body sent whole.
fn on_stream(file_len: u64) -> Exchange {
    let mut ex = exchange(file_len);
    ex.set_report_headers(true);
    ex.start_stream(Some(b"POST / HTTP/2\r\n\r\n".to_vec()));
    assert_eq!(ex.poll_request_head().as_deref(), Some(&b"POST / HTTP/2\r\n\r\n"[..]));
    ex
}

fn send_body(ex: &mut Exchange) {
    let remaining = ex.body_remaining() as usize;
    ex.handle_sent(remaining);
    assert_eq!(ex.body_remaining(), 0);
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

#[test]
fn a_stream_response_is_the_outcome_with_its_headers_and_version() {
    let mut ex = on_stream(10);
    let total = ex.body().content_length();
    // The head went as HEADERS: only body bytes are gathered and counted.
    assert_eq!(ex.body_remaining(), total);
    send_body(&mut ex);
    ex.handle_unflushed(5);
    assert_eq!(ex.body_bytes_sent(), total - 5);
    ex.handle_unflushed(0);
    ex.handle_stream_head(100, Headers::default(), false, b"HTTP/2 100\r\n\r\n");
    ex.handle_stream_head(
        200,
        headers(&[("content-length", "2"), ("x-a", "1")]),
        false,
        b"HTTP/2 200\r\n",
    );
    assert_eq!(ex.poll_response_head(), Some(200));
    ex.handle_stream_data(b"o");
    assert_eq!(ex.poll_outcome(), None);
    ex.handle_stream_data(b"k");
    ex.handle_stream_end();
    let response = ex.poll_outcome().unwrap().unwrap();
    assert_eq!(
        (response.status, response.version, &response.body[..]),
        (200, 2, &b"ok"[..])
    );
    assert_eq!(response.headers.get("X-A"), Some(&b"1"[..]));
    assert_eq!(
        ex.poll_response_heads().as_deref(),
        Some(&b"HTTP/2 100\r\n\r\nHTTP/2 200\r\n"[..])
    );
}

#[test]
fn a_stream_body_longer_than_its_content_length_or_before_a_head_is_malformed() {
    let mut ex = on_stream(1);
    send_body(&mut ex);
    ex.handle_stream_data(b"x");
    assert_eq!(
        ex.poll_outcome(),
        Some(Err(ExchangeError::Malformed("body before the head")))
    );
    let mut ex = on_stream(1);
    send_body(&mut ex);
    ex.handle_stream_head(200, headers(&[("content-length", "1")]), false, b"");
    ex.handle_stream_data(b"xy");
    assert_eq!(
        ex.poll_outcome(),
        Some(Err(ExchangeError::Malformed("more body than its Content-Length")))
    );
    // Shorter: the end of the stream says so.
    let mut ex = on_stream(1);
    send_body(&mut ex);
    ex.handle_stream_head(200, headers(&[("content-length", "3")]), false, b"");
    ex.handle_stream_data(b"xy");
    ex.handle_stream_end();
    assert!(matches!(ex.poll_outcome(), Some(Err(ExchangeError::Body(_)))));
}

#[test]
fn an_early_final_stream_answer_stops_the_body_and_stands() {
    let mut ex = on_stream(100_000);
    ex.handle_sent(1000);
    ex.handle_stream_head(413, Headers::default(), true, b"");
    assert!(!ex.wants_write(), "no more body after a 413");
    let response = ex.poll_outcome().unwrap().unwrap();
    assert_eq!(response.status, 413);
}

#[test]
fn a_whole_2xx_answer_before_the_body_ended_waits_then_stands_when_sending_stops() {
    let mut ex = on_stream(100);
    ex.handle_sent(10);
    ex.handle_stream_head(200, Headers::default(), true, b"");
    // The body still goes (the server may read it), as on HTTP/1.1.
    assert!(ex.wants_write());
    assert_eq!(ex.poll_outcome(), None);
    // The server resets the stream (NO_ERROR): the answer stands.
    ex.handle_stream_closed(ExchangeError::ClosedWhileSending {
        body_bytes_sent: 10,
        body_length: 100,
    });
    assert_eq!(ex.poll_outcome().unwrap().unwrap().status, 200);
    // A reset before any answer is the outcome.
    let mut ex = on_stream(100);
    ex.handle_stream_closed(ExchangeError::StreamReset {
        code: 2,
        body_bytes_sent: 0,
    });
    assert_eq!(
        ex.poll_outcome().unwrap().unwrap_err().to_string(),
        "HTTP/2 stream reset (INTERNAL_ERROR) after 0 body bytes"
    );
}

#[test]
fn a_restarted_stream_exchange_may_go_over_http1() {
    let mut ex = on_stream(10);
    ex.handle_sent(5);
    ex.restart();
    let (pieces, count) = ex.poll_gather(1 << 20);
    assert!(count > 0);
    assert_eq!(
        pieces[0],
        Piece::Bytes(b"POST / HTTP/1.1\r\n\r\n"),
        "the head goes again"
    );
}
