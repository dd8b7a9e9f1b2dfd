//! The operator bench's results: per-round numbers, ratios of means against targets, and
//! their rendering as a terminal table (JSON is the same structs through serde).

use std::fmt::Write as _;

use crate::diagnostics::EngineDiagnostics;
use crate::disk_stats::DiskActivity;
use crate::profile::{RoundProfile, Timeline};

/// One engine measurement against its fio job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub name: String,
    pub unit: String,
    /// How the engine was driven (concurrency, shards).
    pub workload: String,
    /// The fio command line of the first round (later rounds differ only in nothing).
    pub fio_command: Option<String>,
    /// One value per round, in run order.
    pub engine: Vec<f64>,
    pub fio: Vec<f64>,
    /// What reached the disk during each fio round.
    pub fio_disk: Vec<DiskActivity>,
    /// What each engine round cost (CPU per thread, commits, load average).
    pub engine_diagnostics: Vec<EngineDiagnostics>,
    /// Each engine round's latency histogram and throughput over time (the HTML report's plots).
    pub engine_profiles: Vec<RoundProfile>,
    /// Each fio round's throughput over time, in `unit`, from fio's averaged logs.
    pub fio_timelines: Vec<Timeline>,
    /// Mean engine value over mean fio value; absent without fio.
    pub ratio: Option<f64>,
    pub target_ratio: f64,
    pub pass: Option<bool>,
}

impl Comparison {
    pub fn new(name: &str, unit: &str, workload: String, target_ratio: f64) -> Self {
        Self {
            name: name.to_owned(),
            unit: unit.to_owned(),
            workload,
            fio_command: None,
            engine: Vec::new(),
            fio: Vec::new(),
            fio_disk: Vec::new(),
            engine_diagnostics: Vec::new(),
            engine_profiles: Vec::new(),
            fio_timelines: Vec::new(),
            ratio: None,
            target_ratio,
            pass: None,
        }
    }

    pub fn add_fio(&mut self, value: f64, command: String) {
        self.fio.push(value);
        self.fio_command.get_or_insert(command);
        self.update_ratio();
    }

    pub fn add_engine(&mut self, value: f64, diagnostics: EngineDiagnostics) {
        self.engine.push(value);
        self.engine_diagnostics.push(diagnostics);
        self.update_ratio();
    }

    pub fn add_engine_profile(&mut self, profile: RoundProfile) {
        self.engine_profiles.push(profile);
    }

    pub fn add_fio_timeline(&mut self, timeline: Timeline) {
        self.fio_timelines.push(timeline);
    }

    fn update_ratio(&mut self) {
        let (Some(engine), Some(fio)) = (mean(&self.engine), mean(&self.fio)) else { return };
        let ratio = engine / fio.max(f64::MIN_POSITIVE);
        self.ratio = Some(ratio);
        self.pass = Some(ratio >= self.target_ratio);
    }
}

/// An engine number reported for information, without a target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InfoRow {
    pub name: String,
    pub unit: String,
    pub values: Vec<f64>,
    pub diagnostics: Vec<EngineDiagnostics>,
    /// Each round's latency histogram and throughput over time.
    pub profiles: Vec<RoundProfile>,
}

impl InfoRow {
    pub fn new(name: String, unit: &str) -> Self {
        Self { name, unit: unit.to_owned(), values: Vec::new(), diagnostics: Vec::new(), profiles: Vec::new() }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    pub fio_version: Option<String>,
    pub seconds: u64,
    pub rounds: usize,
    pub shards: usize,
    pub comparisons: Vec<Comparison>,
    pub info: Vec<InfoRow>,
    pub cores: usize,
    /// Where the threads ran (`--pin`).
    pub threads: String,
    /// Highest 1-minute load average seen; above `cores`, other processes competed for CPU.
    pub load_average_max: Option<f64>,
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / crate::workload::count_f64(values.len() as u64))
}

fn rounds(values: &[f64]) -> String {
    rounds_to(values, 0)
}

/// Per-round values with `decimals` digits after the point.
fn rounds_to(values: &[f64], decimals: usize) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values.iter().map(|value| format!("{value:.decimals$}")).collect::<Vec<_>>().join(" / ")
}

impl CompareReport {
    /// The terminal table: per-round values, the ratio of means, the target, PASS or MISS.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "engine vs fio, same directory, {} round(s) of {} s each, {} shard(s), {}; {}",
            self.rounds,
            self.seconds,
            self.shards,
            self.threads,
            self.fio_version.as_deref().unwrap_or("fio not installed: no ratios")
        );
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:>21} {:>21} {:>8} {:>8}  result",
            "measurement", "unit", "engine (per round)", "fio (per round)", "ratio", "target"
        );
        for comparison in &self.comparisons {
            let ratio = comparison.ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"));
            let verdict = match comparison.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "-",
            };
            let _ = writeln!(
                out,
                "{:<24} {:<6} {:>21} {:>21} {:>8} {:>8}  {verdict}",
                comparison.name,
                comparison.unit,
                rounds(&comparison.engine),
                rounds(&comparison.fio),
                ratio,
                format!(">= {}", comparison.target_ratio),
            );
        }
        for row in &self.info {
            // Microseconds of CPU are a few each: whole ones would hide the difference.
            let decimals = usize::from(row.unit == "us");
            let _ = writeln!(out, "  info: {} = {} {}", row.name, rounds_to(&row.values, decimals), row.unit);
        }
        if let Some(load) = self.load_average_max.filter(|&load| load > crate::workload::count_f64(self.cores as u64)) {
            let _ = writeln!(
                out,
                "  warning: load average reached {load:.1} on {} cores: other processes competed for the CPU",
                self.cores
            );
        }
        for comparison in &self.comparisons {
            let _ = writeln!(out, "  {}: engine {}", comparison.name, comparison.workload);
            for (round, diagnostics) in comparison.engine_diagnostics.iter().enumerate() {
                let _ = writeln!(out, "    engine round {}: {}", round + 1, diagnostics.summary());
            }
            if let Some(command) = &comparison.fio_command {
                let _ = writeln!(out, "    fio: {command}");
            }
            for (round, disk) in comparison.fio_disk.iter().enumerate() {
                let _ = writeln!(out, "    fio round {}: {}", round + 1, disk.summary());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnostics() -> EngineDiagnostics {
        EngineDiagnostics::default()
    }

    #[test]
    fn ratio_is_of_means_and_judged_against_the_target() {
        let mut comparison = Comparison::new("x", "ops/s", String::new(), 0.8);
        comparison.add_fio(100.0, "fio a".to_owned());
        comparison.add_engine(70.0, diagnostics());
        assert_eq!(comparison.pass, Some(false));
        comparison.add_fio(300.0, "fio b".to_owned());
        comparison.add_engine(250.0, diagnostics());
        let ratio = comparison.ratio.unwrap();
        assert!((ratio - 160.0 / 200.0).abs() < 1e-9);
        assert_eq!(comparison.pass, Some(true));
        assert_eq!(comparison.fio_command.as_deref(), Some("fio a"));
    }
}
