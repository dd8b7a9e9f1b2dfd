//! What the machine did during an engine measurement, to tell a slow disk from a busy CPU:
//! CPU time per thread of this process (shard threads, the load generator, io_uring workers)
//! and time spent waiting for a core, the engine's commits, the disk's own counters, and the
//! load average (other processes compete for the same cores), and the time the hypervisor gave
//! this VM's cores to others (steal), one sign of a shared host (bench/README.md, session 15).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use mailvault_engine::{Engine, EngineError};

use crate::disk_stats::DiskActivity;

/// CPU time of every thread of this process at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    /// Thread id to (name, nanoseconds on CPU, nanoseconds runnable but waiting for a CPU).
    threads: HashMap<u32, (String, u64, u64)>,
    machine: Option<StealSnapshot>,
}

/// The machine's CPU time, all cores, and the part of it stolen (`/proc/stat`, in clock ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StealSnapshot {
    total: u64,
    steal: u64,
}

impl StealSnapshot {
    pub fn take() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// From the text of `/proc/stat`: its first line, `cpu  user nice system idle iowait irq
    /// softirq steal ...` (guest time, after steal, is already counted in user and nice).
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().next()?;
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields.take(8).map(str::parse).collect::<Result<_, _>>().ok()?;
        let steal = *ticks.get(7)?;
        Some(Self { total: ticks.iter().sum(), steal })
    }

    /// Stolen time since `earlier`, in percent of all cores' time; `None` over no time at all.
    pub fn percent_since(&self, earlier: &Self) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&total| total > 0)?;
        let steal = self.steal.saturating_sub(earlier.steal);
        Some(100.0 * crate::workload::count_f64(steal) / crate::workload::count_f64(total))
    }
}

/// One thread name's share of a core over an interval (several threads of one name add up).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThreadUsage {
    pub name: String,
    pub threads: usize,
    pub cpu_percent: f64,
    /// Time runnable but not running (waiting for a core), in percent of the interval.
    pub waiting_percent: f64,
}

/// The engine's commit counters summed over shards.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitCounters {
    pub commits: u64,
    pub records: u64,
}

/// What an engine measurement cost, reported with its result. `Default` is "nothing measured".
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineDiagnostics {
    pub operations_per_second: f64,
    pub commits_per_second: f64,
    /// Mean records per commit (an append is one record): how much group commit shared.
    pub records_per_commit: f64,
    /// Threads by name, busiest first; 100 means one core.
    pub cpu: Vec<ThreadUsage>,
    /// 1-minute load average at the end; above the core count, other work competed.
    pub load_average: Option<f64>,
    /// What reached the disk; `None` if the directory is not on a block device.
    pub disk: Option<DiskActivity>,
    /// Time the hypervisor ran something else on this machine's cores, in percent of all of
    /// them; `None` where the kernel does not tell.
    pub steal_percent: Option<f64>,
}

/// What the kernel shows of a shard thread's name (`mailvault-shard-N`, cut to 15 bytes).
const SHARD_THREAD_NAME: &str = "mailvault-shard";

impl EngineDiagnostics {
    /// The shards' CPU per operation, in µs, at `rate` operations per second (`None` without
    /// either). Where it times the rate comes near 100% per shard, the shards' cores are the
    /// limit; far below, something else is (the disk's flushes, for durable appends here).
    pub fn shard_cpu_us_per_operation(&self, rate: f64) -> Option<f64> {
        let percent: f64 = self
            .cpu
            .iter()
            .filter(|usage| usage.name.starts_with(SHARD_THREAD_NAME))
            .map(|usage| usage.cpu_percent)
            .sum();
        (rate > 0.0 && percent > 0.0).then(|| percent / 100.0 / rate * 1e6)
    }

    pub fn summary(&self) -> String {
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .take(4)
            .map(|usage| format!("{} {:.0}% (+{:.0}% waiting)", usage.name, usage.cpu_percent, usage.waiting_percent))
            .collect();
        let mut summary = format!(
            "{:.0} commits/s, {:.1} records/commit; CPU: {}; load {}",
            self.commits_per_second,
            self.records_per_commit,
            cpu.join(", "),
            self.load_average.map_or_else(|| "?".to_owned(), |load| format!("{load:.1}"))
        );
        if let Some(steal) = self.steal_percent {
            let _ = write!(summary, "; steal {steal:.0}%");
        }
        if let Some(disk) = &self.disk {
            summary.push_str("; ");
            summary.push_str(&disk.summary());
        }
        summary
    }
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let mut threads = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
            for entry in entries.flatten() {
                let Some(tid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                    continue;
                };
                let path = entry.path();
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
                // schedstat: nanoseconds on CPU, nanoseconds waiting to run, timeslices.
                let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) else { continue };
                let mut fields = schedstat.split_whitespace().map(|field| field.parse::<u64>().ok());
                if let (Some(Some(on_cpu)), Some(Some(waiting))) = (fields.next(), fields.next()) {
                    threads.insert(tid, (name, on_cpu, waiting));
                }
            }
        }
        Self { at: Instant::now(), threads, machine: StealSnapshot::take() }
    }

    /// The machine's stolen time since `earlier`, in percent (see [`StealSnapshot`]).
    pub fn steal_percent_since(&self, earlier: &Self) -> Option<f64> {
        self.machine?.percent_since(&earlier.machine?)
    }

    /// CPU use per thread name between `earlier` and this snapshot; threads that used less than
    /// 1% are left out.
    pub fn usage_since(&self, earlier: &Self) -> Vec<ThreadUsage> {
        let interval_ns = self.at.duration_since(earlier.at).as_secs_f64() * 1e9;
        let mut by_name: HashMap<&str, (usize, u64, u64)> = HashMap::new();
        for (tid, (name, on_cpu, waiting)) in &self.threads {
            let (on_cpu_before, waiting_before) =
                earlier.threads.get(tid).map_or((0, 0), |(_, on_cpu, waiting)| (*on_cpu, *waiting));
            let entry = by_name.entry(name.as_str()).or_default();
            entry.0 += 1;
            entry.1 += on_cpu.saturating_sub(on_cpu_before);
            entry.2 += waiting.saturating_sub(waiting_before);
        }
        let percent = |nanoseconds: u64| 100.0 * crate::workload::count_f64(nanoseconds) / interval_ns.max(1.0);
        let mut usage: Vec<ThreadUsage> = by_name
            .into_iter()
            .map(|(name, (threads, busy_ns, waiting_ns))| ThreadUsage {
                name: name.to_owned(),
                threads,
                cpu_percent: percent(busy_ns),
                waiting_percent: percent(waiting_ns),
            })
            .filter(|usage| usage.cpu_percent >= 1.0)
            .collect();
        usage.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        usage
    }
}

