//! `uploadtask load [URL] -c N -n TOTAL --size BYTES`: a load generator on
//! the engine, keeping N uploads in flight until TOTAL are done.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use uploadtask::serve::{Receiver, ReceiverConfig};
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
    #[arg(long, default_value_t = 16 * 1024)]
    size: usize,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
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
    let engine = match Engine::new(EngineConfig {
        max_in_flight: args.concurrency,
        ..EngineConfig::default()
    }) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("uploadtask: cannot start the engine: {e}");
            return 1;
        }
    };
    let payload: Arc<[u8]> = (0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let (done_tx, done_rx) = mpsc::channel::<(Duration, Result<u16, u32>)>();
    let submit = |_: u64| {
        let tx = done_tx.clone();
        let started = Instant::now();
        let request = UploadRequest::new(url.clone()).file(FileInput::memory("file", "load.bin", Arc::clone(&payload)));
        engine.submit(request, move |event: Event| {
            if let Event::Done(result) = event {
                let _ = tx.send((started.elapsed(), result.map(|r| r.status).map_err(|e| e.code())));
            }
        });
    };
    let live = std::io::stderr().is_terminal() && !args.json;
    // Microseconds, up to an hour, 3 significant figures.
    let mut histogram = match Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(histogram) => histogram,
        Err(e) => {
            eprintln!("uploadtask: {e}");
            return 1;
        }
    };
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok = 0u64;
    let mut submitted = 0u64;
    let started = Instant::now();
    while submitted < args.total.min(args.concurrency as u64) {
        submit(submitted);
        submitted += 1;
    }
    let mut finished = 0u64;
    let mut last_report = Instant::now();
    while finished < args.total {
        let Ok((latency, result)) = done_rx.recv_timeout(Duration::from_secs(300)) else {
            eprintln!("uploadtask: no upload finished for 300 s; stopping");
            break;
        };
        finished += 1;
        let _ = histogram.record(latency.as_micros().max(1) as u64);
        match result {
            Ok(status) if status < 400 => ok += 1,
            Ok(status) => *errors.entry(format!("http {status}")).or_default() += 1,
            Err(code) => *errors.entry(code.to_string()).or_default() += 1,
        }
        if submitted < args.total {
            submit(submitted);
            submitted += 1;
        }
        if live && last_report.elapsed() >= Duration::from_millis(200) {
            last_report = Instant::now();
            let rate = finished as f64 / started.elapsed().as_secs_f64();
            eprint!(
                "\r{finished}/{} done, {rate:.0} uploads/s, {} errors   ",
                args.total,
                finished - ok
            );
        }
    }
    if live {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
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
