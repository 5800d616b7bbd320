//! What the subcommands' arguments share: exit statuses, curl's forms
//! (`-F name=@file`, `-H`, sizes, scheme-less URLs), TLS and proxy options,
//! the progress mode.

use std::path::PathBuf;

use clap::ValueEnum;

/// A file part given as curl's `-F name=@path[;type=T][;filename=F]`
/// (`spec` is what follows the `@`).
pub struct FormPart {
    /// The file (`-` for standard input).
    pub path: String,
    /// `type=`.
    pub content_type: Option<String>,
    /// `filename=`.
    pub filename: Option<String>,
}

impl FormPart {
    /// Parses `spec` for the part `name`.
    pub fn parse(name: &str, spec: &str) -> Result<FormPart, String> {
        let mut pieces = spec.split(';');
        let path = pieces.next().unwrap_or("");
        if path.is_empty() {
            return Err(format!("-F {name}=@ needs a file"));
        }
        let mut part = FormPart {
            path: path.to_string(),
            content_type: None,
            filename: None,
        };
        for piece in pieces {
            match piece.split_once('=') {
                Some(("type", t)) => part.content_type = Some(t.to_string()),
                Some(("filename", f)) => part.filename = Some(f.trim_matches('"').to_string()),
                _ => {
                    return Err(format!(
                        "-F {name}=@{spec}: unknown ;{piece} (type= and filename= are known)"
                    ))
                }
            }
        }
        Ok(part)
    }
}

/// A URL as given, with `http://` in front when it names no scheme (as
/// curl reads `localhost:8080/up`).
pub fn with_default_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// A size with an optional binary suffix, as curl reads them: `512`, `1k`,
/// `16M`, `1G` (also `KiB`, `MB`…; all powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("not a size: {text:?}"))?;
    let shift = match suffix.to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("unknown size suffix in {text:?} (k, M, G, T)")),
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size too large: {text:?}"))
}

/// Proxy options shared by `upload` and `load`, as curl spells them.
#[derive(clap::Args, Debug, Default)]
pub struct ProxyArgs {
    /// Use this HTTP proxy for http and https (CONNECT), e.g.
    /// http://user:pass@proxy:3128; default: the *_proxy variables.
    #[arg(short = 'x', long, value_name = "URL")]
    proxy: Option<String>,
    /// Hosts that go direct, as NO_PROXY (comma list; '*' for all).
    #[arg(long, value_name = "LIST")]
    noproxy: Option<String>,
}

impl ProxyArgs {
    /// Applies the options to `engine`; a usage error names the flag.
    pub fn apply(&self, engine: &mut uploadtask::EngineConfig) -> Result<(), String> {
        use uploadtask_engine::proxy::{NoProxy, Proxies, ProxyUrl};
        if self.proxy.is_none() && self.noproxy.is_none() {
            return Ok(()); // the environment's, read by the engine
        }
        let mut proxies = Proxies::from_env().map_err(|e| e.to_string())?;
        if let Some(url) = &self.proxy {
            let proxy = ProxyUrl::parse(url).map_err(|e| format!("-x: {e}"))?;
            proxies.http = Some(proxy.clone());
            proxies.https = Some(proxy);
        }
        if let Some(list) = &self.noproxy {
            proxies.no_proxy = NoProxy::parse(list);
        }
        engine.proxies = Some(proxies);
        Ok(())
    }
}

/// The HTTP version, as curl chooses it (shared by `upload` and `load`).
#[derive(clap::Args, Debug, Default)]
#[group(multiple = false)]
pub struct HttpArgs {
    /// HTTP/1.1 only.
    #[arg(long = "http1.1")]
    http1_1: bool,
    /// HTTP/2 where TLS negotiates it (ALPN), else HTTP/1.1: the default;
    /// plain http:// stays HTTP/1.1 (no Upgrade).
    #[arg(long)]
    http2: bool,
    /// HTTP/2 without asking, on plain http:// too (h2c).
    #[arg(long)]
    http2_prior_knowledge: bool,
}

