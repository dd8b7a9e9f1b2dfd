//! The scrub bench: how fast an unthrottled scrub pass reads and checks a store against fio
//! reading the same way on the same disk (8 MiB sequential reads, one at a time), and what a
//! pass within its IO budget does to delivery latency.
//!
//! 1. fio: 8 MiB O_DIRECT sequential reads at depth 1 (the scrub's shape).
//! 2. Throughput: a store of `fill` bytes of 64 KiB messages; opened with the scrub on and
//!    unthrottled, the first pass starts at once; its bytes checked / its seconds.
//! 3. Latency: the same store reopened with the scrub at `scrub_bytes_per_second`. 4 KiB
//!    deliveries one at a time for `delivery_seconds` while no pass is due (idle), then the
//!    clock passes the interval, the idle timer starts a pass, and the same deliveries run again
//!    (busy). p99 busy / p99 idle is the ratio.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, EngineConfig, ManualClock, ScrubStatus, block_on};

use crate::compaction_bench::fill_store;
use crate::delivery::{DeliveryLatency, deliver_for};
use crate::fio::{self, FioJob, FioOptions};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// A pass that has not finished in this long is reported as a failure, not waited for.
const PASS_SECONDS_MAX: u64 = 600;

#[derive(Debug, Clone)]
pub struct ScrubBenchOptions {
    pub directory: PathBuf,
    pub fill_bytes: u64,
    pub segment_bytes: u64,
    pub fio_seconds: u64,
    pub delivery_seconds: u64,
    /// The scrub's budget during the latency measurement (`None`: unthrottled).
    pub scrub_bytes_per_second: Option<u64>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScrubBenchReport {
    pub fio_sequential_read_bytes_per_second: f64,
    pub fio_command: String,
    pub pass_bytes: u64,
    pub pass_frames: u64,
    pub pass_seconds: f64,
    pub pass_bytes_per_second: f64,
    /// Pass rate / fio's rate.
    pub throughput_ratio: f64,
    /// Deliveries idle and during a pass within the budget.
    #[serde(flatten)]
    pub latency: DeliveryLatency,
    /// Bytes the budgeted pass checked during the busy window, and whether it was still
    /// running at its end (if not, the window was not all "busy").
    pub bytes_checked_during_window: u64,
    pub pass_still_running_after_window: bool,
}

impl ScrubBenchReport {
    pub fn table(&self) -> String {
        let mb = |bytes_per_second: f64| bytes_per_second / 1e6;
        format!(
            "scrub pass (unthrottled): {:.0} MB/s ({} MB, {} frames, {:.2} s) vs fio 8 MiB sequential reads {:.0} MB/s: ratio {:.2}\n\
             delivery p99 during a pass within its budget: {:.0} us vs idle {:.0} us: ratio {:.2}; p50 {:.0} us vs {:.0} us; p99.9 {:.0} us vs {:.0} us; {} and {} deliveries\n\
             the pass checked {} MB during the window; still running at its end: {}\n\
             fio: {}\n",
            mb(self.pass_bytes_per_second),
            self.pass_bytes / 1_000_000,
            self.pass_frames,
            self.pass_seconds,
            mb(self.fio_sequential_read_bytes_per_second),
            self.throughput_ratio,
            self.latency.busy_p99_us,
            self.latency.idle_p99_us,
            self.latency.latency_ratio,
            self.latency.busy_p50_us,
            self.latency.idle_p50_us,
            self.latency.busy_p999_us,
            self.latency.idle_p999_us,
            self.latency.busy_deliveries,
            self.latency.idle_deliveries,
            self.bytes_checked_during_window / 1_000_000,
            self.pass_still_running_after_window,
            self.fio_command,
        )
    }
}

pub fn run(options: &ScrubBenchOptions) -> anyhow::Result<ScrubBenchReport> {
    let token = crate::store::hsm_token()?;
    let mut report = ScrubBenchReport::default();
    std::fs::create_dir_all(&options.directory)?;
    let fio_options = FioOptions {
        directory: options.directory.clone(),
        seconds: options.fio_seconds,
        file_bytes: options.fill_bytes.max(256 * 1024 * 1024),
    };
    let fio = fio::run(FioJob::SequentialRead8m, &fio_options)?;
    fio::remove_files(&options.directory)?;
    report.fio_sequential_read_bytes_per_second = fio.bytes_per_second;
    report.fio_command = fio.command;

    let directory = options.directory.join("scrub-store");
    let clock = ManualClock::new(1_795_392_000_000);
    let mut config = EngineConfig::new(&directory);
    config.segment_bytes_max = options.segment_bytes;
    config.clock = Arc::new(clock.clone());
    fill_store(&config, options.fill_bytes, false, &token.hsm)?;
    crate::page_cache::evict(&directory)?;

    config.scrub_interval = Some(Duration::from_millis(DAY_MS.unsigned_abs()));
    config.scrub_bytes_per_second = None;
    config.compaction_check_interval = Duration::from_millis(100);
    let started = Instant::now();
    let engine = Engine::open(&config, &token.hsm)?;
    let pass = wait_for_pass(&engine, started)?;
    report.pass_seconds = started.elapsed().as_secs_f64();
    report.pass_bytes = pass.bytes_checked;
    report.pass_frames = pass.frames_checked;
    report.pass_bytes_per_second = crate::workload::count_f64(pass.bytes_checked) / report.pass_seconds.max(1e-9);
    report.throughput_ratio = report.pass_bytes_per_second / report.fio_sequential_read_bytes_per_second.max(1.0);
    drop(engine);

    config.scrub_bytes_per_second = options.scrub_bytes_per_second;
    let engine = Engine::open(&config, &token.hsm)?;
    let window = Duration::from_secs(options.delivery_seconds);
    let mut idle = deliver_for(&engine, window)?;
    clock.advance_ms(DAY_MS); // the next pass is due: the idle timer starts it within 100 ms
    std::thread::sleep(Duration::from_millis(300));
    let before = scrub_status(&engine)?.bytes_checked;
    let mut busy = deliver_for(&engine, window)?;
    let after = scrub_status(&engine)?;
    report.bytes_checked_during_window = after.bytes_checked.saturating_sub(before);
    report.pass_still_running_after_window = after.pass_started_unix_ms.is_some();
    drop(engine);
    std::fs::remove_dir_all(&directory)?;

    report.latency = DeliveryLatency::of(&mut idle, &mut busy);
    Ok(report)
}

fn scrub_status(engine: &Engine) -> anyhow::Result<ScrubStatus> {
    block_on(engine.stats())?
        .into_iter()
        .next()
        .and_then(|shard| shard.scrub)
        .ok_or_else(|| anyhow::anyhow!("the scrub is not on"))
}

/// Waits for the first pass to finish (polling the stats every 10 ms).
fn wait_for_pass(engine: &Engine, started: Instant) -> anyhow::Result<ScrubStatus> {
    loop {
        let status = scrub_status(engine)?;
        if status.last_pass.is_some() {
            return Ok(status);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(PASS_SECONDS_MAX),
            "the scrub pass did not finish in {PASS_SECONDS_MAX} s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
