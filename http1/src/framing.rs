//! How a response body is delimited, decided in one place ([`body_framing`]),
//! following RFC 9112 §6.3 for a response to a `POST`:
//!
//! 1. 1xx, 204 and 304 have no body.
//! 2. Transfer-Encoding on HTTP/1.1: chunked when its last coding is
//!    `chunked`, else close-delimited. With Content-Length too, chunked wins
//!    and the connection is not reused. `chunked` on HTTP/1.0 is refused.
//! 3. Content-Length: every value (across fields and comma lists) must be the
//!    same string of digits that fits a `u64`; anything else is refused.
//! 4. Otherwise the body runs until the server closes.
//!
//! ```
//! use uploadtask_http1::framing::{body_framing, BodyKind};
//! use uploadtask_http1::response::ResponseHead;
//!
//! let head = ResponseHead {
//!     version: 1,
//!     status: 200,
//!     reason: "OK".into(),
//!     headers: [("Content-Length", "5, 5")].into_iter().collect(),
//! };
//! let framing = body_framing(&head).unwrap();
//! assert_eq!(framing.kind, BodyKind::Length(5));
//! assert!(framing.reusable);
//! ```

use std::fmt;

use crate::response::ResponseHead;

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all (204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    CloseDelimited,
}

/// The body's delimitation and whether the connection may carry another
/// request afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// How the body ends.
    pub kind: BodyKind,
    /// True when the connection may be reused once the body has been read.
    pub reusable: bool,
}

/// Why the framing of a response is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A Content-Length value is not plain digits or overflows a `u64`.
    InvalidContentLength,
    /// Several Content-Length values differ.
    ConflictingContentLength,
    /// `chunked` in a Transfer-Encoding of an HTTP/1.0 response.
    ChunkedOnHttp10,
    /// `chunked` applied more than once, or an empty coding.
    InvalidTransferEncoding,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FramingError::InvalidContentLength => "invalid Content-Length",
            FramingError::ConflictingContentLength => "conflicting Content-Length values",
            FramingError::ChunkedOnHttp10 => "chunked Transfer-Encoding on HTTP/1.0",
            FramingError::InvalidTransferEncoding => "invalid Transfer-Encoding",
        })
    }
}

impl std::error::Error for FramingError {}

/// Decides the framing of the body of `head` (a response to a `POST`).
pub fn body_framing(head: &ResponseHead) -> Result<Framing, FramingError> {
    let keep_alive = keeps_alive(head);
    if head.status == 204 || head.status == 304 || head.status < 200 {
        return Ok(Framing {
            kind: BodyKind::None,
            reusable: keep_alive,
        });
    }
    let mut has_te = false;
    let mut chunked_seen = false;
    let mut chunked_last = false;
    for value in head.values("transfer-encoding") {
        for coding in split_list(value) {
            chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            if coding.is_empty() || (chunked_last && chunked_seen) {
                return Err(FramingError::InvalidTransferEncoding);
            }
            has_te = true;
            chunked_seen |= chunked_last;
        }
    }
    let content_length = content_length(head)?;
    if has_te {
        if chunked_last && head.version == 0 {
            return Err(FramingError::ChunkedOnHttp10);
        }
        return Ok(if chunked_last {
            Framing {
                kind: BodyKind::Chunked,
                reusable: keep_alive && content_length.is_none(),
            }
        } else {
            Framing {
                kind: BodyKind::CloseDelimited,
                reusable: false,
            }
        });
    }
    Ok(match content_length {
        Some(length) => Framing {
            kind: BodyKind::Length(length),
            reusable: keep_alive,
        },
        None => Framing {
            kind: BodyKind::CloseDelimited,
            reusable: false,
        },
    })
}

/// The one Content-Length all values agree on, if any is given.
fn content_length(head: &ResponseHead) -> Result<Option<u64>, FramingError> {
    let mut found: Option<u64> = None;
    for value in head.values("content-length") {
        for item in split_list(value) {
            let length = parse_digits(item).ok_or(FramingError::InvalidContentLength)?;
            if found.is_some_and(|f| f != length) {
                return Err(FramingError::ConflictingContentLength);
            }
            found = Some(length);
        }
    }
    Ok(found)
}

