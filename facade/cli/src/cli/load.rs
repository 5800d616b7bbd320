//! `uploadtask load [URL] -c N -n TOTAL --size BYTES`: a load generator on
//! the engine, keeping N uploads in flight until TOTAL are done.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::serve::{Receiver, ReceiverConfig};
use hdrhistogram::Histogram;
use serde::Serialize;
use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};

use super::USAGE;

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Endpoint; without one, an embedded receiver is started on loopback.
    url: Option<String>,
    /// Uploads in flight at once.
    #[arg(short = 'c', long, default_value_t = 100)]
    concurrency: usize,
    /// Uploads in all.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    total: u64,
    /// Bytes of the file part of each upload.
    #[arg(long, default_value = "16k", value_parser = super::parse_size)]
    size: u64,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: super::TlsArgs,
    #[command(flatten)]
    proxy: super::ProxyArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    uploads: u64,
    ok: u64,
    /// Fail codes, and `http NNN` for responses with status >= 400.
    errors: BTreeMap<String, u64>,
    seconds: f64,
    uploads_per_sec: f64,
    mb_per_sec: f64,
    latency_ms: Latency,
}

#[derive(Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

pub fn run(args: LoadArgs) -> i32 {
    if args.concurrency == 0 || args.total == 0 {
        eprintln!("uploadtask: -c and -n must be at least 1");
        return USAGE;
    }
    let receiver = match &args.url {
        Some(_) => None,
        None => match Receiver::start(ReceiverConfig::default()) {
            Ok(receiver) => Some(receiver),
            Err(e) => {
                eprintln!("uploadtask: cannot start the receiver: {e}");
                return 1;
            }
        },
    };
    let url = args.url.clone().unwrap_or_else(|| {
        format!(
            "http://{}/load",
            receiver.as_ref().map_or_else(String::new, |r| r.addr().to_string())
        )
    });
    let mut config = EngineConfig {
        max_in_flight: args.concurrency,
        raise_fd_limit: true,
        ..EngineConfig::default()
    };
    if let Err(e) = args.tls.apply(&mut config).and_then(|()| args.proxy.apply(&mut config)) {
        eprintln!("uploadtask: {e}");
        return USAGE;
    }
    let engine = match Engine::new(config) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("uploadtask: cannot start the engine: {e}");
            return 1;
        }
    };
    // Microseconds, up to an hour, 3 significant figures.
    let histogram = match Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(histogram) => histogram,
        Err(e) => {
            eprintln!("uploadtask: {e}");
            return 1;
        }
    };
    let (all_done_tx, all_done) = std::sync::mpsc::channel::<()>();
    let run = Arc::new(Run {
        url: url.clone(),
        payload: (0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into(),
        total: args.total,
        submitted: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        tally: Mutex::new(Tally {
            histogram,
            errors: BTreeMap::new(),
        }),
        ended: std::sync::OnceLock::new(),
        all_done: Mutex::new(Some(all_done_tx)),
    });
    let live = std::io::stderr().is_terminal() && !args.json;
    let started = Instant::now();
    for _ in 0..args.concurrency.min(args.total as usize) {
        submit_next(&engine, &run);
    }
    // Completions submit the next upload themselves, on the engine thread;
    // this thread only reports, and wakes once when the last one is done.
    let mut last_progress = (0, Instant::now());
    loop {
        let tick = Duration::from_millis(if live { 200 } else { 1000 });
        if all_done.recv_timeout(tick).is_ok() {
            break;
        }
        let finished = run.finished.load(Ordering::Acquire);
        if finished != last_progress.0 {
            last_progress = (finished, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(300) {
            eprintln!("uploadtask: no upload finished for 300 s; stopping");
            break;
        }
        if live {
            let rate = finished as f64 / started.elapsed().as_secs_f64();
            let errors = finished - run.ok.load(Ordering::Acquire);
            eprint!(
                "\r{finished}/{} done, {rate:.0} uploads/s, {errors} errors   ",
                args.total
            );
        }
    }
    if live {
        eprintln!();
    }
    let finished = run.finished.load(Ordering::Acquire);
    let ok = run.ok.load(Ordering::Acquire);
    let tally = run.tally.lock().unwrap_or_else(|p| p.into_inner());
    let (histogram, errors) = (&tally.histogram, tally.errors.clone());
    let seconds = run
        .ended
        .get()
        .copied()
        .unwrap_or_else(Instant::now)
        .duration_since(started)
        .as_secs_f64();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let report = Report {
        uploads: finished,
        ok,
        errors,
        seconds,
        uploads_per_sec: finished as f64 / seconds,
        mb_per_sec: (finished as f64 * args.size as f64) / seconds / 1e6,
        latency_ms: Latency {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: histogram.max() as f64 / 1000.0,
        },
    };
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!(
            "{} uploads of {} bytes to {url} with {} in flight",
            report.uploads, args.size, args.concurrency
        );
        println!(
            "  {:.2} s, {:.0} uploads/s, {:.1} MB/s",
            report.seconds, report.uploads_per_sec, report.mb_per_sec
        );
        let l = &report.latency_ms;
        println!(
            "  latency ms: p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
            l.p50, l.p90, l.p99, l.max
        );
        if report.errors.is_empty() {
            println!("  errors: none");
        } else {
            let by_code: Vec<String> = report.errors.iter().map(|(code, n)| format!("{code}: {n}")).collect();
            println!("  errors: {}", by_code.join(", "));
        }
    }
    engine.shutdown();
    i32::from(finished != ok || finished < args.total)
}

/// The state of one load run, shared by the completions.
struct Run {
    url: String,
    payload: bytes::Bytes,
    total: u64,
    submitted: AtomicU64,
    finished: AtomicU64,
    ok: AtomicU64,
    tally: Mutex<Tally>,
    /// When the last upload finished.
    ended: std::sync::OnceLock<Instant>,
    /// Told once, by the last upload to finish.
    all_done: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

struct Tally {
    histogram: Histogram<u64>,
    /// Fail codes, and `http NNN` for responses with status >= 400.
    errors: BTreeMap<String, u64>,
}

/// Submits the next upload, if any is left; its completion records the
/// latency and outcome, then submits the one after.
fn submit_next(engine: &Engine, run: &Arc<Run>) {
    if run.submitted.fetch_add(1, Ordering::AcqRel) >= run.total {
        return;
    }
    let started = Instant::now();
    let request = UploadRequest::new(run.url.as_str()).file(FileInput::memory("file", "load.bin", run.payload.clone()));
    let (next_engine, next_run) = (engine.clone(), Arc::clone(run));
    engine.submit(request, move |event: Event| {
        let Event::Done(result) = event else { return };
        let latency = started.elapsed().as_micros().max(1) as u64;
        {
            let mut tally = next_run.tally.lock().unwrap_or_else(|p| p.into_inner());
            let _ = tally.histogram.record(latency);
            match result {
                Ok(response) if response.status < 400 => {
                    next_run.ok.fetch_add(1, Ordering::AcqRel);
                }
                Ok(response) => *tally.errors.entry(format!("http {}", response.status)).or_default() += 1,
                Err(error) => *tally.errors.entry(error.code().to_string()).or_default() += 1,
            }
        }
        if next_run.finished.fetch_add(1, Ordering::AcqRel) + 1 == next_run.total {
            let _ = next_run.ended.set(Instant::now());
            if let Some(tx) = next_run.all_done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(());
            }
        }
        submit_next(&next_engine, &next_run);
    });
}
