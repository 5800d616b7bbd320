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
            ErrorKind::ResourceExhausted | ErrorKind::Internal => 200,
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
            ErrorKind::Internal => "internal error",
        })
    }
}

/// Why an upload failed: a kind to match on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What and where, e.g. `invalid header value for "X-A"`.
    pub message: String,
}

impl UploadError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        UploadError {
            kind,
            message: message.into(),
        }
    }

    /// The documented fail code of this error.
    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// Classifies an I/O error that happened at `what`.
    pub(crate) fn from_io(error: &std::io::Error, what: &str) -> Self {
        let kind = match error.raw_os_error() {
            Some(code)
                if code == rustix::io::Errno::MFILE.raw_os_error()
                    || code == rustix::io::Errno::NFILE.raw_os_error()
                    || code == rustix::io::Errno::ADDRNOTAVAIL.raw_os_error()
                    || code == rustix::io::Errno::NOBUFS.raw_os_error() =>
            {
                ErrorKind::ResourceExhausted
            }
            _ => ErrorKind::Network,
        };
        UploadError::new(kind, format!("{what}: {error}"))
    }
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UploadError {}
