//! Retries with backoff, decided without I/O: after an attempt ends, send
//! again (when) or give up. The driver performs the decision: it waits, then
//! sends the whole request again from byte 0 (positional reads from the same
//! open files; nothing is buffered).
//!
//! Retried: connect failures, resets and closes before a final response,
//! an attempt's own timeouts (connect, idle, too slow), and the statuses in
//! [`RetryPolicy::statuses`] (408, 429, 502, 503, 504 by default). Never:
//! other 4xx and 5xx, TLS and protocol errors, file errors, `abort()`, or
//! the overall deadline, which bounds all attempts together.
//!
//! The delay is exponential with full jitter (a uniform draw between 0 and
//! `min(max_delay, base_delay × 2^(n-1))` before retry n); a `Retry-After`
//! (seconds or an HTTP-date) replaces it, bounded by `max_delay`. A retry
//! that could not start before the overall deadline is not made.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use uploadtask_engine::retry::{decide, Attempt, Cause, Next, RetryPolicy};
//!
//! let policy = RetryPolicy { attempts: 3, ..RetryPolicy::default() };
//! let now = Instant::now();
//! let attempt = Attempt { made: 1, deadline: None, started: now, now, wall_clock_secs: 0, random: 0 };
//! let next = decide(&policy, &attempt, Cause::Status { status: 503, retry_after: Some("2") });
//! assert_eq!(next, Next::RetryAfter(Duration::from_secs(2)));
//! assert_eq!(decide(&policy, &attempt, Cause::Status { status: 404, retry_after: None }), Next::Done);
//! ```

use std::time::{Duration, Instant};

use crate::error::{ErrorKind, UploadError};

/// When and how often an upload is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none, the default).
    pub attempts: u32,
    /// The first retry's delay bound; it doubles each time.
    pub base_delay: Duration,
    /// The largest delay (also the bound on `Retry-After`).
    pub max_delay: Duration,
    /// Response statuses that are retried.
    pub statuses: Vec<u16>,
    /// No retry starts later than this after the upload was submitted (as
    /// curl's `--retry-max-time`); `None`: only `attempts` and the overall
    /// deadline bound them.
    pub max_time: Option<Duration>,
}

impl Default for RetryPolicy {
    /// No retries; when turned on: 250 ms doubling up to 30 s, statuses
    /// 408, 429, 502, 503, 504.
    fn default() -> Self {
        RetryPolicy {
            attempts: 0,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            statuses: vec![408, 429, 502, 503, 504],
            max_time: None,
        }
    }
}

/// The facts of the attempt that just ended.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Attempts made so far, this one included (1 after the first).
    pub made: u32,
    /// The overall deadline, if any.
    pub deadline: Option<Instant>,
    /// When the upload was submitted (for `max_time`).
    pub started: Instant,
    /// Now.
    pub now: Instant,
    /// Now as seconds since the Unix epoch (for an HTTP-date `Retry-After`).
    pub wall_clock_secs: u64,
    /// A random number for the jitter.
    pub random: u64,
}

/// How the attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Cause<'a> {
    /// A final response with this status (and its `Retry-After`, if any).
    Status {
        /// The status code.
        status: u16,
        /// The `Retry-After` value.
        retry_after: Option<&'a str>,
    },
    /// An error.
    Error(&'a UploadError),
}

