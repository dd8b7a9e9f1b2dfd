//! The compaction bench: how fast compaction rewrites segments compared with the disk's
//! sequential bandwidth (fio, same directory, same run), and what a background compaction
//! within its IO budget does to delivery latency.
//!
//! 1. fio: 64 KiB O_DIRECT sequential writes (the disk's bandwidth).
//! 2. Throughput: a store of `fill` bytes of 64 KiB messages, every other one expunged and its
//!    retention ended (a controllable clock), page cache evicted; `compact` (full speed) is
//!    timed. Rate = (bytes of the rewritten segments + bytes written) / seconds: each byte read
//!    once and each kept byte written once, compared with one sequential write stream (the
//!    issue's yardstick) and with fio's 2:1 read/write mix, run just before and just after
//!    (the same work as compaction in fio's hands: on disks that read slower than they write,
//!    or that mix poorly, the first ratio has a ceiling well below 1).
//! 3. Latency: another such store; 4 KiB deliveries one at a time for `delivery_seconds` with
//!    nothing to compact (idle), then the clock passes the retention window, the idle timer
//!    starts a background compaction under its budget, and the same deliveries run again
//!    (busy). p99 busy / p99 idle is the ratio.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, EngineConfig, Flags, INBOX, ManualClock, block_on, init_store};
use mailvault_hsm::Hsm;

use crate::delivery::{DELIVERY_ACCOUNT, DeliveryLatency, deliver_for};
use crate::fio::{self, FioJob, FioOptions};

