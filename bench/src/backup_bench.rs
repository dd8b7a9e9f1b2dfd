//! `mailvault-bench backup-vs-fio`: backup and verify throughput as a share of the disk's
//! sequential bandwidth, measured by fio on the same directory in the same run.
//!
//! A store of `--store-mib` of 1 MiB messages is written and closed; then, with the page cache
//! evicted before each step: `backup run` to a directory target on the same disk (reads the
//! store, writes the copy), `verify --level 1` (reads the copy, BLAKE3), `verify --level 2`
//! (also every frame's CRC and AEAD tag). Each step is compared with a fio job of its shape
//! (1 MiB O_DIRECT, depth 8) run just before and just after it, by their mean: this disk's
//! bandwidth wanders by half from one minute to the next. The whole sequence runs `--rounds`
//! times and each step's round of median share is reported, with the range of shares. A backup to a directory on the same
//! disk reads and writes every byte, so it is compared with what fio's 50/50 sequential
//! read/write mix reads per second while writing as much (the disk's copy bandwidth: here
//! 0.6–0.8 of its read-only bandwidth, while pure writes run faster than reads); the verifies
//! only read, and are compared with fio's sequential read.

// Byte counts become rates: f64 precision is far beyond what a disk measurement needs.
#![allow(clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;
use mailvault_backup::{S3Options, TargetSpec, VerifyLevel, VerifyVerdict};
use mailvault_engine::{Engine, EngineConfig, Flags, block_on, init_store};

use crate::page_cache::evict;
use crate::store::hsm_token;

#[derive(Debug, Clone)]
pub struct BackupBenchOptions {
    pub directory: PathBuf,
    pub store_bytes: u64,
    pub fio_seconds: u64,
    /// Times each step runs, each between its own fio runs: the median round is reported.
    pub rounds: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupBenchReport {
    pub store_bytes: u64,
    pub fio_write_bytes_per_second: f64,
    pub backup: Steps,
    pub verify_level1: Steps,
    pub verify_level2: Steps,
}

/// One step's rounds: the round of median share, and the lowest and highest shares.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Steps {
    pub median: StepRate,
    pub share_min: f64,
    pub share_max: f64,
    pub rounds: Vec<StepRate>,
}

impl Steps {
    fn of(rounds: Vec<StepRate>) -> Self {
        let mut by_share = rounds.clone();
        by_share.sort_by(|a, b| a.share().total_cmp(&b.share()));
        let pick = |index: usize| by_share.get(index).copied().unwrap_or(StepRate::NONE);
        Self {
            median: pick(by_share.len() / 2),
            share_min: pick(0).share(),
            share_max: pick(by_share.len().saturating_sub(1)).share(),
            rounds,
        }
    }
}

/// One step's rate and the fio figure it is compared with, measured just before and just
/// after it (their mean): this disk's bandwidth wanders by half from one minute to the next.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StepRate {
    pub bytes_per_second: f64,
    pub fio_bytes_per_second: f64,
}

impl StepRate {
    const NONE: Self = Self { bytes_per_second: 0.0, fio_bytes_per_second: f64::NAN };

    fn share(self) -> f64 {
        self.bytes_per_second / self.fio_bytes_per_second
    }
}

impl BackupBenchReport {
    pub fn table(&self) -> String {
        let mb = |bytes: f64| bytes / 1e6;
        let row = |name: &str, steps: &Steps, yardstick: &str| {
            format!(
                "{name:<18} {:>8.0} {:>8.0} {:>8.2}x  {:.2}-{:.2}  (of {yardstick}; target >= 0.70)\n",
                mb(steps.median.bytes_per_second),
                mb(steps.median.fio_bytes_per_second),
                steps.median.share(),
                steps.share_min,
                steps.share_max,
            )
        };
        format!(
            "store {:.0} MB; fio 1 MiB O_DIRECT sequential write {:.0} MB/s; {} rounds, the median round shown\n\
             {:<18} {:>8} {:>8} {:>9}  {:<9}\n{}{}{}",
            mb(self.store_bytes as f64),
            mb(self.fio_write_bytes_per_second),
            self.backup.rounds.len(),
            "step",
            "MB/s",
            "fio MB/s",
            "share",
            "range",
            row("backup run", &self.backup, "fio 50/50 read/write mix, read side"),
            row("verify --level 1", &self.verify_level1, "fio sequential read"),
            row("verify --level 2", &self.verify_level2, "fio sequential read"),
        )
    }
}

