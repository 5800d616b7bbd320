//! The request head: a [`Target`] taken from the URL, and a validated
//! [`RequestHead`] written into a caller-owned buffer.
//!
//! The engine owns the headers that decide framing and connection use
//! (`Content-Type` unless it is `multipart/form-data`, `Content-Length`,
//! `Transfer-Encoding`, `Connection`, `Expect`); a user may override `Host`,
//! `User-Agent` and `Accept`, and add any other header. Names must be tokens,
//! values must be free of control bytes other than TAB.
//!
//! ```
//! use uploadtask_http1::request::{HeadError, RequestHead, Target};
//!
//! let target = Target::parse("https://[::1]/a b").unwrap();
//! let mut head = Vec::new();
//! let err = RequestHead::new(&target, "multipart/form-data; boundary=b", 0)
//!     .header("X-A", "1\r\nInjected: yes")
//!     .write(&mut head)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), r#"invalid header value for "X-A""#);
//! ```

use std::fmt;
use std::sync::Arc;

use crate::headers::is_tchar;

/// `User-Agent` sent unless the user gives one.
pub const DEFAULT_USER_AGENT: &str = concat!("uploadtask/", "0.1");

/// Why a request head could not be written. Every variant that concerns a
/// header names it, as the caller wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// The URL could not be parsed, or has no host.
    InvalidUrl(String),
    /// The URL's scheme is not `http` or `https`.
    UnsupportedScheme(String),
    /// The URL carries user name or password; they are never sent implicitly.
    CredentialsInUrl,
    /// The method is not a token.
    InvalidMethod(String),
    /// A header name is empty or not a token.
    InvalidHeaderName(String),
    /// A header value holds CR, LF, NUL, DEL or another control byte.
    InvalidHeaderValue(String),
    /// The header decides framing or connection use; the engine writes it.
    EngineOwnedHeader(String),
    /// A `Content-Type` other than `multipart/form-data` was given.
    UnsupportedContentType(String),
    /// A header that may appear once (`Host`) was given twice.
    DuplicateHeader(String),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::InvalidUrl(why) => write!(f, "invalid url: {why}"),
            HeadError::UnsupportedScheme(s) => write!(f, "unsupported url scheme {s:?}"),
            HeadError::CredentialsInUrl => f.write_str("credentials in the url are not supported"),
            HeadError::InvalidMethod(m) => write!(f, "invalid method {m:?}"),
            HeadError::InvalidHeaderName(n) => write!(f, "invalid header name {n:?}"),
            HeadError::InvalidHeaderValue(n) => write!(f, "invalid header value for {n:?}"),
            HeadError::EngineOwnedHeader(n) => write!(f, "header {n:?} is set by the engine"),
            HeadError::UnsupportedContentType(v) => {
                write!(f, "unsupported Content-Type {v:?}: the body is multipart/form-data")
            }
            HeadError::DuplicateHeader(n) => write!(f, "header {n:?} given more than once"),
        }
    }
}

impl std::error::Error for HeadError {}

/// The scheme of a [`Target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS over TCP.
    Https,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Where a request goes, taken from an `http` or `https` URL. Its strings
/// are shared: a clone (one per upload to the same endpoint) allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host to connect to: a name, an IPv4 literal, or an IPv6 literal without
    /// brackets.
    pub host: Arc<str>,
    /// Port to connect to (the scheme's default when the URL names none).
    pub port: u16,
    /// Value of the `Host` header: the host, bracketed if IPv6, with `:port`
    /// when the port is not the scheme's default.
    pub authority: Arc<str>,
    /// The origin-form request target: path and query, never the fragment.
    pub path_and_query: Arc<str>,
}

