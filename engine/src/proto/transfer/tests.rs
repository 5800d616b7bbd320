//! The decision table: what follows each kind of ending, for plain,
//! redirected, retried and resumable transfers.

use std::time::{Duration, Instant};

use uploadtask_http1::request::Target;
use uploadtask_http1::Headers;

use super::*;
use crate::proto::resumable::{Protocol, Resumable};

const ONE_SEC: Duration = Duration::from_secs(1);

fn response(status: u16, headers: &[(&str, &str)]) -> Response {
    Response {
        status,
        reason: "".into(),
        version: 1,
        headers: headers.iter().copied().collect(),
        body: Vec::new(),
    }
}

fn plain(max_redirects: u32) -> Transfer {
    let policy = Policy {
        max: max_redirects,
        allow_https_to_http: false,
    };
    Transfer::new("POST".into(), vec![("Authorization".into(), "t".into())], policy)
}

fn retrying(attempts: u32) -> Transfer {
    let mut transfer = plain(0);
    transfer.retry = Some(Box::new(RetryPolicy {
        attempts,
        ..RetryPolicy::default()
    }));
    transfer
}

fn target() -> Target {
    Target::parse("http://127.0.0.1:9/up/load").unwrap()
}

/// Decides with a fixed clock: `now`, the Unix time `unix_secs`, no jitter.
fn decide(transfer: &mut Transfer, outcome: Result<Response, UploadError>, now: Instant, unix_secs: u64) -> Next {
    let engine_retry = RetryPolicy::default();
    let mut random = || 0;
    let mut moment = Moment {
        now,
        unix_secs,
        random: &mut random,
        submitted: now,
        deadline: None,
        engine_retry: &engine_retry,
    };
    match outcome {
        Ok(response) => transfer.handle_response(response, &target(), &mut moment),
        Err(error) => transfer.handle_failure(error, &mut moment),
    }
}

fn reset() -> UploadError {
    UploadError::new(ErrorKind::Network, "connection reset")
}

fn status_of(next: &Next) -> Option<u16> {
    match next {
        Next::Finish(Ok(response)) => Some(response.status),
        _ => None,
    }
}

#[test]
fn a_417_goes_again_without_expect_only_when_it_was_sent() {
    let now = Instant::now();
    let mut sent = plain(0);
    sent.expect = true;
    assert!(matches!(
        decide(&mut sent, Ok(response(417, &[])), now, 0),
        Next::WithoutExpect
    ));
    let mut not_sent = plain(0);
    assert_eq!(
        status_of(&decide(&mut not_sent, Ok(response(417, &[])), now, 0)),
        Some(417)
    );
}

#[test]
fn redirects_follow_their_location_and_their_heads_are_never_heard_of() {
    let now = Instant::now();
    let mut transfer = plain(5);
    assert_eq!(transfer.handle_head(Held::Status(307)), None);
    let next = decide(
        &mut transfer,
        Ok(response(307, &[("Location", "../other?x=1")])),
        now,
        0,
    );
    let Next::Follow(hop) = next else { panic!("{next:?}") };
    assert_eq!(hop.url, "http://127.0.0.1:9/other?x=1");
    assert_eq!((hop.method.as_str(), hop.keep_body), ("POST", true));
    assert!(transfer.take_held().is_empty());
}

#[test]
fn a_redirect_without_location_is_the_outcome_with_its_heads() {
    let now = Instant::now();
    let mut transfer = plain(5);
    assert_eq!(transfer.handle_head(Held::Status(302)), None);
    assert_eq!(transfer.handle_head(Held::Headers(302, Headers::new())), None);
    let next = decide(&mut transfer, Ok(response(302, &[])), now, 0);
    assert_eq!(status_of(&next), Some(302));
    assert_eq!(
        transfer.take_held(),
        vec![Held::Status(302), Held::Headers(302, Headers::new())]
    );
}

