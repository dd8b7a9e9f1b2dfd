//! The operator bench's HTML report: one self-contained page (inline SVG, no scripts, no
//! external files) with the terminal table and, per measurement, throughput over time (engine
//! and fio rounds, 100 ms slots) and the engine's latency histogram with p50/p99/p99.9 marked.
//!
//! Plots are drawn by `plotters` with only its SVG backend; without a font backend it sizes
//! text by estimate and leaves the drawing of glyphs to the browser.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::profile::{LatencyHistogram, RoundProfile, Timeline};
use crate::report::{CompareReport, Comparison, InfoRow};

const PLOT_WIDTH: u32 = 640;
const PLOT_HEIGHT: u32 = 360;
const FONT: &str = "sans-serif";
/// Engine rounds in blues, fio rounds in oranges, so the two sides read apart at a glance.
const ENGINE_COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(23, 190, 207), RGBColor(44, 80, 160), RGBColor(100, 160, 220)];
const FIO_COLORS: [RGBColor; 4] =
    [RGBColor(255, 127, 14), RGBColor(214, 39, 40), RGBColor(190, 110, 40), RGBColor(240, 170, 80)];
const PERCENTILE_COLOR: RGBColor = RGBColor(200, 30, 30);

/// plotters failed to draw (only possible on a bug here: the backend writes to a String).
#[derive(Debug, thiserror::Error)]
#[error("drawing the report's plots: {0}")]
pub struct PlotError(String);

fn plot_error(error: impl std::fmt::Display) -> PlotError {
    PlotError(error.to_string())
}

