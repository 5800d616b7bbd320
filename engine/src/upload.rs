//! One upload's life around its exchange, with no I/O: which address to
//! connect to next, whether TLS comes first, when it times out, and whether
//! a failure on a reused connection is tried again. The driver performs the
//! [`Action`]s it returns and reports back through `handle_*`; `now` is
//! passed in.
//!
//! ```text
//!  Queued ──handle_start(pooled)───────────────────────────────────────────────► Exchanging
//!     └────handle_start(no pooled)──► Resolving ──handle_resolved──► Connecting(address i)
//!  Connecting ──handle_connected──► Handshaking (https) ──handle_handshake_done──► Exchanging
//!       │                 └───────────────────────── (http) ──────────────────► Exchanging
//!       └─ handle_connect_failed, connect timeout ──► Connecting(address i+1) | fail
//!  Exchanging ──handle_exchange_failed: reused connection, no response byte, first time──► Resolving
//!  any phase ──overall deadline; idle (Handshaking, Exchanging) ──► fail (timeout)
//! ```
//!
//! ```
//! use std::time::{Duration, Instant};
//! use uploadtask_engine::upload::{Action, Upload};
//!
//! let now = Instant::now();
//! let mut upload = Upload::new(None, Duration::from_secs(30), Duration::from_secs(30), now);
//! assert_eq!(upload.handle_start("example.com", true, false, now), Action::Resolve);
//! let addrs = vec!["192.0.2.1:443".parse().unwrap(), "192.0.2.2:443".parse().unwrap()];
//! assert_eq!(upload.handle_resolved(Ok(addrs), now), Action::Connect("192.0.2.1:443".parse().unwrap()));
//! let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//! assert_eq!(upload.handle_connect_failed(&refused, now), Action::Connect("192.0.2.2:443".parse().unwrap()));
//! assert_eq!(upload.handle_connected(now), Action::StartTls);
//! assert_eq!(upload.handle_handshake_done(now), Action::Exchange);
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::exchange::ExchangeError;
use crate::{ErrorKind, UploadError};

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a place among the uploads in flight.
    Queued,
    /// Waiting for the resolver.
    Resolving,
    /// A TCP connect is under way.
    Connecting,
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
    /// Close any connection of this upload and connect to this address.
    Connect(SocketAddr),
    /// Start the TLS handshake on the connection.
    StartTls,
    /// Run the exchange on the connection.
    Exchange,
    /// End the upload with this error.
    Fail(UploadError),
}

/// The life of one upload; see the module doc.
#[derive(Debug, Clone)]
pub struct Upload {
    phase: Phase,
    host: String,
    tls: bool,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    last_connect_error: Option<UploadError>,
    deadline: Option<Instant>,
    connect_deadline: Option<Instant>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    last_activity: Instant,
    reused: bool,
    retried: bool,
}

impl Upload {
    /// A queued upload whose overall deadline is `deadline`.
    pub fn new(deadline: Option<Instant>, connect_timeout: Duration, idle_timeout: Duration, now: Instant) -> Self {
        Upload {
            phase: Phase::Queued,
            host: String::new(),
            tls: false,
            addrs: Vec::new(),
            next_addr: 0,
            last_connect_error: None,
            deadline,
            connect_deadline: None,
            connect_timeout,
            idle_timeout,
            last_activity: now,
            reused: false,
            retried: false,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// True when the exchange runs on a connection another upload used before.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// The upload leaves the queue for `host`; `pooled` says whether an idle
    /// connection to its origin was taken.
    pub fn handle_start(&mut self, host: &str, tls: bool, pooled: bool, now: Instant) -> Action {
        self.host = host.to_string();
        self.tls = tls;
        self.last_activity = now;
        if pooled {
            self.reused = true;
            self.phase = Phase::Exchanging;
            Action::Exchange
        } else {
            self.phase = Phase::Resolving;
            Action::Resolve
        }
    }

    /// The resolver answered.
    pub fn handle_resolved(&mut self, result: io::Result<Vec<SocketAddr>>, now: Instant) -> Action {
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                self.addrs = addrs;
                self.next_addr = 0;
                self.connect_next(now)
            }
            Ok(_) => Action::Fail(UploadError::new(
                ErrorKind::Network,
                format!("no address for {}", self.host),
            )),
            Err(e) => Action::Fail(UploadError::new(
                ErrorKind::Network,
                format!("cannot resolve {}: {e}", self.host),
            )),
        }
    }

