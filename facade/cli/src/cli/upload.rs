//! `uploadtask upload URL FILE...`

mod s3;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use uploadtask::{
    Client, ClientConfig, EngineConfig, FileEntry, ProgressUpdate, Roots, UploadOptions, UploadResponse, UploadTask,
};

use super::args::{header_arg, split_pair, ProgressMode, USAGE};

/// More files than this share one overall bar.
const BARS_MAX: usize = 8;

#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    /// The server endpoint (http or https).
    url: String,
    /// Files to upload, each as its own request: paths, file:// URLs, or
    /// internal://ROOT/... with --root. Optional with -F name=@file or -T.
    files: Vec<String>,
    /// Form field of the file.
    #[arg(short = 'n', long, default_value = "file")]
    name: String,
    /// A request header, 'K: V' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "K: V")]
    headers: Vec<String>,
    /// A formData entry K=V, or a file part name=@path[;type=T][;filename=F]
    /// as curl's -F (repeatable; file parts go into every request).
    #[arg(short = 'F', long = "form", value_name = "K=V")]
    form: Vec<String>,
    /// Send FILE as the raw body (PUT unless -X), as curl's -T.
    #[arg(short = 'T', long = "upload-file", value_name = "FILE")]
    upload_file: Option<String>,
    /// Retry up to N times after a failure worth it (as curl's --retry):
    /// connect failures, resets, timeouts of an attempt, 408/429/502/503/504.
    #[arg(long, value_name = "N")]
    retry: Option<u32>,
    /// No retry starts later than MS after the start (as curl's --retry-max-time).
    #[arg(long, value_name = "MS")]
    retry_max_time: Option<u64>,
    /// Upload each FILE with tus 1.0.0 to ENDPOINT (every positional is then
    /// a file). Run again after an interruption, it resumes from the
    /// server's offset (the upload resource is kept under
    /// $XDG_CONFIG_HOME/uploadtask/resumable).
    #[arg(long, value_name = "ENDPOINT", conflicts_with_all = ["resumable", "upload_file"])]
    tus: Option<String>,
    /// As --tus, with IETF Resumable Uploads (interop version 8; a server that
    /// refuses it gets the file as a plain upload).
    #[arg(long, value_name = "ENDPOINT", conflicts_with = "upload_file")]
    resumable: Option<String>,
    /// As --tus, with a Google Cloud Storage resumable upload started at URL
    /// (a signed URL, or the JSON API's ...?uploadType=resumable&name=KEY);
    /// gs://BUCKET/KEY means https://storage.googleapis.com/BUCKET/KEY.
    #[arg(long, value_name = "URL", conflicts_with_all = ["resumable", "tus", "upload_file"])]
    gcs_resumable: Option<String>,
    /// With --tus or --resumable: most bytes per request (suffixes as 4M).
    #[arg(long, value_name = "SIZE", value_parser = super::args::parse_size)]
    chunk_size: Option<u64>,
    /// With --tus: an Upload-Checksum (sha1) on each piece.
    #[arg(long)]
    checksum: bool,
    /// Progress counts bytes the server acknowledged (TCP ACKs, asked every
    /// 100 ms), not bytes the kernel accepted.
    #[arg(long)]
    progress_acked: bool,
    /// Exit 22 (as curl's --fail) when a response has status 400 or more.
    #[arg(long)]
    fail: bool,
    /// Show the request and response heads on stderr (> and < lines, every
    /// head: 1xx, redirects followed, the final one) and the engine's notes
    /// (* lines).
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Connect timeout in milliseconds, the name lookup included (default 30000).
    #[arg(long, value_name = "MS")]
    connect_timeout: Option<u64>,
    /// Happy Eyeballs: start a connect to the next address (the other
    /// family first) after this many ms while earlier ones go on (default
    /// 250; curl's option).
    #[arg(long = "happy-eyeballs-timeout-ms", value_name = "MS")]
    happy_eyeballs_timeout_ms: Option<u64>,
    /// Follow redirects (up to 10), as curl's -L; without it a 3xx is the result.
    #[arg(short = 'L', long)]
    location: bool,
    /// The request method (default POST; PUT with -T).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// Overall timeout in milliseconds.
    #[arg(short = 't', long, value_name = "MS")]
    timeout: Option<u64>,
    /// Map internal://NAME/ to DIR (repeatable).
    #[arg(long = "root", value_name = "NAME=DIR")]
    roots: Vec<String>,
    #[command(flatten)]
    tls: super::args::TlsArgs,
    #[command(flatten)]
    http: super::args::HttpArgs,
    #[command(flatten)]
    proxy: super::args::ProxyArgs,
    /// Progress display; default: bar on a terminal, none otherwise.
    #[arg(long, value_enum)]
    progress: Option<ProgressMode>,
    /// Print each result as one JSON line on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    s3: s3::S3Args,
}

