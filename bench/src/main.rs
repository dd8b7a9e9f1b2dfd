//! `mailvault-bench`: the operator bench (the engine against fio on the same disk, same run).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mailvault_bench::compare::{self, CompareOptions};
use mailvault_bench::html_report;
use mailvault_bench::workload;

const ENGINE_VS_FIO_ABOUT: &str = "\
Measures the engine and fio on the same directory, interleaved, and prints their ratios.

Three comparisons, each run as fio, engine, fio, engine (--rounds 2):
  - 64 KiB durable appends, 64 in flight (MB/s) vs fio 64 KiB O_DIRECT sequential writes,
    io_uring depth 8 (target >= 0.85);
  - 4 KiB durable appends, 256 in flight (ops/s) vs fio 4 KiB O_DIRECT writes each followed
    by fdatasync (target >= 30); 1 and 64 in flight, and the shards' CPU per append, are
    printed for information;
  - 4 KiB random fetches, 32 in flight, page cache evicted (ops/s) vs fio 4 KiB O_DIRECT
    random reads, io_uring depth 32 (target >= 0.80).
Without fio, the engine numbers are printed alone.

Output: a table on stdout; with --json, the same numbers per round plus latency histograms
and throughput per 100 ms; with --html (default: the JSON's path with .html), a
self-contained page with those plotted.

HSM: the engine needs one. This creates a throwaway SoftHSM2 token with the engine's keys in
the token directory named by SOFTHSM2_CONF, which `cargo run` sets from .cargo/config.toml
(target/softhsm/softhsm2.conf); when running the binary directly, export SOFTHSM2_CONF
yourself. Needs the softhsm2 package (scripts/setup installs it, and fio).

Disk: DIR must be on the disk to measure (not tmpfs). It needs about twice --file-mib free
plus room for --seconds of 64 KiB appends; the run deletes what it wrote.";

#[derive(Debug, Parser)]
#[command(name = "mailvault-bench", version, about = "mailvault benchmarks against the raw disk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measures the engine and fio on the same directory, interleaved, and prints their ratios.
    #[command(long_about = ENGINE_VS_FIO_ABOUT)]
    EngineVsFio {
        /// Directory for the engine's store and fio's files, on the disk to measure.
        #[arg(long)]
        dir: PathBuf,
        /// Length of each fio job and each engine measurement, in seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Rounds of (fio, engine) per comparison.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Engine shards (the load generator takes a core too).
        #[arg(long, default_value_t = 1)]
        shards: usize,
        /// 64 KiB appends in flight. A durable stream moves at most (bytes in flight) /
        /// (write + fdatasync latency), so on a disk whose flush takes milliseconds this, not
        /// the engine, can be the limit: compare 64 with 256 to see which.
        #[arg(long, default_value_t = compare::LARGE_APPEND_CONCURRENCY)]
        large_in_flight: usize,
        /// Runs only this comparison (repeat for several); all three by default.
        #[arg(long, value_enum)]
        only: Vec<compare::ComparisonKind>,
        /// Size of fio's files and of the engine's random-read set, in MiB.
        #[arg(long, default_value_t = 1024)]
        file_mib: u64,
        /// Cross-thread wake queue of the load generator's compio runtime. compio's default is
        /// 64; below the number of appends in flight, shards acking a commit spin (yielding) until it drains.
        #[arg(long, default_value_t = workload::CLIENT_WAKE_QUEUE_DEFAULT)]
        client_wake_queue: usize,
        /// Pins shard i to core i (as a deployment would) and the load generator and fio to
        /// the cores left over. Unpinned, the scheduler may put the shard and the load
        /// generator on one core, which slows some rounds by a fifth (bench/README.md).
        #[arg(long)]
        pin: bool,
        /// Runs each shard's share of the measured load on that shard's own thread, as
        /// frontends serving on the shards' cores do (`mailvault serve --frontends-on-shards`):
        /// requests and answers then cross no thread. With it, the load generator's core is
        /// free for a shard of its own (`--shards` = cores).
        #[arg(long)]
        load_on_shards: bool,
        /// Also writes the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also writes an HTML report with plots (throughput over time, latency histograms) to
        /// this file; self-contained (inline SVG). Default: next to the JSON file, as .html.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Backup and verify throughput as a share of fio's sequential bandwidth, same directory,
    /// same run: backup run, verify --level 1 and 2, each after evicting the page cache.
    BackupVsFio {
        /// Directory on the disk to measure (the store, the backup and fio's file go there).
        #[arg(long)]
        dir: PathBuf,
        /// Store size to back up, in MiB (1 MiB messages).
        #[arg(long, default_value_t = 1024)]
        store_mib: u64,
        /// Length of each fio job, in seconds.
        #[arg(long, default_value_t = 5)]
        fio_seconds: u64,
        /// Times the backup and both verifies run, each between fio runs of its own; the
        /// round of median share is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::EngineVsFio {
            dir,
            seconds,
            rounds,
            shards,
            large_in_flight,
            only,
            file_mib,
            client_wake_queue,
            pin,
            load_on_shards,
            json,
            html,
        } => {
            let options = CompareOptions {
                directory: dir,
                seconds: seconds.max(1),
                rounds: rounds.max(1),
                shards: shards.max(1),
                large_append_concurrency: large_in_flight.max(1),
                only,
                file_bytes: file_mib.max(1) * 1024 * 1024,
                client_wake_queue,
                pin,
                load_on_shards,
            };
            let report = compare::run(options)?;
            print!("{}", report.table());
            if let Some(path) = &json {
                std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
                eprintln!("JSON written to {}", path.display());
            }
            if let Some(path) = html.or_else(|| json.map(|json| json.with_extension("html"))) {
                std::fs::write(&path, html_report::render(&report)?)?;
                eprintln!("HTML report written to {}", path.display());
            }
        }
        Command::BackupVsFio { dir, store_mib, fio_seconds, rounds } => {
            let options = mailvault_bench::backup_bench::BackupBenchOptions {
                directory: dir,
                store_bytes: store_mib.max(1) * 1024 * 1024,
                fio_seconds: fio_seconds.max(1),
                rounds: rounds.max(1),
            };
            print!("{}", mailvault_bench::backup_bench::run(&options)?.table());
        }
    }
    Ok(())
}