    /// A connect failed at once or later; the next address is tried. Out of
    /// descriptors or ports ends the upload at once.
    pub fn handle_connect_failed(&mut self, error: &io::Error, now: Instant) -> Action {
        let error = UploadError::from_io(error, "connect failed");
        if error.kind == ErrorKind::ResourceExhausted {
            return Action::Fail(error);
        }
        self.last_connect_error = Some(error);
        self.connect_next(now)
    }

    fn connect_next(&mut self, now: Instant) -> Action {
        match self.addrs.get(self.next_addr) {
            Some(&addr) => {
                self.next_addr += 1;
                self.phase = Phase::Connecting;
                self.connect_deadline = Some(now + self.connect_timeout);
                Action::Connect(addr)
            }
            None => Action::Fail(
                self.last_connect_error
                    .take()
                    .unwrap_or_else(|| UploadError::new(ErrorKind::Network, "connect failed")),
            ),
        }
    }

    /// The TCP connection is up.
    pub fn handle_connected(&mut self, now: Instant) -> Action {
        self.connect_deadline = None;
        self.last_activity = now;
        if self.tls {
            self.phase = Phase::Handshaking;
            Action::StartTls
        } else {
            self.phase = Phase::Exchanging;
            Action::Exchange
        }
    }

    /// The TLS handshake finished.
    pub fn handle_handshake_done(&mut self, now: Instant) -> Action {
        self.last_activity = now;
        self.phase = Phase::Exchanging;
        Action::Exchange
    }

