//! HTTP proxies, decided without I/O: which proxy (if any) a target goes
//! through, as curl reads the environment, and the `CONNECT` exchange that
//! opens a tunnel for `https`.
//!
//! - `http://` targets go to the proxy with an absolute-form request
//!   (`POST http://host:port/path HTTP/1.1`), `Proxy-Authorization` added.
//! - `https://` targets get a tunnel: `CONNECT host:port HTTP/1.1`, then TLS
//!   to the origin inside it. A 407 is an error saying so; any other
//!   non-2xx too.
//! - The environment, as curl: `http_proxy` (lower case only: `HTTP_PROXY`
//!   can be set by a CGI request's `Proxy:` header), `HTTPS_PROXY` /
//!   `https_proxy`, `ALL_PROXY` / `all_proxy`, `NO_PROXY` / `no_proxy`.
//! - `NO_PROXY`: a comma (or space) separated list; `*` matches every host;
//!   `example.com` and `.example.com` match it and its subdomains; IP
//!   addresses and CIDR ranges match IP literals.
//! - Credentials in the proxy URL (`http://user:pass@proxy:3128`) become
//!   basic `Proxy-Authorization`. Only `http://` proxies are supported.
//!
//! ```
//! use uploadtask_engine::proxy::{NoProxy, Proxies, ProxyUrl};
//!
//! let proxies = Proxies {
//!     http: Some(ProxyUrl::parse("http://proxy.test:3128").unwrap()),
//!     https: Some(ProxyUrl::parse("http://u:p@proxy.test:3128").unwrap()),
//!     no_proxy: NoProxy::parse("localhost,.internal.test,10.0.0.0/8"),
//! };
//! assert_eq!(proxies.for_target(false, "api.example.com").unwrap().port, 3128);
//! assert!(proxies.for_target(false, "db.internal.test").is_none());
//! assert!(proxies.for_target(true, "10.1.2.3").is_none());
//! ```

use std::net::IpAddr;

use uploadtask_http1::request::Target;
use uploadtask_http1::{Limits, ParseStatus, ResponseHeadParser};

use crate::error::{ErrorKind, UploadError};

/// A proxy: where to connect, and the basic credentials to send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (1080 when the URL names none, as curl).
    pub port: u16,
    /// `Proxy-Authorization` value (`Basic …`), from the URL's credentials.
    pub authorization: Option<String>,
}

impl ProxyUrl {
    /// Parses `http://[user:pass@]host[:port]` (a bare `host:port` is taken
    /// as `http://`).
    pub fn parse(text: &str) -> Result<ProxyUrl, UploadError> {
        let bad = |why: String| UploadError::new(ErrorKind::InvalidArgument, format!("bad proxy {text:?}: {why}"));
        let text = text.trim();
        if text.chars().any(|c| c.is_ascii_control()) {
            return Err(bad("a control character in it".into()));
        }
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad(format!(
                "only http:// proxies are supported, not {}://",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err(bad("no host".into())),
        };
        let authorization = (!url.username().is_empty()).then(|| {
            let user = percent_decode(url.username());
            let pass = percent_decode(url.password().unwrap_or(""));
            format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
        });
        Ok(ProxyUrl {
            host,
            port: url.port().unwrap_or(1080),
            authorization,
        })
    }
}

/// Hosts that go direct; see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    domains: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` list.
    pub fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let (address, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, b.parse().ok()),
                None => (entry, None),
            };
            match address.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(ip) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    no_proxy.networks.push((ip, bits.unwrap_or(max).min(max)));
                }
                Err(_) => no_proxy.domains.push(
                    entry
                        .trim_start_matches('.')
                        .trim_start_matches("*.")
                        .to_ascii_lowercase(),
                ),
            }
        }
        no_proxy
    }

    /// True when `host` (a name, or an IP literal without brackets) goes direct.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.networks.iter().any(|&(net, bits)| in_network(ip, net, bits));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|d| {
            host == *d
                || (host.len() > d.len()
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (net >> shift)
}