#[test]
fn heads_are_held_only_when_their_response_may_be_followed() {
    let mut follows = plain(5);
    assert_eq!(follows.handle_head(Held::Status(200)), Some(Held::Status(200)));
    assert_eq!(follows.handle_head(Held::Status(304)), Some(Held::Status(304)));
    assert_eq!(follows.handle_head(Held::Status(301)), None);
    let mut never = plain(0);
    assert_eq!(never.handle_head(Held::Status(301)), Some(Held::Status(301)));
    let mut resumable = tus();
    assert_eq!(resumable.handle_head(Held::Status(200)), None);
}

#[test]
fn too_many_redirects_fail_and_drop_the_held_heads() {
    let now = Instant::now();
    let mut transfer = plain(1);
    transfer.hops = 1;
    transfer.handle_head(Held::Status(302));
    let next = decide(&mut transfer, Ok(response(302, &[("Location", "/again")])), now, 0);
    assert!(
        matches!(next, Next::Finish(Err(ref e)) if e.kind == ErrorKind::Protocol),
        "{next:?}"
    );
    assert!(transfer.take_held().is_empty());
}

#[test]
fn a_listed_status_is_retried_after_its_retry_after_in_seconds_or_as_a_date() {
    let now = Instant::now();
    let mut seconds = retrying(3);
    let next = decide(&mut seconds, Ok(response(503, &[("Retry-After", "2")])), now, 0);
    assert!(matches!(next, Next::Retry));
    assert_eq!(seconds.poll_timeout(), Some(now + 2 * ONE_SEC));
    assert_eq!(seconds.attempts, 2);
    // The date is read against the wall clock passed in: 1994-11-06 08:49:37 + 3 s.
    let mut date = retrying(3);
    let answer = response(503, &[("Retry-After", "Sun, 06 Nov 1994 08:49:40 GMT")]);
    assert!(matches!(decide(&mut date, Ok(answer), now, 784_111_777), Next::Retry));
    assert_eq!(date.poll_timeout(), Some(now + 3 * ONE_SEC));
}

#[test]
fn the_wait_ends_when_its_time_has_come() {
    let now = Instant::now();
    let mut transfer = retrying(3);
    decide(&mut transfer, Ok(response(503, &[("Retry-After", "2")])), now, 0);
    assert!(!transfer.handle_timeout(now + ONE_SEC));
    assert!(transfer.handle_timeout(now + 2 * ONE_SEC));
    assert_eq!(transfer.poll_timeout(), None);
}

#[test]
fn an_unlisted_status_and_no_policy_are_the_outcome() {
    let now = Instant::now();
    assert_eq!(
        status_of(&decide(&mut retrying(3), Ok(response(404, &[])), now, 0)),
        Some(404)
    );
    assert_eq!(
        status_of(&decide(&mut plain(0), Ok(response(503, &[])), now, 0)),
        Some(503)
    );
    let next = decide(&mut plain(0), Err(reset()), now, 0);
    assert!(
        matches!(next, Next::Finish(Err(ref e)) if e.message == "connection reset"),
        "{next:?}"
    );
}

#[test]
fn the_last_failure_says_how_many_attempts_were_made() {
    let now = Instant::now();
    let mut transfer = retrying(2);
    assert!(matches!(decide(&mut transfer, Err(reset()), now, 0), Next::Retry));
    assert!(matches!(decide(&mut transfer, Err(reset()), now, 0), Next::Retry));
    let next = decide(&mut transfer, Err(reset()), now, 0);
    assert!(
        matches!(next, Next::Finish(Err(ref e)) if e.message == "connection reset (after 3 attempts)"),
        "{next:?}"
    );
}

#[test]
fn abort_is_never_retried() {
    let now = Instant::now();
    let next = decide(
        &mut retrying(5),
        Err(UploadError::new(ErrorKind::Aborted, "abort")),
        now,
        0,
    );
    assert!(
        matches!(next, Next::Finish(Err(ref e)) if e.kind == ErrorKind::Aborted),
        "{next:?}"
    );
}

