//! Command-line parsing and the subcommands.

mod demo;
mod load;
mod run;
mod upload;
mod verbose;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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

#[derive(Parser, Debug)]
#[command(
    name = "uploadtask",
    version,
    about = "HTTP file uploads: upload, serve, demo, load, run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Upload each FILE as its own request, all at once.
    Upload(Box<upload::UploadArgs>),
    /// Start a receiver on loopback and upload to it, with a progress bar.
    Demo(demo::DemoArgs),
    /// A receiver: answers each upload with a JSON summary (fields, files with size and sha256).
    Serve(ServeArgs),
    /// Load generator: uploads/s, MB/s, latency percentiles, errors by code.
    Load(Box<load::LoadArgs>),
    /// Run JavaScript (QuickJS) where `@system.uploadtask` is the documented module.
    Run(run::RunArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Store received files here, named by their sha256.
    #[arg(long)]
    dir: Option<PathBuf>,
}

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

/// Parses the command line and runs the subcommand; returns the exit
/// status (0 all succeeded, 1 any failed, 2 usage error).
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { USAGE } else { 0 };
        }
    };
    match cli.command {
        Command::Upload(args) => upload::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve(args),
        Command::Load(args) => load::run(*args),
        Command::Run(args) => run::run(args),
    }
}

fn serve(args: ServeArgs) -> i32 {
    if let Some(dir) = &args.dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("uploadtask: cannot create {}: {e}", dir.display());
            return USAGE;
        }
    }
    let config = crate::serve::ReceiverConfig {
        addr: Some(args.addr),
        dir: args.dir,
        workers: Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
        ..Default::default()
    };
    match crate::serve::Receiver::start(config) {
        Ok(receiver) => {
            eprintln!("uploadtask: receiving on http://{}/ (Ctrl-C stops)", receiver.addr());
            receiver.wait();
            0
        }
        Err(e) => {
            eprintln!("uploadtask: cannot listen on {}: {e}", args.addr);
            1
        }
    }
}

/// Human-readable bytes.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
