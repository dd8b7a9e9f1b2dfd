//! The operator bench: each engine measurement next to the fio job that bounds it, on the same
//! directory, interleaved (fio, engine, fio, engine, …) so that the disk's drift over the run
//! (±30% here) hits both sides alike. Results are ratios of means.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::cell::Cell;

use compio::runtime::Runtime;
use futures::future::{FutureExt, LocalBoxFuture};
use mailvault_engine::{Engine, EngineError};
use mailvault_hsm::Hsm;

use crate::diagnostics::{self, CpuSnapshot, EngineDiagnostics, StealSnapshot};
use crate::disk_stats::{self, DiskActivity, DiskSnapshot};

use crate::fio::{self, FioJob, FioOptions};
use crate::page_cache::{self, Evictor};
use crate::placement::Placement;
use crate::profile::Timeline;
use crate::report::{CompareReport, Comparison, InfoRow};
use crate::store::{BenchStore, hsm_token};
use crate::workload::{self, LoadResult, ReadSet, Until};

/// What a measured load run ends with.
type LoadOutcome = Result<LoadResult, EngineError>;

/// Small messages: the typical mail.
pub const SMALL_MESSAGE_BYTES: usize = 4 * 1024;
/// Large messages: mail with an attachment; they measure bandwidth.
pub const LARGE_MESSAGE_BYTES: usize = 64 * 1024;
/// Appends in flight for the 64 KiB bandwidth measurement, by default (`--large-in-flight`).
pub const LARGE_APPEND_CONCURRENCY: usize = 64;
/// Appends in flight for the 4 KiB measurement that group commit should multiply.
pub const SMALL_APPEND_CONCURRENCY: usize = 256;
/// Other 4 KiB concurrencies, reported for information: 1 shows the cost of one durable
/// append alone (about fio's append+fdatasync), 8 a lightly loaded server (a few deliveries at
/// once: commits of a few records), 64 how fast group commit ramps up.
pub const SMALL_APPEND_INFO_CONCURRENCIES: [usize; 3] = [1, 8, 64];
/// Fetches in flight, matching fio's random-read iodepth.
pub const READ_CONCURRENCY: usize = 32;
/// Appends in flight while filling the read set.
const FILL_CONCURRENCY: usize = 256;
/// How often the page cache is emptied of the store during random reads.
const EVICT_INTERVAL: Duration = Duration::from_millis(20);
/// The longest wait for the disk to settle before a measurement (see `disk_stats::settle`).
const SETTLE_AT_MOST: Duration = Duration::from_secs(60);

/// Targets: the engine's share of what fio gets from the same disk.
pub const TARGET_LARGE_APPEND_RATIO: f64 = 0.85;
pub const TARGET_SMALL_APPEND_RATIO: f64 = 30.0;
pub const TARGET_RANDOM_READ_RATIO: f64 = 0.80;

#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Holds the engine's store (`store/`) and fio's files (`fio/`); on the disk to measure.
    pub directory: PathBuf,
    /// Length of each fio job and each engine measurement.
    pub seconds: u64,
    pub rounds: usize,
    pub shards: usize,
    /// 64 KiB appends in flight.
    pub large_append_concurrency: usize,
    /// The comparisons to run (all when empty).
    pub only: Vec<ComparisonKind>,
    /// Size of fio's files and of the engine's random-read set.
    pub file_bytes: u64,
    /// The load generator runtime's cross-thread wake queue (see `workload::client_runtime`).
    pub client_wake_queue: usize,
    /// Pins shard `i` to core `i` and the load generator (and fio) to the cores left over.
    pub pin: bool,
    /// Runs each shard's share of the measured load on that shard's own thread
    /// (`workload::on_shards`) instead of on the load generator's.
    pub load_on_shards: bool,
}

/// Prints one progress line per phase to stderr, with the time since the start.
/// Also tracks the highest load average seen, for the report.
struct Progress {
    start: Instant,
    load_average_max: Cell<Option<f64>>,
}

impl Progress {
    fn say(&self, what: &str) {
        let load = diagnostics::load_average();
        if let Some(load) = load {
            self.load_average_max.set(Some(self.load_average_max.get().map_or(load, |max| max.max(load))));
        }
        eprintln!("[{:>6.1}s] {what}", self.start.elapsed().as_secs_f64());
    }
}