impl Target {
    /// Parses an absolute `http` or `https` URL.
    ///
    /// ```
    /// # use uploadtask_http1::request::Target;
    /// let t = Target::parse("http://EXAMPLE.com:80/p?q#frag").unwrap();
    /// assert_eq!((&*t.host, t.port, &*t.authority), ("example.com", 80, "example.com"));
    /// assert_eq!(&*t.path_and_query, "/p?q");
    /// ```
    /// A control character anywhere in the URL (CR, LF, TAB, NUL…) is
    /// refused, not dropped as the WHATWG parser would: `http://h/up\r\nX: 1`
    /// must not become a request for another URL. Spaces around it are
    /// trimmed.
    ///
    /// ```
    /// # use uploadtask_http1::request::Target;
    /// assert!(Target::parse("http://h/up\r\nX-Injected: 1").is_err());
    /// assert!(Target::parse("http://h/a\tb").is_err());
    /// assert!(Target::parse("http://h/up\n").is_err());
    /// assert!(Target::parse(" http://h/up ").is_ok());
    /// ```
    pub fn parse(input: &str) -> Result<Target, HeadError> {
        let input = input.trim_matches(' ');
        if let Some(c) = input.chars().find(char::is_ascii_control) {
            return Err(HeadError::InvalidUrl(format!("control character {c:?} in the url")));
        }
        let url = url::Url::parse(input).map_err(|e| HeadError::InvalidUrl(e.to_string()))?;
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(HeadError::UnsupportedScheme(other.to_string())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HeadError::CredentialsInUrl);
        }
        let (host, bracketed) = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => (d.to_string(), d.to_string()),
            Some(url::Host::Ipv4(a)) => (a.to_string(), a.to_string()),
            Some(url::Host::Ipv6(a)) => (a.to_string(), format!("[{a}]")),
            _ => return Err(HeadError::InvalidUrl("no host".into())),
        };
        let port = url.port().unwrap_or(scheme.default_port());
        let authority = if port == scheme.default_port() {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        let mut path_and_query = url.path().to_string();
        if let Some(q) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        Ok(Target {
            scheme,
            host: host.into(),
            port,
            authority: authority.into(),
            path_and_query: path_and_query.into(),
        })
    }
}

/// What a user header does to the head, once checked by [`check_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRole {
    /// An ordinary header, written as given after the engine's own.
    Plain,
    /// Replaces the default `Host`.
    Host,
    /// Replaces the default `User-Agent`.
    UserAgent,
    /// Replaces the default `Accept`.
    Accept,
    /// A `Content-Type` of `multipart/form-data`: dropped, the engine writes
    /// its own with the boundary.
    MultipartContentType,
}

/// Checks one user header and says what it does. This is the single place
/// the header rules live; [`RequestHead::write`] calls it for every header.
pub fn check_header(name: &str, value: &str) -> Result<HeaderRole, HeadError> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(HeadError::InvalidHeaderName(name.to_string()));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HeadError::InvalidHeaderValue(name.to_string()));
    }
    let is = |owned: &str| name.eq_ignore_ascii_case(owned);
    if is("content-length") || is("transfer-encoding") || is("connection") || is("expect") {
        return Err(HeadError::EngineOwnedHeader(name.to_string()));
    }
    if is("content-type") {
        let essence = value.trim().split(';').next().unwrap_or("").trim();
        return if essence.eq_ignore_ascii_case("multipart/form-data") {
            Ok(HeaderRole::MultipartContentType)
        } else {
            Err(HeadError::UnsupportedContentType(value.to_string()))
        };
    }
    Ok(if is("host") {
        HeaderRole::Host
    } else if is("user-agent") {
        HeaderRole::UserAgent
    } else if is("accept") {
        HeaderRole::Accept
    } else {
        HeaderRole::Plain
    })
}

/// A request head to write: method, target, the engine's framing headers and
/// the user's headers in order.
#[derive(Debug, Clone)]
#[must_use = "a RequestHead does nothing until written"]
pub struct RequestHead<'a> {
    method: &'a str,
    target: &'a Target,
    content_type: &'a str,
    content_length: u64,
    headers: Vec<(&'a str, &'a str)>,
    /// A raw body: the user's `Content-Type` is theirs to send.
    raw: bool,
    /// Ask for `100 Continue` before the body.
    expect_continue: bool,
}

impl<'a> RequestHead<'a> {
    /// A `POST` to `target` whose body is `content_length` bytes of
    /// `content_type` (the engine's multipart type with its boundary).
    pub fn new(target: &'a Target, content_type: &'a str, content_length: u64) -> Self {
        RequestHead {
            method: "POST",
            target,
            content_type,
            content_length,
            headers: Vec::new(),
            raw: false,
            expect_continue: false,
        }
    }

