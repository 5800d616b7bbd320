//! What a load run (or a merge) prints and draws: the text summary and the
//! SVG plot (`--plot`); the interval log is [`super::log`]'s.

use std::io::{self, Write};
use std::path::Path;

use super::stats::{Report, Tally};

/// The summary for people (stdout).
pub fn text(report: &Report, header: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{header}")?;
    let share = |n: u64| {
        if report.uploads == 0 {
            0.0
        } else {
            n as f64 * 100.0 / report.uploads as f64
        }
    };
    writeln!(out, "Summary:")?;
    writeln!(
        out,
        "  Successes:   {} ({:.2}%)",
        report.successes,
        share(report.successes)
    )?;
    writeln!(
        out,
        "  Failures:    {} ({:.2}%)",
        report.failures,
        share(report.failures)
    )?;
    writeln!(
        out,
        "  Resent:      {} (on a new connection: a reused one closed before answering)",
        report.resent
    )?;
    writeln!(
        out,
        "  Connections: {} opened, {} of them HTTP/2",
        report.connections, report.http2_connections
    )?;
    writeln!(out, "  Time:        {:.3} s", report.seconds)?;
    writeln!(
        out,
        "  Throughput:  {:.0} successes/s, {:.1} MB/s",
        report.successes_per_sec, report.mb_per_sec
    )?;
    if report.successes > 0 {
        let l = &report.latency_ms;
        writeln!(out, "Latency of successes (ms):")?;
        writeln!(
            out,
            "  min {:.3}  mean {:.3}  stdev {:.3}  max {:.3}",
            l.min, l.mean, l.stdev, l.max
        )?;
        writeln!(
            out,
            "  p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}",
            l.p50, l.p90, l.p95, l.p99, l.p99_9
        )?;
        writeln!(out, "Histogram (ms):")?;
        let most = report.histogram.iter().map(|b| b.count).max().unwrap_or(1).max(1);
        for bucket in &report.histogram {
            let bar = "■".repeat((bucket.count * 40).div_ceil(most) as usize);
            writeln!(out, "  {:>10.3} [{:>8}] {bar}", bucket.le_ms, bucket.count)?;
        }
    }
    if !report.statuses.is_empty() {
        writeln!(out, "Status codes:")?;
        for (status, count) in &report.statuses {
            writeln!(out, "  {status}: {count}")?;
        }
    }
    if !report.failed.is_empty() {
        writeln!(out, "Failures:")?;
        for (kind, count) in &report.failed {
            writeln!(out, "  {kind}: {count}")?;
        }
    }
    Ok(())
}

/// Throughput and latency percentiles per second, as an SVG.
pub fn plot(tally: &Tally, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let intervals = tally.intervals();
    let seconds = intervals.last().map_or(1, |i| i.second + 1).max(1);
    let rate: Vec<(u64, u64)> = intervals.iter().map(|i| (i.second, i.latency.len())).collect();
    let quantile = |q: f64| -> Vec<(u64, f64)> {
        intervals
            .iter()
            .filter(|i| !i.latency.is_empty())
            .map(|i| (i.second, i.latency.value_at_quantile(q) as f64 / 1000.0))
            .collect()
    };
    let (p50, p99, max) = (quantile(0.5), quantile(0.99), quantile(1.0));
    let top_rate = rate.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let top_ms = max.iter().map(|m| m.1).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (upper, lower) = root.split_vertically(360);
    let mut chart = ChartBuilder::on(&upper)
        .caption("successes per second", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0u64..seconds, 0u64..top_rate + top_rate / 10 + 1)
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_desc("s").draw().map_err(|e| fail(&e))?;
    chart
        .draw_series(LineSeries::new(rate.iter().copied(), &BLUE))
        .map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&lower)
        .caption("latency of successes (ms): p50, p99, max", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0u64..seconds, 0f64..top_ms * 1.1)
        .map_err(|e| fail(&e))?;
    chart.configure_mesh().x_desc("s").draw().map_err(|e| fail(&e))?;
    for (series, color, label) in [(&p50, &GREEN, "p50"), (&p99, &RED, "p99"), (&max, &BLACK, "max")] {
        chart
            .draw_series(LineSeries::new(series.iter().copied(), color))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
