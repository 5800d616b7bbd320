//! One upload's life around its exchange, with no I/O: which address to
//! connect to next, whether TLS comes first, when it times out, and whether
//! a failure on a reused connection is tried again. The driver performs the
//! [`Action`]s it returns and reports back through `handle_*`; `now` is
//! passed in.
//!
//! ```text
//!  Queued ──handle_start(pooled)───────────────────────────────────────────────► Exchanging
//!     └────handle_start(no pooled)──► Resolving ──handle_resolved──► Connecting (a race)
//!  Resolving, Connecting ──connect timeout (the lookup and the race, as curl)──► fail (timeout)
//!  Connecting ──handle_connected (the winner)──► Handshaking (https) ──handle_handshake_done──► Exchanging
//!       │                 └───────────────────────── (http) ──────────────────► Exchanging
//!       └─ handle_connect_failed, attempt delay ──► Connect(next address) | Wait | fail
//!          (Happy Eyeballs: crate::proto::race; attempts under way go on)
//!  Exchanging ──handle_exchange_failed: reused connection, no response byte,
//!               first time (crate::proto::reuse::may_resend)──► Resolving
//!  any phase ──overall deadline; idle or too slow (Handshaking, Exchanging) ──► fail (timeout)
//! ```
//!
//! Deadlines are `now + duration` saturated: a duration too long for
//! `Instant` (such as `Duration::MAX`) means no deadline.
//!
//! The resend rule is [`crate::proto::reuse`]'s: a request that failed on a reused
//! connection before any response byte is sent once more on a new one.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use uploadtask_engine::proto::upload::{Action, Upload};
//!
//! let now = Instant::now();
//! let mut upload = Upload::new(None, Duration::from_secs(30), Duration::from_secs(30), now);
//! assert_eq!(upload.handle_start("example.com", true, false, now), Action::Resolve);
//! let addrs = vec!["192.0.2.1:443".parse().unwrap(), "192.0.2.2:443".parse().unwrap()];
//! assert_eq!(upload.handle_resolved(Ok(addrs), now), Action::Connect("192.0.2.1:443".parse().unwrap()));
//! let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//! assert_eq!(
//!     upload.handle_connect_failed("192.0.2.1:443".parse().unwrap(), refused, now),
//!     Action::Connect("192.0.2.2:443".parse().unwrap())
//! );
//! assert_eq!(upload.handle_connected(now), Action::StartTls);
//! assert_eq!(upload.handle_handshake_done(now), Action::Exchange);
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, UploadError};
use crate::proto::exchange::ExchangeError;

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a place among the uploads in flight.
    Queued,
    /// Waiting for the resolver.
    Resolving,
    /// A TCP connect is under way.
    Connecting,
    /// A `CONNECT` tunnel through a proxy is being opened.
    Tunneling,
    /// The TLS handshake is under way.
    Handshaking,
    /// Sending the request and reading the response.
    Exchanging,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Queued => "queued",
            Phase::Resolving => "resolving",
            Phase::Connecting => "connecting",
            Phase::Tunneling => "tunneling",
            Phase::Handshaking => "handshaking",
            Phase::Exchanging => "exchanging",
        })
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Resolve the host (again, for a retry: the exchange starts over).
    Resolve,
    /// Start a connect to this address; attempts under way go on (Happy
    /// Eyeballs, [`crate::proto::race`]).
    Connect(SocketAddr),
    /// Nothing now: connect attempts are under way.
    Wait,
    /// Open a `CONNECT` tunnel through the proxy on the connection.
    Tunnel,
    /// Start the TLS handshake on the connection.
    StartTls,
    /// Run the exchange on the connection.
    Exchange,
    /// End the upload with this error.
    Fail(UploadError),
}

/// `now + duration`, or `None` (never) when that is past what `Instant`
/// can hold.
pub fn deadline_after(now: Instant, duration: Duration) -> Option<Instant> {
    now.checked_add(duration)
}

