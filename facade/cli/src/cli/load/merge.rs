//! `uploadtask load merge LOG...`: one report from the interval logs of
//! many runs (the segments of one job, or any V2 HdrHistogram interval
//! logs). Latency percentiles come from the sum of the histograms: exact to
//! their precision, unlike percentiles averaged from summaries. Logs of
//! different jobs, or segments given twice, are refused; a missing segment
//! is said, and the report of the others is printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::log::{self, Job, Log};
use super::output;
use super::stats::{Report, Tally, Totals};

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Interval logs written by `load --hdr-log` (or by any HdrHistogram
    /// implementation).
    #[arg(required = true)]
    logs: Vec<PathBuf>,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
    /// Write throughput and latency over time as an SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// The JSON report of a merge.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMerge<'a> {
    logs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<&'a Job>,
    segments: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing_segments: Vec<u64>,
    #[serde(flatten)]
    report: &'a Report,
}

/// What the logs are, once checked: one job's segments (some possibly
/// missing), or logs that say nothing of themselves.
#[derive(Debug, PartialEq)]
pub struct Checked {
    /// The job (without a segment), when the logs are ours.
    pub job: Option<Job>,
    /// The job's number of segments (1 for logs not ours).
    pub segments: u64,
    /// Segments of the job no log has.
    pub missing: Vec<u64>,
    /// Said on stderr.
    pub notes: Vec<String>,
}

/// Checks that the logs belong together: one job, each segment once.
pub fn check(logs: &[Log]) -> Result<Checked, String> {
    let ours: Vec<(&Log, &Job)> = logs.iter().filter_map(|l| l.job.as_ref().map(|j| (l, j))).collect();
    let mut notes = Vec::new();
    if ours.is_empty() {
        return Ok(Checked {
            job: None,
            segments: 1,
            missing: Vec::new(),
            notes,
        });
    }
    if ours.len() < logs.len() {
        notes.push("some logs were not written by uploadtask load: their segments cannot be checked".into());
    }
    let (first, job) = ours[0];
    for (log, other) in &ours[1..] {
        if other.shape() != job.shape() {
            return Err(format!(
                "{} and {} are logs of different jobs ({})",
                first.name,
                log.name,
                difference(job, other)
            ));
        }
        if other.segment.count != job.segment.count {
            return Err(format!(
                "{} is segment {} and {} is segment {}: a job has one number of segments",
                first.name, job.segment, log.name, other.segment
            ));
        }
    }
    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
    for (log, job) in &ours {
        if let Some(before) = seen.insert(job.segment.index, &log.name) {
            return Err(format!(
                "segment {} is in {before} and in {}: the logs overlap",
                job.segment, log.name
            ));
        }
        if log.end.is_none() {
            return Err(format!("{} ends early: its run did not finish writing it", log.name));
        }
    }
    let missing: Vec<u64> = (1..=job.segment.count).filter(|i| !seen.contains_key(i)).collect();
    Ok(Checked {
        job: Some(job.shape()),
        segments: job.segment.count,
        missing,
        notes,
    })
}

/// The first field in which two jobs differ, in words.
fn difference(a: &Job, b: &Job) -> String {
    let pairs = [
        ("tag", format!("{:?}", a.tag), format!("{:?}", b.tag)),
        ("URL", a.url.clone(), b.url.clone()),
        ("-n", format!("{:?}", a.total), format!("{:?}", b.total)),
        ("--rate", format!("{:?}", a.rate), format!("{:?}", b.rate)),
        ("-c", a.concurrency.to_string(), b.concurrency.to_string()),
        ("-z", format!("{:?}", a.duration), format!("{:?}", b.duration)),
        ("body bytes", a.body_bytes.to_string(), b.body_bytes.to_string()),
    ];
    pairs
        .iter()
        .find(|(_, x, y)| x != y)
        .map_or_else(String::new, |(what, x, y)| format!("{what} {x} against {y}"))
}

/// The logs merged into one tally, and the length of the whole (from the
/// earliest start to the latest end).
pub fn merge(logs: &[Log]) -> Result<(Tally, Duration), String> {
    let base = logs.iter().map(|l| l.start).fold(f64::INFINITY, f64::min);
    let mut all: Option<Tally> = None;
    let mut end = base;
    for log in logs {
        let intervals = log::intervals_from(log, base)?;
        let totals = match &log.end {
            Some(end) => end.totals.clone(),
            None => Totals {
                successes: intervals.iter().map(|i| i.latency.len()).sum(),
                failures: intervals.iter().map(|i| i.failures).sum(),
                ..Totals::default()
            },
        };
        let log_end = match &log.end {
            Some(totals) => log.start + totals.seconds,
            None => log.intervals.iter().map(|i| i.0 + 1.0).fold(log.start, f64::max),
        };
        end = end.max(log_end);
        let tally = Tally::from_log(totals, intervals)?;
        match all.as_mut() {
            Some(all) => all.merge(&tally),
            None => all = Some(tally),
        }
    }
    let tally = all.ok_or("no log")?;
    Ok((tally, Duration::from_secs_f64((end - base).max(0.0))))
}