impl<'a> Cause<'a> {
    /// The cause an attempt's outcome gives: a response by its status and
    /// `Retry-After` (`header` finds a field by name), an error as it is.
    pub fn of(outcome: Result<u16, &'a UploadError>, header: impl Fn(&str) -> Option<&'a str>) -> Cause<'a> {
        match outcome {
            Ok(status) => Cause::Status {
                status,
                retry_after: header("retry-after"),
            },
            Err(error) => Cause::Error(error),
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// The outcome stands.
    Done,
    /// Send again after this delay.
    RetryAfter(Duration),
}

/// True for an error worth another attempt (see the module doc).
pub fn is_retryable(error: &UploadError) -> bool {
    match error.kind {
        ErrorKind::Network => true,
        // The overall deadline's message starts "timeout"; an attempt's own
        // timeouts name theirs ("connect timeout", "idle timeout", …).
        ErrorKind::Timeout => !error.message.starts_with("timeout"),
        _ => false,
    }
}

/// Decides what follows an attempt.
pub fn decide(policy: &RetryPolicy, attempt: &Attempt, cause: Cause<'_>) -> Next {
    if attempt.made > policy.attempts {
        return Next::Done;
    }
    let retry_after = match cause {
        Cause::Status { status, retry_after } if policy.statuses.contains(&status) => retry_after,
        Cause::Status { .. } => return Next::Done,
        Cause::Error(error) if is_retryable(error) => None,
        Cause::Error(_) => return Next::Done,
    };
    let ceiling = policy
        .base_delay
        .saturating_mul(1u32.checked_shl(attempt.made.saturating_sub(1)).unwrap_or(u32::MAX))
        .min(policy.max_delay);
    let jitter = match u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX) {
        0 => Duration::ZERO,
        max => Duration::from_micros(attempt.random % (max + 1)),
    };
    let delay = match retry_after.and_then(|value| parse_retry_after(value, attempt.wall_clock_secs)) {
        Some(asked) => asked.min(policy.max_delay),
        None => jitter,
    };
    let latest = [
        attempt.deadline,
        policy.max_time.and_then(|t| attempt.started.checked_add(t)),
    ]
    .into_iter()
    .flatten()
    .min();
    match (latest, attempt.now.checked_add(delay)) {
        (Some(latest), Some(start)) if start >= latest => Next::Done,
        (Some(_), None) => Next::Done,
        _ => Next::RetryAfter(delay),
    }
}