impl HttpArgs {
    /// The version chosen.
    pub fn version(&self) -> uploadtask::HttpVersion {
        if self.http1_1 {
            uploadtask::HttpVersion::Http1
        } else if self.http2_prior_knowledge {
            uploadtask::HttpVersion::Http2PriorKnowledge
        } else if self.http2 {
            uploadtask::HttpVersion::Http2
        } else {
            uploadtask::HttpVersion::Auto
        }
    }
}

/// TLS options shared by `upload` and `load`, as curl spells them.
#[derive(clap::Args, Debug, Default)]
pub struct TlsArgs {
    /// Extra trusted root certificates (PEM). A self-signed certificate
    /// given here is trusted when the server presents exactly it.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Accept any server certificate (DANGEROUS: for tests only).
    #[arg(short = 'k', long)]
    insecure: bool,
}

impl TlsArgs {
    /// Applies the options to `engine`; a usage error names the flag.
    pub fn apply(&self, engine: &mut uploadtask::EngineConfig) -> Result<(), String> {
        let read =
            |flag: &str, path: &PathBuf| std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()));
        if let Some(path) = &self.cacert {
            let pem = read("--cacert", path)?;
            engine
                .add_root_pem(&pem)
                .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let (cert_pem, key_pem) = (read("--cert", cert)?, read("--key", key)?);
            engine
                .add_client_auth_pem(&cert_pem, &key_pem)
                .map_err(|e| format!("--cert/--key: {e}"))?;
        }
        if self.insecure {
            eprintln!("uploadtask: warning: -k/--insecure: server certificates are NOT checked");
            engine.danger_accept_invalid_certs = true;
        }
        Ok(())
    }
}

/// Exit status for a usage error (as clap uses too).
pub const USAGE: i32 = 2;

/// How progress is shown.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Progress bars on stderr.
    Bar,
    /// One JSON line per progress event on stderr.
    Json,
    /// Nothing.
    None,
}

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A header from `-H`: `K: V`; `K;` sends K with an empty value (curl's
/// syntax); `K:` with nothing after it is dropped (curl removes it). A
/// header the engine would refuse (a bad name or value, one it sets
/// itself such as `Content-Length`) is a usage error here; a
/// `Content-Type` is checked against the body later.
pub fn header_arg(text: &str) -> Result<Option<(String, String)>, String> {
    use uploadtask_http1::request::{check_header, HeadError};
    let pair = match text.strip_suffix(';').filter(|n| !n.contains(':')) {
        Some(name) => Some((name.trim().to_string(), String::new())),
        None => {
            let (name, value) = split_pair(text, ':', "-H")?;
            (!value.trim().is_empty()).then_some((name, value))
        }
    };
    if let Some((name, value)) = &pair {
        match check_header(name, value) {
            Ok(_) | Err(HeadError::UnsupportedContentType(_)) => {}
            Err(e) => return Err(format!("-H {text:?}: {e}")),
        }
    }
    Ok(pair)
}

pub fn split_pair(text: &str, separator: char, what: &str) -> Result<(String, String), String> {
    match text.split_once(separator) {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim_start().to_string())),
        _ => Err(format!(
            "{what} must look like {}: {text:?}",
            if separator == ':' { "'K: V'" } else { "K=V" }
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_without_a_scheme_is_http() {
        assert_eq!(
            super::with_default_scheme("localhost:8080/up"),
            "http://localhost:8080/up"
        );
        assert_eq!(super::with_default_scheme("h/up?x=a://b"), "h/up?x=a://b");
        assert_eq!(super::with_default_scheme("https://h/"), "https://h/");
    }

    #[test]
    fn sizes_with_suffixes() {
        for (text, size) in [
            ("512", 512),
            ("1k", 1024),
            ("16M", 16 << 20),
            ("1G", 1 << 30),
            ("2KiB", 2048),
            ("3mb", 3 << 20),
        ] {
            assert_eq!(super::parse_size(text), Ok(size), "{text}");
        }
        for bad in ["", "k", "1x", "-1", "99999999999999T"] {
            assert!(super::parse_size(bad).is_err(), "{bad}");
        }
    }
}
