//! `uploadtask load [URL]`: a load generator on the engine. Closed model
//! (`-c` uploads in flight until `-n` are done or `-z` has passed) or open
//! model (`--rate R` uploads per second, started at their intended time,
//! latency measured from that time as wrk2 does, so a stall cannot hide
//! behind uploads that were never sent; `-c` still caps those in flight).
//! One engine per `--threads` (default: the cores). Only successes count
//! as throughput and have latencies; failures are listed by kind. Ctrl-C
//! prints the summary of what ended.

pub mod log;
pub mod merge;
pub mod output;
pub mod segment;
pub mod stats;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, SourceSpec, UploadError, UploadRequest};

use self::log::{Job, RunTotals};
use self::segment::Segment;
use self::stats::{Outcome, Report, Tally};
use super::args::USAGE;
use crate::serve::{Receiver, ReceiverConfig};

/// Exit status after Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED: i32 = 130;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadArgs {
    #[command(subcommand)]
    action: Option<LoadAction>,
    /// Endpoint; without one, an embedded receiver is started on loopback
    /// (in this process: it competes for the same cores, and the report says so).
    url: Option<String>,
    /// Uploads in flight at once (with --rate: the most in flight).
    #[arg(short = 'c', long, default_value_t = 100)]
    concurrency: usize,
    /// Uploads in all (default 10000 unless -z is given).
    #[arg(short = 'n', long)]
    total: Option<u64>,
    /// Run for this long (`30s`, `2m`, `500ms`), then let those in flight end.
    #[arg(short = 'z', long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Open model: start this many uploads per second, each at its intended
    /// time; latency counts from that time (no coordinated omission).
    #[arg(long, value_name = "PER_SEC")]
    rate: Option<f64>,
    /// Engines, one thread each (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Bytes of the file part of each upload (without --file).
    #[arg(long, default_value = "16k", value_parser = super::args::parse_size)]
    size: u64,
    /// Upload this file (opened by each upload) instead of --size bytes.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Form field of the file part.
    #[arg(long, default_value = "file")]
    name: String,
    /// A request header, 'K: V' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "K: V")]
    headers: Vec<String>,
    /// A form field K=V, or a file part name=@path[;type=T][;filename=F]
    /// as curl's -F (repeatable; file parts go into every upload).
    #[arg(short = 'F', long = "form", value_name = "K=V")]
    form: Vec<String>,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
    /// Write the successes' latency per second as an HdrHistogram interval log.
    #[arg(long, value_name = "FILE")]
    hdr_log: Option<PathBuf>,
    /// Write throughput and latency over time as an SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Run segment I of N of the job: -n, -c and --rate are the whole
    /// job's, this process runs its share (see docs/DISTRIBUTED.md).
    #[arg(long, value_name = "I/N")]
    segment: Option<Segment>,
    /// Start at this time (RFC 3339 in UTC, `2026-12-03T17:30:00Z`, or
    /// `@` and Unix seconds), so that segments started apart begin together.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    start_at: Option<SystemTime>,
    /// A name for the job, kept in the log (merge refuses logs of other names).
    #[arg(long, default_value = "")]
    tag: String,
    #[command(flatten)]
    tls: super::args::TlsArgs,
    #[command(flatten)]
    http: super::args::HttpArgs,
    /// With HTTP/2: most streams one connection carries (the server's limit
    /// bounds it too); more uploads in flight open more connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    streams: Option<u32>,
    #[command(flatten)]
    proxy: super::args::ProxyArgs,
}

/// `30s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let value: f64 = number.parse().map_err(|_| format!("not a duration: {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("not a duration: {text:?} (use s, ms, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// What `load` does besides running a load.
#[derive(clap::Subcommand, Debug)]
pub enum LoadAction {
    /// One report from the interval logs of many runs (`--hdr-log`).
    Merge(merge::MergeArgs),
}

/// `--start-at`: RFC 3339 in UTC (`2026-12-03T17:30:00Z`, fractions of a
/// second allowed) or `@` and Unix seconds.
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("a time as 2026-12-03T17:30:00Z or @1764783000: {text:?}");
    if let Some(secs) = text.strip_prefix('@') {
        let secs: f64 = secs.parse().map_err(|_| bad())?;
        if !(secs >= 0.0 && secs.is_finite()) {
            return Err(bad());
        }
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let text_utc = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = text_utc.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day)), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let mut t = time.split(':');
    let (Some(h), Some(m), Some(sec), None) = (t.next(), t.next(), t.next(), t.next()) else {
        return Err(bad());
    };
    let (h, m, sec): (i64, i64, f64) = (
        h.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        sec.parse().map_err(|_| bad())?,
    );
    if !(0.0..61.0).contains(&sec) {
        return Err(bad());
    }
    let whole = uploadtask_http1::date::unix_seconds(year, month, day, h, m, sec.trunc() as i64).ok_or_else(bad)?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(whole) + Duration::from_secs_f64(sec.fract()))
}

