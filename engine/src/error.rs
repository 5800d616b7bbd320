//! Errors a program can match on: a [`ErrorKind`] and the documented
//! numeric code beside a message that says what and where.

use std::fmt;

/// What went wrong, for matching. [`ErrorKind::code`] gives the documented
/// fail code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad argument: url, header, name, path. Code 202.
    InvalidArgument,
    /// The file: not found, unreadable, not a regular file, or changed size.
    /// Code 300.
    File,
    /// Connect, idle or overall timeout. Code 204.
    Timeout,
    /// DNS, refused, reset, closed early. Code 1000.
    Network,
    /// TLS failure (certificate, handshake, missing close_notify). Code 1000.
    Tls,
    /// A malformed or oversized response. Code 1000.
    Protocol,
    /// `abort()` was called, or the engine shut down. Code 1000.
    Aborted,
    /// Out of file descriptors or ports. Code 200.
    ResourceExhausted,
    /// A call that could never return where it was made (`wait()` on the
    /// engine thread). Code 200.
    WouldDeadlock,
    /// Anything else. Code 200.
    Internal,
}

impl ErrorKind {
    /// The documented fail code.
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::InvalidArgument => 202,
            ErrorKind::File => 300,
            ErrorKind::Timeout => 204,
            ErrorKind::Network | ErrorKind::Tls | ErrorKind::Protocol | ErrorKind::Aborted => 1000,
            ErrorKind::ResourceExhausted | ErrorKind::WouldDeadlock | ErrorKind::Internal => 200,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::File => "file error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Network => "network error",
            ErrorKind::Tls => "tls error",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Aborted => "aborted",
            ErrorKind::ResourceExhausted => "resources exhausted",
            ErrorKind::WouldDeadlock => "would deadlock",
            ErrorKind::Internal => "internal error",
        })
    }
}

/// Why a TLS connection was refused, for matching; see
/// [`UploadError::tls_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate chains to no trusted root.
    UnknownIssuer,
    /// The server's certificate (or one in its chain) has expired or is not
    /// valid yet.
    Expired,
    /// The certificate is not valid for the host name.
    NameMismatch,
    /// The certificate was revoked, malformed or of the wrong kind.
    BadCertificate,
    /// No common protocol version.
    ProtocolVersion,
    /// The handshake failed otherwise (alert from the peer, no common cipher).
    HandshakeFailure,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::UnknownIssuer => "unknown issuer",
            TlsFailure::Expired => "certificate expired or not yet valid",
            TlsFailure::NameMismatch => "certificate not valid for the host name",
            TlsFailure::BadCertificate => "bad certificate",
            TlsFailure::ProtocolVersion => "no common protocol version",
            TlsFailure::HandshakeFailure => "handshake failure",
        })
    }
}

/// Classifies a rustls error.
pub(crate) fn tls_failure_of(error: &rustls::Error) -> TlsFailure {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
    match error {
        E::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => TlsFailure::UnknownIssuer,
            // A self-signed `CA:TRUE` certificate presented as the server's
            // own: for the user, an untrusted self-signed certificate.
            Cert::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => TlsFailure::UnknownIssuer,
            Cert::Expired | Cert::ExpiredContext { .. } | Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                TlsFailure::Expired
            }
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            _ => TlsFailure::BadCertificate,
        },
        E::AlertReceived(Alert::ProtocolVersion) => TlsFailure::ProtocolVersion,
        E::PeerIncompatible(rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13) => TlsFailure::ProtocolVersion,
        _ => TlsFailure::HandshakeFailure,
    }
}

/// A sentence about a rustls error for people, in the manner of curl's.
pub(crate) fn describe_tls(error: &rustls::Error, host: &str) -> String {
    use rustls::Error as E;
    match (tls_failure_of(error), error) {
        (TlsFailure::UnknownIssuer, E::InvalidCertificate(rustls::CertificateError::Other(_))) => {
            format!(
                "TLS certificate problem: self-signed certificate for {host} (add it to the trusted roots to trust it)"
            )
        }
        (TlsFailure::UnknownIssuer, _) => {
            format!("TLS certificate problem: unable to get local issuer certificate for {host} (add its CA to the trusted roots)")
        }
        (TlsFailure::Expired, _) => {
            format!("TLS certificate problem: the certificate of {host} has expired or is not yet valid")
        }
        (TlsFailure::NameMismatch, _) => {
            format!("TLS certificate problem: the certificate is not valid for {host} (names are matched against subjectAltName only)")
        }
        (TlsFailure::ProtocolVersion, _) => format!("TLS handshake with {host} failed: no common protocol version"),
        (TlsFailure::BadCertificate, E::InvalidCertificate(cert)) => {
            format!("TLS certificate problem with {host}: {cert}")
        }
        (_, E::AlertReceived(alert)) => format!("TLS handshake with {host} failed: the server sent alert {alert:?}"),
        (_, other) => format!("TLS handshake with {host} failed: {other}"),
    }
}

/// What caused an [`UploadError`], kept for [`std::error::Error::source`].
pub type Source = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why an upload failed: a kind to match on, a message for people, and the
/// underlying error (an `io::Error`, a `rustls::Error`) as `source()`.
#[derive(Debug, Clone)]
pub struct UploadError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What and where, e.g. `invalid header value for "X-A"`.
    pub message: String,
    source: Option<Source>,
}

/// Two errors are equal when kind and message are; the source is not compared.
impl PartialEq for UploadError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for UploadError {}

impl UploadError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        UploadError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, with `source` as its cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The same error, with a shared `source`.
    pub fn with_shared_source(mut self, source: Option<Source>) -> Self {
        self.source = source;
        self
    }

    /// The source, shared (to carry it into a reworded error).
    pub fn shared_source(&self) -> Option<Source> {
        self.source.clone()
    }

    /// The documented fail code of this error.
    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// The underlying `io::Error`, if the failure came from one.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.source.as_deref().and_then(|e| e.downcast_ref::<std::io::Error>())
    }

    /// Why TLS failed, when it did: found in the `rustls::Error` among the
    /// sources.
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(error) = cause {
            if let Some(tls) = error.downcast_ref::<rustls::Error>() {
                return Some(tls_failure_of(tls));
            }
            cause = match error.downcast_ref::<std::io::Error>() {
                Some(io) => io.get_ref().map(|e| e as _),
                None => error.source(),
            };
        }
        None
    }

    /// Classifies an I/O error that happened at `what`; keeps it as the source.
    pub(crate) fn from_io(error: std::io::Error, what: &str) -> Self {
        let kind = if is_resource_exhausted(&error) {
            ErrorKind::ResourceExhausted
        } else {
            ErrorKind::Network
        };
        UploadError::new(kind, format!("{what}: {error}")).with_source(error)
    }
}

/// Out of descriptors, ports or buffers: not the peer's fault (code 200).
pub(crate) fn is_resource_exhausted(error: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(error.raw_os_error(), Some(code)
        if [Errno::MFILE, Errno::NFILE, Errno::ADDRNOTAVAIL, Errno::NOBUFS]
            .iter()
            .any(|e| e.raw_os_error() == code))
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
