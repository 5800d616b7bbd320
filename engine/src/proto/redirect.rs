//! Following redirects, decided without I/O: given the request that got a
//! 3xx answer and the policy, what to send next (as reqwest's `Policy` and
//! `Action`). The driver performs the decision: it re-sends the whole body
//! from byte 0 (positional reads from the same open files, no buffering) or
//! none.
//!
//! | status | method | next request |
//! |---|---|---|
//! | 301, 302 | `POST` | `GET` without a body (as browsers and curl) |
//! | 301, 302 | other | the same method and body |
//! | 303 | any but `HEAD` | `GET` without a body |
//! | 307, 308 | any | the same method and the whole body again |
//! | other 3xx, or no `Location` | | none: the response is the outcome |
//!
//! A relative `Location` is resolved against the current URL (RFC 3986).
//! On a hop to another origin (scheme, host or port) `Authorization`,
//! `Cookie` and `Proxy-Authorization` are dropped; `https` → `http` is
//! refused unless allowed; more than `max` hops fail ("too many redirects");
//! `max == 0` follows none.
//!
//! ```
//! use uploadtask_engine::proto::redirect::{decide, Next, Policy, Request};
//!
//! let request = Request { url: "https://a.example/up", method: "POST", hops: 0 };
//! let next = decide(&Policy::default(), &request, 307, Some("/v2/up"));
//! let Next::Follow(hop) = next else { panic!() };
//! assert_eq!((hop.url.as_str(), hop.method.as_str(), hop.keep_body), ("https://a.example/v2/up", "POST", true));
//! assert!(!hop.cross_origin);
//! ```

use crate::error::{ErrorKind, UploadError};

/// How redirects are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most hops followed; 0 follows none (the 3xx is the outcome).
    pub max: u32,
    /// Follow a hop from `https` to `http`.
    pub allow_https_to_http: bool,
}

impl Default for Policy {
    /// Up to 10 hops, never from `https` to `http`.
    fn default() -> Self {
        Policy {
            max: 10,
            allow_https_to_http: false,
        }
    }
}

/// The request that got the 3xx.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Its absolute URL.
    pub url: &'a str,
    /// Its method.
    pub method: &'a str,
    /// Hops followed before it.
    pub hops: u32,
}

/// The next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Absolute URL.
    pub url: String,
    /// Method.
    pub method: String,
    /// Send the whole body again; `false`: no body (and no content headers).
    pub keep_body: bool,
    /// Another origin: credentials headers are dropped.
    pub cross_origin: bool,
}

/// What to do after a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Next {
    /// The response is the outcome.
    Done,
    /// Send this request next.
    Follow(Hop),
    /// Fail with this error.
    Fail(UploadError),
}

/// True for the statuses this module may follow (301, 302, 303, 307, 308).
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Decides what follows a response of `status` with `location`.
pub fn decide(policy: &Policy, request: &Request<'_>, status: u16, location: Option<&str>) -> Next {
    let (method, keep_body) = match (status, request.method) {
        (301 | 302, m) if m.eq_ignore_ascii_case("POST") => ("GET", false),
        (301 | 302, m) => (m, true),
        (303, m) if m.eq_ignore_ascii_case("HEAD") => ("HEAD", false),
        (303, _) => ("GET", false),
        (307 | 308, m) => (m, true),
        _ => return Next::Done,
    };
    let Some(location) = location.map(str::trim).filter(|l| !l.is_empty()) else {
        return Next::Done;
    };
    if policy.max == 0 {
        return Next::Done;
    }
    let fail = |message: String| Next::Fail(UploadError::new(ErrorKind::Protocol, message));
    if request.hops >= policy.max {
        return fail(format!("too many redirects: {} followed", request.hops));
    }
    let Ok(base) = url::Url::parse(request.url) else {
        return fail(format!("cannot follow a redirect from {}", request.url));
    };
    let next = match base.join(location) {
        Ok(next) => next,
        Err(e) => return fail(format!("bad redirect Location {location:?}: {e}")),
    };
    match (base.scheme(), next.scheme()) {
        (_, "http" | "https") => {}
        (_, other) => return fail(format!("redirect to an unsupported scheme {other:?}")),
    }
    if base.scheme() == "https" && next.scheme() == "http" && !policy.allow_https_to_http {
        return fail(format!("redirect from https to http refused: {next}"));
    }
    let cross_origin = base.origin() != next.origin();
    let mut url = next;
    url.set_fragment(None);
    Next::Follow(Hop {
        url: url.into(),
        method: method.to_string(),
        keep_body,
        cross_origin,
    })
}

