//! Incremental response-head parsing on `httparse`.
//!
//! ```text
//!            bytes arrive
//!                 │
//!                 ▼
//!   ┌──────── parse(buf) ────────┐
//!   │ Partial: keep the bytes,   │  (buf over max_head_bytes → HeadTooLarge)
//!   │ call again with more       │
//!   ├────────────────────────────┤
//!   │ Interim{consumed}: a 1xx   │  drop `consumed` bytes, call again
//!   │ head (100, 102, 103)       │  (more than max_interim → TooManyInterim)
//!   ├────────────────────────────┤
//!   │ Complete{head, consumed}:  │  the body starts at buf[consumed..]
//!   │ the final head             │
//!   └────────────────────────────┘
//! ```
//!
//! Short input is never an error. 101, HTTP/0.9 and obs-fold are refused.
//!
//! ```
//! use uploadtask_http1::{Limits, ParseStatus, ResponseHeadParser};
//!
//! let mut parser = ResponseHeadParser::new(Limits::default());
//! assert!(matches!(parser.parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2"), Ok(ParseStatus::Interim { status: 100, consumed: 25 })));
//! let buf = b"HTTP/1.1 201 Created\r\nA: 1\r\nA: 2\r\n\r\nbody";
//! let ParseStatus::Complete { head, consumed } = parser.parse(buf).unwrap() else { panic!() };
//! assert_eq!((head.status, &*head.reason, consumed), (201, "Created", 36));
//! assert_eq!(head.headers.len(), 2);
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::headers::Headers;
use crate::limits::Limits;

/// Why a response head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The head is larger than `max_head_bytes`.
    HeadTooLarge,
    /// More header fields than `max_headers`.
    TooManyHeaders,
    /// More 1xx interim responses than `max_interim_responses`.
    TooManyInterim,
    /// `101 Switching Protocols`: the engine never asked for an upgrade.
    SwitchingProtocols,
    /// Not an `HTTP/1.x` status line (HTTP/0.9 and other garbage included).
    InvalidVersion,
    /// The status code is not three digits.
    InvalidStatus,
    /// A header name or value is malformed, obs-fold included.
    InvalidHeader,
    /// Bytes that do not form a response head (bad line endings and the like).
    Malformed,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResponseError::HeadTooLarge => "response head too large",
            ResponseError::TooManyHeaders => "too many response headers",
            ResponseError::TooManyInterim => "too many 1xx interim responses",
            ResponseError::SwitchingProtocols => "unexpected 101 Switching Protocols",
            ResponseError::InvalidVersion => "response is not HTTP/1.x",
            ResponseError::InvalidStatus => "invalid response status code",
            ResponseError::InvalidHeader => "invalid response header",
            ResponseError::Malformed => "malformed response head",
        })
    }
}

impl std::error::Error for ResponseError {}

/// A final response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version: u8,
    /// Status code, 200..=999 (never 1xx).
    pub status: u16,
    /// Reason phrase (may be empty; invalid UTF-8 replaced). The usual
    /// phrases are borrowed, not allocated.
    pub reason: Cow<'static, str>,
    /// Every header in order, duplicates kept.
    pub headers: Headers,
}

impl ResponseHead {
    /// Values of every header called `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.values(name)
    }
}

/// What [`ResponseHeadParser::parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ParseStatus {
    /// Not a whole head yet: call again with more bytes (the same ones first).
    Partial,
    /// A 1xx interim head of `consumed` bytes: drop them and call again.
    Interim {
        /// Its status (100 Continue, 102, 103, 104…).
        status: u16,
        /// Bytes of the interim head.
        consumed: usize,
    },
    /// The final head; the body starts at `consumed`.
    Complete {
        /// The parsed head.
        head: ResponseHead,
        /// Bytes of the head; the body starts here.
        consumed: usize,
    },
}

/// Parses response heads incrementally; counts the interim ones skipped.
#[derive(Debug, Clone)]
pub struct ResponseHeadParser {
    limits: Limits,
    interim_seen: usize,
    /// Bytes of the current buffer already known to hold no end of head.
    scanned: usize,
    /// The current head's status line has been seen whole and is valid.
    status_line_checked: bool,
}

impl ResponseHeadParser {
    /// The limits it enforces (an exchange keeps no second copy).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A parser for one exchange.
    pub fn new(limits: Limits) -> Self {
        ResponseHeadParser {
            limits,
            interim_seen: 0,
            scanned: 0,
            status_line_checked: false,
        }
    }