#[test]
fn the_resend_rule_is_the_uploads_else_the_engines_and_never_for_a_resumable_upload() {
    let mut transfer = plain(0);
    assert_eq!(transfer.resend_rule(true), Resend::from_choice(true));
    assert_eq!(transfer.resend_rule(false), Resend::from_choice(false));
    transfer.resend_reused = Some(false);
    assert_eq!(transfer.resend_rule(true), Resend::from_choice(false));
    assert_eq!(tus().resend_rule(true), Resend::Never);
}

fn tus() -> Transfer {
    let config = Resumable::new(Protocol::Tus);
    let session = Session::new(config, "http://127.0.0.1:9/files/", 10, &[]);
    Transfer::resumable(session, 10)
}

/// A tus transfer whose resource exists and whose first piece is under way.
fn tus_sending() -> Transfer {
    let now = Instant::now();
    let mut transfer = tus();
    let limits = uploadtask_http1::Limits::default();
    let proxies = crate::proto::proxy::Proxies::default();
    assert!(matches!(
        transfer.resume_step(None, limits, &proxies),
        Ok(Step::Ready(..))
    ));
    let created = response(201, &[("Location", "/files/a"), ("Tus-Resumable", "1.0.0")]);
    assert!(matches!(decide(&mut transfer, Ok(created), now, 0), Next::Resume(None)));
    assert!(matches!(
        transfer.resume_step(None, limits, &proxies),
        Ok(Step::Ready(..))
    ));
    transfer
}

#[test]
fn a_resumable_failure_resumes_five_times_in_a_row_without_a_policy_then_fails() {
    let now = Instant::now();
    let mut transfer = tus_sending();
    for attempt in 2..=RESUMABLE_RETRIES + 1 {
        let next = decide(&mut transfer, Err(reset()), now, 0);
        // No jitter drawn here: the wait is 0, the resume goes at once.
        assert!(matches!(next, Next::Resume(None)), "attempt {attempt}: {next:?}");
        assert_eq!(transfer.attempts, attempt);
    }
    let next = decide(&mut transfer, Err(reset()), now, 0);
    assert!(
        matches!(next, Next::Finish(Err(ref e)) if e.message.ends_with("(after 6 attempts)")),
        "{next:?}"
    );
}

#[test]
fn a_resumable_answer_that_completes_is_the_outcome_with_its_heads() {
    let now = Instant::now();
    let mut transfer = tus_sending();
    transfer.handle_head(Held::Status(204));
    let done = response(204, &[("Upload-Offset", "10"), ("Tus-Resumable", "1.0.0")]);
    let next = decide(&mut transfer, Ok(done), now, 0);
    assert_eq!(status_of(&next), Some(204));
    assert_eq!(transfer.take_held(), vec![Held::Status(204)]);
}

#[test]
fn a_body_waits_for_100_continue_four_round_trips_within_bounds() {
    let ms = Duration::from_millis;
    let mut transfer = plain(0);
    assert_eq!(transfer.expect_wait(10, Some(ms(5))), None, "no Expect sent");
    transfer.expect = true;
    assert_eq!(transfer.expect_wait(0, Some(ms(5))), None, "no body");
    assert_eq!(transfer.expect_wait(10, Some(ms(5))), Some(ms(100)));
    assert_eq!(transfer.expect_wait(10, Some(ms(50))), Some(ms(200)));
    assert_eq!(transfer.expect_wait(10, Some(ms(900))), Some(ONE_SEC));
    assert_eq!(transfer.expect_wait(10, None), Some(ONE_SEC), "round trip unknown");
}

#[test]
fn a_refused_stream_goes_again_whatever_the_retry_policy_but_not_forever() {
    // No retries at all: a request the server never processed still goes.
    let mut transfer = retrying(1);
    for _ in 0..MAX_REFUSED {
        assert!(transfer.handle_refused());
    }
    assert!(!transfer.handle_refused(), "a server that refuses everything ends it");
    assert_eq!(transfer.attempts, 1, "refusals are not attempts");
}
