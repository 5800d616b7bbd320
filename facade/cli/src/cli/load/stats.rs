//! What a load run counts, decided without I/O: successes (a response below
//! 400) and their latency, failures by kind with a message, status codes,
//! and per-second intervals for the HdrHistogram log and the plot. Only
//! successes count as throughput; failures have no latency.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, 1 µs to 1 hour, 3 digits.
const MAX_MICROS: u64 = 3_600_000_000;

/// How one upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status (400 and above count as failures).
    Status(u16),
    /// No response: the fail code and a short reason (`1000 connection refused`).
    Failed(String),
}

/// One second of the run: successes, failures, and their latencies.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since the start.
    pub second: u64,
    /// Latencies of the successes that ended in this second.
    pub latency: Histogram<u64>,
    /// Failures that ended in this second.
    pub failures: u64,
}

/// The counts of a run.
#[derive(Debug)]
pub struct Tally {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    failed: BTreeMap<String, u64>,
    successes: u64,
    failures: u64,
    bytes: u64,
    intervals: Vec<Interval>,
}

/// The counts a run's log carries for a merge (beside its intervals).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Responses below 400.
    pub successes: u64,
    /// Everything else.
    pub failures: u64,
    /// Body bytes of the successes.
    pub bytes: u64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by kind.
    pub failed: BTreeMap<String, u64>,
}

/// The report: what `load` prints, and `--json` whole.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Uploads that ended (successes and failures).
    pub uploads: u64,
    /// Responses below 400.
    pub successes: u64,
    /// Everything else.
    pub failures: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Successes per second (failures are not throughput).
    pub successes_per_sec: f64,
    /// Body bytes of the successes, per second, in MB (10^6).
    pub mb_per_sec: f64,
    /// Responses by status code (all of them, failures included).
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by kind: `http NNN`, or the fail code and a short reason.
    pub failed: BTreeMap<String, u64>,
    /// Requests sent again on a new connection after a reused one closed
    /// before answering (the engines' count).
    pub resent: u64,
    /// Connections the engines opened.
    pub connections: u64,
    /// Of those, the ones that spoke HTTP/2.
    pub http2_connections: u64,
    /// Latency of the successes, in ms.
    pub latency_ms: Latency,
    /// The successes' latency distribution in ten equal buckets.
    pub histogram: Vec<Bucket>,
}

/// Latency figures in milliseconds (zero without successes).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Percentiles.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
}