/// Parses a non-empty run of ASCII digits into a `u64`, refusing signs and overflow.
pub(crate) fn parse_digits(item: &[u8]) -> Option<u64> {
    if item.is_empty() {
        return None;
    }
    item.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only
/// with `Connection: keep-alive`.
fn keeps_alive(head: &ResponseHead) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in head.values("connection") {
        for option in split_list(value) {
            close |= option.eq_ignore_ascii_case(b"close");
            keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (head.version >= 1 || keep_alive)
}

/// What a `Keep-Alive` response header (RFC 2068 §19.7.1.1, sent by
/// Apache, Node and others) says of the connection's remaining life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepAlive {
    /// `timeout=N`: the server closes the connection once it has been idle
    /// this many seconds.
    pub timeout_secs: Option<u64>,
    /// `max=N`: requests the server still takes on this connection.
    pub max: Option<u64>,
}

/// Reads `Keep-Alive: timeout=5, max=100` from `head`. Unknown parameters
/// and values that are not plain digits (quotes allowed) are ignored; a
/// parameter given twice keeps its smaller value.
///
/// ```
/// use uploadtask_http1::framing::keep_alive;
/// use uploadtask_http1::response::ResponseHead;
///
/// let head = ResponseHead {
///     version: 1,
///     status: 200,
///     reason: "OK".into(),
///     headers: [("Keep-Alive", "timeout=5, max=99")].into_iter().collect(),
/// };
/// let hint = keep_alive(&head);
/// assert_eq!((hint.timeout_secs, hint.max), (Some(5), Some(99)));
/// ```
pub fn keep_alive(head: &ResponseHead) -> KeepAlive {
    let mut hint = KeepAlive::default();
    for value in head.values("keep-alive") {
        for item in split_list(value) {
            let Some(at) = item.iter().position(|&b| b == b'=') else {
                continue;
            };
            let name = item[..at].trim_ascii();
            let mut number = item[at + 1..].trim_ascii();
            if let [b'"', inner @ .., b'"'] = number {
                number = inner;
            }
            let Some(number) = parse_digits(number) else {
                continue;
            };
            let slot = if name.eq_ignore_ascii_case(b"timeout") {
                &mut hint.timeout_secs
            } else if name.eq_ignore_ascii_case(b"max") {
                &mut hint.max
            } else {
                continue;
            };
            *slot = Some(slot.map_or(number, |old| old.min(number)));
        }
    }
    hint
}

/// Splits a comma-separated list value into trimmed items (empty items kept,
/// so callers can refuse them where they matter).
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|item| item.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn head(version: u8, status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            version,
            status,
            reason: "".into(),
            headers: headers.iter().copied().collect(),
        }
    }

    fn framing(version: u8, status: u16, headers: &[(&str, &str)]) -> Result<Framing, FramingError> {
        body_framing(&head(version, status, headers))
    }

    #[test]
    fn keep_alive_hints() {
        let hint = |value: &str| keep_alive(&head(1, 200, &[("Keep-Alive", value)]));
        assert_eq!(
            hint("timeout=5, max=100"),
            KeepAlive {
                timeout_secs: Some(5),
                max: Some(100)
            }
        );
        assert_eq!(
            hint("Timeout = \"2\""),
            KeepAlive {
                timeout_secs: Some(2),
                max: None
            }
        );
        assert_eq!(
            hint("max=0"),
            KeepAlive {
                timeout_secs: None,
                max: Some(0)
            }
        );
        assert_eq!(
            hint("timeout=9, timeout=3"),
            KeepAlive {
                timeout_secs: Some(3),
                max: None
            }
        );
        for ignored in ["", "timeout", "timeout=", "timeout=-1", "timeout=1.5", "foo=3", "=4"] {
            assert_eq!(hint(ignored), KeepAlive::default(), "{ignored:?}");
        }
        assert_eq!(keep_alive(&head(1, 200, &[])), KeepAlive::default());
    }

    #[test]
    fn no_body_statuses() {
        for status in [204, 304] {
            let f = framing(1, status, &[("Content-Length", "10")]).unwrap();
            assert_eq!(
                f,
                Framing {
                    kind: BodyKind::None,
                    reusable: true
                }
            );
        }
    }

    #[test]
    fn content_length_rules() {
        let kind = |v: &str| framing(1, 200, &[("Content-Length", v)]).map(|f| f.kind);
        assert_eq!(kind("0"), Ok(BodyKind::Length(0)));
        assert_eq!(kind("18446744073709551615"), Ok(BodyKind::Length(u64::MAX)));
        assert_eq!(kind("5, 5"), Ok(BodyKind::Length(5)));
        for bad in [
            "+5",
            "-1",
            "",
            "5a",
            "0x5",
            "18446744073709551616",
            "99999999999999999999999",
            "5,",
        ] {
            assert_eq!(kind(bad), Err(FramingError::InvalidContentLength), "{bad:?}");
        }
        assert_eq!(kind("5, 6"), Err(FramingError::ConflictingContentLength));
        assert_eq!(
            framing(1, 200, &[("Content-Length", "5"), ("content-length", "6")]),
            Err(FramingError::ConflictingContentLength)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let f = framing(1, 200, &[("Transfer-Encoding", "gzip, Chunked")]).unwrap();
        assert_eq!(
            f,
            Framing {
                kind: BodyKind::Chunked,
                reusable: true
            }
        );
        let f = framing(1, 200, &[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]).unwrap();
        assert_eq!(
            f,
            Framing {
                kind: BodyKind::Chunked,
                reusable: false
            }
        );
        let f = framing(1, 200, &[("Transfer-Encoding", "chunked, gzip")]).unwrap();
        assert_eq!(
            f,
            Framing {
                kind: BodyKind::CloseDelimited,
                reusable: false
            }
        );
        assert_eq!(
            framing(0, 200, &[("Transfer-Encoding", "chunked")]),
            Err(FramingError::ChunkedOnHttp10)
        );
        assert_eq!(
            framing(
                1,
                200,
                &[("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]
            ),
            Err(FramingError::InvalidTransferEncoding)
        );
        assert_eq!(
            framing(1, 200, &[("Transfer-Encoding", "chunked, gzip, chunked")]),
            Err(FramingError::InvalidTransferEncoding)
        );
    }

    #[test]
    fn connection_reuse() {
        assert!(
            !framing(1, 200, &[("Content-Length", "1"), ("Connection", "close")])
                .unwrap()
                .reusable
        );
        assert!(!framing(0, 200, &[("Content-Length", "1")]).unwrap().reusable);
        assert!(
            framing(0, 200, &[("Content-Length", "1"), ("Connection", "Keep-Alive")])
                .unwrap()
                .reusable
        );
        let f = framing(1, 200, &[]).unwrap();
        assert_eq!(
            f,
            Framing {
                kind: BodyKind::CloseDelimited,
                reusable: false
            }
        );
    }
}