    /// A `POST` (or, with [`RequestHead::method`], `PUT`…) to `target` with a
    /// raw body of `content_length` bytes: the engine writes no
    /// `Content-Type`; a user `Content-Type` is sent as given (curl `-T`
    /// sends none either; a signed URL's signature may cover it).
    ///
    /// ```
    /// use uploadtask_http1::request::{RequestHead, Target};
    ///
    /// let target = Target::parse("https://bucket.example/key?X-Sig=abc").unwrap();
    /// let mut out = Vec::new();
    /// RequestHead::raw(&target, 5).method("PUT").header("Content-Type", "image/png").write(&mut out).unwrap();
    /// assert_eq!(
    ///     out,
    ///     b"PUT /key?X-Sig=abc HTTP/1.1\r\nHost: bucket.example\r\nUser-Agent: uploadtask/0.1\r\n\
    ///       Accept: */*\r\nContent-Length: 5\r\nContent-Type: image/png\r\n\r\n"
    /// );
    /// ```
    pub fn raw(target: &'a Target, content_length: u64) -> Self {
        RequestHead {
            raw: true,
            ..RequestHead::new(target, "", content_length)
        }
    }

    /// What a user header does here: in a raw request `Content-Type` is
    /// a plain header (its value still checked).
    fn role(&self, name: &str, value: &str) -> Result<HeaderRole, HeadError> {
        if self.raw && name.eq_ignore_ascii_case("content-type") {
            return check_header("Content-Type-Value", value).map(|_| HeaderRole::Plain);
        }
        check_header(name, value)
    }

    /// Uses another method than `POST` (for example `PUT`).
    pub fn method(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }

    /// Adds `Expect: 100-continue` (the engine owns that header).
    pub fn expect_continue(mut self, on: bool) -> Self {
        self.expect_continue = on;
        self
    }

    /// Adds a user header; it is checked when the head is written.
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds user headers in order.
    pub fn headers<I: IntoIterator<Item = (&'a str, &'a str)>>(mut self, headers: I) -> Self {
        self.headers.extend(headers);
        self
    }

