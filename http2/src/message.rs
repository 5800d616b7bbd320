//! Requests and responses as HTTP/2 carries them (RFC 9113 §8), without
//! I/O: the fields of a request from an HTTP/1.1-shaped one, and a
//! response gathered from a stream's events within limits.
//!
//! A request's fields: the four pseudo-fields first (`:method`, `:scheme`,
//! `:authority`, `:path`), then the caller's headers with names in lower
//! case; the headers HTTP/2 forbids (`Connection`, `Keep-Alive`,
//! `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`, and `TE` other than
//! `trailers`) are dropped, and `Host` becomes `:authority` (§8.2.2,
//! §8.3.1). A name or value with CR, LF or NUL is refused.
//!
//! ```
//! use uploadtask_http2::message::{request_fields, Request};
//!
//! let headers = [("Content-Type", "text/plain"), ("Connection", "keep-alive")];
//! let fields = request_fields(&Request {
//!     method: "POST",
//!     scheme: "https",
//!     authority: "example.com",
//!     path: "/up",
//!     headers: &headers,
//! })
//! .unwrap();
//! assert_eq!(fields[4], (b"content-type".to_vec(), b"text/plain".to_vec()));
//! assert_eq!(fields.len(), 5, "Connection is not sent");
//! ```

use std::fmt;

use crate::conn::Event;
use crate::{ErrorCode, Fields};

/// A request as HTTP/1.1 would carry it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Host and port, as in the URL.
    pub authority: &'a str,
    /// Path and query (`/` at least).
    pub path: &'a str,
    /// The caller's headers.
    pub headers: &'a [(&'a str, &'a str)],
}

/// Why a request or a response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// A request field with CR, LF or NUL, or an empty name.
    BadField(String),
    /// The response body is longer than allowed.
    BodyTooLarge(u64),
    /// The stream was reset (by the peer or by us) before the response ended.
    Reset(ErrorCode),
    /// The peer did not process the request (send it again elsewhere).
    Refused,
    /// The connection failed before the response ended.
    ConnectionFailed,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::BadField(name) => write!(f, "a header HTTP/2 cannot carry: {name:?}"),
            MessageError::BodyTooLarge(max) => write!(f, "response body larger than {max} bytes"),
            MessageError::Reset(code) => write!(f, "the stream was reset ({code})"),
            MessageError::Refused => f.write_str("the server did not process the request"),
            MessageError::ConnectionFailed => f.write_str("the HTTP/2 connection failed"),
        }
    }
}

impl std::error::Error for MessageError {}

/// Headers HTTP/2 does not carry (connection-specific, RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The fields of `request`, in order (see the module doc).
pub fn request_fields(request: &Request<'_>) -> Result<Fields, MessageError> {
    let bad = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
    let mut authority = request.authority;
    for (name, value) in request.headers {
        if name.eq_ignore_ascii_case("host") && authority.is_empty() {
            authority = value;
        }
    }
    let mut fields: Fields = Vec::with_capacity(request.headers.len() + 4);
    for (name, value) in [
        (":method", request.method),
        (":scheme", request.scheme),
        (":authority", authority),
        (":path", if request.path.is_empty() { "/" } else { request.path }),
    ] {
        if bad(value) || value.is_empty() && name != ":authority" {
            return Err(MessageError::BadField(name.into()));
        }
        fields.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    for (name, value) in request.headers {
        let lower = name.to_ascii_lowercase();
        if lower.is_empty() || lower.starts_with(':') || bad(name) || bad(value) {
            return Err(MessageError::BadField(name.to_string()));
        }
        let te_other = lower == "te" && !value.trim().eq_ignore_ascii_case("trailers");
        if CONNECTION_SPECIFIC.contains(&lower.as_str()) || lower == "host" || te_other {
            continue;
        }
        fields.push((lower.into_bytes(), value.trim().as_bytes().to_vec()));
    }
    Ok(fields)
}

/// A whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: u16,
    /// The fields of the final head, in order.
    pub fields: Fields,
    /// The body.
    pub body: Vec<u8>,
    /// Trailers, if any.
    pub trailers: Fields,
}

/// A response gathered from one stream's events, its body bounded.
#[derive(Debug)]
pub struct ResponseBuilder {
    max_body: u64,
    /// Interim heads seen (1xx), for the caller to report.
    interim: Vec<u16>,
    head: Option<(u16, Fields)>,
    body: Vec<u8>,
    outcome: Option<Result<Response, MessageError>>,
}

impl ResponseBuilder {
    /// A response whose body may hold `max_body` bytes.
    pub fn new(max_body: u64) -> Self {
        ResponseBuilder {
            max_body,
            interim: Vec::new(),
            head: None,
            body: Vec::new(),
            outcome: None,
        }
    }

    /// An event of this response's stream (other streams' events are the
    /// caller's to route). Returns `true` when the body grew too large: the
    /// caller resets the stream.
    pub fn handle_event(&mut self, event: Event) -> bool {
        if self.outcome.is_some() {
            return false;
        }
        match event {
            Event::Headers {
                status,
                fields,
                end_stream,
                ..
            } => {
                if status < 200 {
                    self.interim.push(status);
                    return false;
                }
                self.head = Some((status, fields));
                if end_stream {
                    self.finish(Vec::new());
                }
            }
            Event::Data { data, end_stream, .. } => {
                if self.body.len() as u64 + data.len() as u64 > self.max_body {
                    self.outcome = Some(Err(MessageError::BodyTooLarge(self.max_body)));
                    return true;
                }
                self.body.extend_from_slice(&data);
                if end_stream {
                    self.finish(Vec::new());
                }
            }
            Event::Trailers { fields, .. } => self.finish(fields),
            Event::Reset { code, .. } => self.outcome = Some(Err(MessageError::Reset(code))),
            Event::Refused { .. } => self.outcome = Some(Err(MessageError::Refused)),
            Event::Failed { .. } => self.outcome = Some(Err(MessageError::ConnectionFailed)),
            // The response is whole (its outcome came first): only sending stops.
            Event::SendStopped { .. } | Event::Writable | Event::GoAway { .. } | Event::PingAck(_) => {}
        }
        false
    }