/// The 1-minute load average, from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

pub async fn commit_counters(engine: &Engine) -> Result<CommitCounters, EngineError> {
    let mut counters = CommitCounters::default();
    for shard in engine.stats().await? {
        counters.commits += shard.commits;
        counters.records += shard.records_committed;
    }
    Ok(counters)
}

/// Diagnostics of one measurement from its before/after snapshots.
pub fn diagnose(
    operations_per_second: f64,
    (cpu_before, commits_before): (&CpuSnapshot, CommitCounters),
    (cpu_after, commits_after): (&CpuSnapshot, CommitCounters),
    disk: Option<DiskActivity>,
) -> EngineDiagnostics {
    let seconds = cpu_after.at.duration_since(cpu_before.at).as_secs_f64().max(f64::EPSILON);
    let commits = commits_after.commits.saturating_sub(commits_before.commits);
    let records = commits_after.records.saturating_sub(commits_before.records);
    EngineDiagnostics {
        operations_per_second,
        commits_per_second: crate::workload::count_f64(commits) / seconds,
        records_per_commit: crate::workload::count_f64(records) / crate::workload::count_f64(commits.max(1)),
        cpu: cpu_after.usage_since(cpu_before),
        load_average: load_average(),
        disk,
        steal_percent: cpu_after.steal_percent_since(cpu_before),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT_BEFORE: &str = "cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\nintr 1 2\n";
    const STAT_AFTER: &str = "cpu  160 0 80 1000 10 0 10 75 7 0\ncpu0 80 0 40 500 5 0 5 38 7 0\nintr 3 4\n";

    fn usage(name: &str, cpu_percent: f64) -> ThreadUsage {
        ThreadUsage { name: name.to_owned(), threads: 1, cpu_percent, waiting_percent: 0.0 }
    }

    #[test]
    fn shard_cpu_per_operation_counts_only_the_shards_threads() {
        let diagnostics = EngineDiagnostics {
            operations_per_second: 0.0,
            commits_per_second: 0.0,
            records_per_commit: 0.0,
            cpu: vec![usage("mailvault-bench", 55.0), usage("mailvault-shard", 60.0), usage("iou-wrk-1234", 9.0)],
            load_average: None,
            disk: None,
            steal_percent: None,
        };
        // 0.6 of a core over 150,000 appends a second: 4 µs each.
        let per_operation = diagnostics.shard_cpu_us_per_operation(150_000.0).unwrap();
        assert!((per_operation - 4.0).abs() < 1e-9, "{per_operation}");
        assert_eq!(diagnostics.shard_cpu_us_per_operation(0.0), None);
        let without_shards = EngineDiagnostics { cpu: vec![usage("mailvault-bench", 55.0)], ..diagnostics };
        assert_eq!(without_shards.shard_cpu_us_per_operation(150_000.0), None);
    }

    #[test]
    fn steal_is_the_share_of_all_cores_time_the_hypervisor_took() {
        let before = StealSnapshot::parse(STAT_BEFORE).unwrap();
        let after = StealSnapshot::parse(STAT_AFTER).unwrap();
        // 60 + 30 + 200 + 5 + 40 = 335 ticks in all (guest time is inside user), 40 of them stolen.
        let percent = after.percent_since(&before).unwrap();
        assert!((percent - 100.0 * 40.0 / 335.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn steal_is_unknown_over_no_time_or_from_a_foreign_first_line() {
        let snapshot = StealSnapshot::parse(STAT_BEFORE).unwrap();
        assert_eq!(snapshot.percent_since(&snapshot), None);
        assert_eq!(StealSnapshot::parse("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(StealSnapshot::parse("cpu  1 2 3\n"), None);
        assert_eq!(StealSnapshot::parse("cpu  1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(StealSnapshot::parse(""), None);
    }
}