/// One bucket of the histogram: successes with latency up to `le_ms`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// Upper bound in ms.
    pub le_ms: f64,
    /// Successes in the bucket.
    pub count: u64,
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).map_err(|e| e.to_string())
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Result<Tally, String> {
        Ok(Tally {
            latency: histogram()?,
            statuses: BTreeMap::new(),
            failed: BTreeMap::new(),
            successes: 0,
            failures: 0,
            bytes: 0,
            intervals: Vec::new(),
        })
    }

    /// An upload ended `at` after the start, `latency` after its intended
    /// start, with `bytes` of body.
    pub fn record(&mut self, at: Duration, outcome: Outcome, latency: Duration, bytes: u64) {
        let second = at.as_secs();
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        // Every second up to this one has its interval (an empty second
        // is a second with no success: a stall shows).
        let next = self.intervals.last().map_or(0, |i| i.second + 1);
        for missing in next..=second {
            let Ok(latency) = histogram() else { return };
            self.intervals.push(Interval {
                second: missing,
                latency,
                failures: 0,
            });
        }
        let Some(index) = self.intervals.iter().rposition(|i| i.second == second) else {
            return;
        };
        let success = match &outcome {
            Outcome::Status(status) => {
                *self.statuses.entry(*status).or_default() += 1;
                *status < 400
            }
            Outcome::Failed(_) => false,
        };
        if success {
            self.successes += 1;
            self.bytes += bytes;
            let _ = self.latency.record(micros);
            let _ = self.intervals[index].latency.record(micros);
        } else {
            self.failures += 1;
            self.intervals[index].failures += 1;
            let kind = match outcome {
                Outcome::Status(status) => format!("http {status}"),
                Outcome::Failed(kind) => kind,
            };
            *self.failed.entry(kind).or_default() += 1;
        }
    }

    /// Adds `other`'s counts (another engine's share of the same run).
    pub fn merge(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        for (kind, count) in &other.failed {
            *self.failed.entry(kind.clone()).or_default() += count;
        }
        self.successes += other.successes;
        self.failures += other.failures;
        self.bytes += other.bytes;
        for interval in &other.intervals {
            match self.intervals.iter_mut().find(|i| i.second == interval.second) {
                Some(mine) => {
                    let _ = mine.latency.add(&interval.latency);
                    mine.failures += interval.failures;
                }
                None => self.intervals.push(interval.clone()),
            }
        }
        self.intervals.sort_by_key(|i| i.second);
    }

    /// A run's tally from its log: its counts and its intervals (the
    /// latency of the whole is their sum, exact to the histograms'
    /// precision).
    pub fn from_log(totals: Totals, mut intervals: Vec<Interval>) -> Result<Tally, String> {
        let mut latency = Histogram::new(3).map_err(|e| e.to_string())?;
        for interval in &intervals {
            latency.add(&interval.latency).map_err(|e| format!("{e:?}"))?;
        }
        intervals.sort_by_key(|i| i.second);
        Ok(Tally {
            latency,
            statuses: totals.statuses,
            failed: totals.failed,
            successes: totals.successes,
            failures: totals.failures,
            bytes: totals.bytes,
            intervals,
        })
    }

    /// The counts, for a log.
    pub fn totals(&self) -> Totals {
        Totals {
            successes: self.successes,
            failures: self.failures,
            bytes: self.bytes,
            statuses: self.statuses.clone(),
            failed: self.failed.clone(),
        }
    }

    /// The per-second intervals so far, in order.
    pub fn intervals(&self) -> &[Interval] {
        &self.intervals
    }

    /// The report after `elapsed`.
    pub fn report(&self, elapsed: Duration) -> Report {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let h = &self.latency;
        let ms = |micros: f64| micros / 1000.0;
        let latency = if h.is_empty() {
            Latency::default()
        } else {
            let q = |quantile: f64| ms(h.value_at_quantile(quantile) as f64);
            Latency {
                min: ms(h.min() as f64),
                mean: ms(h.mean()),
                stdev: ms(h.stdev()),
                p50: q(0.5),
                p90: q(0.9),
                p95: q(0.95),
                p99: q(0.99),
                p99_9: q(0.999),
                max: ms(h.max() as f64),
            }
        };
        Report {
            uploads: self.successes + self.failures,
            successes: self.successes,
            failures: self.failures,
            seconds,
            successes_per_sec: self.successes as f64 / seconds,
            mb_per_sec: self.bytes as f64 / seconds / 1e6,
            statuses: self.statuses.clone(),
            failed: self.failed.clone(),
            resent: 0,
            connections: 0,
            http2_connections: 0,
            histogram: buckets(h),
            latency_ms: latency,
        }
    }
}