/// Headers dropped on a hop to another origin.
pub fn is_credential(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Headers that describe a body, dropped with it.
pub fn is_content_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-type") || name.to_ascii_lowercase().starts_with("content-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(url: &'a str, method: &'a str, hops: u32) -> Request<'a> {
        Request { url, method, hops }
    }

    fn follow(next: Next) -> Hop {
        match next {
            Next::Follow(hop) => hop,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn methods_and_bodies_per_status() {
        let p = Policy::default();
        let post = req("http://a.test/x/up", "POST", 0);
        let put = req("http://a.test/x/up", "PUT", 0);
        for (status, request, method, keep) in [
            (301, post, "GET", false),
            (302, post, "GET", false),
            (303, post, "GET", false),
            (307, post, "POST", true),
            (308, post, "POST", true),
            (301, put, "PUT", true),
            (302, put, "PUT", true),
            (303, put, "GET", false),
            (307, put, "PUT", true),
        ] {
            let hop = follow(decide(&p, &request, status, Some("next")));
            assert_eq!(
                (hop.method.as_str(), hop.keep_body),
                (method, keep),
                "{status} {}",
                request.method
            );
            assert_eq!(hop.url, "http://a.test/x/next");
        }
        for status in [300, 304, 305, 200, 404] {
            assert_eq!(decide(&p, &post, status, Some("/n")), Next::Done, "{status}");
        }
        assert_eq!(decide(&p, &post, 302, None), Next::Done);
        assert_eq!(decide(&p, &post, 302, Some("  ")), Next::Done);
    }

    #[test]
    fn origins_schemes_and_limits() {
        let p = Policy::default();
        let r = req("https://a.test:8443/up#frag", "POST", 0);
        let same = follow(decide(&p, &r, 307, Some("https://A.test:8443/v2?q=1#x")));
        assert_eq!(
            (same.url.as_str(), same.cross_origin),
            ("https://a.test:8443/v2?q=1", false)
        );
        assert!(
            follow(decide(&p, &r, 307, Some("https://a.test/up"))).cross_origin,
            "another port"
        );
        assert!(follow(decide(&p, &r, 307, Some("//b.test/up"))).cross_origin);
        let Next::Fail(e) = decide(&p, &r, 307, Some("http://a.test:8443/up")) else {
            panic!()
        };
        assert_eq!(e.code(), 1000);
        assert!(e.message.starts_with("redirect from https to http refused"), "{e}");
        let allowed = Policy {
            allow_https_to_http: true,
            ..p
        };
        assert!(follow(decide(&allowed, &r, 307, Some("http://a.test/up"))).cross_origin);
        let Next::Fail(e) = decide(&p, &r, 307, Some("ftp://a.test/up")) else {
            panic!()
        };
        assert!(e.message.contains("unsupported scheme"), "{e}");
        let Next::Fail(e) = decide(&p, &req("http://a.test/", "POST", 10), 302, Some("/again")) else {
            panic!()
        };
        assert_eq!(e.message, "too many redirects: 10 followed");
        let off = Policy { max: 0, ..p };
        assert_eq!(decide(&off, &r, 307, Some("/x")), Next::Done);
    }

    #[test]
    fn header_classes() {
        assert!(is_credential("Authorization") && is_credential("COOKIE") && is_credential("proxy-authorization"));
        assert!(!is_credential("X-Token"));
        assert!(is_content_header("Content-Type") && is_content_header("content-md5"));
        assert!(!is_content_header("X-Content"));
    }
}