/// Runs the whole comparison; deletes what it wrote.
pub fn run(options: &BackupBenchOptions) -> anyhow::Result<BackupBenchReport> {
    let root = options.directory.join("backup-bench");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let token = hsm_token()?;
    let data_dir = root.join("data");
    init_store(&data_dir, 1)?;
    let mut config = EngineConfig::new(&data_dir);
    config.segment_bytes_max = 64 * 1024 * 1024;
    let engine = Engine::open(&config, &token.hsm)?;
    fill(&engine, options.store_bytes)?;

    let fio_file = root.join("fio.dat");
    let fio_write = fio(&fio_file, "write", options)?;
    let spec = TargetSpec::new(root.join("backup").display().to_string(), S3Options::default());
    let mut rounds = Vec::new();
    for _ in 0..options.rounds {
        // Each round backs up into an empty target: a second run into the same one copies nothing.
        let _ = std::fs::remove_dir_all(root.join("backup"));
        let copy_before = fio(&fio_file, "rw", options)?;
        evict(&data_dir)?;
        let started = Instant::now();
        let mut seal = || {
            block_on(engine.seal_active()).map_err(|error| mailvault_backup::BackupError::Invalid(error.to_string()))
        };
        let report = mailvault_backup::run_backup(&data_dir, &mut seal, &token.hsm, &spec)?;
        let backup_seconds = started.elapsed().as_secs_f64();
        block_on(engine.release_backup_hold())?; // as `mailvault backup run` does when done
        let copy_after = fio(&fio_file, "rw", options)?;
        let backup = StepRate {
            bytes_per_second: report.bytes_copied as f64 / backup_seconds,
            fio_bytes_per_second: f64::midpoint(copy_before, copy_after),
        };
        let verify_rate = |level| -> anyhow::Result<StepRate> {
            let before = fio(&fio_file, "read", options)?;
            evict(&root)?;
            let started = Instant::now();
            let verified = mailvault_backup::verify(&spec, level, &token.hsm, None, &root)?;
            let seconds = started.elapsed().as_secs_f64();
            anyhow::ensure!(
                verified.verdict() == VerifyVerdict::Equal,
                "the fresh backup does not verify: {:?}",
                verified.findings
            );
            let after = fio(&fio_file, "read", options)?;
            Ok(StepRate {
                bytes_per_second: verified.bytes_checked as f64 / seconds,
                fio_bytes_per_second: f64::midpoint(before, after),
            })
        };
        let (level1, level2) = (verify_rate(VerifyLevel::Files)?, verify_rate(VerifyLevel::Frames)?);
        rounds.push(Round { store_bytes: report.bytes_copied, backup, level1, level2 });
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&root);
    let median = |step: fn(&Round) -> StepRate| Steps::of(rounds.iter().map(step).collect());
    Ok(BackupBenchReport {
        store_bytes: rounds.first().map_or(0, |round| round.store_bytes),
        fio_write_bytes_per_second: fio_write,
        backup: median(|round| round.backup),
        verify_level1: median(|round| round.level1),
        verify_level2: median(|round| round.level2),
    })
}

struct Round {
    store_bytes: u64,
    backup: StepRate,
    level1: StepRate,
    level2: StepRate,
}

/// Appends 1 MiB messages until the store holds `bytes`, 16 in flight.
fn fill(engine: &Engine, bytes: u64) -> anyhow::Result<()> {
    const MESSAGE_BYTES: usize = 1024 * 1024;
    block_on(engine.create_account("bench"))?;
    let messages = bytes.div_ceil(MESSAGE_BYTES as u64) as usize;
    block_on(async {
        let mut sent = 0;
        while sent < messages {
            let batch = (messages - sent).min(16);
            let appends = (0..batch).map(|index| {
                let mut body = format!("Subject: {}\r\n\r\n", sent + index).into_bytes();
                body.extend((0..MESSAGE_BYTES).map(|byte| (byte * 31 + sent + index) as u8));
                engine.append("bench", "INBOX", body, Flags::default(), None)
            });
            for result in futures::future::join_all(appends).await {
                result?;
            }
            sent += batch;
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// fio 1 MiB O_DIRECT sequential `mode` on `file`: bytes per second ("read", "write", or
/// "rw", a 50/50 mix: its bytes read per second).
fn fio(file: &Path, mode: &str, options: &BackupBenchOptions) -> anyhow::Result<f64> {
    let side = if mode == "rw" { "read" } else { mode };
    let output = Command::new("fio")
        .arg("--name=backup-bench")
        .arg(format!("--filename={}", file.display()))
        .arg(format!("--size={}", options.store_bytes))
        .args([
            &format!("--rw={mode}"),
            "--rwmixread=50",
            "--bs=1m",
            "--direct=1",
            "--ioengine=io_uring",
            "--iodepth=8",
        ])
        .args(["--time_based", &format!("--runtime={}", options.fio_seconds), "--output-format=json"])
        .output()
        .context("running fio (scripts/setup installs it)")?;
    anyhow::ensure!(output.status.success(), "fio failed: {}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).context("fio's JSON")?;
    json["jobs"][0][side]["bw_bytes"].as_f64().context("fio's JSON has no bw_bytes")
}