/// Ten equal buckets from the smallest to the largest latency.
fn buckets(h: &Histogram<u64>) -> Vec<Bucket> {
    if h.is_empty() {
        return Vec::new();
    }
    let (min, max) = (h.min(), h.max().max(h.min() + 1));
    let step = (max - min).div_ceil(10).max(1);
    let mut out = Vec::with_capacity(10);
    let mut below = min.saturating_sub(1);
    for i in 1..=10u64 {
        let upper = if i == 10 { h.max() } else { min + step * i };
        let count: u64 = h
            .iter_recorded()
            .filter(|v| v.value_iterated_to() > below && v.value_iterated_to() <= upper)
            .map(|v| v.count_at_value())
            .sum();
        out.push(Bucket {
            le_ms: upper as f64 / 1000.0,
            count,
        });
        below = upper;
        if upper >= h.max() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_successes_have_latency_and_throughput() {
        let mut tally = Tally::new().unwrap();
        for i in 1..=100u64 {
            tally.record(
                Duration::from_millis(i * 20),
                Outcome::Status(201),
                Duration::from_millis(i),
                10,
            );
        }
        tally.record(
            Duration::from_secs(5),
            Outcome::Failed("204 timeout".into()),
            Duration::from_secs(30),
            10,
        );
        let report = tally.report(Duration::from_secs(2));
        assert_eq!((report.uploads, report.successes, report.failures), (101, 100, 1));
        assert_eq!(report.successes_per_sec, 50.0);
        assert_eq!(report.mb_per_sec, 1000.0 / 2.0 / 1e6);
        assert!((report.latency_ms.min - 1.0).abs() < 0.01);
        assert!(
            (report.latency_ms.max - 100.0).abs() < 0.1,
            "the failure's 30 s is not a latency"
        );
        assert!((report.latency_ms.p50 - 50.0).abs() < 0.1);
        assert!((report.latency_ms.p99_9 - 100.0).abs() < 0.1);
        assert_eq!(report.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(report.histogram.len(), 10);
        assert_eq!(tally.intervals().len(), 6, "seconds 0 to 5, the empty ones too");
        assert!(tally.intervals()[3].latency.is_empty());
        assert_eq!(tally.intervals()[5].failures, 1);
    }

    #[test]
    fn the_engines_tallies_add_up_to_the_whole_run() {
        let records = [
            (0, Outcome::Status(200), 3),
            (2, Outcome::Status(200), 5),
            (1, Outcome::Failed("204 timeout".into()), 0),
            (2, Outcome::Status(503), 1),
            (4, Outcome::Status(201), 7),
        ];
        let (mut whole, mut lanes) = (Tally::new().unwrap(), [Tally::new().unwrap(), Tally::new().unwrap()]);
        for (i, (second, outcome, ms)) in records.into_iter().enumerate() {
            let (at, latency) = (Duration::from_secs(second), Duration::from_millis(ms));
            whole.record(at, outcome.clone(), latency, 10);
            lanes[i % 2].record(at, outcome, latency, 10);
        }
        let mut merged = Tally::new().unwrap();
        for lane in &lanes {
            merged.merge(lane);
        }
        let json = |t: &Tally| serde_json::to_string(&t.report(Duration::from_secs(5))).unwrap();
        assert_eq!(json(&merged), json(&whole));
        let seconds = |t: &Tally| -> Vec<(u64, u64, u64)> {
            t.intervals()
                .iter()
                .map(|i| (i.second, i.latency.len(), i.failures))
                .collect()
        };
        assert_eq!(seconds(&merged), seconds(&whole));
    }

    #[test]
    fn statuses_and_failures_by_kind() {
        let mut tally = Tally::new().unwrap();
        tally.record(
            Duration::from_secs(0),
            Outcome::Status(200),
            Duration::from_millis(3),
            100,
        );
        tally.record(
            Duration::from_secs(0),
            Outcome::Status(503),
            Duration::from_millis(1),
            100,
        );
        tally.record(
            Duration::from_secs(1),
            Outcome::Failed("1000 connection refused".into()),
            Duration::ZERO,
            0,
        );
        let report = tally.report(Duration::from_secs(2));
        assert_eq!((report.successes, report.failures), (1, 2));
        assert_eq!((report.statuses[&200], report.statuses[&503]), (1, 1));
        assert_eq!(report.failed["http 503"], 1);
        assert_eq!(report.failed["1000 connection refused"], 1);
        assert_eq!(report.successes_per_sec, 0.5);
    }

    #[test]
    fn a_run_of_failures_reports_no_throughput() {
        let mut tally = Tally::new().unwrap();
        for _ in 0..50 {
            tally.record(
                Duration::ZERO,
                Outcome::Failed("1000 connection refused".into()),
                Duration::ZERO,
                16_384,
            );
        }
        let report = tally.report(Duration::from_millis(1));
        assert_eq!((report.successes_per_sec, report.mb_per_sec), (0.0, 0.0));
        assert_eq!(report.failed["1000 connection refused"], 50);
        assert!(report.histogram.is_empty());
        assert_eq!(report.latency_ms.max, 0.0);
    }
}