struct Bench {
    options: CompareOptions,
    fio: Option<FioOptions>,
    runtime: Runtime,
    progress: Progress,
    /// The directory's block device counters, if it is on one.
    disk_stat_file: Option<PathBuf>,
    placement: Placement,
}

/// Runs every comparison; without fio, measures the engine only (ratios are then absent).
/// The three comparisons, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ComparisonKind {
    LargeAppends,
    SmallAppends,
    RandomReads,
}

pub fn run(options: CompareOptions) -> anyhow::Result<CompareReport> {
    let progress = Progress { start: Instant::now(), load_average_max: Cell::new(diagnostics::load_average()) };
    std::fs::create_dir_all(&options.directory)?;
    let fio_version = fio::version();
    match &fio_version {
        Some(version) => progress.say(&format!("{version}; files in {}", options.directory.join("fio").display())),
        None => progress.say("fio is not installed (scripts/setup installs it): measuring the engine only, no ratios"),
    }
    let fio = fio_version.as_ref().map(|_| FioOptions {
        directory: options.directory.clone(),
        seconds: options.seconds,
        file_bytes: options.file_bytes,
    });
    progress.say("creating a SoftHSM2 token with the engine's keys");
    let token = hsm_token()?;
    let disk_stat_file = disk_stats::stat_file(&options.directory);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let placement = Placement::new(options.shards, options.pin)?;
    // This thread is the load generator, and fio's parent: both run on its cores.
    placement.pin_generator()?;
    let threads = if options.load_on_shards {
        format!("{}; measured load generated on each shard's own thread", placement.describe())
    } else {
        placement.describe()
    };
    progress.say(&threads);
    let runtime = workload::client_runtime(options.client_wake_queue)?;
    let bench = Bench { options, fio, runtime, progress, disk_stat_file, placement };
    let wanted = |kind| bench.options.only.is_empty() || bench.options.only.contains(&kind);
    let mut comparisons = Vec::new();
    let mut info = Vec::new();
    if wanted(ComparisonKind::LargeAppends) {
        let (large, large_info) = bench.large_appends(&token.hsm)?;
        comparisons.push(large);
        info.extend(large_info);
    }
    if wanted(ComparisonKind::SmallAppends) {
        let (small, small_info) = bench.small_appends(&token.hsm)?;
        comparisons.push(small);
        info.extend(small_info);
    }
    if wanted(ComparisonKind::RandomReads) {
        let (reads, reads_info) = bench.random_reads(&token.hsm)?;
        comparisons.push(reads);
        info.extend(reads_info);
    }
    fio::remove_files(&bench.options.directory)?;
    bench.progress.say("done");
    Ok(CompareReport {
        fio_version,
        seconds: bench.options.seconds,
        rounds: bench.options.rounds,
        shards: bench.options.shards,
        comparisons,
        info,
        cores,
        threads,
        load_average_max: bench.progress.load_average_max.get(),
    })
}

impl Bench {
    fn store_directory(&self) -> PathBuf {
        self.options.directory.join("store")
    }

    fn measure(&self) -> Until {
        Until::Elapsed(Duration::from_secs(self.options.seconds))
    }