/// Timing settings of an upload's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The name lookup and the race to connect, together.
    pub connect_timeout: Duration,
    /// Between connect attempts to the next address (Happy Eyeballs).
    pub attempt_delay: Duration,
    /// No byte moved in either direction for this long fails the upload.
    pub idle_timeout: Duration,
    /// Bytes per second below which the upload is too slow (0: off).
    pub low_speed_limit: u64,
    /// The window over which the speed is averaged.
    pub low_speed_time: Duration,
}

impl Timing {
    /// The given connect and idle timeouts, no low-speed limit.
    #[cfg(any(test, feature = "testing"))]
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Timing {
            connect_timeout,
            attempt_delay: Duration::from_millis(250),
            idle_timeout,
            low_speed_limit: 0,
            low_speed_time: Duration::from_secs(30),
        }
    }
}

/// The life of one upload; see the module doc.
#[derive(Debug, Clone)]
pub struct Upload {
    phase: Phase,
    /// The host being reached (none before the start: nothing allocated).
    host: Option<Arc<str>>,
    tls: bool,
    /// The race to connect (Happy Eyeballs).
    race: crate::proto::race::Race,
    last_connect_error: Option<UploadError>,
    deadline: Option<Instant>,
    connect_deadline: Option<Instant>,
    /// Shared by an engine's uploads.
    timing: std::sync::Arc<Timing>,
    last_activity: Instant,
    /// Start of the current low-speed window and the bytes moved in it.
    window_start: Instant,
    window_bytes: u64,
    reused: bool,
    retried: bool,
    /// A `CONNECT` tunnel comes before TLS (https through a proxy).
    tunnel: bool,
    /// The overall timeout, in ms, for its message (0: not known).
    overall_ms: u64,
}

impl Upload {
    /// A queued upload whose overall deadline is `deadline`.
    #[cfg(any(test, feature = "testing"))]
    pub fn new(deadline: Option<Instant>, connect_timeout: Duration, idle_timeout: Duration, now: Instant) -> Self {
        Upload::with_timing(deadline, Timing::new(connect_timeout, idle_timeout), now)
    }

    /// A queued upload with these timing settings.
    #[cfg(any(test, feature = "testing"))]
    pub fn with_timing(deadline: Option<Instant>, timing: Timing, now: Instant) -> Self {
        Upload::with_shared_timing(deadline, std::sync::Arc::new(timing), now)
    }

    /// A queued upload with timing settings shared with other uploads (an
    /// engine's: no copy per upload).
    pub fn with_shared_timing(deadline: Option<Instant>, timing: std::sync::Arc<Timing>, now: Instant) -> Self {
        Upload {
            phase: Phase::Queued,
            host: None,
            tls: false,
            race: crate::proto::race::Race::default(),
            last_connect_error: None,
            deadline,
            connect_deadline: None,
            timing,
            last_activity: now,
            window_start: now,
            window_bytes: 0,
            reused: false,
            retried: false,
            tunnel: false,
            overall_ms: 0,
        }
    }

    /// The overall timeout the deadline came from, so that its failure
    /// says how long it was.
    pub fn set_overall_timeout(&mut self, timeout: Duration) {
        self.overall_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True when the exchange runs on a connection another upload used before.
    #[cfg(any(test, feature = "testing"))]
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// The overall deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Waiting before another attempt: no connect, idle or low-speed clock
    /// runs (only the overall deadline); `handle_start` begins the attempt.
    pub fn handle_wait(&mut self) {
        self.phase = Phase::Queued;
        self.connect_deadline = None;
    }

    /// Whether a `CONNECT` tunnel comes before TLS on new connections.
    pub fn set_tunnel(&mut self, tunnel: bool) {
        self.tunnel = tunnel;
    }

    /// The host being reached, for messages.
    fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("")
    }

    /// The upload leaves the queue for `host`; `pooled` says whether an idle
    /// connection to its origin was taken.
    pub fn handle_start(&mut self, host: impl Into<Arc<str>>, tls: bool, pooled: bool, now: Instant) -> Action {
        self.host = Some(host.into());
        self.tls = tls;
        // Also the start of a redirect hop: nothing of the last one counts.
        self.reused = false;
        self.retried = false;
        self.race = crate::proto::race::Race::default();
        self.last_connect_error = None;
        if pooled {
            self.reused = true;
            self.enter_transfer(Phase::Exchanging, now);
            Action::Exchange
        } else {
            self.resolve(now)
        }
    }

