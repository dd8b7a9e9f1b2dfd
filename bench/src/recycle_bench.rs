//! The recycle bench: what segment recycling gains the engine, next to what fio gains from
//! writing over blocks already written on the same disk in the same run.
//!
//! A shard that recycles keeps up to `recycled_segments_max` of the segment files compaction
//! retires (as `*.spare` files in its directory) and starts its next segments in them instead
//! of fallocating fresh ones. Commits into a reused file write over written blocks, which ext4
//! syncs without converting unwritten extents. An engine that does not recycle deletes the
//! retired files: both engine runs then write fresh space and their ratio is about 1.
//!
//! 1. fio: 64 KiB durable writes (depth 8, fdatasync every 8) and 4 KiB write + fdatasync one
//!    at a time, each into fresh fallocated space and over a file written whole beforehand.
//! 2. Engine, fresh: a new store of one shard. `rounds` rounds of 64 KiB appends,
//!    [`APPEND_TASKS`] in flight, each filling the room of the spare files (see [`bulk_bytes`]);
//!    then 4 KiB appends one at a time for `seconds`, or until they would fill that room (see
//!    [`appends_max`]).
//! 3. Spares: every message expunged (no retention window), `compact` retires the sealed segments, and
//!    the active one is sealed (the next segment comes from a spare file if there is one) and
//!    compacted too (see [`make_spares`]).
//! 4. Engine, recycled: the same runs, each round after step 3, so that each finds the spare
//!    files there (a round of 64 KiB appends uses them up).
//!
//! A round of 64 KiB appends lasts well under a second with the defaults (the spares' room
//! only), hence the rounds: the rate is all rounds' bytes over all rounds' seconds.
//!
//! Every timed run, fio's or the engine's, starts after [`settle`]: the file system deletes
//! (fio's files, compacted segments) commit first, with the discards a `discard` mount issues
//! for them, instead of slowing the run's first fdatasyncs (a p99 3-5x higher after a compaction
//! on the development VM).
//!
//! Each engine run notes the segments it started and the spare files before and after it: a
//! recycled run that took its segments from spare files shows them going down.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, EngineConfig, EngineError, INBOX, block_on, init_store};
use mailvault_hsm::Hsm;

use crate::compaction_bench::append_64k_messages;
use crate::delivery::{DELIVERY_ACCOUNT, deliver_at_most, percentile};
use crate::fio::{self, FioJob, FioOptions, FioResult};
use crate::workload::count_f64;

/// The 64 KiB appends' account; the 4 KiB appends go to [`DELIVERY_ACCOUNT`].
const ACCOUNT: &str = "recycle-bench@example.org";
const MESSAGE_BYTES: u64 = 64 * 1024;
/// 64 KiB appends in flight, as the compaction bench fills its stores: enough for the engine
/// to commit them in groups, as a busy shard does.
pub const APPEND_TASKS: usize = crate::compaction_bench::FILL_TASKS;
/// Uids expunged per request (below the engine's 10,000 limit).
const EXPUNGE_CHUNK: usize = 5000;
/// What a 4 KiB append takes in a segment at most, frames and records included, for
/// [`appends_max`]: generous, so that the bound errs towards fewer appends.
const APPEND_4K_FOOTPRINT_BYTES: u64 = 6 * 1024;

#[derive(Debug, Clone)]
pub struct RecycleBenchOptions {
    pub directory: PathBuf,
    pub segment_bytes: u64,
    /// `recycled_segments_max` of the store.
    pub spares: usize,
    /// Rounds of 64 KiB appends on each side.
    pub rounds: usize,
    /// Length of each fio job and of each 4 KiB run.
    pub seconds: u64,
}

/// fio's durable writes into fresh fallocated space and over written blocks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FioReference {
    pub fresh_64k_bytes_per_second: f64,
    pub overwrite_64k_bytes_per_second: f64,
    /// Over written / fresh.
    pub ratio_64k: f64,
    pub fresh_4k_iops: f64,
    pub overwrite_4k_iops: f64,
    /// Over written / fresh.
    pub ratio_4k: f64,
    /// 64 KiB sequential writes without syncs into fresh space: the reference of issue 3's
    /// 64 KiB append target (≥ 0.85 of it), as `engine-vs-fio` runs it.
    pub target_64k_bytes_per_second: f64,
    /// The command lines, to rerun them by hand.
    pub commands: Vec<String>,
}

