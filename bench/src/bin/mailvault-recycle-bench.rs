//! `mailvault-recycle-bench`: the engine's durable append rates into fresh segment files and
//! into recycled ones, next to fio's durable writes into fresh space and over written blocks,
//! on the same disk in the same run. See `mailvault_bench::recycle_bench` for what exactly is
//! measured.

use std::path::PathBuf;

use clap::Parser;
use mailvault_bench::recycle_bench::{self, RecycleBenchOptions};

/// Segment recycling: engine appends into fresh vs recycled segment files, and fio's writes
/// into fresh space vs over written blocks.
///
/// Runs fio (64 KiB durable writes and 4 KiB write+fdatasync, each fresh and over written
/// blocks), then one engine store: rounds of 64 KiB appends and 4 KiB appends one at a time
/// into fresh segments; every message expunged (no retention window) and compacted, so that the engine keeps
/// up to --spares retired segment files; the same appends again, each round into those files
/// if the engine recycles them. An engine that does not recycle shows ratios near 1 and 0 spare files.
///
/// Needs fio and a `SoftHSM2` token directory (`SOFTHSM2_CONF`; `cargo run` sets it). DIR must be
/// on the disk to measure (not tmpfs); the run needs about (--rounds + 2) × --spares × --segment-mib free
/// besides fio's files (up to half the free space, fallocated, one at a time) and deletes what
/// it wrote. With the defaults it takes about a minute.
#[derive(Debug, Parser)]
#[command(name = "mailvault-recycle-bench", version)]
struct Arguments {
    /// Directory on the disk to measure (fio's files and the store go under it).
    #[arg(long)]
    dir: PathBuf,
    /// Segment size of the test store (`segment_bytes_max`), MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Retired segment files the shard keeps to reuse (`recycled_segments_max`). The 64 KiB
    /// rounds write a little less than --spares segments' worth of messages, so that a
    /// recycled round fits in the spare files. 0 runs the same steps with recycling off: a
    /// control, whose ratios show what the steps alone (the compaction before each recycled
    /// run) do to the second column; its rounds are sized as for 1.
    #[arg(long, default_value_t = 4)]
    spares: usize,
    /// Rounds of 64 KiB appends on each side, each of a little less than --spares segments'
    /// worth of messages (one round lasts under a second at 300 MB/s with the defaults; the
    /// recycled side compacts before each round, so that it finds the spare files again).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Length of each fio job and of each 4 KiB run (which also stops once it would fill the
    /// spare files).
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let options = RecycleBenchOptions {
        directory: arguments.dir,
        segment_bytes: arguments.segment_mib.max(1) * 1024 * 1024,
        spares: arguments.spares,
        seconds: arguments.seconds.max(1),
        rounds: arguments.rounds.max(1),
    };
    let report = recycle_bench::run(&options)?;
    print!("{}", report.table());
    if let Some(path) = arguments.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}
