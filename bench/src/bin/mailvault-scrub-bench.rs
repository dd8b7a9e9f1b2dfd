//! `mailvault-scrub-bench`: an unthrottled scrub pass against fio's sequential reads of the
//! same shape on the same disk in the same run, and delivery p99 latency while a pass within
//! its budget runs against idle. See `mailvault_bench::scrub_bench` for what exactly is measured.

use std::path::PathBuf;

use clap::Parser;
use mailvault_bench::scrub_bench::{self, ScrubBenchOptions};

/// Scrub throughput vs fio, and delivery latency while scrubbing vs idle.
///
/// Needs fio and a `SoftHSM2` token directory (`SOFTHSM2_CONF`; `cargo run` sets it). DIR must be
/// on the disk to measure; the run needs about 2 × --fill-mib free and deletes what it wrote.
#[derive(Debug, Parser)]
#[command(name = "mailvault-scrub-bench", version)]
struct Arguments {
    /// Directory on the disk to measure.
    #[arg(long)]
    dir: PathBuf,
    /// Bytes of 64 KiB messages in the test store.
    #[arg(long, default_value_t = 1024)]
    fill_mib: u64,
    /// Segment size of the test store.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Length of the fio job.
    #[arg(long, default_value_t = 5)]
    fio_seconds: u64,
    /// Length of each delivery window (idle, then while scrubbing).
    #[arg(long, default_value_t = 5)]
    delivery_seconds: u64,
    /// The scrub's budget during the latency measurement, MB/s (0: unthrottled).
    #[arg(long, default_value_t = mailvault_engine::SCRUB_BYTES_PER_SECOND_DEFAULT / 1_000_000)]
    scrub_mb_per_second: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let options = ScrubBenchOptions {
        directory: arguments.dir,
        fill_bytes: arguments.fill_mib.max(16) * 1024 * 1024,
        segment_bytes: arguments.segment_mib.max(1) * 1024 * 1024,
        fio_seconds: arguments.fio_seconds.max(1),
        delivery_seconds: arguments.delivery_seconds.max(1),
        scrub_bytes_per_second: (arguments.scrub_mb_per_second > 0).then(|| arguments.scrub_mb_per_second * 1_000_000),
    };
    let report = scrub_bench::run(&options)?;
    print!("{}", report.table());
    if let Some(path) = arguments.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}
