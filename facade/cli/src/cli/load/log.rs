//! The interval log a load run writes (`--hdr-log`) and `load merge`
//! reads: an HdrHistogram V2 interval log, so other readers
//! (HistogramLogProcessor, HdrHistogram's Python and Go libraries) read it
//! too. Per second, the successes' latencies in microseconds (untagged,
//! what such tools process by default) and, tagged `failures`, one value
//! per failure. Two `#` comment lines, which other readers skip, carry what
//! a merge needs: the job and this run's share of it first, the totals
//! (statuses, failures by kind, bytes, the run's length) last.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::segment::Segment;
use super::stats::{Interval, Tally, Totals};

const JOB: &str = "uploadtask-load job ";
const TOTALS: &str = "uploadtask-load totals ";
/// The tag of the failures' histograms.
const FAILURES: &str = "failures";

/// The job a run belongs to, as every segment of it gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The user's name for the job (`--tag`), or empty.
    pub tag: String,
    /// The endpoint.
    pub url: String,
    /// Uploads in the whole job (`-n`), if bounded by a count.
    pub total: Option<u64>,
    /// Uploads started per second by the whole job (`--rate`).
    pub rate: Option<f64>,
    /// Uploads in flight in the whole job (`-c`).
    pub concurrency: u64,
    /// The job's length (`-z`), in seconds.
    pub duration: Option<f64>,
    /// Body bytes of one upload.
    pub body_bytes: u64,
    /// This run's share.
    pub segment: Segment,
}

impl Job {
    /// The job without this run's share: what every segment must agree on.
    pub fn shape(&self) -> Job {
        Job {
            segment: Segment::WHOLE,
            ..self.clone()
        }
    }
}

/// What the last comment line says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTotals {
    /// The counts.
    pub totals: Totals,
    /// The run's length, in seconds.
    pub seconds: f64,
    /// Requests sent again on a new connection.
    pub resent: u64,
}

/// Writes `tally` as an interval log starting at `started`.
pub fn write(tally: &Tally, started: SystemTime, job: &Job, end: &RunTotals, path: &Path) -> io::Result<()> {
    let mut file = io::BufWriter::new(std::fs::File::create(path)?);
    let mut serializer = V2DeflateSerializer::new();
    let since_epoch = started.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let json = |v: &dyn ToJson| v.to_json();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("uploadtask load: latency of successful uploads in microseconds; failures tagged")
        .add_comment(&format!("{JOB}{}", json(job)))
        .with_start_time(started)
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut file, &mut serializer)?;
    let failures_tag = Tag::new(FAILURES);
    for interval in tally.intervals() {
        let start = since_epoch + Duration::from_secs(interval.second);
        log.write_histogram(&interval.latency, start, Duration::from_secs(1), None)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        if interval.failures > 0 {
            let mut failures = Histogram::<u64>::new(3).map_err(|e| io::Error::other(e.to_string()))?;
            failures
                .record_n(1, interval.failures)
                .map_err(|e| io::Error::other(e.to_string()))?;
            log.write_histogram(&failures, start, Duration::from_secs(1), failures_tag)
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
        }
    }
    log.write_comment(&format!("{TOTALS}{}", json(end)))?;
    drop(log);
    file.flush()
}

/// What the comment lines carry, as one line of JSON.
trait ToJson {
    fn to_json(&self) -> String;
}

impl<T: Serialize> ToJson for T {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A log as read: where it starts, what it says of itself (nothing, for a
/// log another program wrote), and its intervals.
#[derive(Debug)]
pub struct Log {
    /// The file, for messages.
    pub name: String,
    /// `StartTime`, else the first interval's start, in seconds since the epoch.
    pub start: f64,
    /// The job, if the log is ours.
    pub job: Option<Job>,
    /// The totals, if the log is ours and its run ended.
    pub end: Option<RunTotals>,
    /// Per interval: its start (seconds since the epoch), the successes'
    /// latencies, the failures.
    pub intervals: Vec<(f64, Histogram<u64>, u64)>,
}

/// Reads a V2 interval log: ours, or any other (untagged histograms or
/// those tagged `uploads` are successes, `failures` are failures, other
/// tags are skipped).
pub fn read(path: &Path) -> Result<Log, String> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut job = None;
    let mut end = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(json) = rest.strip_prefix(JOB) {
                job = Some(serde_json::from_str(json).map_err(|e| format!("{name}: a bad job line: {e}"))?);
            } else if let Some(json) = rest.strip_prefix(TOTALS) {
                end = Some(serde_json::from_str(json).map_err(|e| format!("{name}: a bad totals line: {e}"))?);
            }
        }
    }
    let mut start = None;
    let mut base = 0.0;
    let mut intervals = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.map_err(|e| format!("{name}: not an HdrHistogram interval log ({e:?})"))? {
            LogEntry::StartTime(t) => start = start.or(Some(t.as_secs_f64())),
            LogEntry::BaseTime(t) => base = t.as_secs_f64(),
            LogEntry::Interval(h) => {
                let tag = h.tag().map(|t| t.as_str().to_string());
                let failures = match tag.as_deref() {
                    None | Some("uploads") => false,
                    Some(FAILURES) => true,
                    Some(_) => continue,
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(h.encoded_histogram().trim())
                    .map_err(|e| format!("{name}: a histogram that is not base64 ({e})"))?;
                let histogram: Histogram<u64> = deserializer
                    .deserialize(&mut decoded.as_slice())
                    .map_err(|e| format!("{name}: a histogram that does not decode ({e:?})"))?;
                let at = base + h.start_timestamp().as_secs_f64();
                if failures {
                    intervals.push((at, empty()?, histogram.len()));
                } else {
                    intervals.push((at, histogram, 0));
                }
            }
        }
    }
    let start = start
        .or_else(|| intervals.first().map(|i| i.0))
        .ok_or_else(|| format!("{name}: no StartTime and no interval"))?;
    Ok(Log {
        name,
        start,
        job,
        end,
        intervals,
    })
}

fn empty() -> Result<Histogram<u64>, String> {
    Histogram::new(3).map_err(|e| e.to_string())
}

/// Intervals of a log as a tally's seconds counted from `base` (seconds
/// since the epoch).
pub fn intervals_from(log: &Log, base: f64) -> Result<Vec<Interval>, String> {
    let mut out: Vec<Interval> = Vec::new();
    for (at, latency, failures) in &log.intervals {
        let second = (at - base).max(0.0).floor() as u64;
        let index = match out.iter().position(|i| i.second == second) {
            Some(index) => index,
            None => {
                out.push(Interval {
                    second,
                    latency: empty()?,
                    failures: 0,
                });
                out.len() - 1
            }
        };
        // Into a histogram that grows: any reader's range fits.
        out[index]
            .latency
            .add(latency)
            .map_err(|e| format!("{}: {e:?}", log.name))?;
        out[index].failures += failures;
    }
    out.sort_by_key(|i| i.second);
    Ok(out)
}