/// `Retry-After`: delay-seconds, or an HTTP-date (IMF-fixdate, as RFC 9110
/// §5.6.7 says senders use) relative to `now_secs`.
pub fn parse_retry_after(value: &str, now_secs: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let mut words = value.split_whitespace();
    let (_, day, month, year, time, zone) = (
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
    );
    if zone != "GMT" {
        return None;
    }
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let at = uploadtask_http1::date::unix_seconds(year, month, day, h, m, s)?;
    Some(Duration::from_secs(at.saturating_sub(now_secs)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cause_of_an_outcome() {
        let error = UploadError::new(ErrorKind::Network, "reset");
        let header = |name: &str| (name == "retry-after").then_some("7");
        assert!(matches!(
            Cause::of(Ok(503), header),
            Cause::Status {
                status: 503,
                retry_after: Some("7")
            }
        ));
        assert!(matches!(
            Cause::of(Ok(200), |_| None),
            Cause::Status {
                status: 200,
                retry_after: None
            }
        ));
        assert!(matches!(Cause::of(Err(&error), header), Cause::Error(e) if e.message == "reset"));
    }

    use super::*;

    fn attempt(made: u32, random: u64) -> Attempt {
        let now = Instant::now();
        Attempt {
            made,
            deadline: None,
            started: now,
            now,
            wall_clock_secs: 784_111_777, // Sun, 06 Nov 1994 08:49:37 GMT
            random,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn causes_table() {
        let p = policy();
        let retried = |cause: Cause<'_>| matches!(decide(&p, &attempt(1, 7), cause), Next::RetryAfter(_));
        for status in [408, 429, 502, 503, 504] {
            assert!(
                retried(Cause::Status {
                    status,
                    retry_after: None
                }),
                "{status}"
            );
        }
        for status in [200, 201, 301, 400, 401, 404, 409, 413, 500, 501] {
            assert!(
                !retried(Cause::Status {
                    status,
                    retry_after: None
                }),
                "{status}"
            );
        }
        let error = |kind, message: &str| UploadError::new(kind, message);
        for e in [
            error(ErrorKind::Network, "connect failed: refused"),
            error(ErrorKind::Network, "connection reset after 10 body bytes"),
            error(ErrorKind::Timeout, "idle timeout: no byte moved for 30000 ms"),
            error(ErrorKind::Timeout, "connect timeout after 30000 ms"),
        ] {
            assert!(retried(Cause::Error(&e)), "{e}");
        }
        for e in [
            error(ErrorKind::Timeout, "timeout"),
            error(ErrorKind::Tls, "TLS certificate problem"),
            error(ErrorKind::Protocol, "response head too large"),
            error(ErrorKind::File, "file not found"),
            error(ErrorKind::Aborted, "abort"),
            error(ErrorKind::InvalidArgument, "bad url"),
        ] {
            assert!(!retried(Cause::Error(&e)), "{e}");
        }
    }

    #[test]
    fn attempts_backoff_and_jitter() {
        let p = policy();
        let reset = UploadError::new(ErrorKind::Network, "reset");
        // Full jitter below a doubling ceiling: 250 ms, 500 ms, 1 s.
        for (made, ceiling_ms) in [(1u32, 250u64), (2, 500), (3, 1000)] {
            let top = decide(&p, &attempt(made, u64::MAX), Cause::Error(&reset));
            let Next::RetryAfter(delay) = top else { panic!() };
            assert!(delay <= Duration::from_millis(ceiling_ms), "{made}: {delay:?}");
            assert_eq!(
                decide(&p, &attempt(made, 0), Cause::Error(&reset)),
                Next::RetryAfter(Duration::ZERO)
            );
        }
        assert_eq!(
            decide(&p, &attempt(4, 1), Cause::Error(&reset)),
            Next::Done,
            "attempts used up"
        );
        let capped = RetryPolicy {
            attempts: 40,
            max_delay: Duration::from_secs(2),
            ..p.clone()
        };
        let Next::RetryAfter(delay) = decide(&capped, &attempt(39, u64::MAX - 1), Cause::Error(&reset)) else {
            panic!()
        };
        assert!(delay <= Duration::from_secs(2));
        assert_eq!(
            decide(&RetryPolicy::default(), &attempt(1, 1), Cause::Error(&reset)),
            Next::Done,
            "off by default"
        );
    }

    #[test]
    fn retry_after_and_the_deadline() {
        let p = policy();
        let busy = |value| Cause::Status {
            status: 503,
            retry_after: Some(value),
        };
        assert_eq!(
            decide(&p, &attempt(1, 9), busy("3")),
            Next::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            decide(&p, &attempt(1, 9), busy("Sun, 06 Nov 1994 08:49:42 GMT")),
            Next::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            decide(&p, &attempt(1, 9), busy("Sun, 06 Nov 1994 08:00:00 GMT")),
            Next::RetryAfter(Duration::ZERO)
        );
        assert_eq!(
            decide(&p, &attempt(1, 9), busy("3600")),
            Next::RetryAfter(Duration::from_secs(30)),
            "capped"
        );
        // Garbage: the jittered delay.
        assert!(matches!(decide(&p, &attempt(1, 9), busy("soon")), Next::RetryAfter(d) if d < Duration::from_secs(1)));
        // A retry that cannot start before the overall deadline is not made.
        let mut late = attempt(1, 9);
        late.deadline = Some(late.now + Duration::from_secs(1));
        assert_eq!(decide(&p, &late, busy("2")), Next::Done);
        assert!(matches!(decide(&p, &late, busy("0")), Next::RetryAfter(_)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 UTC", 0), None);
        // max_time: no retry starts later than that after the submission.
        let bounded = RetryPolicy {
            max_time: Some(Duration::from_secs(1)),
            ..p.clone()
        };
        assert_eq!(decide(&bounded, &attempt(1, 9), busy("2")), Next::Done);
        assert!(matches!(
            decide(&bounded, &attempt(1, 9), busy("0")),
            Next::RetryAfter(_)
        ));
    }
}