    fn resolve(&mut self, now: Instant) -> Action {
        self.phase = Phase::Resolving;
        self.connect_deadline = deadline_after(now, self.timing.connect_timeout);
        Action::Resolve
    }

    /// Enters a phase where bytes move: idle and low-speed clocks start now.
    fn enter_transfer(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.connect_deadline = None;
        self.last_activity = now;
        self.window_start = now;
        self.window_bytes = 0;
    }

    /// The resolver answered.
    pub fn handle_resolved(&mut self, result: io::Result<Vec<SocketAddr>>, now: Instant) -> Action {
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                let (race, step) = crate::proto::race::Race::new(addrs, self.timing.attempt_delay, now);
                self.race = race;
                self.phase = Phase::Connecting;
                self.race_step(step)
            }
            Ok(_) => Action::Fail(UploadError::new(
                ErrorKind::Network,
                format!("no address for {}", self.host()),
            )),
            Err(e) => Action::Fail(UploadError::new(
                ErrorKind::Network,
                format!("cannot resolve {}: {e}", self.host()),
            )),
        }
    }

    /// The connect to `addr` failed at once or later, whatever the error
    /// (refused, unreachable, no local address): the next address starts at
    /// once; with none left and none under way, the last error is the
    /// outcome, naming every address tried.
    pub fn handle_connect_failed(&mut self, addr: SocketAddr, error: io::Error, now: Instant) -> Action {
        self.last_connect_error = Some(UploadError::from_io(error, &format!("connect to {addr} failed")));
        let step = self.race.handle_failed(self.timing.attempt_delay, now);
        self.race_step(step)
    }

    fn race_step(&mut self, step: crate::proto::race::Step) -> Action {
        match step {
            crate::proto::race::Step::Connect(addr) => Action::Connect(addr),
            crate::proto::race::Step::Wait => Action::Wait,
            crate::proto::race::Step::Exhausted => Action::Fail(self.connect_failure()),
        }
    }

    /// The last connect error, naming every address tried when there were
    /// several.
    fn connect_failure(&mut self) -> UploadError {
        let last = self
            .last_connect_error
            .take()
            .unwrap_or_else(|| UploadError::new(ErrorKind::Network, "connect failed"));
        if self.race.tried().len() < 2 {
            return last;
        }
        let mut error = last;
        error.message = format!(
            "no address of {} answered (tried {}); last: {}",
            self.host(),
            list(self.race.tried()),
            error.message
        );
        error
    }

    /// The addresses a connect timeout cut short, in words.
    fn connect_timeout_failure(&self) -> UploadError {
        let millis = self.timing.connect_timeout.as_millis();
        let message = match self.race.tried() {
            [] => format!("connect timeout after {millis} ms"),
            [one] => format!("connect timeout: {one} did not answer in {millis} ms"),
            tried => format!(
                "connect timeout: no address of {} answered in {millis} ms (tried {})",
                self.host(),
                list(tried)
            ),
        };
        UploadError::new(ErrorKind::Timeout, message)
    }

    /// `addr` connected and won the race: which addresses lost, for the
    /// trace (`None` when it was the only one tried).
    pub fn handle_race_won(&mut self, addr: SocketAddr) -> Option<Vec<SocketAddr>> {
        self.race.handle_won(addr)
    }

    /// The delay between connect attempts.
    pub fn attempt_delay(&self) -> Duration {
        self.timing.attempt_delay
    }

    /// The TCP connection is up (the race's winner: see
    /// [`Upload::handle_race_won`]).
    pub fn handle_connected(&mut self, now: Instant) -> Action {
        if self.tunnel {
            self.enter_transfer(Phase::Tunneling, now);
            return Action::Tunnel;
        }
        self.after_tunnel(now)
    }

    /// The proxy opened the tunnel: TLS to the origin next (or the exchange).
    pub fn handle_tunnel_open(&mut self, now: Instant) -> Action {
        self.after_tunnel(now)
    }

    fn after_tunnel(&mut self, now: Instant) -> Action {
        if self.tls {
            self.enter_transfer(Phase::Handshaking, now);
            Action::StartTls
        } else {
            self.enter_transfer(Phase::Exchanging, now);
            Action::Exchange
        }
    }

    /// The TLS handshake finished.
    pub fn handle_handshake_done(&mut self, now: Instant) -> Action {
        self.last_activity = now;
        self.phase = Phase::Exchanging;
        Action::Exchange
    }

    /// `bytes` moved in either direction (0 for handshake progress).
    pub fn handle_activity(&mut self, now: Instant, bytes: u64) {
        self.last_activity = now;
        self.window_bytes = self.window_bytes.saturating_add(bytes);
    }

    /// The exchange failed. A request that failed on a reused connection
    /// before any response byte is sent again once on a new connection as
    /// `resend` allows ([`crate::proto::reuse::may_resend`]); then the driver
    /// counts a resend. Otherwise the error is classified for the caller.
    pub fn handle_exchange_failed(
        &mut self,
        error: ExchangeError,
        response_started: bool,
        whole_body_accepted: bool,
        resend: crate::proto::reuse::Resend,
        now: Instant,
    ) -> Action {
        let transport = matches!(
            error,
            ExchangeError::Io { .. } | ExchangeError::ClosedBeforeResponse { .. }
        );
        let failure = crate::proto::reuse::Failure {
            reused: self.reused,
            response_started,
            whole_body_accepted,
            transport,
            resent: self.retried,
        };
        if crate::proto::reuse::may_resend(failure, resend) {
            self.retried = true;
            self.reused = false;
            return self.resolve(now);
        }
        let kind = match &error {
            ExchangeError::Io {
                kind: io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof,
                ..
            } if self.tls => ErrorKind::Tls,
            ExchangeError::Io { .. }
            | ExchangeError::ClosedBeforeResponse { .. }
            | ExchangeError::ClosedWhileSending { .. } => ErrorKind::Network,
            _ => ErrorKind::Protocol,
        };
        let source = error.shared_source();
        Action::Fail(UploadError::new(kind, error.to_string()).with_shared_source(source))
    }

    /// The earliest moment [`Upload::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transfer = matches!(self.phase, Phase::Tunneling | Phase::Handshaking | Phase::Exchanging);
        let idle = transfer
            .then(|| deadline_after(self.last_activity, self.timing.idle_timeout))
            .flatten();
        let slow = (transfer && self.timing.low_speed_limit > 0)
            .then(|| deadline_after(self.window_start, self.timing.low_speed_time))
            .flatten();
        let next_attempt = (self.phase == Phase::Connecting)
            .then(|| self.race.poll_timeout())
            .flatten();
        [self.deadline, self.connect_deadline, idle, slow, next_attempt]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: fails on the overall, connect (the lookup and the whole
    /// race), idle or low-speed deadline; starts the next connect attempt
    /// when it is due. `None` when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Action> {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        let timeout = |message: String| Some(Action::Fail(UploadError::new(ErrorKind::Timeout, message)));
        let millis = |d: Duration| d.as_millis();
        if due(self.deadline) {
            return timeout(match self.overall_ms {
                0 => format!("timeout: the overall deadline passed while {}", self.phase),
                ms => format!("timeout: the overall timeout of {ms} ms passed while {}", self.phase),
            });
        }
        match self.phase {
            Phase::Resolving if due(self.connect_deadline) => timeout(format!(
                "connect timeout after {} ms: still resolving {}",
                millis(self.timing.connect_timeout),
                self.host()
            )),
            Phase::Connecting if due(self.connect_deadline) => Some(Action::Fail(self.connect_timeout_failure())),
            Phase::Connecting => {
                let step = self.race.handle_timeout(self.timing.attempt_delay, now)?;
                Some(self.race_step(step))
            }
            Phase::Tunneling | Phase::Handshaking | Phase::Exchanging => {
                if due(deadline_after(self.last_activity, self.timing.idle_timeout)) {
                    let message = format!(
                        "idle timeout: no byte moved for {} ms",
                        millis(self.timing.idle_timeout)
                    );
                    return timeout(message);
                }
                let window = self.timing.low_speed_time;
                if self.timing.low_speed_limit == 0 || !due(deadline_after(self.window_start, window)) {
                    return None;
                }
                let wanted = u128::from(self.timing.low_speed_limit) * window.as_millis() / 1000;
                if u128::from(self.window_bytes) < wanted {
                    return timeout(format!(
                        "transfer too slow: {} bytes in {} ms, below the limit of {} bytes/s",
                        self.window_bytes,
                        millis(window),
                        self.timing.low_speed_limit
                    ));
                }
                self.window_start = now;
                self.window_bytes = 0;
                None
            }
            _ => None,
        }
    }
}