    /// Checks every header and appends the head, ending with the empty line,
    /// to `out`. On error `out` is left as it was.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), HeadError> {
        if self.method.is_empty() || !self.method.bytes().all(is_tchar) {
            return Err(HeadError::InvalidMethod(self.method.to_string()));
        }
        if self.content_type.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(HeadError::InvalidHeaderValue("Content-Type".into()));
        }
        let mut host = None;
        let mut user_agent = None;
        let mut accept = None;
        for &(name, value) in &self.headers {
            let slot = match self.role(name, value)? {
                HeaderRole::Host => &mut host,
                HeaderRole::UserAgent => &mut user_agent,
                HeaderRole::Accept => &mut accept,
                HeaderRole::Plain | HeaderRole::MultipartContentType => continue,
            };
            if slot.replace(value.trim_matches([' ', '\t'])).is_some() {
                return Err(HeadError::DuplicateHeader(name.to_string()));
            }
        }
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.path_and_query.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut line = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line("Host", host.unwrap_or(&self.target.authority));
        line("User-Agent", user_agent.unwrap_or(DEFAULT_USER_AGENT));
        line("Accept", accept.unwrap_or("*/*"));
        if !self.content_type.is_empty() {
            line("Content-Type", self.content_type);
        }
        // A bodiless GET or HEAD (after a redirect) says nothing of a body.
        let bodiless = self.raw
            && self.content_length == 0
            && (self.method.eq_ignore_ascii_case("GET") || self.method.eq_ignore_ascii_case("HEAD"));
        let mut digits = [0u8; 20];
        if !bodiless {
            line("Content-Length", format_u64(self.content_length, &mut digits));
        }
        if self.expect_continue {
            line("Expect", "100-continue");
        }
        for &(name, value) in &self.headers {
            // Every header passed the check above; only plain ones are written here.
            if self.role(name, value).ok() == Some(HeaderRole::Plain) {
                line(name, value.trim_matches([' ', '\t']));
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Formats `value` in decimal into `buf` without allocating.
fn format_u64(mut value: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // NOTE(unwrap): only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(headers: &[(&str, &str)]) -> Result<String, HeadError> {
        let target = Target::parse("http://h.example/x").unwrap();
        let mut out = Vec::new();
        RequestHead::new(&target, "multipart/form-data; boundary=B", 42)
            .headers(headers.iter().copied())
            .write(&mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn default_head_bytes() {
        assert_eq!(
            write(&[]).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h.example\r\nUser-Agent: uploadtask/0.1\r\nAccept: */*\r\n\
             Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 42\r\n\r\n"
        );
    }

    #[test]
    fn overrides_and_user_headers_in_order() {
        let head = write(&[
            ("X-B", "2"),
            ("host", "other"),
            ("Content-Type", "multipart/form-data"),
            ("X-A", " 1 "),
            ("User-Agent", "app/9"),
            ("Accept", "application/json"),
        ])
        .unwrap();
        assert_eq!(
            head,
            "POST /x HTTP/1.1\r\nHost: other\r\nUser-Agent: app/9\r\nAccept: application/json\r\n\
             Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 42\r\nX-B: 2\r\nX-A: 1\r\n\r\n"
        );
    }

    #[test]
    fn injection_and_controls_refused_naming_the_header() {
        for bad in ["a\r\nb", "a\nb", "a\rb", "a\0b", "a\x7fb", "a\x1bb"] {
            assert_eq!(
                write(&[("X-Evil", bad)]),
                Err(HeadError::InvalidHeaderValue("X-Evil".into()))
            );
        }
        assert!(write(&[("X-Tab", "a\tb")]).is_ok());
        assert!(write(&[("X-Utf8", "héllo")]).is_ok());
        for bad in ["", "X A", "X:A", "X\r\nA", "Ä"] {
            assert_eq!(write(&[(bad, "v")]), Err(HeadError::InvalidHeaderName(bad.into())));
        }
    }

    #[test]
    fn engine_owned_headers_refused() {
        for name in ["Content-Length", "transfer-encoding", "CONNECTION", "Expect"] {
            assert_eq!(write(&[(name, "x")]), Err(HeadError::EngineOwnedHeader(name.into())));
        }
        assert_eq!(
            write(&[("Content-Type", "application/json")]),
            Err(HeadError::UnsupportedContentType("application/json".into()))
        );
        assert!(write(&[("Content-Type", "Multipart/Form-Data; boundary=x")]).is_ok());
        assert_eq!(
            write(&[("Host", "a"), ("HOST", "b")]),
            Err(HeadError::DuplicateHeader("HOST".into()))
        );
    }

    #[test]
    fn targets() {
        let t = Target::parse("https://[::1]:8443/a?b=c").unwrap();
        assert_eq!((t.scheme, &*t.host, t.port), (Scheme::Https, "::1", 8443));
        assert_eq!(&*t.authority, "[::1]:8443");
        let t = Target::parse("http://127.0.0.1").unwrap();
        assert_eq!((&*t.path_and_query, &*t.authority), ("/", "127.0.0.1"));
        assert!(matches!(
            Target::parse("ftp://a/"),
            Err(HeadError::UnsupportedScheme(_))
        ));
        assert!(matches!(Target::parse("not a url"), Err(HeadError::InvalidUrl(_))));
        assert!(matches!(Target::parse(""), Err(HeadError::InvalidUrl(_))));
        assert_eq!(Target::parse("http://u:p@h/"), Err(HeadError::CredentialsInUrl));
        // Spaces and non-ASCII in the path are percent-encoded by the URL parser.
        assert_eq!(
            &*Target::parse("http://h/a b/é").unwrap().path_and_query,
            "/a%20b/%C3%A9"
        );
    }

    #[test]
    fn content_length_digits() {
        let mut buf = [0; 20];
        assert_eq!(format_u64(0, &mut buf), "0");
        assert_eq!(format_u64(u64::MAX, &mut buf), "18446744073709551615");
    }
}