/// Which segments a run wrote into: those it started, and the spare files it found and left
/// (one taken per segment started, if the engine recycles; 0 and 0 if it does not).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SegmentUse {
    pub segments_started: u64,
    pub spare_files_before: usize,
    pub spare_files_after: usize,
}

/// Rounds of 64 KiB appends, [`APPEND_TASKS`] in flight.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BulkRun {
    /// The rounds' totals.
    pub message_bytes: u64,
    pub seconds: f64,
    /// Message bytes per second.
    pub bytes_per_second: f64,
    pub rounds: Vec<BulkRound>,
}

/// One round of 64 KiB appends: [`bulk_bytes`] of messages.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BulkRound {
    pub message_bytes: u64,
    pub seconds: f64,
    #[serde(flatten)]
    pub segments: SegmentUse,
}

/// 4 KiB appends one at a time, each acknowledged once durable.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AppendRun {
    pub appends: usize,
    pub seconds: f64,
    pub appends_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    #[serde(flatten)]
    pub segments: SegmentUse,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EngineRuns {
    pub bulk_64k: BulkRun,
    pub appends_4k: AppendRun,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecycleBenchReport {
    pub segment_bytes: u64,
    pub recycled_segments_max: usize,
    pub fio: FioReference,
    /// The engine writing into fresh segment files, then into recycled ones.
    pub fresh: EngineRuns,
    pub recycled: EngineRuns,
    /// Spare files in the shard directory once compaction retired the fresh runs' segments
    /// (0 from an engine that does not recycle).
    pub spare_files_after_compaction: usize,
    /// Recycled / fresh: 64 KiB MB/s, 4 KiB appends/s (higher is better), 4 KiB p99 (lower is).
    pub engine_ratio_64k: f64,
    pub engine_ratio_4k: f64,
    pub engine_ratio_4k_p99: f64,
}

impl RecycleBenchReport {
    pub fn table(&self) -> String {
        let mb = |bytes_per_second: f64| bytes_per_second / 1e6;
        let (fresh, recycled) = (&self.fresh, &self.recycled);
        let mut table = format!(
            "recycle bench: 1 shard, {} MiB segments, up to {} spare files\n\
             {:<34} {:>12} {:>12} {:>8}\n",
            self.segment_bytes >> 20,
            self.recycled_segments_max,
            "",
            "fresh",
            "recycled",
            "ratio",
        );
        let mut row = |name: &str, fresh: String, recycled: String, ratio: f64| {
            let _ = writeln!(table, "{name:<34} {fresh:>12} {recycled:>12} {ratio:>8.2}");
        };
        row(
            "engine 64 KiB appends, MB/s",
            format!("{:.0}", mb(fresh.bulk_64k.bytes_per_second)),
            format!("{:.0}", mb(recycled.bulk_64k.bytes_per_second)),
            self.engine_ratio_64k,
        );
        row(
            "engine 4 KiB appends 1 at a time, /s",
            format!("{:.0}", fresh.appends_4k.appends_per_second),
            format!("{:.0}", recycled.appends_4k.appends_per_second),
            self.engine_ratio_4k,
        );
        row(
            "engine 4 KiB p99, us (lower: better)",
            format!("{:.0}", fresh.appends_4k.p99_us),
            format!("{:.0}", recycled.appends_4k.p99_us),
            self.engine_ratio_4k_p99,
        );
        row(
            "fio 64 KiB durable, MB/s",
            format!("{:.0}", mb(self.fio.fresh_64k_bytes_per_second)),
            format!("{:.0}", mb(self.fio.overwrite_64k_bytes_per_second)),
            self.fio.ratio_64k,
        );
        row(
            "fio 4 KiB write+fdatasync, /s",
            format!("{:.0}", self.fio.fresh_4k_iops),
            format!("{:.0}", self.fio.overwrite_4k_iops),
            self.fio.ratio_4k,
        );
        table.push_str(&self.details());
        table
    }

    /// The lines under the table: what each engine run wrote and where.
    fn details(&self) -> String {
        let target = self.fio.target_64k_bytes_per_second;
        let mut text = format!(
            "(fio's \"recycled\" column: over blocks written before; ratios are recycled / fresh)\n\
             spare files after compacting the fresh runs' segments: {} (0: the engine does not recycle)\n\
             64 KiB target (>= 0.85 of fio 64 KiB sequential writes without syncs, {:.0} MB/s): fresh {:.2}, recycled {:.2}\n",
            self.spare_files_after_compaction,
            target / 1e6,
            ratio(self.fresh.bulk_64k.bytes_per_second, target),
            ratio(self.recycled.bulk_64k.bytes_per_second, target),
        );
        for (name, runs) in [("fresh", &self.fresh), ("recycled", &self.recycled)] {
            let (bulk, appends) = (&runs.bulk_64k, &runs.appends_4k);
            let rounds: Vec<String> = bulk.rounds.iter().map(|round| describe(&round.segments)).collect();
            let _ = writeln!(
                text,
                "{name}: 64 KiB: {} MB in {:.2} s, {} rounds: {}",
                bulk.message_bytes / 1_000_000,
                bulk.seconds,
                bulk.rounds.len(),
                rounds.join("; "),
            );
            let _ = writeln!(
                text,
                "{name}: 4 KiB: {} appends in {:.2} s (p50 {:.0} us), {}",
                appends.appends,
                appends.seconds,
                appends.p50_us,
                describe(&appends.segments),
            );
        }
        for command in &self.fio.commands {
            let _ = writeln!(text, "fio: {command}");
        }
        text
    }
}

fn describe(segments: &SegmentUse) -> String {
    format!(
        "{} segments started, spare files {} -> {}",
        segments.segments_started, segments.spare_files_before, segments.spare_files_after
    )
}

pub fn run(options: &RecycleBenchOptions) -> anyhow::Result<RecycleBenchReport> {
    let token = crate::store::hsm_token()?;
    std::fs::create_dir_all(&options.directory)?;
    let mut report = RecycleBenchReport {
        segment_bytes: options.segment_bytes,
        recycled_segments_max: options.spares,
        fio: fio_reference(options)?,
        ..RecycleBenchReport::default()
    };

    let directory = options.directory.join("recycle-store");
    let engine = open_store(&directory, options, &token.hsm)?;
    report.fresh.bulk_64k = bulk_run(&engine, &directory, options, false)?;
    report.fresh.appends_4k = append_run(&engine, &directory, options)?;
    report.spare_files_after_compaction = make_spares(&engine)?;
    report.recycled.bulk_64k = bulk_run(&engine, &directory, options, true)?;
    make_spares(&engine)?;
    report.recycled.appends_4k = append_run(&engine, &directory, options)?;
    drop(engine);
    std::fs::remove_dir_all(&directory)?;

    report.engine_ratio_64k = ratio(report.recycled.bulk_64k.bytes_per_second, report.fresh.bulk_64k.bytes_per_second);
    report.engine_ratio_4k =
        ratio(report.recycled.appends_4k.appends_per_second, report.fresh.appends_4k.appends_per_second);
    report.engine_ratio_4k_p99 = ratio(report.recycled.appends_4k.p99_us, report.fresh.appends_4k.p99_us);
    Ok(report)
}

/// `value / reference`, 0 when there is no reference to divide by.
pub fn ratio(value: f64, reference: f64) -> f64 {
    if reference > 0.0 { value / reference } else { 0.0 }
}

/// The four fio jobs, fresh then over written for each shape, back to back (this disk drifts
/// within minutes: only neighbours compare).
fn fio_reference(options: &RecycleBenchOptions) -> anyhow::Result<FioReference> {
    let fio_options = FioOptions {
        directory: options.directory.clone(),
        seconds: options.seconds,
        // The fresh 4 KiB job goes round its file for its whole run: one this size never
        // wraps around (the other jobs size their own files).
        file_bytes: options.seconds.max(1).saturating_mul(fio::APPEND_4K_BYTES_PER_SECOND_MAX).max(256 << 20),
    };
    let measure = |job| -> anyhow::Result<FioResult> {
        settle(&options.directory)?;
        Ok(fio::run(job, &fio_options)?)
    };
    let (bulk_fresh, bulk_overwrite) = (measure(FioJob::DurableWrite64k)?, measure(FioJob::DurableWrite64kOverwrite)?);
    let (append_fresh, append_overwrite) =
        (measure(FioJob::AppendFdatasync4k)?, measure(FioJob::AppendFdatasync4kOverwrite)?);
    let target = measure(FioJob::SequentialWrite64k)?;
    fio::remove_files(&options.directory)?;
    Ok(FioReference {
        fresh_64k_bytes_per_second: bulk_fresh.bytes_per_second,
        overwrite_64k_bytes_per_second: bulk_overwrite.bytes_per_second,
        ratio_64k: ratio(bulk_overwrite.bytes_per_second, bulk_fresh.bytes_per_second),
        fresh_4k_iops: append_fresh.iops,
        overwrite_4k_iops: append_overwrite.iops,
        ratio_4k: ratio(append_overwrite.iops, append_fresh.iops),
        target_64k_bytes_per_second: target.bytes_per_second,
        commands: [bulk_fresh, bulk_overwrite, append_fresh, append_overwrite, target]
            .into_iter()
            .map(|result| result.command)
            .collect(),
    })
}

/// The store's config: one shard keeping up to `spares` retired segment files.
fn config(directory: &Path, options: &RecycleBenchOptions) -> EngineConfig {
    let mut config = EngineConfig::new(directory);
    config.segment_bytes_max = options.segment_bytes;
    config.recycled_segments_max = options.spares;
    // The background waits (a byte a second): segments are compacted only by `compact`, between
    // the timed runs, which it would otherwise share the disk with.
    config.compaction_bytes_per_second = Some(1);
    // Expunged mail is dead at once. (Not `prune_deleted`: a prune withholds the spare files
    // and removes them, since they may hold earlier copies of what it promised to erase.)
    config.retention_days = 0;
    config
}

/// A new store of one shard in `directory` (whatever was there deleted), open, with the two
/// accounts the runs append to.
fn open_store(directory: &Path, options: &RecycleBenchOptions, hsm: &Hsm) -> anyhow::Result<Engine> {
    if directory.exists() {
        std::fs::remove_dir_all(directory)?;
    }
    init_store(directory, 1)?;
    let engine = Engine::open(&config(directory, options), hsm)?;
    block_on(async {
        engine.create_account(ACCOUNT).await?;
        engine.create_account(DELIVERY_ACCOUNT).await
    })?;
    Ok(engine)
}

/// The 64 KiB run's message bytes: the spare files' room, less a sixteenth for what frames,
/// records and checkpoints add, so that a recycled run fits in its spare files and the
/// segment it starts in, and does not spill into a fresh file at its end.
pub fn bulk_bytes(segment_bytes: u64, spares: usize) -> u64 {
    let room = segment_bytes.saturating_mul(spares.max(1) as u64);
    (room - room / 16) / MESSAGE_BYTES * MESSAGE_BYTES
}

/// The 4 KiB run's appends at most, for the same reason as [`bulk_bytes`]: within the spare
/// files' room even at [`APPEND_4K_FOOTPRINT_BYTES`] each.
pub fn appends_max(segment_bytes: u64, spares: usize) -> usize {
    usize::try_from(bulk_bytes(segment_bytes, spares) / APPEND_4K_FOOTPRINT_BYTES).unwrap_or(usize::MAX)
}

/// Where a run starts: the active segment and the spare files.
struct Mark {
    active_segment_id: u64,
    spare_files: usize,
}

fn mark(engine: &Engine) -> anyhow::Result<Mark> {
    let stats = block_on(engine.stats())?;
    let shard = stats.first().ok_or_else(|| anyhow::anyhow!("the store has no shard"))?;
    let spare_files = usize::try_from(shard.spare_segment_files)?;
    Ok(Mark { active_segment_id: shard.active_segment_id, spare_files })
}

fn segment_use(engine: &Engine, before: &Mark) -> anyhow::Result<SegmentUse> {
    let after = mark(engine)?;
    Ok(SegmentUse {
        segments_started: after.active_segment_id.saturating_sub(before.active_segment_id),
        spare_files_before: before.spare_files,
        spare_files_after: after.spare_files,
    })
}

/// `rounds` rounds of [`bulk_round`]; when `recycled`, each after [`make_spares`] (the first
/// finds it done), so that each round can write into spare files only.
fn bulk_run(
    engine: &Engine,
    directory: &Path,
    options: &RecycleBenchOptions,
    recycled: bool,
) -> anyhow::Result<BulkRun> {
    let mut run = BulkRun::default();
    for round in 0..options.rounds.max(1) {
        if recycled && round > 0 {
            make_spares(engine)?;
        }
        run.rounds.push(bulk_round(engine, directory, options)?);
    }
    run.message_bytes = run.rounds.iter().map(|round| round.message_bytes).sum();
    run.seconds = run.rounds.iter().map(|round| round.seconds).sum();
    run.bytes_per_second = count_f64(run.message_bytes) / run.seconds.max(1e-9);
    Ok(run)
}

/// [`bulk_bytes`] of 64 KiB appends, [`APPEND_TASKS`] in flight, timed from the first issued
/// to the last acknowledged.
fn bulk_round(engine: &Engine, directory: &Path, options: &RecycleBenchOptions) -> anyhow::Result<BulkRound> {
    settle(directory)?;
    let before = mark(engine)?;
    let message_bytes = bulk_bytes(options.segment_bytes, options.spares);
    let started = Instant::now();
    append_64k(engine, message_bytes / MESSAGE_BYTES)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(BulkRound { message_bytes, seconds, segments: segment_use(engine, &before)? })
}

/// `messages` appends of 64 KiB to [`ACCOUNT`] from [`APPEND_TASKS`] tasks.
fn append_64k(engine: &Engine, messages: u64) -> anyhow::Result<()> {
    block_on(append_64k_messages(engine, ACCOUNT, "recycle bench", messages))
}

/// 4 KiB appends one at a time for `seconds`, or [`appends_max`] of them if that comes first.
fn append_run(engine: &Engine, directory: &Path, options: &RecycleBenchOptions) -> anyhow::Result<AppendRun> {
    settle(directory)?;
    let before = mark(engine)?;
    let started = Instant::now();
    let mut latencies = deliver_at_most(
        engine,
        Duration::from_secs(options.seconds),
        appends_max(options.segment_bytes, options.spares),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(AppendRun {
        appends: latencies.len(),
        seconds,
        appends_per_second: count_f64(latencies.len() as u64) / seconds.max(1e-9),
        p50_us: percentile(&mut latencies, 0.50),
        p99_us: percentile(&mut latencies, 0.99),
        segments: segment_use(engine, &before)?,
    })
}

/// Makes every message of both accounts dead (expunged, with no retention window) and runs
/// `compact`, which retires every sealed segment: an engine that recycles keeps
/// up to `recycled_segments_max` of the files as spares. Then seals the active segment, which
/// holds the last run's tail, so that the next run starts in a segment begun now (from a spare
/// file, if the engine recycles), and compacts again to retire the sealed one too. Returns the
/// spare files found after the first compaction.
fn make_spares(engine: &Engine) -> anyhow::Result<usize> {
    block_on(async {
        for account in [ACCOUNT, DELIVERY_ACCOUNT] {
            expunge_all(engine, account).await?;
        }
        engine.compact().await
    })?;
    let spare_files = mark(engine)?.spare_files;
    block_on(async {
        // Sealing holds compaction back, as for a backup, until released.
        engine.seal_active().await?;
        engine.release_backup_hold().await?;
        engine.compact().await
    })?;
    Ok(spare_files)
}

async fn expunge_all(engine: &Engine, account: &str) -> Result<(), EngineError> {
    let (_, listed) = engine.list_messages(account, INBOX).await?;
    let uids: Vec<u32> = listed.iter().map(|message| message.uid).collect();
    for chunk in uids.chunks(EXPUNGE_CHUNK) {
        engine.expunge(account, INBOX, chunk).await?;
    }
    Ok(())
}

/// Commits the file system's pending work (`syncfs` on `directory`'s), so that a timed run
/// does not pay for what came before it.
fn settle(directory: &Path) -> std::io::Result<()> {
    rustix::fs::syncfs(std::fs::File::open(directory)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_guard_against_no_reference() {
        assert!((ratio(561.0, 362.0) - 1.549_723_756).abs() < 1e-6);
        assert!(ratio(5.0, 0.0).abs() < f64::EPSILON);
        assert!(ratio(0.0, 5.0).abs() < f64::EPSILON);
    }

    #[test]
    fn runs_stay_within_the_spare_files_room() {
        let segment = 64 << 20;
        for spares in 1..=8 {
            let room = segment * spares as u64;
            let bytes = bulk_bytes(segment, spares);
            assert_eq!(bytes % MESSAGE_BYTES, 0);
            assert!(bytes <= room - room / 16 && bytes > room / 2);
            assert!(appends_max(segment, spares) as u64 * APPEND_4K_FOOTPRINT_BYTES <= bytes);
        }
        assert_eq!(bulk_bytes(segment, 0), bulk_bytes(segment, 1));
        assert_eq!(bulk_bytes(16 << 20, 2), 30 << 20);
    }
}
