//! The run's report: its settings and phases, as JSON and as a terminal table; and the ratios
//! between two reports (this server against another, same client, same machine).

use std::fmt::Write as _;

use crate::phase::PhaseReport;

/// Everything a run measured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// What was measured (`--label`), e.g. `mailvault` or `dovecot`.
    pub label: String,
    pub tag: String,
    pub seed: u64,
    pub messages: u64,
    pub connections: usize,
    pub users: u32,
    pub size_max: usize,
    /// The size mix actually generated.
    pub sizes: SizeSummary,
    pub phases: Vec<PhaseReport>,
    pub errors_total: u64,
}

/// Sizes of the delivered corpus, in bytes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct SizeSummary {
    pub total: u64,
    pub median: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl SizeSummary {
    pub fn of(mut sizes: Vec<u64>) -> Self {
        if sizes.is_empty() {
            return Self::default();
        }
        sizes.sort_unstable();
        let at = |quantile: f64| {
            #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
            let position = (quantile * sizes.len() as f64).ceil() as usize;
            sizes[position.clamp(1, sizes.len()) - 1]
        };
        Self { total: sizes.iter().sum(), median: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
    }
}

impl Report {
    /// The report as a table for a terminal.
    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let _ = writeln!(
            out,
            "{}: {} messages ({:.1} MB; median {:.1} KB, p90 {:.1} KB, p99 {:.1} KB, max {:.1} KB) to {} users, {} connections, seed {}, tag {}",
            self.label,
            self.messages,
            mb(self.sizes.total),
            self.sizes.median as f64 / 1e3,
            self.sizes.p90 as f64 / 1e3,
            self.sizes.p99 as f64 / 1e3,
            self.sizes.max as f64 / 1e3,
            self.users,
            self.connections,
            self.seed,
            self.tag,
        );
        let _ = writeln!(
            out,
            "{:<14} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10} {:>8} {:>7}",
            "phase",
            "msgs",
            "seconds",
            "msg/s",
            "MB/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "srv cpu",
            "msg/cpu-s",
            "cli cpu",
            "errors"
        );
        for phase in &self.phases {
            let _ = writeln!(
                out,
                "{:<14} {:>7} {:>8.2} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8} {:>10} {:>8.2} {:>7}",
                phase.name,
                phase.messages,
                phase.seconds,
                phase.messages_per_second,
                phase.megabytes_per_second,
                phase.latency.p50_ms,
                phase.latency.p99_ms,
                phase.latency.p999_ms,
                phase.server_cpu_seconds.map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.2}")),
                phase.messages_per_server_cpu_second.map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}")),
                phase.client_cpu_seconds,
                phase.error_count(),
            );
        }
        for phase in &self.phases {
            if let Some(verification) = &phase.verification {
                let _ = writeln!(
                    out,
                    "{}: {} identical, {} missing, {} altered, {} duplicated, {} misplaced; {} of other runs, {} without id",
                    phase.name,
                    verification.matched,
                    verification.missing,
                    verification.mismatched,
                    verification.duplicates,
                    verification.misplaced,
                    verification.foreign,
                    verification.unidentified,
                );
            }
            for example in &phase.error_examples {
                let _ = writeln!(out, "  {}: {example}", phase.name);
            }
        }
        let _ = writeln!(out, "errors: {}", self.errors_total);
        out
    }
}

/// Ratios `first / second` per phase present in both: throughput, latency and messages per
/// server CPU second, with each side's own numbers.
pub fn compare(first: &Report, second: &Report) -> String {
    let mut out = String::new();
    let (a, b) = (&first.label, &second.label);
    let _ = writeln!(out, "A = {a}, B = {b}; ratios A/B: > 1 means {a} is ahead, except for latency (lower is better)");
    let _ = writeln!(
        out,
        "{:<14} {:>9} {:>9} {:>7} {:>7} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7}",
        "phase",
        "A msg/s",
        "B msg/s",
        "ratio",
        "MB/s",
        "A p99 ms",
        "B p99 ms",
        "ratio",
        "A msg/cpu",
        "B msg/cpu",
        "ratio"
    );
    let ratio = |x: f64, y: f64| if y > 0.0 { format!("{:.2}x", x / y) } else { "-".to_owned() };
    let optional = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |value| format!("{value:.0}"));
    for phase in &first.phases {
        let Some(other) = second.phases.iter().find(|other| other.name == phase.name) else { continue };
        let per_cpu = match (phase.messages_per_server_cpu_second, other.messages_per_server_cpu_second) {
            (Some(x), Some(y)) => ratio(x, y),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<14} {:>9.1} {:>9.1} {:>7} {:>7} {:>9.2} {:>9.2} {:>7} {:>9} {:>9} {:>7}",
            phase.name,
            phase.messages_per_second,
            other.messages_per_second,
            ratio(phase.messages_per_second, other.messages_per_second),
            ratio(phase.megabytes_per_second, other.megabytes_per_second),
            phase.latency.p99_ms,
            other.latency.p99_ms,
            ratio(phase.latency.p99_ms, other.latency.p99_ms),
            optional(phase.messages_per_server_cpu_second),
            optional(other.messages_per_server_cpu_second),
            per_cpu,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_ratios_render() {
        let phase = PhaseReport {
            name: "deliver/lmtp".to_owned(),
            messages: 10,
            messages_per_second: 100.0,
            megabytes_per_second: 2.0,
            messages_per_server_cpu_second: Some(50.0),
            ..PhaseReport::default()
        };
        let first = Report { label: "a".to_owned(), phases: vec![phase.clone()], ..Report::default() };
        let mut slower = phase;
        slower.messages_per_second = 25.0;
        slower.messages_per_server_cpu_second = Some(5.0);
        let second = Report { label: "b".to_owned(), phases: vec![slower], ..Report::default() };
        assert!(first.table().contains("deliver/lmtp"));
        let ratios = compare(&first, &second);
        assert!(ratios.contains("4.00x") && ratios.contains("10.00x"), "{ratios}");
        assert_eq!(SizeSummary::of(vec![3, 1, 2]).median, 2);
    }
}