    /// Parses the head at the start of `buf` (all the bytes received since the
    /// previous head or the start of the response).
    pub fn parse(&mut self, buf: &[u8]) -> Result<ParseStatus, ResponseError> {
        // Skip httparse until an empty line can be there, so that feeding a
        // head in small pieces stays linear.
        let from = self.scanned.saturating_sub(3).min(buf.len());
        let window = &buf[..buf.len().min(self.limits.max_head_bytes.saturating_add(4))];
        if !has_empty_line(window, from) {
            if buf.len() > self.limits.max_head_bytes {
                return Err(ResponseError::HeadTooLarge);
            }
            self.scanned = buf.len();
            self.check_status_line(buf)?;
            return Ok(ParseStatus::Partial);
        }
        let status = self.parse_with_httparse(buf)?;
        if let ParseStatus::Complete { consumed, .. } | ParseStatus::Interim { consumed, .. } = status {
            if consumed > self.limits.max_head_bytes {
                return Err(ResponseError::HeadTooLarge);
            }
            self.scanned = 0;
            self.status_line_checked = false;
        }
        if let ParseStatus::Interim { .. } = status {
            self.interim_seen += 1;
            if self.interim_seen > self.limits.max_interim_responses {
                return Err(ResponseError::TooManyInterim);
            }
        }
        Ok(status)
    }

    /// While a head is incomplete, refuses garbage (HTTP/0.9, a wrong
    /// version or status) as soon as the status line is there, looking at
    /// that line only, so the verdict never depends on how input was split.
    fn check_status_line(&mut self, buf: &[u8]) -> Result<(), ResponseError> {
        if self.status_line_checked {
            return Ok(());
        }
        let line_end = buf.iter().position(|&b| b == b'\n').map_or(buf.len(), |at| at + 1);
        // Only an error matters here: a lone status line is always Partial.
        let _ = self.parse_with_httparse(&buf[..line_end])?;
        self.status_line_checked = line_end < buf.len() || buf.ends_with(b"\n");
        Ok(())
    }

    fn parse_with_httparse(&self, buf: &[u8]) -> Result<ParseStatus, ResponseError> {
        use std::mem::MaybeUninit;
        const ON_STACK: usize = 128;
        // Left uninitialized: httparse writes what it uses (no 4 KiB memset
        // per response).
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; ON_STACK];
        let mut heap;
        let headers: &mut [MaybeUninit<httparse::Header<'_>>] = if self.limits.max_headers <= ON_STACK {
            &mut stack[..self.limits.max_headers]
        } else {
            heap = Vec::with_capacity(self.limits.max_headers);
            heap.resize_with(self.limits.max_headers, MaybeUninit::uninit);
            &mut heap
        };
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, headers);
        let consumed = match parsed {
            Ok(httparse::Status::Partial) => return Ok(ParseStatus::Partial),
            Ok(httparse::Status::Complete(consumed)) => consumed,
            Err(e) => return Err(map_error(e)),
        };
        // NOTE(unwrap): httparse fills version and code on Complete.
        let version = response.version.ok_or(ResponseError::Malformed)?;
        let status = response.code.ok_or(ResponseError::Malformed)?;
        match status {
            101 => return Err(ResponseError::SwitchingProtocols),
            100..=199 => return Ok(ParseStatus::Interim { status, consumed }),
            _ => {}
        }
        let head = ResponseHead {
            version,
            status,
            reason: reason_phrase(response.reason.unwrap_or("")),
            headers: owned(response.headers),
        };
        Ok(ParseStatus::Complete { head, consumed })
    }
}

/// True when `buf[from..]` (or the three bytes before it) hold `\n\r\n` or `\n\n`.
fn has_empty_line(buf: &[u8], from: usize) -> bool {
    let tail = &buf[from.min(buf.len())..];
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// The header fields of a whole interim head (a `1xx` that
/// [`ResponseHeadParser::parse`] reported as `Interim`, `bytes` exactly its
/// `consumed` bytes); empty when they do not parse within `limits`.
///
/// ```
/// use uploadtask_http1::{response::interim_headers, Limits};
///
/// let head = b"HTTP/1.1 104 Upload Resumption Supported\r\nLocation: /u/1\r\n\r\n";
/// let headers = interim_headers(head, &Limits::default());
/// assert_eq!(headers.get("location"), Some(&b"/u/1"[..]));
/// ```
pub fn interim_headers(bytes: &[u8], limits: &Limits) -> Headers {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers.min(256)];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => owned(response.headers),
        _ => Headers::new(),
    }
}