    /// Bytes moved in either direction.
    pub fn handle_activity(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// The exchange failed. A reused connection that failed before any
    /// response byte was probably closed by the server while idle: the
    /// upload starts over once on a fresh connection. Otherwise the error is
    /// classified for the caller.
    pub fn handle_exchange_failed(&mut self, error: ExchangeError, response_started: bool) -> Action {
        let transport_error = matches!(
            error,
            ExchangeError::Io { .. } | ExchangeError::ClosedBeforeResponse { .. }
        );
        if self.reused && !self.retried && !response_started && transport_error {
            self.retried = true;
            self.reused = false;
            self.phase = Phase::Resolving;
            return Action::Resolve;
        }
        let kind = match &error {
            ExchangeError::Io {
                kind: io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof,
                ..
            } if self.tls => ErrorKind::Tls,
            ExchangeError::Io { .. } | ExchangeError::ClosedBeforeResponse { .. } => ErrorKind::Network,
            _ => ErrorKind::Protocol,
        };
        Action::Fail(UploadError::new(kind, error.to_string()))
    }

    /// The earliest moment [`Upload::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = match self.phase {
            Phase::Handshaking | Phase::Exchanging => Some(self.last_activity + self.idle_timeout),
            _ => None,
        };
        [self.deadline, self.connect_deadline, idle].into_iter().flatten().min()
    }

    /// Time passed: fails on the overall or idle deadline, moves to the next
    /// address on a connect timeout. `None` when nothing is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Action> {
        if self.deadline.is_some_and(|d| d <= now) {
            return Some(Action::Fail(UploadError::new(ErrorKind::Timeout, "timeout")));
        }
        if self.phase == Phase::Connecting && self.connect_deadline.is_some_and(|d| d <= now) {
            let message = format!("connect timeout after {} ms", self.connect_timeout.as_millis());
            self.last_connect_error = Some(UploadError::new(ErrorKind::Timeout, message));
            return Some(self.connect_next(now));
        }
        let idle = matches!(self.phase, Phase::Handshaking | Phase::Exchanging);
        if idle && self.last_activity + self.idle_timeout <= now {
            let message = format!("idle timeout: no byte moved for {} ms", self.idle_timeout.as_millis());
            return Some(Action::Fail(UploadError::new(ErrorKind::Timeout, message)));
        }
        None
    }
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
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(u.handle_connect_failed(&refused, t), Action::Connect(addr(2)));
        let Action::Fail(e) = u.handle_connect_failed(&refused, t) else {
            panic!()
        };
        assert_eq!((e.kind, e.code()), (ErrorKind::Network, 1000));
        assert!(e.message.starts_with("connect failed"), "{e}");
    }

    #[test]
    fn connect_timeout_moves_on_then_fails_as_timeout() {
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1), addr(2)]), t);
        assert_eq!(u.poll_timeout(), Some(t + 5 * SECOND));
        assert_eq!(u.handle_timeout(t + 4 * SECOND), None);
        assert_eq!(u.handle_timeout(t + 5 * SECOND), Some(Action::Connect(addr(2))));
        let Some(Action::Fail(e)) = u.handle_timeout(t + 10 * SECOND) else {
            panic!()
        };
        assert_eq!((e.code(), e.message.as_str()), (204, "connect timeout after 5000 ms"));
    }

    #[test]
    fn out_of_descriptors_fails_at_once() {
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("h", false, false, t);
        let _ = u.handle_resolved(Ok(vec![addr(1), addr(2)]), t);
        let emfile = io::Error::from_raw_os_error(24);
        let Action::Fail(e) = u.handle_connect_failed(&emfile, t) else {
            panic!()
        };
        assert_eq!((e.kind, e.code()), (ErrorKind::ResourceExhausted, 200));
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
        u.handle_activity(t + 5 * SECOND);
        assert_eq!(u.handle_timeout(t + 14 * SECOND), None);
        let Some(Action::Fail(e)) = u.handle_timeout(t + 15 * SECOND) else {
            panic!()
        };
        assert!(e.message.starts_with("idle timeout"));
        let Some(Action::Fail(e)) = u.handle_timeout(t + 100 * SECOND) else {
            panic!()
        };
        assert_eq!((e.code(), e.message.as_str()), (204, "timeout"));
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
            u.handle_timeout(t + 50 * SECOND),
            None,
            "no idle timeout while resolving"
        );
    }

    #[test]
    fn a_stale_pooled_connection_is_retried_once() {
        let t = Instant::now();
        let reset = || ExchangeError::Io {
            kind: io::ErrorKind::ConnectionReset,
            message: "reset".into(),
            body_bytes_sent: 0,
        };
        let mut u = upload(t);
        assert_eq!(u.handle_start("h", false, true, t), Action::Exchange);
        assert!(u.is_reused());
        assert_eq!(u.handle_exchange_failed(reset(), false), Action::Resolve);
        let _ = u.handle_resolved(Ok(vec![addr(1)]), t);
        assert_eq!(u.handle_connected(t), Action::Exchange);
        let Action::Fail(e) = u.handle_exchange_failed(reset(), false) else {
            panic!()
        };
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Network, "connection reset after 0 body bytes")
        );
        // Not retried once the response started, nor for protocol errors.
        let mut u = upload(t);
        let _ = u.handle_start("h", false, true, t);
        assert!(matches!(u.handle_exchange_failed(reset(), true), Action::Fail(_)));
        let mut u = upload(t);
        let _ = u.handle_start("h", false, true, t);
        let protocol = ExchangeError::Head(uploadtask_http1::ResponseError::InvalidVersion);
        let Action::Fail(e) = u.handle_exchange_failed(protocol, false) else {
            panic!()
        };
        assert_eq!(e.kind, ErrorKind::Protocol);
    }

    #[test]
    fn tls_stream_errors_are_tls() {
        let t = Instant::now();
        let mut u = upload(t);
        let _ = u.handle_start("h", true, false, t);
        let eof = ExchangeError::Io {
            kind: io::ErrorKind::UnexpectedEof,
            message: "eof".into(),
            body_bytes_sent: 3,
        };
        let Action::Fail(e) = u.handle_exchange_failed(eof, true) else {
            panic!()
        };
        assert_eq!((e.kind, e.code()), (ErrorKind::Tls, 1000));
    }
}