const ACCOUNT: &str = "compaction-bench@example.org";
const MESSAGE_BYTES: usize = 64 * 1024;
pub(crate) const FILL_TASKS: usize = 32;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Uids expunged per request (below the engine's 10,000 limit).
const EXPUNGE_CHUNK: usize = 5000;

#[derive(Debug, Clone)]
pub struct CompactionBenchOptions {
    pub directory: PathBuf,
    pub fill_bytes: u64,
    pub segment_bytes: u64,
    pub fio_seconds: u64,
    pub delivery_seconds: u64,
    /// The background budget during the latency measurement.
    pub compaction_bytes_per_second: Option<u64>,
    /// Compacted segment files the shard keeps and writes new segments over
    /// (`EngineConfig::recycled_segments_max`): compaction's copies land in them.
    pub recycled_segments: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactionBenchReport {
    pub fio_sequential_write_bytes_per_second: f64,
    pub fio_command: String,
    pub rewritten_segment_bytes: u64,
    pub written_bytes: u64,
    pub compaction_seconds: f64,
    pub compaction_bytes_per_second: f64,
    /// Compaction rate / fio bandwidth (target ≥ 0.70).
    pub throughput_ratio: f64,
    /// fio's read/write mix of compaction's shape (two bytes read per byte written), bytes
    /// read plus written per second: the mean of one run just before compaction and one just
    /// after (this disk's bandwidth moves within minutes).
    pub fio_compaction_mix_bytes_per_second: f64,
    /// Compaction rate / that mix: how close compaction comes to what the disk does with the
    /// same work in fio's hands.
    pub mix_ratio: f64,
    /// Deliveries idle and while compacting (busy p99 / idle p99: target ≤ 2).
    #[serde(flatten)]
    pub latency: DeliveryLatency,
    /// Segments compaction removed during the busy window, and whether it was still at work
    /// when the window ended (if not, the window was not all "busy").
    pub segments_compacted_during_window: u64,
    pub compaction_still_running_after_window: bool,
}

impl CompactionBenchReport {
    pub fn table(&self) -> String {
        let mb = |bytes_per_second: f64| bytes_per_second / 1e6;
        format!(
            "compaction throughput: {:.0} MB/s ({} MB rewritten, {} MB written, {:.2} s) vs fio seq write {:.0} MB/s: ratio {:.2} (target >= 0.70)\n\
             vs fio read/write mix of its shape (2:1, 1 MiB, before and after) {:.0} MB/s: ratio {:.2}\n\
             delivery p99 while compacting: {:.0} us vs idle {:.0} us: ratio {:.2} (target <= 2.00); p50 {:.0} us vs {:.0} us; p99.9 {:.0} us vs {:.0} us; max {:.0} us vs {:.0} us; {} and {} deliveries\n\
             background compaction removed {} segments during the window; still running at its end: {}\n\
             fio: {}\n",
            mb(self.compaction_bytes_per_second),
            self.rewritten_segment_bytes / 1_000_000,
            self.written_bytes / 1_000_000,
            self.compaction_seconds,
            mb(self.fio_sequential_write_bytes_per_second),
            self.throughput_ratio,
            mb(self.fio_compaction_mix_bytes_per_second),
            self.mix_ratio,
            self.latency.busy_p99_us,
            self.latency.idle_p99_us,
            self.latency.latency_ratio,
            self.latency.busy_p50_us,
            self.latency.idle_p50_us,
            self.latency.busy_p999_us,
            self.latency.idle_p999_us,
            self.latency.busy_max_us,
            self.latency.idle_max_us,
            self.latency.busy_deliveries,
            self.latency.idle_deliveries,
            self.segments_compacted_during_window,
            self.compaction_still_running_after_window,
            self.fio_command,
        )
    }
}

pub fn run(options: &CompactionBenchOptions) -> anyhow::Result<CompactionBenchReport> {
    let token = crate::store::hsm_token()?;
    let mut report = CompactionBenchReport::default();
    std::fs::create_dir_all(&options.directory)?;
    let fio = fio::run(FioJob::SequentialWrite64k, &fio_options(options))?;
    fio::remove_files(&options.directory)?;
    report.fio_sequential_write_bytes_per_second = fio.bytes_per_second;
    report.fio_command = fio.command;

    measure_throughput(options, &token.hsm, &mut report)?;
    measure_latency(options, &token.hsm, &mut report)?;
    Ok(report)
}

fn fio_options(options: &CompactionBenchOptions) -> FioOptions {
    FioOptions {
        directory: options.directory.clone(),
        seconds: options.fio_seconds,
        file_bytes: options.fill_bytes.max(256 * 1024 * 1024),
    }
}

fn config(directory: &Path, options: &CompactionBenchOptions, clock: &ManualClock) -> EngineConfig {
    let mut config = EngineConfig::new(directory);
    config.segment_bytes_max = options.segment_bytes;
    config.recycled_segments_max = options.recycled_segments;
    config.clock = Arc::new(clock.clone());
    config
}

/// A store of `fill_bytes` of messages, every other one expunged (not yet past retention).
fn filled_store(
    directory: &Path,
    options: &CompactionBenchOptions,
    clock: &ManualClock,
    hsm: &Hsm,
) -> anyhow::Result<()> {
    fill_store(&config(directory, options, clock), options.fill_bytes, true, hsm)
}

/// A store of one shard in `config.data_dir` (made anew) holding `fill_bytes` of 64 KiB
/// messages, every other one expunged if `expunge_half`, and an empty account for deliveries.
pub(crate) fn fill_store(config: &EngineConfig, fill_bytes: u64, expunge_half: bool, hsm: &Hsm) -> anyhow::Result<()> {
    let directory = &config.data_dir;
    if directory.exists() {
        std::fs::remove_dir_all(directory)?;
    }
    init_store(directory, 1)?;
    let mut setup = config.clone();
    setup.compaction_live_ratio = 0.0;
    let engine = Engine::open(&setup, hsm)?;
    let messages = (fill_bytes / MESSAGE_BYTES as u64) as usize;
    block_on(async {
        engine.create_account(ACCOUNT).await?;
        engine.create_account(DELIVERY_ACCOUNT).await?;
        append_64k_messages(&engine, ACCOUNT, "bench", messages as u64).await?;
        if !expunge_half {
            return anyhow::Ok(());
        }
        let (_, listed) = engine.list_messages(ACCOUNT, INBOX).await?;
        let expunged: Vec<u32> = listed.iter().map(|message| message.uid).filter(|uid| uid % 2 == 0).collect();
        for chunk in expunged.chunks(EXPUNGE_CHUNK) {
            engine.expunge(ACCOUNT, INBOX, chunk).await?;
        }
        anyhow::Ok(())
    })?;
    drop(engine);
    Ok(())
}

/// `messages` appends of 64 KiB messages (`Subject: <subject> <index>`, then one letter) to
/// `account`, from [`FILL_TASKS`] tasks at once: enough for the engine to commit them in
/// groups, as a busy shard does. Shared by the benches that fill stores.
pub(crate) async fn append_64k_messages(
    engine: &Engine,
    account: &'static str,
    subject: &'static str,
    messages: u64,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for task in 0..FILL_TASKS as u64 {
        let engine = engine.clone();
        tasks.push(compio::runtime::spawn(async move {
            for index in (task..messages).step_by(FILL_TASKS) {
                let mut body = format!("Subject: {subject} {index}\r\n\r\n").into_bytes();
                body.resize(MESSAGE_BYTES, b'a' + (index % 26) as u8);
                engine.append(account, INBOX, body, Flags::default(), None).await?;
            }
            Ok::<(), mailvault_engine::EngineError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|_| anyhow::anyhow!("an append task panicked"))??;
    }
    Ok(())
}

fn total_segment_bytes(engine: &Engine) -> anyhow::Result<u64> {
    let stats = block_on(engine.stats())?;
    Ok(stats.iter().flat_map(|shard| shard.segment_details.iter()).map(|segment| segment.bytes).sum())
}

fn measure_throughput(
    options: &CompactionBenchOptions,
    hsm: &Hsm,
    report: &mut CompactionBenchReport,
) -> anyhow::Result<()> {
    let directory = options.directory.join("throughput-store");
    let clock = ManualClock::new(1_795_392_000_000);
    filled_store(&directory, options, &clock, hsm)?;
    clock.advance_ms(15 * DAY_MS);
    crate::page_cache::evict(&directory)?;
    let mut config = config(&directory, options, &clock);
    config.compaction_bytes_per_second = Some(1); // the background waits; `compact` runs at full speed
    let engine = Engine::open(&config, hsm)?;
    let before = total_segment_bytes(&engine)?;
    let mix_before = fio::run(FioJob::CompactionMix1m, &fio_options(options))?;
    let started = Instant::now();
    let compacted = block_on(engine.compact())?;
    report.compaction_seconds = started.elapsed().as_secs_f64();
    let mix_after = fio::run(FioJob::CompactionMix1m, &fio_options(options))?;
    fio::remove_files(&options.directory)?;
    report.fio_compaction_mix_bytes_per_second = f64::midpoint(mix_before.bytes_per_second, mix_after.bytes_per_second);
    let after = total_segment_bytes(&engine)?;
    report.rewritten_segment_bytes = compacted.bytes_reclaimed;
    report.written_bytes = after.saturating_sub(before.saturating_sub(compacted.bytes_reclaimed));
    report.compaction_bytes_per_second =
        to_f64(report.rewritten_segment_bytes + report.written_bytes) / report.compaction_seconds.max(1e-9);
    report.throughput_ratio =
        report.compaction_bytes_per_second / report.fio_sequential_write_bytes_per_second.max(1.0);
    report.mix_ratio = report.compaction_bytes_per_second / report.fio_compaction_mix_bytes_per_second.max(1.0);
    drop(engine);
    std::fs::remove_dir_all(&directory)?;
    Ok(())
}

fn measure_latency(
    options: &CompactionBenchOptions,
    hsm: &Hsm,
    report: &mut CompactionBenchReport,
) -> anyhow::Result<()> {
    let directory = options.directory.join("latency-store");
    let clock = ManualClock::new(1_795_392_000_000);
    filled_store(&directory, options, &clock, hsm)?;
    let mut config = config(&directory, options, &clock);
    config.compaction_bytes_per_second = options.compaction_bytes_per_second;
    config.compaction_check_interval = Duration::from_millis(100);
    let engine = Engine::open(&config, hsm)?;
    let window = Duration::from_secs(options.delivery_seconds);
    let mut idle = deliver_for(&engine, window)?;
    let segments = |engine: &Engine| -> anyhow::Result<u64> { Ok(block_on(engine.stats())?[0].segments) };

    // Retention ends: the idle timer starts the background compaction within 100 ms.
    clock.advance_ms(15 * DAY_MS);
    let before = segments(&engine)?;
    std::thread::sleep(Duration::from_millis(300));
    let mut busy = deliver_for(&engine, window)?;
    let after = segments(&engine)?;
    report.segments_compacted_during_window = before.saturating_sub(after);
    let remaining = block_on(engine.compact())?;
    report.compaction_still_running_after_window = remaining.segments_compacted > 0;
    drop(engine);
    std::fs::remove_dir_all(&directory)?;

    report.latency = DeliveryLatency::of(&mut idle, &mut busy);
    Ok(())
}

#[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
fn to_f64(value: u64) -> f64 {
    value as f64
}