/// The parsed header fields in one buffer (one allocation).
fn owned(headers: &[httparse::Header<'_>]) -> Headers {
    let bytes = headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut owned = Headers::with_capacity(headers.len(), bytes);
    for h in headers {
        owned.push(h.name, h.value);
    }
    owned
}

/// `reason`, borrowed when it is one of the phrases servers usually send.
fn reason_phrase(reason: &str) -> Cow<'static, str> {
    const USUAL: [&str; 16] = [
        "OK",
        "Created",
        "Accepted",
        "No Content",
        "Moved Permanently",
        "Found",
        "See Other",
        "Temporary Redirect",
        "Permanent Redirect",
        "Bad Request",
        "Unauthorized",
        "Forbidden",
        "Not Found",
        "Conflict",
        "Internal Server Error",
        "Service Unavailable",
    ];
    match USUAL.iter().find(|usual| **usual == reason) {
        Some(usual) => Cow::Borrowed(usual),
        None => Cow::Owned(reason.to_string()),
    }
}

fn map_error(e: httparse::Error) -> ResponseError {
    match e {
        httparse::Error::TooManyHeaders => ResponseError::TooManyHeaders,
        httparse::Error::Version => ResponseError::InvalidVersion,
        httparse::Error::Status => ResponseError::InvalidStatus,
        httparse::Error::HeaderName | httparse::Error::HeaderValue => ResponseError::InvalidHeader,
        _ => ResponseError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Result<ParseStatus, ResponseError> {
        ResponseHeadParser::new(Limits::default()).parse(bytes)
    }

    #[test]
    fn short_input_is_partial() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        for end in 0..full.len() {
            assert_eq!(parse_all(&full[..end]), Ok(ParseStatus::Partial), "at {end}");
        }
        assert!(matches!(
            parse_all(full),
            Ok(ParseStatus::Complete { consumed: 38, .. })
        ));
    }

    #[test]
    fn duplicates_and_order_kept() {
        let Ok(ParseStatus::Complete { head, .. }) =
            parse_all(b"HTTP/1.0 404 Not Found\r\nB: 1\r\nA: x\r\nb: 2\r\n\r\n")
        else {
            panic!()
        };
        assert!(matches!(head.reason, Cow::Borrowed("Not Found")));
        assert_eq!((head.version, head.status), (0, 404));
        let names: Vec<_> = head.headers.iter().map(|h| h.name).collect();
        assert_eq!(names, ["B", "A", "b"]);
        assert_eq!(head.values("b").collect::<Vec<_>>(), [b"1", b"2"]);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_all(b"HTTP/1.1 101 Switching\r\n\r\n"),
            Err(ResponseError::SwitchingProtocols)
        );
        assert_eq!(
            parse_all(b"<html>hello</html>\r\n\r\n"),
            Err(ResponseError::InvalidVersion)
        );
        assert_eq!(
            parse_all(b"HTTP/2.0 200 OK\r\n\r\n"),
            Err(ResponseError::InvalidVersion)
        );
        assert_eq!(
            parse_all(b"HTTP/1.1 2000 OK\r\n\r\n"),
            Err(ResponseError::InvalidStatus)
        );
        assert_eq!(
            parse_all(b"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n"),
            Err(ResponseError::InvalidHeader)
        );
        assert!(parse_all(b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n").is_err());
    }

    #[test]
    fn interim_heads_skipped_and_bounded() {
        let mut parser = ResponseHeadParser::new(Limits {
            max_interim_responses: 2,
            ..Limits::default()
        });
        let one = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
        assert_eq!(
            parser.parse(one),
            Ok(ParseStatus::Interim {
                status: 103,
                consumed: one.len()
            })
        );
        assert_eq!(
            parser.parse(one),
            Ok(ParseStatus::Interim {
                status: 103,
                consumed: one.len()
            })
        );
        assert_eq!(parser.parse(one), Err(ResponseError::TooManyInterim));
    }

    #[test]
    fn header_section_of_one_mebibyte_refused() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while head.len() < 1 << 20 {
            head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let mut parser = ResponseHeadParser::new(Limits {
            max_headers: 100_000,
            ..Limits::default()
        });
        assert_eq!(parser.parse(&head), Err(ResponseError::HeadTooLarge));
        head.extend_from_slice(b"\r\n");
        let mut parser = ResponseHeadParser::new(Limits {
            max_headers: 100_000,
            ..Limits::default()
        });
        assert_eq!(parser.parse(&head), Err(ResponseError::HeadTooLarge));
    }

    #[test]
    fn too_many_headers() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..129 {
            head.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(parse_all(&head), Err(ResponseError::TooManyHeaders));
    }
}