/// The JSON report: the counts and the run's shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    url: &'a str,
    #[serde(flatten)]
    report: &'a Report,
    concurrency: usize,
    threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
    body_bytes: u64,
    interrupted: bool,
    in_flight_at_end: usize,
    receiver: &'a str,
}

/// What each upload sends. The URL and the part's names are shared, not
/// copied for each upload.
struct Shape {
    url: Arc<str>,
    headers: Vec<(String, String)>,
    fields: Vec<(String, String)>,
    name: Arc<str>,
    /// The part's filename: the file's basename, or `load.bin`.
    filename: Arc<str>,
    payload: Option<bytes::Bytes>,
    file: Option<PathBuf>,
    /// `-F name=@path` parts, opened by each upload.
    parts: Vec<(String, super::args::FormPart)>,
}

impl Shape {
    /// The request of one upload; `number`: its number in a job run in
    /// segments, sent as `X-Upload-Number`.
    fn request(&self, number: Option<u64>) -> UploadRequest {
        let mut request = UploadRequest::new(Arc::clone(&self.url));
        request.headers = self.headers.clone();
        if let Some(number) = number {
            request.headers.push(("X-Upload-Number".into(), number.to_string()));
        }
        request.fields = self.fields.clone();
        let source = match (&self.file, &self.payload) {
            (Some(path), _) => SourceSpec::Path(path.clone()),
            (None, payload) => SourceSpec::Memory(payload.clone().unwrap_or_default()),
        };
        let part = FileInput {
            name: Arc::clone(&self.name),
            filename: Arc::clone(&self.filename),
            content_type: None,
            source,
        };
        let mut request = request.file(part);
        for (name, extra) in &self.parts {
            let filename = extra
                .filename
                .clone()
                .unwrap_or_else(|| uploadtask_multipart::basename(&extra.path).to_string());
            request = request.file(FileInput {
                name: name.as_str().into(),
                filename: filename.into(),
                content_type: extra.content_type.clone(),
                source: SourceSpec::Path(PathBuf::from(&extra.path)),
            });
        }
        request
    }
}

/// The state of one run, shared by the completions.
struct Run {
    shape: Shape,
    /// This process's share of the job.
    segment: Segment,
    body_bytes: u64,
    total: Option<u64>,
    deadline: Option<Instant>,
    started: Instant,
    issued: AtomicU64,
    in_flight: AtomicUsize,
    /// Uploads that ended (read without the tally's lock).
    ended: AtomicU64,
    stop: AtomicBool,
    /// One tally per engine: an engine's thread takes only its own lock.
    tallies: Vec<Mutex<Tally>>,
    /// Open model: uploads started per second.
    rate: Option<f64>,
    /// The thread waiting for the run's end, woken by the last completion
    /// (instead of polling: a thread waking every few milliseconds takes
    /// turns from the engine and the sink on a busy machine).
    waiter: std::thread::Thread,
}

impl Run {
    /// True once nothing more will be issued and nothing is in flight.
    fn is_over(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.done_issuing()
    }

    /// Every engine's tally added up.
    fn tally(&self) -> Result<Tally, String> {
        let mut all = Tally::new()?;
        for tally in &self.tallies {
            all.merge(&tally.lock().unwrap_or_else(|p| p.into_inner()));
        }
        Ok(all)
    }

    /// Takes the next upload's number, if the run wants another now.
    fn take_next(&self) -> Option<u64> {
        self.take_next_at(Instant::now())
    }

    /// Takes the next upload's number if one starting at `at` is wanted
    /// (the open model passes the intended start: a late loop still starts
    /// every upload intended before the end).
    fn take_next_at(&self, at: Instant) -> Option<u64> {
        if self.stop.load(Ordering::Acquire) || self.deadline.is_some_and(|d| at >= d) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::AcqRel);
        if self.total.is_some_and(|total| n >= total) {
            self.issued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(n)
    }