/// Addresses in words: `a, b, c`.
fn list(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 80))
    }

    fn upload(now: Instant) -> Upload {
        Upload::new(Some(now + 100 * SECOND), 5 * SECOND, 10 * SECOND, now)
    }

    #[test]
    fn addresses_in_order_then_the_last_error() {
        let t = Instant::now();
        let mut u = upload(t);
        assert_eq!(u.handle_start("h", false, false, t), Action::Resolve);
        assert_eq!(
            u.handle_resolved(Ok(vec![addr(1), addr(2)]), t),
            Action::Connect(addr(1))
        );
        let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(u.handle_connect_failed(addr(1), refused(), t), Action::Connect(addr(2)));
        let Action::Fail(e) = u.handle_connect_failed(addr(2), refused(), t) else {
            panic!()
        };
        assert_eq!((e.kind, e.code()), (ErrorKind::Network, 1000));
        assert_eq!(
            e.message,
            "no address of h answered (tried 192.0.2.1:80, 192.0.2.2:80); \
             last: connect to 192.0.2.2:80 failed: connection refused"
        );
    }

    #[test]
    fn attempts_race_inside_one_connect_timeout() {
        let t = Instant::now();
        let ms = Duration::from_millis(1);
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1), addr(2)]), t);
        // The next address starts after the attempt delay; the first goes on.
        assert_eq!(u.poll_timeout(), Some(t + 250 * ms));
        assert_eq!(u.handle_timeout(t + 249 * ms), None);
        assert_eq!(u.handle_timeout(t + 250 * ms), Some(Action::Connect(addr(2))));
        assert_eq!(u.poll_timeout(), Some(t + 5 * SECOND), "then only the connect timeout");
        // One of two attempts fails: wait for the other.
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(u.handle_connect_failed(addr(1), refused, t + SECOND), Action::Wait);
        let Some(Action::Fail(e)) = u.handle_timeout(t + 5 * SECOND) else {
            panic!()
        };
        assert_eq!(
            (e.code(), e.message.as_str()),
            (
                204,
                "connect timeout: no address of h answered in 5000 ms (tried 192.0.2.1:80, 192.0.2.2:80)"
            )
        );
        // The winner names the losers; one address alone names none.
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1), addr(2)]), t);
        let _ = u.handle_timeout(t + 250 * ms);
        assert_eq!(u.handle_race_won(addr(2)), Some(vec![addr(1)]));
        assert_eq!(u.handle_connected(t + 300 * ms), Action::Exchange);
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1)]), t);
        let Some(Action::Fail(e)) = u.handle_timeout(t + 5 * SECOND) else {
            panic!()
        };
        assert_eq!(e.message, "connect timeout: 192.0.2.1:80 did not answer in 5000 ms");
    }

    #[test]
    fn any_connect_error_moves_on_and_the_last_one_decides() {
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1), addr(2), addr(3)]), t);
        let no_local_address = io::Error::from_raw_os_error(rustix::io::Errno::ADDRNOTAVAIL.raw_os_error());
        assert_eq!(
            u.handle_connect_failed(addr(1), no_local_address, t),
            Action::Connect(addr(2))
        );
        let unreachable = io::Error::from_raw_os_error(rustix::io::Errno::NETUNREACH.raw_os_error());
        assert_eq!(
            u.handle_connect_failed(addr(2), unreachable, t),
            Action::Connect(addr(3))
        );
        let emfile = io::Error::from_raw_os_error(24);
        let Action::Fail(e) = u.handle_connect_failed(addr(3), emfile, t) else {
            panic!()
        };
        assert_eq!((e.kind, e.code()), (ErrorKind::ResourceExhausted, 200));
        assert_eq!(
            e.io_error().and_then(io::Error::raw_os_error),
            Some(24),
            "the io::Error is the source"
        );
    }

    #[test]
    fn durations_too_long_for_instant_mean_no_deadline() {
        let t = Instant::now();
        let timing = Timing {
            low_speed_limit: 1,
            low_speed_time: Duration::MAX,
            ..Timing::new(Duration::MAX, Duration::MAX)
        };
        let mut u = Upload::with_timing(deadline_after(t, Duration::MAX), timing, t);
        assert_eq!(u.handle_start("h", false, false, t), Action::Resolve);
        assert_eq!(u.poll_timeout(), None);
        let _ = u.handle_resolved(Ok(vec![addr(1)]), t);
        assert_eq!(u.handle_connected(t), Action::Exchange);
        assert_eq!(u.poll_timeout(), None);
        assert_eq!(u.handle_timeout(t + 1000 * SECOND), None);
    }

    #[test]
    fn a_lookup_that_never_answers_times_out() {
        let t = Instant::now();
        let mut u = upload(t);
        assert_eq!(u.handle_start("slow.example", false, false, t), Action::Resolve);
        assert_eq!(u.poll_timeout(), Some(t + 5 * SECOND));
        let Some(Action::Fail(e)) = u.handle_timeout(t + 5 * SECOND) else {
            panic!()
        };
        assert_eq!(e.code(), 204);
        assert_eq!(e.message, "connect timeout after 5000 ms: still resolving slow.example");
    }

    #[test]
    fn a_trickle_below_the_low_speed_limit_fails() {
        let t = Instant::now();
        let timing = Timing {
            low_speed_limit: 10,
            low_speed_time: 3 * SECOND,
            ..Timing::new(5 * SECOND, 10 * SECOND)
        };
        let mut u = Upload::with_timing(None, timing, t);
        let _ = u.handle_start("h", false, true, t);
        // 40 bytes in the first 3 s: fast enough, a new window starts.
        u.handle_activity(t + SECOND, 40);
        assert_eq!(u.poll_timeout(), Some(t + 3 * SECOND));
        assert_eq!(u.handle_timeout(t + 3 * SECOND), None);
        // One byte every second (never idle): 3 bytes in 3 s is too slow.
        for s in 4..=6 {
            u.handle_activity(t + s * SECOND, 1);
        }
        let Some(Action::Fail(e)) = u.handle_timeout(t + 6 * SECOND) else {
            panic!()
        };
        assert_eq!(e.code(), 204);
        assert!(e.message.starts_with("transfer too slow: 3 bytes in 3000 ms"), "{e}");
    }

    #[test]
    fn tls_handshake_then_idle_and_overall_deadlines() {
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("h", true, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1)]), t);
        assert_eq!(u.handle_connected(t), Action::StartTls);
        assert_eq!(u.phase(), Phase::Handshaking);
        assert_eq!(u.poll_timeout(), Some(t + 10 * SECOND));
        assert_eq!(u.handle_handshake_done(t + SECOND), Action::Exchange);
        u.handle_activity(t + 5 * SECOND, 1);
        assert_eq!(u.handle_timeout(t + 14 * SECOND), None);
        let Some(Action::Fail(e)) = u.handle_timeout(t + 15 * SECOND) else {
            panic!()
        };
        assert!(e.message.starts_with("idle timeout"));
        let Some(Action::Fail(e)) = u.handle_timeout(t + 100 * SECOND) else {
            panic!()
        };
        assert_eq!(
            (e.code(), e.message.as_str()),
            (204, "timeout: the overall deadline passed while exchanging")
        );
        u.set_overall_timeout(Duration::from_secs(100));
        let Some(Action::Fail(e)) = u.handle_timeout(t + 100 * SECOND) else {
            panic!()
        };
        assert_eq!(
            e.message,
            "timeout: the overall timeout of 100000 ms passed while exchanging"
        );
    }

    #[test]
    fn resolver_errors_name_the_host() {
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("nowhere.invalid", false, false, t);
        let failure = io::Error::new(io::ErrorKind::NotFound, "no such host");
        let Action::Fail(e) = u.handle_resolved(Err(failure), t) else {
            panic!()
        };
        assert_eq!(e.message, "cannot resolve nowhere.invalid: no such host");
        assert_eq!(
            u.handle_timeout(t + 4 * SECOND),
            None,
            "only the connect timeout runs while resolving"
        );
    }

    #[test]
    fn a_stale_pooled_connection_is_resent_once() {
        use crate::proto::reuse::Resend;
        let t = Instant::now();
        let reset = || ExchangeError::Io {
            kind: io::ErrorKind::ConnectionReset,
            message: "reset".into(),
            body_bytes_sent: 0,
            source: Default::default(),
        };
        // Resent once on a new connection, also with the whole body accepted
        // (the rule on); a failure of the new connection is the outcome.
        let mut u = upload(t);
        assert_eq!(u.handle_start("h", false, true, t), Action::Exchange);
        assert!(u.is_reused());
        assert_eq!(
            u.handle_exchange_failed(reset(), false, true, Resend::Always, t),
            Action::Resolve
        );
        assert!(!u.is_reused());
        let _ = u.handle_resolved(Ok(vec![addr(1)]), t);
        assert_eq!(u.handle_connected(t), Action::Exchange);
        let Action::Fail(e) = u.handle_exchange_failed(reset(), false, false, Resend::Always, t) else {
            panic!()
        };
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Network, "connection reset after 0 body bytes")
        );
        // A new hop (a redirect) may resend once again.
        assert_eq!(u.handle_start("h", false, true, t), Action::Exchange);
        assert_eq!(
            u.handle_exchange_failed(reset(), false, true, Resend::Always, t),
            Action::Resolve
        );
        // Not resent once the response started, nor for protocol errors; with
        // the rule off, not once the whole body was accepted.
        let fails = |started: bool, accepted: bool, rule: Resend, error: ExchangeError| {
            let mut u = upload(t);
            let _ = u.handle_start("h", false, true, t);
            match u.handle_exchange_failed(error, started, accepted, rule, t) {
                Action::Fail(e) => Some(e.kind),
                _ => None,
            }
        };
        assert_eq!(fails(true, false, Resend::Always, reset()), Some(ErrorKind::Network));
        assert_eq!(
            fails(false, true, Resend::IfNotWhole, reset()),
            Some(ErrorKind::Network)
        );
        assert_eq!(fails(false, false, Resend::Never, reset()), Some(ErrorKind::Network));
        assert_eq!(fails(false, false, Resend::IfNotWhole, reset()), None);
        let protocol = || ExchangeError::Head(uploadtask_http1::ResponseError::InvalidVersion);
        assert_eq!(
            fails(false, false, Resend::Always, protocol()),
            Some(ErrorKind::Protocol)
        );
        // A new connection's failure is never resent.
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1)]), t);
        let _ = u.handle_connected(t);
        assert!(matches!(
            u.handle_exchange_failed(reset(), false, true, Resend::Always, t),
            Action::Fail(_)
        ));
    }

    #[test]
    fn tls_stream_errors_are_tls() {
        use crate::proto::reuse::Resend;
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("h", true, false, t);
        let eof = ExchangeError::Io {
            kind: io::ErrorKind::UnexpectedEof,
            message: "eof".into(),
            body_bytes_sent: 3,
            source: Default::default(),
        };
        let Action::Fail(e) = u.handle_exchange_failed(eof, true, false, Resend::Always, t) else {
            panic!()
        };
        assert_eq!((e.kind, e.code()), (ErrorKind::Tls, 1000));
    }
}