/// Runs `load merge`.
pub fn run(args: MergeArgs) -> i32 {
    let logs = match args.logs.iter().map(|p| log::read(p)).collect::<Result<Vec<_>, _>>() {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("uploadtask: {e}");
            return 1;
        }
    };
    let checked = match check(&logs) {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("uploadtask: {e}");
            return 1;
        }
    };
    for note in &checked.notes {
        eprintln!("uploadtask: {note}");
    }
    let (tally, elapsed) = match merge(&logs) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("uploadtask: {e}");
            return 1;
        }
    };
    let mut report = tally.report(elapsed);
    report.resent = logs.iter().filter_map(|l| l.end.as_ref()).map(|e| e.resent).sum();
    if args.json {
        let json = JsonMerge {
            logs: logs.len(),
            job: checked.job.as_ref(),
            segments: checked.segments,
            missing_segments: checked.missing.clone(),
            report: &report,
        };
        println!("{}", serde_json::to_string(&json).unwrap_or_default());
    } else {
        let mut header = format!("{} uploads merged from {} logs", report.uploads, logs.len());
        if let Some(job) = &checked.job {
            header.push_str(&format!(
                " ({} of {} segments of a job of {} bytes each to {}{})",
                checked.segments - checked.missing.len() as u64,
                checked.segments,
                job.body_bytes,
                job.url,
                if job.tag.is_empty() {
                    String::new()
                } else {
                    format!(", tag {:?}", job.tag)
                }
            ));
        }
        let mut stdout = std::io::stdout().lock();
        let _ = output::text(&report, &header, &mut stdout);
        let _ = stdout.flush();
    }
    let mut status = 0;
    if let Some(path) = &args.plot {
        if let Err(e) = output::plot(&tally, path) {
            eprintln!("uploadtask: cannot write {}: {e}", path.display());
            status = 1;
        }
    }
    if !checked.missing.is_empty() {
        let count = checked.segments;
        let missing: Vec<String> = checked.missing.iter().map(|i| format!("{i}/{count}")).collect();
        eprintln!(
            "uploadtask: segment {} missing: the report covers only the others",
            missing.join(", ")
        );
        status = 1;
    }
    status
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::load::log::RunTotals;
    use crate::cli::load::segment::Segment;
    use crate::cli::load::stats::Outcome;

    fn job(index: u64, count: u64, tag: &str) -> Job {
        Job {
            tag: tag.into(),
            url: "http://127.0.0.1:9/up".into(),
            total: Some(300),
            rate: None,
            concurrency: 30,
            duration: None,
            body_bytes: 100,
            segment: Segment { index, count },
        }
    }

    /// A log of `latencies` (µs), one second each third, for segment `i`.
    fn log(name: &str, job: Job, latencies: &[u64]) -> Log {
        let mut tally = Tally::new().unwrap();
        for (n, &micros) in latencies.iter().enumerate() {
            let at = Duration::from_millis(n as u64 * 10);
            tally.record(at, Outcome::Status(200), Duration::from_micros(micros), 100);
        }
        let intervals = tally
            .intervals()
            .iter()
            .map(|i| (1_000.0 + i.second as f64, i.latency.clone(), i.failures))
            .collect();
        Log {
            name: name.into(),
            start: 1_000.0,
            job: Some(job),
            end: Some(RunTotals {
                totals: tally.totals(),
                seconds: 3.0,
                resent: 0,
            }),
            intervals,
        }
    }

    #[test]
    fn merged_percentiles_are_those_of_all_the_values_together() {
        let values: Vec<u64> = (0..300u64).map(|i| 50 + (i * 7919) % 20_000).collect();
        let logs: Vec<Log> = (1..=3)
            .map(|i| {
                let mine: Vec<u64> = values.iter().copied().skip(i as usize - 1).step_by(3).collect();
                log(&format!("s{i}"), job(i, 3, "t"), &mine)
            })
            .collect();
        let (merged, elapsed) = merge(&logs).unwrap();
        let whole = log("whole", job(1, 1, "t"), &values);
        let (single, _) = merge(std::slice::from_ref(&whole)).unwrap();
        let (a, b) = (merged.report(elapsed), single.report(elapsed));
        assert_eq!(a.successes, 300);
        assert_eq!(
            (a.latency_ms.p50, a.latency_ms.p99, a.latency_ms.max),
            (b.latency_ms.p50, b.latency_ms.p99, b.latency_ms.max)
        );
        assert_eq!(elapsed, Duration::from_secs(3));
    }

    #[test]
    fn mismatches_are_named() {
        let a = log("a", job(1, 3, "t"), &[100]);
        let b = log("b", job(2, 2, "t"), &[100]);
        assert!(check(&[a, b]).unwrap_err().contains("one number of segments"));
        let a = log("a", job(1, 3, "t"), &[100]);
        let c = log("c", job(2, 3, "other"), &[100]);
        let error = check(&[a, c]).unwrap_err();
        assert!(
            error.contains("different jobs") && error.contains("\"other\""),
            "{error}"
        );
        let a = log("a", job(1, 3, "t"), &[100]);
        let d = log("d", job(3, 3, "t"), &[100]);
        assert_eq!(check(&[a, d]).unwrap().missing, [2]);
    }
}