    /// When this process's `k`-th upload is due after the start, in the
    /// open model: the job's schedule (one upload every 1 / rate seconds),
    /// of which this segment takes its numbers.
    fn intended(&self, k: u64, rate: f64) -> Duration {
        Duration::from_secs_f64(self.segment.upload_number(k) as f64 / rate)
    }

    fn done_issuing(&self) -> bool {
        // Open model: done once the next intended start is past the end.
        let next = match self.rate {
            Some(rate) => self.started + self.intended(self.issued.load(Ordering::Acquire), rate),
            None => Instant::now(),
        };
        self.stop.load(Ordering::Acquire)
            || self.deadline.is_some_and(|d| next >= d)
            || self.total.is_some_and(|t| self.issued.load(Ordering::Acquire) >= t)
    }
}

/// A failure's kind for the report: the fail code and a short reason.
fn failure_kind(error: &UploadError) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return format!("{} {}", error.code(), io.kind());
        }
        cause = e.source();
    }
    if let Some(tls) = error.tls_failure() {
        return format!("{} tls: {tls:?}", error.code());
    }
    // Numbers (byte counts, addresses) would split one kind into many.
    let mut reason = String::new();
    for c in error.message.chars().take(80) {
        if c.is_ascii_digit() {
            if !reason.ends_with('N') {
                reason.push('N');
            }
        } else {
            reason.push(c);
        }
    }
    format!("{} {reason}", error.code())
}

/// Submits upload `n` to `engines[n % len]`, intended to start at `intended`;
/// in the closed model its completion submits the next one.
fn submit(engines: &Arc<Vec<Engine>>, run: &Arc<Run>, n: u64, intended: Instant, closed: bool) {
    let lane = (n % engines.len() as u64) as usize;
    let engine = &engines[lane];
    run.in_flight.fetch_add(1, Ordering::AcqRel);
    let (engines_next, run_next) = (Arc::clone(engines), Arc::clone(run));
    let number = (run.segment != Segment::WHOLE).then(|| run.segment.upload_number(n));
    engine.submit(run.shape.request(number), move |event: Event| {
        let Event::Done(result) = event else { return };
        let now = Instant::now();
        let outcome = match &result {
            Ok(response) => Outcome::Status(response.status),
            Err(error) => Outcome::Failed(failure_kind(error)),
        };
        if let Some(tally) = run_next.tallies.get(lane) {
            let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            let at = now.saturating_duration_since(run_next.started);
            tally.record(
                at,
                outcome,
                now.saturating_duration_since(intended),
                run_next.body_bytes,
            );
        }
        run_next.ended.fetch_add(1, Ordering::AcqRel);
        run_next.in_flight.fetch_sub(1, Ordering::AcqRel);
        if closed {
            if let Some(next) = run_next.take_next() {
                // Closed model: the next one is meant to start as this one ends.
                submit(&engines_next, &run_next, next, now, true);
            }
        }
        if run_next.is_over() {
            run_next.waiter.unpark();
        }
    });
}

