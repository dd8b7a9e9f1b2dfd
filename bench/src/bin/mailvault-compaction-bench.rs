//! `mailvault-compaction-bench`: compaction throughput against fio's sequential bandwidth on
//! the same disk in the same run, and delivery p99 latency while a background compaction runs
//! against idle. See `mailvault_bench::compaction_bench` for what exactly is measured.

use std::path::PathBuf;

use clap::Parser;
use mailvault_bench::compaction_bench::{self, CompactionBenchOptions};

/// Compaction throughput vs fio, and delivery latency while compacting vs idle.
///
/// Needs fio and a `SoftHSM2` token directory (`SOFTHSM2_CONF`; `cargo run` sets it). DIR must be
/// on the disk to measure; the run needs about 3 × --fill-mib free and deletes what it wrote.
#[derive(Debug, Parser)]
#[command(name = "mailvault-compaction-bench", version)]
struct Arguments {
    /// Directory on the disk to measure.
    #[arg(long)]
    dir: PathBuf,
    /// Bytes of 64 KiB messages in each test store (half of them expunged).
    #[arg(long, default_value_t = 1024)]
    fill_mib: u64,
    /// Segment size of the test stores.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Length of the fio job.
    #[arg(long, default_value_t = 5)]
    fio_seconds: u64,
    /// Length of each delivery window (idle, then while compacting).
    #[arg(long, default_value_t = 5)]
    delivery_seconds: u64,
    /// Background compaction's budget during the latency measurement, MB/s (0: unthrottled).
    #[arg(long, default_value_t = mailvault_engine::COMPACTION_BYTES_PER_SECOND_DEFAULT / 1_000_000)]
    compaction_mb_per_second: u64,
    /// Compacted segment files the shard keeps and writes new segments over (the server's
    /// `--recycled-segments`; 0: every compacted file removed).
    #[arg(long, default_value_t = mailvault_engine::RECYCLED_SEGMENTS_MAX_DEFAULT)]
    recycled_segments: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let options = CompactionBenchOptions {
        directory: arguments.dir,
        fill_bytes: arguments.fill_mib.max(16) * 1024 * 1024,
        segment_bytes: arguments.segment_mib.max(1) * 1024 * 1024,
        fio_seconds: arguments.fio_seconds.max(1),
        delivery_seconds: arguments.delivery_seconds.max(1),
        compaction_bytes_per_second: (arguments.compaction_mb_per_second > 0)
            .then(|| arguments.compaction_mb_per_second * 1_000_000),
        recycled_segments: arguments.recycled_segments,
    };
    let report = compaction_bench::run(&options)?;
    print!("{}", report.table());
    if let Some(path) = arguments.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}