    fn finish(&mut self, trailers: Fields) {
        if let Some((status, fields)) = self.head.take() {
            self.outcome = Some(Ok(Response {
                status,
                fields,
                body: std::mem::take(&mut self.body),
                trailers,
            }));
        }
    }

    /// The next interim (1xx) status seen, if any.
    pub fn poll_interim(&mut self) -> Option<u16> {
        (!self.interim.is_empty()).then(|| self.interim.remove(0))
    }

    /// The final head's status, once it arrived (for `onHeadersReceived`).
    pub fn status(&self) -> Option<u16> {
        self.head.as_ref().map(|h| h.0).or(match &self.outcome {
            Some(Ok(response)) => Some(response.status),
            _ => None,
        })
    }

    /// The outcome, once known.
    pub fn poll_outcome(&mut self) -> Option<Result<Response, MessageError>> {
        self.outcome.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
        fields
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    #[test]
    fn connection_specific_headers_are_dropped_and_names_lowered() {
        let headers = [
            ("Host", "ignored.example"),
            ("Connection", "close"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "x"),
            ("TE", "gzip"),
            ("X-Token", " t "),
            ("Content-Length", "5"),
        ];
        let request = Request {
            method: "PUT",
            scheme: "http",
            authority: "127.0.0.1:8080",
            path: "/a?b=c",
            headers: &headers,
        };
        let fields = request_fields(&request).unwrap();
        assert_eq!(
            names(&fields),
            [":method", ":scheme", ":authority", ":path", "x-token", "content-length"]
        );
        assert_eq!(fields[2].1, b"127.0.0.1:8080");
        assert_eq!(fields[4].1, b"t");
        let te = [("TE", "trailers")];
        let fields = request_fields(&Request {
            headers: &te,
            ..request
        })
        .unwrap();
        assert_eq!(names(&fields)[4], "te");
    }

    #[test]
    fn control_characters_and_pseudo_names_are_refused() {
        let request = |headers: &'static [(&'static str, &'static str)]| Request {
            method: "POST",
            scheme: "https",
            authority: "a",
            path: "/",
            headers,
        };
        assert!(request_fields(&request(&[("X-A", "1\r\nX-B: 2")])).is_err());
        assert!(request_fields(&request(&[(":path", "/other")])).is_err());
        assert!(request_fields(&request(&[("", "v")])).is_err());
        assert!(request_fields(&Request {
            path: "/\n",
            ..request(&[])
        })
        .is_err());
    }

    fn head(status: u16, end_stream: bool) -> Event {
        Event::Headers {
            stream: 1,
            status,
            fields: vec![(b"content-type".to_vec(), b"text/plain".to_vec())],
            end_stream,
        }
    }

    fn data(bytes: &[u8], end_stream: bool) -> Event {
        Event::Data {
            stream: 1,
            data: bytes.to_vec(),
            end_stream,
        }
    }

    #[test]
    fn a_response_with_interim_heads_body_and_trailers() {
        let mut builder = ResponseBuilder::new(100);
        builder.handle_event(head(100, false));
        builder.handle_event(head(200, false));
        assert_eq!(builder.status(), Some(200));
        builder.handle_event(data(b"he", false));
        builder.handle_event(data(b"llo", false));
        assert_eq!(builder.poll_outcome(), None);
        builder.handle_event(Event::Trailers {
            stream: 1,
            fields: vec![(b"x-sum".to_vec(), b"1".to_vec())],
        });
        assert_eq!(builder.poll_interim(), Some(100));
        let response = builder.poll_outcome().unwrap().unwrap();
        assert_eq!((response.status, &response.body[..]), (200, &b"hello"[..]));
        assert_eq!(response.trailers.len(), 1);
    }

    #[test]
    fn a_head_that_ends_the_stream_and_one_without_a_body() {
        let mut builder = ResponseBuilder::new(100);
        builder.handle_event(head(413, true));
        let response = builder.poll_outcome().unwrap().unwrap();
        assert_eq!((response.status, response.body.len()), (413, 0));
        let mut builder = ResponseBuilder::new(100);
        builder.handle_event(head(204, false));
        builder.handle_event(data(b"", true));
        assert_eq!(builder.poll_outcome().unwrap().unwrap().status, 204);
    }

    #[test]
    fn a_body_too_large_resets_and_failures_are_kept_apart() {
        let mut builder = ResponseBuilder::new(4);
        builder.handle_event(head(200, false));
        assert!(builder.handle_event(data(b"hello", false)), "reset it");
        assert_eq!(builder.poll_outcome(), Some(Err(MessageError::BodyTooLarge(4))));
        for (event, error) in [
            (Event::Refused { stream: 1 }, MessageError::Refused),
            (Event::Failed { stream: 1 }, MessageError::ConnectionFailed),
            (
                Event::Reset {
                    stream: 1,
                    code: ErrorCode::CANCEL,
                },
                MessageError::Reset(ErrorCode::CANCEL),
            ),
        ] {
            let mut builder = ResponseBuilder::new(4);
            builder.handle_event(event);
            assert_eq!(builder.poll_outcome(), Some(Err(error)));
        }
    }
}
