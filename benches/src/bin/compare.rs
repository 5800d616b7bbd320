//! Side-by-side comparison on loopback, same sink, each client its own
//! process measured by GNU time (wall, user+sys CPU, peak RSS):
//! uploadtask, reqwest, and libcurl (the `curl` program: multi + mime).
//!
//! Build and run (release):
//! `cargo build --release -p uploadtask-cli -p uploadtask-benches && target/release/compare [RUNS]`
//!
//! Scenarios (the project's targets): one 1 GiB upload; 20,000 uploads of
//! 16 KiB with 1,000 in flight. Each is run RUNS times (default 3); the
//! median is shown, with ratios to uploadtask.
//!
//! The sink's threads run on CPU 0 and each client on CPU 1 (`taskset`), as
//! if on two machines, so that a client is measured against the sink and
//! not against where the scheduler put the two (tokio then starts one
//! worker for reqwest). `PIN=0` leaves them unpinned; so does a machine
//! with one CPU or without `taskset`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, Copy)]
struct Measure {
    wall: f64,
    cpu: f64,
    rss_mib: f64,
    ok: bool,
    /// Fastest run's wall time (only set on medians).
    best_wall: f64,
}

/// The command line prefix that runs a client on CPU 1, when pinning.
fn client_cpu(pin: bool) -> Vec<String> {
    if pin {
        vec!["taskset".into(), "-c".into(), "1".into()]
    } else {
        Vec::new()
    }
}

/// Pins every thread of this process (the sink) to CPU 0 when the machine
/// has two CPUs or more, `taskset` is there and `PIN` is not `0`; says
/// whether it did.
fn pin_sink() -> bool {
    let wanted = std::env::var("PIN").map_or(true, |v| v != "0");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    wanted
        && cpus >= 2
        && Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn time(prefix: &[String], program: &Path, args: &[String]) -> Measure {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("TIME %e %U %S %M")
        .args(prefix)
        .arg(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run /usr/bin/time (apt-get install time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .unwrap_or("TIME 0 0 0 0");
    let v: Vec<f64> = line[5..].split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    Measure {
        wall: v[0],
        cpu: v[1] + v[2],
        rss_mib: v[3] / 1024.0,
        ok: out.status.success(),
        best_wall: v[0],
    }
}

fn median(mut runs: Vec<Measure>) -> Measure {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mid = runs[runs.len() / 2];
    Measure {
        ok: runs.iter().all(|r| r.ok),
        best_wall: runs[0].wall,
        ..mid
    }
}

fn row(name: &str, m: Measure, per_second: Option<f64>, base: Measure) {
    let rate = per_second.map(|n| format!("{:>9.0}/s", n / m.wall)).unwrap_or_default();
    println!(
        "  {name:<12} wall {:>7.3} s (best {:>6.3})  cpu {:>7.3} s  rss {:>7.1} MiB {rate}  (wall x{:.2}, cpu x{:.2} of uploadtask){}",
        m.wall,
        m.best_wall,
        m.cpu,
        m.rss_mib,
        m.wall / base.wall,
        m.cpu / base.cpu.max(0.001),
        if m.ok { "" } else { "  FAILED" }
    );
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let dir = std::env::current_exe()
        .expect("exe")
        .parent()
        .expect("dir")
        .to_path_buf();
    let uploadtask = dir.join("uploadtask");
    let reqwest = dir.join("reqwest_peer");
    let curl = PathBuf::from("/usr/bin/curl");
    assert!(uploadtask.exists(), "build it: cargo build --release -p uploadtask-cli");
    let sink = uploadtask_benches::Sink::start(0, 1).expect("sink");
    let url = format!("http://{}/compare", sink.addr());
    let pinned = pin_sink();
    let prefix = client_cpu(pinned);
    if pinned {
        println!("the sink on CPU 0, each client on CPU 1");
    }
    let work = std::env::temp_dir().join(format!("uploadtask-compare-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");

    // One 1 GiB upload.
    let big = work.join("big.bin");
    std::fs::write(&big, vec![0xa5u8; 1 << 30]).expect("1 GiB file");
    // Written back now, not during the first client's runs (ours).
    std::fs::File::open(&big)
        .and_then(|f| f.sync_all())
        .expect("sync the 1 GiB file");
    let big_s = big.to_string_lossy().to_string();
    println!("one 1 GiB upload (median of {runs}):");
    let measure =
        |program: &Path, args: Vec<String>| median((0..runs).map(|_| time(&prefix, program, &args)).collect());
    let ours = measure(
        &uploadtask,
        vec![
            "upload".into(),
            url.clone(),
            big_s.clone(),
            "--progress".into(),
            "none".into(),
        ],
    );
    row("uploadtask", ours, None, ours);
    row(
        "libcurl",
        measure(
            &curl,
            vec![
                "-sS".into(),
                "-o".into(),
                "/dev/null".into(),
                "-F".into(),
                format!("file=@{big_s}"),
                url.clone(),
            ],
        ),
        None,
        ours,
    );
    row(
        "reqwest",
        measure(&reqwest, vec!["single".into(), url.clone(), big_s.clone()]),
        None,
        ours,
    );
    let _ = std::fs::remove_file(&big);

    // 20,000 uploads of 16 KiB, 1,000 in flight.
    const TOTAL: usize = 20_000;
    let small = work.join("small.bin");
    std::fs::write(&small, vec![0x33u8; 16 * 1024]).expect("16 KiB file");
    let config = work.join("curl.cfg");
    // One operation per upload, each with its own form, separated by `next`.
    let small_s = small.to_string_lossy();
    let operation = format!("url = \"{url}\"\noutput = \"/dev/null\"\nform = \"file=@{small_s}\"\n");
    let text = vec![operation; TOTAL].join("next\n");
    std::fs::write(&config, text).expect("curl config");
    println!("{TOTAL} uploads of 16 KiB, 1,000 in flight (median of {runs}):");
    // `load` with one engine, then (unpinned) one per core, its default.
    let load = |threads: &str| {
        let args = [
            "load",
            &url,
            "-c",
            "1000",
            "-n",
            &TOTAL.to_string(),
            "--size",
            "16384",
            "--threads",
            threads,
            "--json",
        ];
        measure(&uploadtask, args.iter().map(|a| a.to_string()).collect())
    };
    let ours = load("1");
    row("uploadtask", ours, Some(TOTAL as f64), ours);
    if !pinned {
        // Two engines on the one CPU a pinned client has would measure nothing.
        row("uploadtask×2", load("2"), Some(TOTAL as f64), ours);
    }
    let curl_args = vec![
        "-sS".into(),
        "--parallel".into(),
        "--parallel-max".into(),
        "1000".into(),
        "-K".into(),
        config.to_string_lossy().to_string(),
    ];
    row("libcurl", measure(&curl, curl_args), Some(TOTAL as f64), ours);
    row(
        "reqwest",
        measure(
            &reqwest,
            vec![
                "many".into(),
                url.clone(),
                "16384".into(),
                TOTAL.to_string(),
                "1000".into(),
            ],
        ),
        Some(TOTAL as f64),
        ours,
    );
    let _ = std::fs::remove_dir_all(&work);
}