/// Runs a load: parse → build → drive → report.
pub fn run(mut args: LoadArgs) -> i32 {
    if let Some(LoadAction::Merge(merge)) = args.action.take() {
        return merge::run(merge);
    }
    let parsed = match parse(&args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let setup = match build(&args, parsed) {
        Ok(setup) => setup,
        Err(status) => return status,
    };
    let ended = drive(&args, &setup);
    report(&args, setup, ended)
}

/// What the arguments ask for, checked: an upload's headers, fields and
/// extra parts, its body's size, the engine threads, and this process's
/// share of the job (all of it without `--segment`).
struct Parsed {
    headers: Vec<(String, String)>,
    fields: Vec<(String, String)>,
    parts: Vec<(String, super::args::FormPart)>,
    body_bytes: u64,
    threads: usize,
    segment: Segment,
    /// This process's uploads, if bounded by a count.
    total: Option<u64>,
    /// This process's uploads in flight at most.
    concurrency: usize,
}

/// Prints a usage error; the exit status for it.
fn usage(message: impl std::fmt::Display) -> i32 {
    eprintln!("uploadtask: {message}");
    USAGE
}

fn parse(args: &LoadArgs) -> Result<Parsed, i32> {
    if args.concurrency == 0 || args.total == Some(0) || args.threads == Some(0) {
        return Err(usage("-c, -n and --threads must be at least 1"));
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(usage("--rate must be a positive number"));
    }
    let mut headers = Vec::new();
    for header in &args.headers {
        // As `upload` reads them (curl's `K;` and `K:` included).
        if let Some(pair) = super::args::header_arg(header).map_err(usage)? {
            headers.push(pair);
        }
    }
    let mut fields = Vec::new();
    let mut parts = Vec::new();
    for field in &args.form {
        match field.split_once('=') {
            Some((k, v)) if !k.is_empty() => match v.strip_prefix('@') {
                Some(spec) => {
                    let part = super::args::FormPart::parse(k, spec).map_err(usage)?;
                    if part.path == "-" {
                        return Err(usage(format!(
                            "load cannot read standard input for every upload: -F {field}"
                        )));
                    }
                    parts.push((k.to_string(), part));
                }
                None => fields.push((k.to_string(), v.to_string())),
            },
            _ => return Err(usage(format!("-F must look like K=V: {field:?}"))),
        }
    }
    let mut body_bytes = match &args.file {
        Some(path) => match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(_) => return Err(usage(format!("not a regular file: {}", path.display()))),
            Err(e) => return Err(usage(format!("{}: {e}", path.display()))),
        },
        None => args.size,
    };
    for (_, part) in &parts {
        match std::fs::metadata(&part.path) {
            Ok(meta) if meta.is_file() => body_bytes += meta.len(),
            _ => return Err(usage(format!("not a readable regular file: {}", part.path))),
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let segment = args.segment.unwrap_or(Segment::WHOLE);
    let concurrency = segment.share(args.concurrency as u64) as usize;
    if concurrency == 0 {
        return Err(usage(format!(
            "-c {} leaves segment {segment} no upload in flight",
            args.concurrency
        )));
    }
    let total = match (args.total, args.duration) {
        (None, None) => Some(10_000),
        (total, _) => total,
    }
    .map(|total| segment.share(total));
    Ok(Parsed {
        headers,
        fields,
        parts,
        body_bytes,
        threads,
        segment,
        total,
        concurrency,
    })
}

/// What a run drives: the receiver (if embedded), the engines, the shared
/// state of the run, and the Ctrl-C flag.
struct Setup {
    /// Kept alive for the run.
    _receiver: Option<Receiver>,
    receiver_note: &'static str,
    url: String,
    /// The job as the log gives it.
    log_job: Job,
    /// This process's uploads in flight at most.
    concurrency: usize,
    threads: usize,
    engines: Arc<Vec<Engine>>,
    run: Arc<Run>,
    interrupted: Arc<AtomicBool>,
    started_wall: SystemTime,
}

fn build(args: &LoadArgs, job: Parsed) -> Result<Setup, i32> {
    let receiver = match &args.url {
        Some(_) => None,
        None => match Receiver::start(ReceiverConfig {
            // It speaks HTTP/2 when asked to (prior knowledge: plain TCP).
            http2: (args.http.version() == uploadtask::HttpVersion::Http2PriorKnowledge)
                .then(crate::serve::Http2Settings::default),
            ..ReceiverConfig::default()
        }) {
            Ok(receiver) => Some(receiver),
            Err(e) => {
                eprintln!("uploadtask: cannot start the receiver: {e}");
                return Err(1);
            }
        },
    };
    let receiver_note = match &receiver {
        Some(_) => "embedded in this process (one worker thread): it competes with the client for the same cores",
        None => "external",
    };
    let url = args
        .url
        .as_deref()
        .map(super::args::with_default_scheme)
        .unwrap_or_else(|| {
            format!(
                "http://{}/load",
                receiver.as_ref().map_or_else(String::new, |r| r.addr().to_string())
            )
        });
    // Every engine takes its share of the uploads in flight, as a client's.
    let mut config = EngineConfig {
        max_in_flight: job.concurrency,
        raise_fd_limit: true,
        http: args.http.version(),
        max_streams_per_connection: args.streams,
        ..EngineConfig::default()
    };
    args.tls
        .apply(&mut config)
        .and_then(|()| args.proxy.apply(&mut config))
        .map_err(usage)?;
    let engines = match uploadtask::start_engines(config, job.threads) {
        Ok(engines) => Arc::new(engines),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(usage(e)),
        Err(e) => {
            eprintln!("uploadtask: cannot start the engine: {e}");
            return Err(1);
        }
    };
    let tallies = engines
        .iter()
        .map(|_| Tally::new().map(Mutex::new))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            eprintln!("uploadtask: {e}");
            1
        })?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // One handler per process; a second `load` in the same process
        // (tests) keeps the first handler, which is fine.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let (started, started_wall) = start_time(args.start_at);
    let run = Arc::new(Run {
        shape: Shape {
            url: url.as_str().into(),
            headers: job.headers,
            fields: job.fields,
            name: args.name.as_str().into(),
            filename: match &args.file {
                Some(path) => uploadtask_multipart::basename(&path.to_string_lossy()).into(),
                None => "load.bin".into(),
            },
            payload: args
                .file
                .is_none()
                .then(|| (0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()),
            file: args.file.clone(),
            parts: job.parts,
        },
        segment: job.segment,
        body_bytes: job.body_bytes,
        total: job.total,
        deadline: args.duration.and_then(|d| started.checked_add(d)),
        started,
        rate: args.rate,
        waiter: std::thread::current(),
        issued: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        ended: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        tallies,
    });
    let log_job = Job {
        tag: args.tag.clone(),
        url: url.clone(),
        total: args.total.or(args.duration.is_none().then_some(10_000)),
        rate: args.rate,
        concurrency: args.concurrency as u64,
        duration: args.duration.map(|d| d.as_secs_f64()),
        body_bytes: job.body_bytes,
        segment: job.segment,
    };
    Ok(Setup {
        _receiver: receiver,
        receiver_note,
        url,
        log_job,
        concurrency: job.concurrency,
        threads: job.threads,
        engines,
        run,
        interrupted,
        started_wall,
    })
}

/// How a run ended.
struct Ended {
    elapsed: Duration,
    interrupted: bool,
    in_flight_at_end: usize,
    live: bool,
}

/// Issues the uploads (closed or open model) and waits for the end or
/// Ctrl-C, with a live line on a terminal.
fn drive(args: &LoadArgs, setup: &Setup) -> Ended {
    let (run, engines, interrupted) = (&setup.run, &setup.engines, &setup.interrupted);
    let live = std::io::stderr().is_terminal() && !args.json;
    let mut last_tick = Instant::now();
    let mut tick = |run: &Run| {
        if live && last_tick.elapsed() >= Duration::from_millis(250) {
            last_tick = Instant::now();
            let Ok(tally) = run.tally() else { return };
            let report = tally.report(run.started.elapsed());
            eprint!(
                "\r{} ok, {} failed, {:.0} successes/s, {} in flight   ",
                report.successes,
                report.failures,
                report.successes_per_sec,
                run.in_flight.load(Ordering::Acquire)
            );
        }
    };
    match args.rate {
        None => {
            for _ in 0..setup.concurrency {
                match run.take_next() {
                    Some(n) => submit(engines, run, n, Instant::now(), true),
                    None => break,
                }
            }
        }
        Some(rate) => {
            // Open model: upload n is due at start + n / rate.
            loop {
                if interrupted.load(Ordering::SeqCst) {
                    break;
                }
                let n = run.issued.load(Ordering::Acquire);
                let due = run.started + run.intended(n, rate);
                let now = Instant::now();
                if now < due {
                    std::thread::sleep((due - now).min(Duration::from_millis(50)));
                    tick(run);
                    continue;
                }
                if run.in_flight.load(Ordering::Acquire) >= setup.concurrency {
                    // Late starts count: latency is measured from `due`.
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                let Some(n) = run.take_next_at(due) else { break };
                submit(engines, run, n, due, false);
            }
        }
    }
    // Wait for the end (or Ctrl-C), reporting as it goes.
    let mut quiet_since = (0u64, Instant::now());
    loop {
        if interrupted.load(Ordering::SeqCst) {
            run.stop.store(true, Ordering::Release);
            break;
        }
        if run.is_over() {
            break;
        }
        let ended = run.ended.load(Ordering::Acquire);
        if ended != quiet_since.0 {
            quiet_since = (ended, Instant::now());
        } else if quiet_since.1.elapsed() > Duration::from_secs(300) {
            eprintln!("uploadtask: no upload ended for 300 s; stopping");
            run.stop.store(true, Ordering::Release);
            break;
        }
        tick(run);
        // Woken by the last completion; Ctrl-C is seen within 100 ms.
        std::thread::park_timeout(Duration::from_millis(100));
    }
    Ended {
        elapsed: run.started.elapsed(),
        interrupted: interrupted.load(Ordering::SeqCst),
        in_flight_at_end: run.in_flight.load(Ordering::Acquire),
        live,
    }
}

/// Prints the report (text or JSON), writes the interval log and the plot,
/// stops the engines; the exit status.
fn report(args: &LoadArgs, setup: Setup, ended: Ended) -> i32 {
    let (run, engines, threads, url) = (&setup.run, &setup.engines, setup.threads, &setup.url);
    let body_bytes = run.body_bytes;
    if ended.live {
        eprintln!();
    }
    let tally = match run.tally() {
        Ok(tally) => tally,
        Err(e) => {
            eprintln!("uploadtask: {e}");
            return 1;
        }
    };
    let mut report = tally.report(ended.elapsed);
    let stats: Vec<uploadtask::Stats> = engines.iter().filter_map(|e| e.stats()).collect();
    report.resent = stats.iter().map(|s| s.resent).sum();
    report.connections = stats.iter().map(|s| s.connections_opened).sum();
    report.http2_connections = stats.iter().map(|s| s.http2_connections_opened).sum();
    if args.json {
        let json = JsonReport {
            url,
            report: &report,
            concurrency: setup.concurrency,
            threads,
            rate: args.rate,
            body_bytes,
            interrupted: ended.interrupted,
            in_flight_at_end: ended.in_flight_at_end,
            receiver: setup.receiver_note,
        };
        println!("{}", serde_json::to_string(&json).unwrap_or_default());
    } else {
        let mut header = format!(
            "{} uploads of {body_bytes} bytes to {url}, {} in flight at most, {threads} engine thread(s)",
            report.uploads, setup.concurrency
        );
        if setup.log_job.segment != Segment::WHOLE {
            header.push_str(&format!(", segment {} of the job", setup.log_job.segment));
        }
        if let Some(rate) = args.rate {
            header.push_str(&format!(
                ", {rate} started per second (latency from each intended start)"
            ));
        }
        header.push_str(&format!("\nreceiver: {}", setup.receiver_note));
        if ended.interrupted {
            header.push_str(&format!(
                "\ninterrupted (Ctrl-C): {} uploads were still in flight",
                ended.in_flight_at_end
            ));
        }
        let mut stdout = std::io::stdout().lock();
        let _ = output::text(&report, &header, &mut stdout);
        let _ = stdout.flush();
    }
    let mut status = if ended.interrupted {
        INTERRUPTED
    } else {
        i32::from(report.failures > 0)
    };
    if let Some(path) = &args.hdr_log {
        let end = RunTotals {
            totals: tally.totals(),
            seconds: ended.elapsed.as_secs_f64(),
            resent: report.resent,
        };
        if let Err(e) = log::write(&tally, setup.started_wall, &setup.log_job, &end, path) {
            eprintln!("uploadtask: cannot write {}: {e}", path.display());
            status = status.max(1);
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = output::plot(&tally, path) {
            eprintln!("uploadtask: cannot write {}: {e}", path.display());
            status = status.max(1);
        }
    }
    drop(tally);
    for engine in engines.iter() {
        engine.shutdown();
    }
    status
}

/// The run's start: now, or at `--start-at` (waited for; when already
/// past, the start is still that time, so that segments share their
/// schedule and a late one catches up).
fn start_time(at: Option<SystemTime>) -> (Instant, SystemTime) {
    let Some(at) = at else {
        return (Instant::now(), SystemTime::now());
    };
    match at.duration_since(SystemTime::now()) {
        Ok(wait) => {
            std::thread::sleep(wait);
            (Instant::now(), at)
        }
        Err(late) => {
            let late = late.duration();
            if late > Duration::from_secs(1) {
                eprintln!(
                    "uploadtask: --start-at was {:.1} s ago; starting now on its schedule",
                    late.as_secs_f64()
                );
            }
            (Instant::now().checked_sub(late).unwrap_or_else(Instant::now), at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_in_rfc_3339_utc_or_unix_seconds() {
        let at = |secs: f64| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs);
        assert_eq!(parse_start_at("1994-11-06T08:49:37Z"), Ok(at(784_111_777.0)));
        assert_eq!(parse_start_at("1994-11-06T08:49:37.5Z"), Ok(at(784_111_777.5)));
        assert_eq!(parse_start_at("@784111777.25"), Ok(at(784_111_777.25)));
        for bad in [
            "1994-11-06T08:49:37",
            "1994-13-06T08:49:37Z",
            "1994-11-06 08:49:37Z",
            "@-1",
            "@x",
            "tomorrow",
        ] {
            assert!(parse_start_at(bad).is_err(), "{bad}");
        }
    }
}