/// The proxies an engine uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// For `http://` targets.
    pub http: Option<ProxyUrl>,
    /// For `https://` targets (through a `CONNECT` tunnel).
    pub https: Option<ProxyUrl>,
    /// Hosts that go direct.
    pub no_proxy: NoProxy,
}

impl Proxies {
    /// The proxies the environment names, as curl reads them (see the
    /// module doc); invalid values are refused with a clear error.
    pub fn from_env() -> Result<Proxies, UploadError> {
        Proxies::from_vars(|name| std::env::var(name).ok())
    }

    /// The same from any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Proxies, UploadError> {
        let first = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.trim().is_empty()));
        let all = first(&["all_proxy", "ALL_PROXY"]);
        let parse = |value: Option<String>| value.map(|v| ProxyUrl::parse(&v)).transpose();
        Ok(Proxies {
            http: parse(first(&["http_proxy"]).or_else(|| all.clone()))?,
            https: parse(first(&["https_proxy", "HTTPS_PROXY"]).or(all))?,
            no_proxy: NoProxy::parse(&first(&["no_proxy", "NO_PROXY"]).unwrap_or_default()),
        })
    }

    /// The proxy for a target on `host` (`https` or not), if any.
    pub fn for_target(&self, https: bool, host: &str) -> Option<&ProxyUrl> {
        let proxy = if https { self.https.as_ref() } else { self.http.as_ref() }?;
        (!self.no_proxy.matches(host)).then_some(proxy)
    }
}

/// The absolute-form request target for `target` through a proxy:
/// `http://authority/path?query`.
pub fn absolute_form(target: &Target) -> Target {
    let mut absolute = target.clone();
    absolute.path_and_query = format!("http://{}{}", target.authority, target.path_and_query).into();
    absolute
}

/// The `CONNECT` exchange that opens a tunnel through a proxy, sans-I/O:
/// write [`Tunnel::request`], then feed what the proxy answers to
/// [`Tunnel::handle_received`] until it says the tunnel is open or failed.
#[derive(Debug)]
pub struct Tunnel {
    request: Vec<u8>,
    sent: usize,
    parser: ResponseHeadParser,
    buf: Vec<u8>,
    proxy: String,
}

/// What the proxy's answer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelStatus {
    /// More bytes are needed.
    Pending,
    /// The tunnel is open: TLS to the origin may start.
    Open,
}

impl Tunnel {
    /// A `CONNECT` to `target`'s host and port through `proxy`.
    pub fn new(target: &Target, proxy: &ProxyUrl) -> Tunnel {
        let host = if target.host.contains(':') {
            format!("[{}]", target.host)
        } else {
            target.host.to_string()
        };
        let mut request = format!(
            "CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {agent}\r\n",
            port = target.port,
            agent = uploadtask_http1::request::DEFAULT_USER_AGENT
        );
        if let Some(authorization) = &proxy.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        Tunnel {
            request: request.into_bytes(),
            sent: 0,
            parser: ResponseHeadParser::new(Limits::default()),
            buf: Vec::new(),
            proxy: format!("{}:{}", proxy.host, proxy.port),
        }
    }

    /// The bytes of the request still to write.
    pub fn request(&self) -> &[u8] {
        &self.request[self.sent..]
    }