#[derive(Serialize)]
struct FailJson<'a> {
    data: &'a str,
    code: u32,
}

#[derive(Serialize)]
struct ResultLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    success: Option<&'a UploadResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fail: Option<FailJson<'a>>,
    /// What carried the response (`HTTP/1.1`, `HTTP/2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
}

#[derive(Serialize)]
struct ProgressLine<'a> {
    #[serde(flatten)]
    update: &'a ProgressUpdate,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
}

fn usage(message: String) -> i32 {
    eprintln!("uploadtask: {message}");
    USAGE
}

/// Exit status with `--fail` when a response had status 400 or more (curl's 22).
pub const HTTP_ERROR: i32 = 22;

/// Standard input, read whole (for `-` as a file), once.
fn stdin_bytes() -> Result<bytes::Bytes, String> {
    use std::io::Read;
    static STDIN: std::sync::OnceLock<Result<bytes::Bytes, String>> = std::sync::OnceLock::new();
    STDIN
        .get_or_init(|| {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map(|_| bytes::Bytes::from(buf))
                .map_err(|e| format!("cannot read standard input: {e}"))
        })
        .clone()
}

/// A result on one line: line breaks, tabs and other controls in the body
/// escaped (`\n`, `\r`, `\t`, `\u{1b}`); all other text as it is.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.trim_end().chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => line.extend(c.escape_unicode()),
            c => line.push(c),
        }
    }
    line
}

/// A file part from `-F name=@path[;type=T][;filename=F]`.
fn file_part(name: &str, spec: &str) -> Result<FileEntry, String> {
    let part = super::args::FormPart::parse(name, spec)?;
    let mut entry = FileEntry::new(name, &part.path);
    if part.path == "-" {
        entry.bytes = Some(stdin_bytes()?);
    }
    entry.content_type = part.content_type;
    entry.filename = part.filename;
    Ok(entry)
}