    /// A measured run of `concurrency` durable appends of `body` to the store's accounts, from
    /// the load generator's thread or (`--load-on-shards`) from each shard's own.
    fn appends(&self, store: &BenchStore, body: &[u8], concurrency: usize) -> LocalBoxFuture<'static, LoadOutcome> {
        let (engine, accounts, body, until) =
            (store.engine.clone(), store.accounts.clone(), body.to_vec(), self.measure());
        if !self.options.load_on_shards {
            return async move { workload::appends(&engine, &accounts, &body, concurrency, until).await }.boxed_local();
        }
        let load = move |engine: Engine, accounts: Vec<String>, share| {
            let body = body.clone();
            async move { workload::appends(&engine, &accounts, &body, share, until).await }
        };
        async move { workload::on_shards(&engine, &accounts, concurrency, load).await }.boxed_local()
    }

    /// A measured run of `concurrency` fetches of random messages of `read_set`, placed as
    /// [`Bench::appends`] places appends.
    fn random_fetches(
        &self,
        store: &BenchStore,
        read_set: &ReadSet,
        concurrency: usize,
    ) -> LocalBoxFuture<'static, LoadOutcome> {
        let (engine, read_set, until) = (store.engine.clone(), read_set.clone(), self.measure());
        if !self.options.load_on_shards {
            return async move { workload::random_fetches(&engine, &read_set, concurrency, until).await }.boxed_local();
        }
        let accounts = read_set.accounts.clone();
        let load = move |engine: Engine, accounts: Vec<String>, share| {
            let read_set = read_set.only(&accounts);
            async move { workload::random_fetches(&engine, &read_set, share, until).await }
        };
        async move { workload::on_shards(&engine, &accounts, concurrency, load).await }.boxed_local()
    }

    /// Runs one engine load and reports what it cost (CPU per thread, commits, load).
    fn engine_phase(
        &self,
        engine: &Engine,
        load: impl Future<Output = Result<LoadResult, EngineError>>,
    ) -> anyhow::Result<(LoadResult, EngineDiagnostics)> {
        self.settle_disk()?;
        let commits_before = self.runtime.block_on(diagnostics::commit_counters(engine))?;
        let disk_before = self.disk_snapshot();
        let cpu_before = CpuSnapshot::take();
        let result = self.runtime.block_on(load)?;
        let cpu_after = CpuSnapshot::take();
        let disk = self.disk_activity_since(disk_before.as_ref());
        let commits_after = self.runtime.block_on(diagnostics::commit_counters(engine))?;
        let diagnostics = diagnostics::diagnose(
            result.per_second(),
            (&cpu_before, commits_before),
            (&cpu_after, commits_after),
            disk,
        );
        self.progress.say(&format!("  engine: {:.0} ops/s; {}", result.per_second(), diagnostics.summary()));
        Ok((result, diagnostics))
    }

    /// Lets the disk finish what the last phase left it (the trimming of deleted files) before
    /// the next measurement starts, so that neither fio nor the engine pays for the other's.
    fn settle_disk(&self) -> anyhow::Result<()> {
        let Some(stat_file) = &self.disk_stat_file else { return Ok(()) };
        let waited = disk_stats::settle(&self.options.directory, stat_file, SETTLE_AT_MOST)?;
        if waited >= Duration::from_millis(500) {
            self.progress.say(&format!("  waited {:.1} s for the disk to settle", waited.as_secs_f64()));
        }
        Ok(())
    }

    fn disk_snapshot(&self) -> Option<DiskSnapshot> {
        DiskSnapshot::take(self.disk_stat_file.as_deref()?)
    }

    fn disk_activity_since(&self, before: Option<&DiskSnapshot>) -> Option<DiskActivity> {
        Some(self.disk_snapshot()?.activity_since(before?))
    }

    /// Runs a fio job if fio is there and records it in `comparison`: the chosen number of its
    /// result, its command, and what reached the disk meanwhile.
    fn fio(
        &self,
        job: FioJob,
        round: usize,
        value: fn(&fio::FioResult) -> f64,
        comparison: &mut Comparison,
    ) -> anyhow::Result<Option<fio::FioResult>> {
        let Some((result, disk)) = self.run_fio(job, round)? else { return Ok(None) };
        comparison.fio_disk.extend(disk);
        if let Some(timeline) = &result.timeline {
            // MB/s comparisons plot fio's bandwidth, ops/s ones its IOPS.
            let values = if comparison.unit == "MB/s" {
                timeline.bytes_per_second.iter().map(|bytes| bytes / 1e6).collect()
            } else {
                timeline.iops.clone()
            };
            comparison.add_fio_timeline(Timeline { interval_ms: fio::LOG_INTERVAL_MS, values });
        }
        comparison.add_fio(value(&result), result.command.clone());
        Ok(Some(result))
    }

    /// Runs a fio job, if fio is there, on a settled disk; returns its result and what reached
    /// the disk meanwhile.
    fn run_fio(&self, job: FioJob, round: usize) -> anyhow::Result<Option<(fio::FioResult, Option<DiskActivity>)>> {
        let Some(options) = &self.fio else { return Ok(None) };
        self.progress.say(&format!("fio {} (round {round}/{})", job.name(), self.options.rounds));
        self.settle_disk()?;
        let disk_before = self.disk_snapshot();
        let machine_before = StealSnapshot::take();
        let result = fio::run(job, options)?;
        let steal = StealSnapshot::take().zip(machine_before).and_then(|(after, before)| after.percent_since(&before));
        let disk = self.disk_activity_since(disk_before.as_ref());
        if let Some(disk) = &disk {
            let steal = steal.map(|steal| format!("; steal {steal:.0}%")).unwrap_or_default();
            self.progress.say(&format!("  {}{steal}", disk.summary()));
        }
        self.progress.say(&format!(
            "  fio {}: {:.0} IOPS, {:.1} MB/s, mean latency {:.0} us",
            job.name(),
            result.iops,
            result.bytes_per_second / 1e6,
            result.mean_latency_us
        ));
        Ok(Some((result, disk)))
    }

    /// The 64 KiB comparison, and for information fio's durable writes of the same shape (an
    /// fdatasync per 512 KiB) with the engine's share of them: the target compares durable
    /// appends with writes synced only at the end, and on some disks every sync costs far more
    /// than the writes (bench/README.md, session 14).
    fn large_appends(&self, hsm: &Hsm) -> anyhow::Result<(Comparison, Vec<InfoRow>)> {
        let mut comparison = Comparison::new(
            "64 KiB durable appends",
            "MB/s",
            format!("{} in flight, {} shard(s)", self.options.large_append_concurrency, self.options.shards),
            TARGET_LARGE_APPEND_RATIO,
        );
        let mut durable_fio = InfoRow::new("fio 64 KiB writes, fdatasync per 512 KiB".to_owned(), "MB/s");
        let mut durable_share = InfoRow::new("64 KiB durable appends, engine / those".to_owned(), "%");
        let body = workload::message_body(LARGE_MESSAGE_BYTES);
        for round in 1..=self.options.rounds {
            self.fio(FioJob::SequentialWrite64k, round, |r| r.bytes_per_second / 1e6, &mut comparison)?;
            if let Some((result, _)) = self.run_fio(FioJob::DurableWrite64k, round)? {
                durable_fio.values.push(result.bytes_per_second / 1e6);
            }
            let in_flight = self.options.large_append_concurrency;
            self.progress.say(&format!("engine 64 KiB appends, {in_flight} in flight (round {round})"));
            let store = BenchStore::create_placed(&self.store_directory(), &self.placement, hsm)?;
            let load = self.appends(&store, &body, in_flight);
            let (result, diagnostics) = self.engine_phase(&store.engine, load)?;
            store.close()?;
            let megabytes = result.per_second() * workload::count_f64(LARGE_MESSAGE_BYTES as u64) / 1e6;
            self.progress.say(&format!("  engine: {megabytes:.1} MB/s"));
            if let Some(durable) = durable_fio.values.last().filter(|&&durable| durable > 0.0) {
                durable_share.values.push(100.0 * megabytes / durable);
            }
            comparison.add_engine(megabytes, diagnostics);
            comparison
                .add_engine_profile(result.profile.to_round(workload::count_f64(LARGE_MESSAGE_BYTES as u64) / 1e6));
        }
        let info = [durable_fio, durable_share].into_iter().filter(|row| !row.values.is_empty()).collect();
        Ok((comparison, info))
    }

    fn small_appends(&self, hsm: &Hsm) -> anyhow::Result<(Comparison, Vec<InfoRow>)> {
        let mut comparison = Comparison::new(
            "4 KiB durable appends",
            "ops/s",
            format!("{SMALL_APPEND_CONCURRENCY} in flight, {} shard(s)", self.options.shards),
            TARGET_SMALL_APPEND_RATIO,
        );
        let mut info: Vec<InfoRow> = SMALL_APPEND_INFO_CONCURRENCIES
            .iter()
            .map(|k| InfoRow::new(format!("engine 4 KiB durable appends, {k} in flight"), "ops/s"))
            .collect();
        // The shards' CPU per append at the measured load: on a disk whose flushes are cheap
        // (NVMe with power-loss protection) this, not the disk, bounds the rate.
        let mut shard_cpu =
            InfoRow::new(format!("engine shard CPU per 4 KiB append, {SMALL_APPEND_CONCURRENCY} in flight"), "us");
        let body = workload::message_body(SMALL_MESSAGE_BYTES);
        for round in 1..=self.options.rounds {
            self.fio(FioJob::AppendFdatasync4k, round, |r| r.iops, &mut comparison)?;
            let store = BenchStore::create_placed(&self.store_directory(), &self.placement, hsm)?;
            let concurrencies = std::iter::once(SMALL_APPEND_CONCURRENCY).chain(SMALL_APPEND_INFO_CONCURRENCIES);
            for (index, concurrency) in concurrencies.enumerate() {
                self.progress.say(&format!("engine 4 KiB appends, {concurrency} in flight (round {round})"));
                let load = self.appends(&store, &body, concurrency);
                let (result, diagnostics) = self.engine_phase(&store.engine, load)?;
                match index.checked_sub(1) {
                    None => {
                        shard_cpu.values.extend(diagnostics.shard_cpu_us_per_operation(result.per_second()));
                        comparison.add_engine(result.per_second(), diagnostics);
                        comparison.add_engine_profile(result.profile.to_round(1.0));
                    }
                    Some(row) => {
                        info[row].values.push(result.per_second());
                        info[row].diagnostics.push(diagnostics);
                        info[row].profiles.push(result.profile.to_round(1.0));
                    }
                }
            }
            store.close()?;
        }
        info.push(shard_cpu);
        Ok((comparison, info))
    }

    /// The random-read comparison, and for information the CPU each side spends per read: fio
    /// (one thread, its own accounting) against the engine's threads and the load generator
    /// (which now decrypts the fetched bodies). Where the engine's CPU per fetch times fio's IOPS
    /// is more than the cores it has, the reads are bound by the CPU, not the disk.
    fn random_reads(&self, hsm: &Hsm) -> anyhow::Result<(Comparison, Vec<InfoRow>)> {
        let messages = self.options.file_bytes / SMALL_MESSAGE_BYTES as u64;
        let mut comparison = Comparison::new(
            "4 KiB random reads",
            "ops/s",
            format!("{READ_CONCURRENCY} in flight over {messages} messages, page cache evicted"),
            TARGET_RANDOM_READ_RATIO,
        );
        self.progress.say(&format!("engine: filling the read set, {messages} messages of 4 KiB"));
        let store = BenchStore::create_placed(&self.store_directory(), &self.placement, hsm)?;
        let body = workload::message_body(SMALL_MESSAGE_BYTES);
        let fill = Until::Operations(messages);
        self.runtime.block_on(workload::appends(&store.engine, &store.accounts, &body, FILL_CONCURRENCY, fill))?;
        let read_set = self.runtime.block_on(ReadSet::load(&store.engine, &store.accounts))?;
        let mut fio_cpu = InfoRow::new("fio CPU per 4 KiB random read".to_owned(), "us");
        let mut engine_cpu = InfoRow::new("engine and load generator CPU per fetch".to_owned(), "us");
        let mut read_bytes = InfoRow::new("engine disk read per fetch, sector-rounded".to_owned(), "B");
        let mut span_fio = InfoRow::new("fio random reads of that size, depth 32".to_owned(), "IOPS");
        let mut span_share = InfoRow::new("4 KiB random reads, engine / those".to_owned(), "%");
        // The same reads, 32 reaped and resubmitted at once: what callers that wait for each
        // answer cost on a disk that answers everything in flight together (bench/README.md,
        // session 24). Near the engine's figure, the gap to fio is that pattern, not the engine.
        let mut batched_fio =
            InfoRow::new(format!("fio reads of that size, {READ_CONCURRENCY} resubmitted at once"), "IOPS");
        let mut batched_share = InfoRow::new("4 KiB random reads, engine / those".to_owned(), "%");
        // The block layer's mean time per read, for the engine's fetches and for fio's reads of
        // their size: at like queue depths, the disk's own share of a gap (bench/README.md,
        // session 21).
        let mut engine_read_time = InfoRow::new("disk time per read, engine fetches".to_owned(), "us");
        let mut span_read_time = InfoRow::new("disk time per read, fio reads of that size".to_owned(), "us");
        for round in 1..=self.options.rounds {
            let fio = self.fio(FioJob::RandomRead4k, round, |r| r.iops, &mut comparison)?;
            if let Some(fio) = fio.filter(|fio| fio.iops > 0.0 && fio.cpu_percent > 0.0) {
                fio_cpu.values.push(fio.cpu_percent / 100.0 / fio.iops * 1e6);
            }
            self.progress.say(&format!("engine 4 KiB random fetches, {READ_CONCURRENCY} in flight (round {round})"));
            page_cache::evict(store.directory())?;
            let evictor = Evictor::start(store.directory().to_owned(), EVICT_INTERVAL)?;
            let load = self.random_fetches(&store, &read_set, READ_CONCURRENCY);
            let (result, diagnostics) = self.engine_phase(&store.engine, load)?;
            drop(evictor);
            let cpu_percent: f64 = diagnostics.cpu.iter().map(|thread| thread.cpu_percent).sum();
            if result.per_second() > 0.0 && cpu_percent > 0.0 {
                engine_cpu.values.push(cpu_percent / 100.0 / result.per_second() * 1e6);
            }
            if let Some(disk) = diagnostics.disk.as_ref().filter(|disk| disk.reads_per_second > 0.0) {
                engine_read_time.values.push(disk.read_us_per_io);
            }
            let span = self.fetch_read_span(diagnostics.disk.as_ref());
            if let Some((bytes, align)) = span
                && let Some((fio, span_disk)) =
                    self.run_fio(FioJob::RandomReadSpan { bytes, align, batch: 1 }, round)?
                && fio.iops > 0.0
            {
                read_bytes.values.push(f64::from(bytes));
                span_fio.values.push(fio.iops);
                span_share.values.push(100.0 * result.per_second() / fio.iops);
                if let Some(disk) = span_disk.filter(|disk| disk.reads_per_second > 0.0) {
                    span_read_time.values.push(disk.read_us_per_io);
                }
            }
            let batch = u32::try_from(READ_CONCURRENCY).unwrap_or(u32::MAX);
            if let Some((bytes, align)) = span
                && let Some((fio, _)) = self.run_fio(FioJob::RandomReadSpan { bytes, align, batch }, round)?
                && fio.iops > 0.0
            {
                batched_fio.values.push(fio.iops);
                batched_share.values.push(100.0 * result.per_second() / fio.iops);
            }
            comparison.add_engine(result.per_second(), diagnostics);
            comparison.add_engine_profile(result.profile.to_round(1.0));
        }
        store.close()?;
        let info = [
            fio_cpu,
            engine_cpu,
            read_bytes,
            span_fio,
            span_share,
            batched_fio,
            batched_share,
            engine_read_time,
            span_read_time,
        ]
        .into_iter()
        .filter(|row| !row.values.is_empty())
        .collect();
        Ok((comparison, info))
    }

    /// The size the engine's fetches read from the disk in a round (`disk`), rounded to the
    /// sectors direct reads come in, and that sector size: the shape of fio's
    /// `RandomReadSpan` job (which reads the 4 KiB job's file, so it runs after that job).
    /// `None` without fio, disk counters or reads.
    fn fetch_read_span(&self, disk: Option<&DiskActivity>) -> Option<(u32, u32)> {
        let options = self.fio.as_ref()?;
        let disk = disk.filter(|disk| disk.reads_per_second > 0.0 && disk.read_kib_per_io > 0.0)?;
        let align = fio::direct_read_alignment(&fio::file_path(FioJob::RandomRead4k, options));
        // Between one sector and 1 MiB (fetches of 4 KiB messages read ~4.6 KiB), so the cast
        // neither wraps nor loses a sign.
        let sectors =
            (disk.read_kib_per_io * 1024.0 / f64::from(align)).round().clamp(1.0, f64::from((1 << 20) / align));
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let bytes = sectors as u32 * align;
        Some((bytes, align))
    }
}
