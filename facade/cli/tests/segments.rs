//! `load --segment I/N` and `load merge`: three processes run one job
//! against one receiver; their logs merge into the job's exact totals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_uploadtask");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run uploadtask")
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A directory removed when the test ends.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("uploadtask-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs segment `i` of 3 of a job of `total` uploads (with `tag`), writing `log`.
fn segment(url: &str, i: u64, total: u64, start_at: &str, tag: &str, log: &str) -> std::process::Child {
    Command::new(BIN)
        .args([
            "load",
            url,
            "-n",
            &total.to_string(),
            "-c",
            "20",
            "--size",
            "2k",
            "--threads",
            "1",
        ])
        .args([
            "--segment",
            &format!("{i}/3"),
            "--start-at",
            start_at,
            "--tag",
            tag,
            "--hdr-log",
            log,
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a segment")
}

/// The successes' latencies of some logs, summed here with the
/// hdrhistogram crate (not through `load merge`).
fn summed(logs: &[&str]) -> hdrhistogram::Histogram<u64> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut all = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for log in logs {
        let bytes = std::fs::read(log).unwrap();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(interval) = entry.unwrap() {
                if interval.tag().is_some() {
                    continue;
                }
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(interval.encoded_histogram().trim())
                    .unwrap();
                let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut raw.as_slice())
                    .unwrap();
                all.add(&h).unwrap();
            }
        }
    }
    all
}

#[test]
fn three_segments_merge_to_the_jobs_totals_and_a_missing_one_is_said() {
    let receiver = uploadtask_cli::serve::Receiver::start(uploadtask_cli::serve::ReceiverConfig::default()).unwrap();
    let url = format!("http://{}/up", receiver.addr());
    let dir = Dir::new("segments");
    let total = 301;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    let start_at = format!("@{start:.3}");
    let logs: Vec<String> = (1..=3).map(|i| dir.file(&format!("s{i}.hlog"))).collect();
    let children: Vec<_> = (1..=3)
        .map(|i| segment(&url, i, total, &start_at, "job-a", &logs[i as usize - 1]))
        .collect();
    let mut shares = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        shares.push(json(&out)["successes"].as_u64().unwrap());
    }
    // 301 = 101 + 100 + 100: the first segment takes the remainder.
    assert_eq!(shares, [101, 100, 100]);

    let merged = run(&["load", "merge", &logs[0], &logs[1], &logs[2], "--json"]);
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let report = json(&merged);
    assert_eq!(report["uploads"].as_u64(), Some(total));
    assert_eq!(report["successes"].as_u64(), Some(total));
    assert_eq!(report["statuses"]["200"].as_u64(), Some(total));
    assert_eq!(report["segments"].as_u64(), Some(3));
    // The merged percentiles are those of all the latencies together.
    let all = summed(&[&logs[0], &logs[1], &logs[2]]);
    assert_eq!(all.len(), total);
    for (key, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
        let expected = all.value_at_quantile(quantile) as f64 / 1000.0;
        assert_eq!(report["latencyMs"][key].as_f64(), Some(expected), "{key}");
    }

    // Segment 2 missing: said, and the others reported.
    let partial = run(&["load", "merge", &logs[0], &logs[2], "--json"]);
    assert_eq!(partial.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&partial.stderr).contains("segment 2/3 missing"));
    let report = json(&partial);
    assert_eq!(report["successes"].as_u64(), Some(201));
    assert_eq!(report["missingSegments"], serde_json::json!([2]));

    // The same segment twice.
    let twice = run(&["load", "merge", &logs[0], &logs[0]]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("overlap"));

    // A log of another job.
    let other = dir.file("other.hlog");
    let out = segment(&url, 2, total, &start_at, "job-b", &other)
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mixed = run(&["load", "merge", &logs[0], &other]);
    assert_eq!(mixed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        stderr.contains("different jobs") && stderr.contains("job-b"),
        "{stderr}"
    );
}

#[test]
fn merge_reads_a_log_written_by_another_implementation() {
    // python-hdrh.hlog: HdrHistogram's Python implementation, see
    // python_hdrh_log.py beside it for the values and what it printed.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-hdrh.hlog");
    let out = run(&["load", "merge", fixture.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!(report["successes"].as_u64(), Some(3000));
    assert_eq!(report["seconds"].as_f64(), Some(3.0));
    let latency = &report["latencyMs"];
    for (key, ms) in [("p50", 5.879), ("p90", 9.679), ("p99", 11.735), ("max", 12.007)] {
        assert_eq!(latency[key].as_f64(), Some(ms), "{key}");
    }
}