/// Runs `upload`: parse → build → drive → report.
pub fn run(args: UploadArgs) -> i32 {
    if args.url.starts_with("s3://") {
        return s3::run(args);
    }
    let (args, job) = match parse(args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let client = match build(&job) {
        Ok(client) => client,
        Err(status) => return status,
    };
    let (tasks, display) = drive(&args, &client, job);
    report(&args, tasks, &display)
}

/// The requests to make and the client to make them with.
struct Job {
    /// (label, options) per request.
    requests: Vec<(String, UploadOptions)>,
    config: ClientConfig,
    headers: Vec<(String, String)>,
    form: Vec<(String, String)>,
    resumable: Option<uploadtask::ResumableProtocol>,
}

/// Reads the arguments into requests and a client configuration.
fn parse(mut args: UploadArgs) -> Result<(UploadArgs, Job), i32> {
    // With --tus/--resumable every positional is a file.
    let resumable = match (args.tus.take(), args.resumable.take(), args.gcs_resumable.take()) {
        (Some(endpoint), _, _) => Some((uploadtask::ResumableProtocol::Tus, endpoint)),
        (None, Some(endpoint), _) => Some((uploadtask::ResumableProtocol::Ietf, endpoint)),
        (None, None, Some(url)) => {
            let url = match url.strip_prefix("gs://") {
                Some(object) => format!("https://storage.googleapis.com/{object}"),
                None => url,
            };
            Some((uploadtask::ResumableProtocol::Gcs, url))
        }
        (None, None, None) => None,
    };
    if let Some((_, endpoint)) = &resumable {
        let first = std::mem::replace(&mut args.url, endpoint.clone());
        args.files.insert(0, first);
    }
    args.url = super::args::with_default_scheme(&args.url);
    if args.verbose {
        super::verbose::install();
    }
    match url::Url::parse(&args.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        Ok(url) => {
            return Err(usage(format!(
                "unsupported URL scheme {:?} in {}",
                url.scheme(),
                args.url
            )))
        }
        Err(e) => return Err(usage(format!("bad URL {:?}: {e}", args.url))),
    }
    let mut form = Vec::new();
    let mut parts = Vec::new();
    for entry in &args.form {
        match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => match v.strip_prefix('@') {
                Some(spec) => parts.push(file_part(k, spec).map_err(usage)?),
                None => form.push((k.to_string(), v.to_string())),
            },
            _ => return Err(usage(format!("-F must look like K=V or name=@file: {entry:?}"))),
        }
    }
    let requests = requests(&args, &parts)?;
    if args.files.iter().any(|f| f == "-") {
        stdin_bytes().map_err(usage)?;
    }
    let mut engine = EngineConfig {
        max_in_flight: requests.len(),
        max_redirects: if args.location { 10 } else { 0 },
        raise_fd_limit: true,
        http: args.http.version(),
        ..EngineConfig::default()
    };
    args.tls
        .apply(&mut engine)
        .and_then(|()| args.proxy.apply(&mut engine))
        .map_err(usage)?;
    let mut roots = Roots::new().allow_plain_paths();
    for root in &args.roots {
        let (name, dir) = split_pair(root, '=', "--root").map_err(usage)?;
        roots = roots.root(&name, dir);
    }
    if let Some(attempts) = args.retry {
        engine.retry.attempts = attempts;
        engine.retry.max_time = args.retry_max_time.map(Duration::from_millis);
    }
    if let Some(ms) = args.connect_timeout {
        if ms == 0 {
            return Err(usage("--connect-timeout must be at least 1 ms".into()));
        }
        engine.connect_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = args.happy_eyeballs_timeout_ms {
        engine.happy_eyeballs_delay = Duration::from_millis(ms);
    }
    let mut headers = Vec::new();
    for header in &args.headers {
        if let Some(pair) = header_arg(header).map_err(usage)? {
            headers.push(pair);
        }
    }
    let job = Job {
        requests,
        config: ClientConfig {
            engine,
            roots,
            ..ClientConfig::default()
        },
        headers,
        form,
        resumable: resumable.map(|(protocol, _)| protocol),
    };
    Ok((args, job))
}

/// What to send: (label, options) per request.
fn requests(args: &UploadArgs, parts: &[FileEntry]) -> Result<Vec<(String, UploadOptions)>, i32> {
    Ok(match &args.upload_file {
        Some(_) if !args.files.is_empty() || !args.form.is_empty() => {
            return Err(usage(
                "-T sends one file as the whole body: no FILE or -F with it".into(),
            ))
        }
        Some(file) => {
            let mut options = UploadOptions::new(&args.url, file, "")
                .raw(true)
                .method(args.method.clone().unwrap_or_else(|| "PUT".into()));
            if file == "-" {
                options.body_bytes = Some(stdin_bytes().map_err(usage)?);
            }
            vec![(file.clone(), options)]
        }
        None if args.files.is_empty() && parts.is_empty() => {
            return Err(usage("nothing to upload: give FILE, -F name=@file or -T FILE".into()))
        }
        None if args.files.is_empty() => {
            let mut options = UploadOptions::new(&args.url, "", "");
            options.files = parts.to_vec();
            vec![("form".into(), options)]
        }
        None => args
            .files
            .iter()
            .map(|file| {
                let mut options = UploadOptions::new(&args.url, file, &args.name);
                if file == "-" {
                    options.body_bytes = stdin_bytes().ok();
                }
                options.files = parts.to_vec();
                (file.clone(), options)
            })
            .collect(),
    })
}

/// Starts the client (its engine).
fn build(job: &Job) -> Result<Client, i32> {
    Client::new(job.config.clone()).map_err(|e| {
        eprintln!("uploadtask: cannot start the engine: {e}");
        1
    })
}

/// Where results and progress go.
struct Display {
    bars: Bars,
    labels: Vec<String>,
}

/// Starts every request, with its progress display and `-v` trace.
fn drive(args: &UploadArgs, client: &Client, job: Job) -> (Vec<UploadTask>, Display) {
    let mode = args.progress.unwrap_or(if std::io::stderr().is_terminal() {
        ProgressMode::Bar
    } else {
        ProgressMode::None
    });
    let several = job.requests.len() > 1;
    let labels: Vec<String> = job.requests.iter().map(|(label, _)| label.clone()).collect();
    let bars = Bars::new(mode, &labels);
    let stderr_lock = Arc::new(Mutex::new(()));
    let tasks = job
        .requests
        .into_iter()
        .enumerate()
        .map(|(index, (file, mut options))| {
            options.header = job.headers.clone();
            options.form_data = job.form.clone();
            options.timeout = args.timeout.map(Duration::from_millis);
            if let Some(method) = &args.method {
                options.method = Some(method.clone());
            }
            options.progress_acked = args.progress_acked;
            if let Some(protocol) = job.resumable {
                options.resumable = Some(protocol);
                options.chunk_size = args.chunk_size;
                options.checksum = args.checksum;
            }
            if args.verbose {
                options = trace_heads(options, &stderr_lock);
            }
            let label = several.then(|| file.clone());
            let bars = bars.clone();
            let lock = Arc::clone(&stderr_lock);
            options = options.on_progress_update(move |update| match mode {
                ProgressMode::Json => {
                    let line = ProgressLine {
                        update,
                        file: label.as_deref(),
                    };
                    let _guard = lock.lock();
                    eprintln!("{}", serde_json::to_string(&line).unwrap_or_default());
                }
                ProgressMode::Bar => bars.update(index, update),
                ProgressMode::None => {}
            });
            client.upload_file(options)
        })
        .collect();
    (tasks, Display { bars, labels })
}

/// `-v`: the request head as `>` lines, every response head as `<` lines.
fn trace_heads(options: UploadOptions, stderr_lock: &Arc<Mutex<()>>) -> UploadOptions {
    let lock = Arc::clone(stderr_lock);
    let options = options.on_request_head(move |head| {
        let _guard = lock.lock();
        for line in String::from_utf8_lossy(head).lines().filter(|l| !l.is_empty()) {
            eprintln!("> {line}");
        }
        eprintln!(">");
    });
    let lock = Arc::clone(stderr_lock);
    options.on_response_head(move |heads| {
        let _guard = lock.lock();
        // Several heads may come at once (1xx, then the final one).
        for line in String::from_utf8_lossy(heads).split_terminator("\r\n") {
            if line.is_empty() {
                eprintln!("<");
            } else {
                eprintln!("< {line}");
            }
        }
    })
}

/// Waits for each upload in order and prints its result; the exit status.
fn report(args: &UploadArgs, tasks: Vec<UploadTask>, display: &Display) -> i32 {
    let (bars, labels) = (&display.bars, &display.labels);
    let several = labels.len() > 1;
    let mut status = 0;
    for (index, (task, file)) in tasks.iter().zip(labels).enumerate() {
        let outcome = task.wait();
        bars.finish(index, outcome.is_ok());
        let label = several.then_some(file.as_str());
        match &outcome {
            Ok(response) if args.json => bars.println(&json_line(&ResultLine {
                success: Some(response),
                fail: None,
                protocol: Some(response.protocol),
                file: label,
            })),
            Err(error) if args.json => bars.println(&json_line(&ResultLine {
                success: None,
                fail: Some(FailJson {
                    data: &error.message,
                    code: error.code(),
                }),
                protocol: None,
                file: label,
            })),
            Ok(response) => bars.println(&format!(
                "{}{} {}",
                prefix(label),
                response.status_code,
                one_line(&response.data)
            )),
            Err(error) => bars.eprintln(&format!("{}fail {}: {}", prefix(label), error.code(), error.message)),
        }
        match &outcome {
            Err(_) => status = 1,
            Ok(response) if args.fail && response.status_code >= 400 && status == 0 => status = HTTP_ERROR,
            Ok(_) => {}
        }
    }
    bars.clear();
    status
}

fn prefix(label: Option<&str>) -> String {
    label.map(|l| format!("{l}: ")).unwrap_or_default()
}

fn json_line(line: &ResultLine<'_>) -> String {
    serde_json::to_string(line).unwrap_or_default()
}

/// Progress bars: one per file, or one overall bar for many files.
#[derive(Clone)]
struct Bars {
    inner: Option<Arc<BarsInner>>,
}

struct BarsInner {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    /// With one overall bar: (sent, total) per file.
    overall: Option<Mutex<Vec<(u64, u64)>>>,
}

impl Bars {
    fn new(mode: ProgressMode, files: &[String]) -> Bars {
        if mode != ProgressMode::Bar {
            return Bars { inner: None };
        }
        let style =
            ProgressStyle::with_template("{prefix:20!} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        let multi = MultiProgress::new();
        let (bars, overall) = if files.len() <= BARS_MAX {
            let bars = files
                .iter()
                .map(|f| {
                    let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                    bar.set_prefix(uploadtask_multipart::basename(f).to_string());
                    bar
                })
                .collect();
            (bars, None)
        } else {
            let bar = multi.add(ProgressBar::new(0).with_style(style));
            bar.set_prefix(format!("{} files", files.len()));
            (vec![bar], Some(Mutex::new(vec![(0, 0); files.len()])))
        };
        Bars {
            inner: Some(Arc::new(BarsInner { multi, bars, overall })),
        }
    }

    fn update(&self, index: usize, update: &ProgressUpdate) {
        let Some(inner) = &self.inner else { return };
        match &inner.overall {
            None => {
                if let Some(bar) = inner.bars.get(index) {
                    bar.set_length(update.total_bytes_expected_to_send);
                    bar.set_position(update.total_bytes_sent);
                }
            }
            Some(all) => {
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                all[index] = (update.total_bytes_sent, update.total_bytes_expected_to_send);
                let (sent, total) = all.iter().fold((0, 0), |(s, t), (a, b)| (s + a, t + b));
                inner.bars[0].set_length(total);
                inner.bars[0].set_position(sent);
            }
        }
    }

    /// Ends a file's bar, leaving a line with its size, time and average rate.
    fn finish(&self, index: usize, ok: bool) {
        let Some(inner) = &self.inner else { return };
        if inner.overall.is_none() {
            if let Some(bar) = inner.bars.get(index) {
                let (sent, elapsed) = (bar.position(), bar.elapsed().as_secs_f64());
                let rate = if elapsed > 0.0 { sent as f64 / elapsed } else { 0.0 };
                let summary = format!(
                    "{} {} in {:.2} s ({}/s)",
                    bar.prefix(),
                    indicatif::HumanBytes(sent),
                    elapsed,
                    indicatif::HumanBytes(rate as u64)
                );
                if ok {
                    bar.finish_with_message(String::new());
                } else {
                    bar.abandon();
                }
                let _ = inner.multi.println(summary);
            }
        }
    }

    /// Prints a failure line on stderr without tearing the bars.
    fn eprintln(&self, line: &str) {
        match &self.inner {
            Some(inner) => inner.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Prints a result line on stdout without tearing the bars.
    fn println(&self, line: &str) {
        match &self.inner {
            Some(inner) => inner.multi.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn clear(&self) {
        if let Some(inner) = &self.inner {
            for bar in &inner.bars {
                bar.finish();
            }
            let _ = inner.multi.clear();
        }
    }
}