    /// `n` more request bytes were written.
    pub fn handle_sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.request.len());
    }

    /// The proxy's bytes arrived.
    pub fn handle_received(&mut self, bytes: &[u8]) -> Result<TunnelStatus, UploadError> {
        self.buf.extend_from_slice(bytes);
        let fail = |kind, message: String| Err(UploadError::new(kind, message));
        loop {
            match self.parser.parse(&self.buf) {
                Ok(ParseStatus::Partial) => return Ok(TunnelStatus::Pending),
                Ok(ParseStatus::Interim { consumed, .. }) => {
                    self.buf.drain(..consumed);
                }
                Ok(ParseStatus::Complete { head, consumed }) => {
                    return match head.status {
                        // Anything after the head would be the origin's
                        // bytes before TLS began: a broken proxy.
                        200..=299 if consumed == self.buf.len() => Ok(TunnelStatus::Open),
                        200..=299 => fail(
                            ErrorKind::Protocol,
                            format!("proxy {} sent bytes after its CONNECT answer", self.proxy),
                        ),
                        407 => fail(
                            ErrorKind::Network,
                            format!(
                                "proxy {} requires authentication (407): give user:password in the proxy URL",
                                self.proxy
                            ),
                        ),
                        status => fail(
                            ErrorKind::Network,
                            format!("proxy {} refused the tunnel: {status} {}", self.proxy, head.reason),
                        ),
                    };
                }
                Err(e) => {
                    return fail(
                        ErrorKind::Protocol,
                        format!("bad answer from proxy {}: {e}", self.proxy),
                    )
                }
            }
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_and_credentials() {
        let p = ProxyUrl::parse("http://Aladdin:open%20sesame@proxy.test:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.test", 3128));
        assert_eq!(p.authorization.as_deref(), Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert_eq!(ProxyUrl::parse("proxy.test").unwrap().port, 1080);
        assert_eq!(ProxyUrl::parse("[::1]:8080").unwrap().host, "::1");
        assert_eq!(ProxyUrl::parse("socks5://p.test").unwrap_err().code(), 202);
        assert_eq!(ProxyUrl::parse("p.test:3128\r\nX: 1").unwrap_err().code(), 202);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn no_proxy_as_curl() {
        let n = NoProxy::parse("localhost, .example.com,other.test 192.168.0.0/16,::1,10.1.2.3");
        for host in [
            "localhost",
            "example.com",
            "a.example.com",
            "other.test",
            "x.other.test",
            "192.168.4.5",
            "::1",
            "10.1.2.3",
        ] {
            assert!(n.matches(host), "{host}");
        }
        for host in [
            "notexample.com",
            "example.org",
            "10.1.2.4",
            "192.169.0.1",
            "::2",
            "localhost.evil",
        ] {
            assert!(!n.matches(host), "{host}");
        }
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::parse("").matches("anything"));
    }

    #[test]
    fn environment_as_curl() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        let p = Proxies::from_vars(env(&[
            ("HTTP_PROXY", "http://ignored:1"),
            ("HTTPS_PROXY", "http://s:2"),
            ("NO_PROXY", "a.test"),
        ]))
        .unwrap();
        assert_eq!(p.http, None, "upper-case HTTP_PROXY is ignored");
        assert_eq!(p.for_target(true, "b.test").unwrap().port, 2);
        assert!(p.for_target(true, "a.test").is_none());
        let p = Proxies::from_vars(env(&[("ALL_PROXY", "http://all:3"), ("http_proxy", "http://h:4")])).unwrap();
        assert_eq!((p.http.unwrap().port, p.https.unwrap().port), (4, 3));
        assert!(Proxies::from_vars(env(&[("https_proxy", "socks5://x:1")])).is_err());
    }

    #[test]
    fn the_connect_exchange() {
        let target = Target::parse("https://origin.test:8443/up").unwrap();
        let proxy = ProxyUrl::parse("http://u:p@proxy.test:3128").unwrap();
        let mut tunnel = Tunnel::new(&target, &proxy);
        assert_eq!(
            tunnel.request(),
            b"CONNECT origin.test:8443 HTTP/1.1\r\nHost: origin.test:8443\r\nUser-Agent: uploadtask/0.1\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        tunnel.handle_sent(8);
        assert!(tunnel.request().starts_with(b"origin.test"));
        assert_eq!(
            tunnel.handle_received(b"HTTP/1.1 200 Connection"),
            Ok(TunnelStatus::Pending)
        );
        assert_eq!(tunnel.handle_received(b" established\r\n\r\n"), Ok(TunnelStatus::Open));
        let mut refused = Tunnel::new(&target, &proxy);
        let error = refused
            .handle_received(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            .unwrap_err();
        assert!(error.message.contains("requires authentication (407)"), "{error}");
        let mut early = Tunnel::new(&target, &proxy);
        assert!(early.handle_received(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03").is_err());
        let absolute = absolute_form(&Target::parse("http://o.test:81/a?b").unwrap());
        assert_eq!(&*absolute.path_and_query, "http://o.test:81/a?b");
    }
}