/// The whole page.
pub fn render(report: &CompareReport) -> Result<String, PlotError> {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>mailvault engine vs fio</title>\n<style>\
         body{{font-family:sans-serif;margin:1.5em;max-width:1360px}}\
         pre{{background:#f4f4f4;padding:1em;overflow-x:auto;font-size:12px}}\
         .plots{{display:flex;flex-wrap:wrap;gap:12px}}\
         </style></head><body>\n<h1>mailvault engine vs fio</h1>\n\
         <p>Same directory, interleaved rounds (fio, engine, fio, engine); ratios are of means. \
         Throughput over time is per {} ms slot; latency is per engine request, from issue to \
         acknowledgement (durable for appends), in log-spaced buckets (within 19%).</p>\n<pre>{}</pre>\n",
        crate::profile::TIMELINE_INTERVAL.as_millis(),
        escape(&report.table())
    );
    for comparison in &report.comparisons {
        comparison_section(&mut page, comparison)?;
    }
    for row in &report.info {
        info_section(&mut page, row)?;
    }
    page.push_str("</body></html>\n");
    Ok(page)
}

fn comparison_section(page: &mut String, comparison: &Comparison) -> Result<(), PlotError> {
    let _ = write!(page, "<h2>{}</h2>\n<p>engine: {}", escape(&comparison.name), escape(&comparison.workload));
    if let Some(command) = &comparison.fio_command {
        let _ = write!(page, "<br>fio: <code>{}</code>", escape(command));
    }
    page.push_str("</p>\n<div class=\"plots\">\n");
    let mut series: Vec<(String, &Timeline, RGBColor)> = Vec::new();
    for (round, profile) in comparison.engine_profiles.iter().enumerate() {
        series.push((format!("engine round {}", round + 1), &profile.timeline, ENGINE_COLORS[round % 4]));
    }
    for (round, timeline) in comparison.fio_timelines.iter().enumerate() {
        series.push((format!("fio round {}", round + 1), timeline, FIO_COLORS[round % 4]));
    }
    let title = format!("{}: throughput over time", comparison.name);
    page.push_str(&throughput_plot(&title, &comparison.unit, &series)?);
    page.push_str(&latency_plot(&format!("{}: engine latency", comparison.name), &comparison.engine_profiles)?);
    page.push_str("</div>\n");
    Ok(())
}

fn info_section(page: &mut String, row: &InfoRow) -> Result<(), PlotError> {
    if row.profiles.is_empty() {
        // A figure derived per round (fio's durable writes, CPU per read): no timeline to plot.
        let values: Vec<String> = row.values.iter().map(|value| format!("{value:.1}")).collect();
        let _ = writeln!(page, "<p>{}: {} {}</p>", escape(&row.name), values.join(" / "), escape(&row.unit));
        return Ok(());
    }
    let _ = writeln!(page, "<h2>{}</h2>\n<div class=\"plots\">", escape(&row.name));
    let series: Vec<(String, &Timeline, RGBColor)> = row
        .profiles
        .iter()
        .enumerate()
        .map(|(round, profile)| (format!("engine round {}", round + 1), &profile.timeline, ENGINE_COLORS[round % 4]))
        .collect();
    page.push_str(&throughput_plot(&format!("{}: throughput over time", row.name), &row.unit, &series)?);
    page.push_str(&latency_plot(&format!("{}: latency", row.name), &row.profiles)?);
    page.push_str("</div>\n");
    Ok(())
}

/// Lines of `(label, timeline, color)` against seconds since each round's start.
fn throughput_plot(title: &str, unit: &str, series: &[(String, &Timeline, RGBColor)]) -> Result<String, PlotError> {
    let points = |timeline: &Timeline| -> Vec<(f64, f64)> {
        let slot_seconds = crate::workload::count_f64(timeline.interval_ms) / 1000.0;
        timeline
            .values
            .iter()
            .enumerate()
            .map(|(slot, &value)| (crate::workload::count_f64(slot as u64 + 1) * slot_seconds, value))
            .collect()
    };
    let all: Vec<Vec<(f64, f64)>> = series.iter().map(|(_, timeline, _)| points(timeline)).collect();
    let x_max = all.iter().flatten().map(|&(x, _)| x).fold(1.0, f64::max);
    let y_max = all.iter().flatten().map(|&(_, y)| y).fold(1.0, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(plot_error)?;
        chart.configure_mesh().x_desc("seconds since the round started").y_desc(unit).draw().map_err(plot_error)?;
        for ((label, _, color), points) in series.iter().zip(all) {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The rounds' histograms merged (same workload each round), as percent of requests per
/// bucket on a log latency axis, with p50, p99 and p99.9 as vertical lines.
fn latency_plot(title: &str, rounds: &[RoundProfile]) -> Result<String, PlotError> {
    let mut merged = LatencyHistogram { counts: Vec::new() };
    for round in rounds {
        merged.merge(&round.latency);
    }
    let total = crate::workload::count_f64(merged.total()).max(1.0);
    let used: Vec<(usize, f64)> = merged
        .counts
        .iter()
        .enumerate()
        .filter(|&(_, &count)| count > 0)
        .map(|(bucket, &count)| (bucket, crate::workload::count_f64(count) * 100.0 / total))
        .collect();
    // Whole decades, so the log axis is labelled at 10 µs, 100 µs, 1 ms… rather than crowded
    // with in-between ticks when the latencies span less than one decade.
    let x_min = decade_floor(used.first().map_or(1.0, |&(bucket, _)| LatencyHistogram::bucket_lower_us(bucket)));
    let x_max = decade_ceiling(used.last().map_or(1000.0, |&(bucket, _)| LatencyHistogram::bucket_upper_us(bucket)))
        .max(x_min * 10.0);
    let y_max = used.iter().map(|&(_, percent)| percent).fold(1.0, f64::max) * 1.15;
    let caption = format!("{title} ({} requests, {} round(s))", merged.total(), rounds.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&caption, (FONT, 16))
            .margin(12)
            // Room for the last decade's label, centred on the right edge.
            .margin_right(32)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("latency")
            .y_desc("% of requests")
            .x_labels(8)
            .x_label_formatter(&|micros| format_micros(*micros))
            .draw()
            .map_err(plot_error)?;
        let bar_color = ENGINE_COLORS[0];
        chart
            .draw_series(used.iter().map(|&(bucket, percent)| {
                let lower = LatencyHistogram::bucket_lower_us(bucket).max(x_min);
                let upper = LatencyHistogram::bucket_upper_us(bucket);
                Rectangle::new([(lower, 0.0), (upper, percent)], bar_color.mix(0.75).filled())
            }))
            .map_err(plot_error)?;
        let marks = [(0.50, "p50", 1), (0.99, "p99", 2), (0.999, "p99.9", 3)];
        for (quantile, name, width) in marks {
            let Some(micros) = merged.percentile_us(quantile) else { continue };
            let style = PERCENTILE_COLOR.stroke_width(width);
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(micros, 0.0), (micros, y_max)], style)))
                .map_err(plot_error)?
                .label(format!("{name} \u{2264} {}", format_micros(micros)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if merged.total() > 0 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// The largest power of ten at or below `micros` (at least 1 µs).
fn decade_floor(micros: f64) -> f64 {
    10_f64.powf(micros.max(1.0).log10().floor())
}

/// The smallest power of ten at or above `micros` (at least 10 µs).
fn decade_ceiling(micros: f64) -> f64 {
    10_f64.powf(micros.max(10.0).log10().ceil())
}

fn format_micros(micros: f64) -> String {
    if micros >= 1e6 {
        format!("{:.1} s", micros / 1e6)
    } else if micros >= 1e3 {
        format!("{:.1} ms", micros / 1e3)
    } else {
        format!("{micros:.0} \u{b5}s")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::diagnostics::EngineDiagnostics;
    use crate::profile::{LoadProfile, TIMELINE_INTERVAL};

    fn diagnostics() -> EngineDiagnostics {
        EngineDiagnostics::default()
    }

    /// A profile of `slots` full slots with latencies of 200 µs, a few of 5 ms.
    fn profile(slots: u32) -> RoundProfile {
        let mut profile = LoadProfile::default();
        for slot in 0..=slots {
            for request in 0..100 {
                let latency = if request == 0 { Duration::from_millis(5) } else { Duration::from_micros(200) };
                profile.record(latency, TIMELINE_INTERVAL * slot);
            }
        }
        profile.to_round(1.0)
    }

    fn synthetic_report() -> CompareReport {
        let mut comparison = Comparison::new("4 KiB durable appends", "ops/s", "256 in flight".to_owned(), 30.0);
        for round in 0..2 {
            comparison.add_fio(1600.0, "fio --name=append-fdatasync-4k".to_owned());
            comparison.add_fio_timeline(Timeline {
                interval_ms: 100,
                values: vec![1500.0, 1700.0, 1600.0 + f64::from(round)],
            });
            comparison.add_engine(60_000.0, diagnostics());
            comparison.add_engine_profile(profile(20));
        }
        let mut info = InfoRow::new("engine 4 KiB durable appends, 1 in flight".to_owned(), "ops/s");
        info.values.push(1500.0);
        info.profiles.push(profile(10));
        let mut derived = InfoRow::new("fio CPU per 4 KiB random read".to_owned(), "us");
        derived.values.extend([4.5, 4.75]);
        CompareReport {
            fio_version: Some("fio-3.33".to_owned()),
            seconds: 2,
            rounds: 2,
            shards: 1,
            comparisons: vec![comparison],
            info: vec![info, derived],
            cores: 2,
            threads: "threads unpinned".to_owned(),
            load_average_max: Some(1.0),
        }
    }

    #[test]
    fn report_has_a_throughput_and_a_latency_plot_per_measurement() {
        let page = render(&synthetic_report()).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.trim_end().ends_with("</html>"));
        // Two measurements (one comparison, one info row with timelines), two plots each; the
        // info row derived per round is a line of text.
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("<p>fio CPU per 4 KiB random read: 4.5 / 4.8 us</p>"));
        assert_eq!(page.matches("</svg>").count(), 4);
        assert!(page.contains("4 KiB durable appends: throughput over time"));
        assert!(page.contains("4 KiB durable appends: engine latency (4200 requests, 2 round(s))"));
        assert!(page.contains("engine 4 KiB durable appends, 1 in flight: latency (1100 requests, 1 round(s))"));
        // Lines: two engine rounds, two fio rounds, legends; bars of the histogram.
        assert!(page.contains("engine round 2") && page.contains("fio round 2"));
        assert!(page.matches("<polyline").count() >= 4);
        assert!(page.contains("<rect"));
        assert!(page.contains("p50 \u{2264} 215 \u{b5}s"), "p50 is the 200 µs bucket's upper bound");
        assert!(page.contains("p99.9 \u{2264} 5.8 ms"));
        // The table is there, escaped.
        assert!(page.contains("&gt;= 30"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn latency_axis_spans_whole_decades() {
        assert!((decade_floor(0.0) - 1.0).abs() < 1e-9);
        assert!((decade_floor(181.0) - 100.0).abs() < 1e-9);
        assert!((decade_ceiling(215.0) - 1000.0).abs() < 1e-9);
        assert!((decade_ceiling(1000.0) - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn empty_report_still_renders() {
        let mut report = synthetic_report();
        report.comparisons[0].engine_profiles.clear();
        report.comparisons[0].fio_timelines.clear();
        report.info.clear();
        let page = render(&report).unwrap();
        assert_eq!(page.matches("<svg").count(), 2);
    }
}
