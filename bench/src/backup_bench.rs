//! `mailvault-bench backup-vs-fio`: backup and verify throughput as a share of the disk's
//! sequential bandwidth, measured by fio on the same directory in the same run.
//!
//! A store of `--store-mib` of 1 MiB messages is written and closed; then, with the page cache
//! evicted before each step: `backup run` to a directory target on the same disk (reads the
//! store, writes the copy), `verify --level 1` (reads the copy, BLAKE3), `verify --level 2`
//! (also every frame's CRC and AEAD tag). Each step is compared with a fio job of its shape
//! (1 MiB O_DIRECT, depth 8) run just before and just after it, by their mean: this disk's
//! bandwidth wanders by half from one minute to the next. A backup to a directory on the same
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
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupBenchReport {
    pub store_bytes: u64,
    pub fio_write_bytes_per_second: f64,
    pub backup: StepRate,
    pub verify_level1: StepRate,
    pub verify_level2: StepRate,
}

/// One step's rate and the fio figure it is compared with, measured just before and just
/// after it (their mean): this disk's bandwidth wanders by half from one minute to the next.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StepRate {
    pub bytes_per_second: f64,
    pub fio_bytes_per_second: f64,
}

impl StepRate {
    fn share(self) -> f64 {
        self.bytes_per_second / self.fio_bytes_per_second
    }
}

impl BackupBenchReport {
    pub fn table(&self) -> String {
        let mb = |bytes: f64| bytes / 1e6;
        let row = |name: &str, step: StepRate, yardstick: &str| {
            format!(
                "{name:<18} {:>8.0} {:>8.0} {:>8.2}x  (of {yardstick}; target >= 0.70)\n",
                mb(step.bytes_per_second),
                mb(step.fio_bytes_per_second),
                step.share()
            )
        };
        format!(
            "store {:.0} MB; fio 1 MiB O_DIRECT sequential write {:.0} MB/s\n{:<18} {:>8} {:>8} {:>9}\n{}{}{}",
            mb(self.store_bytes as f64),
            mb(self.fio_write_bytes_per_second),
            "step",
            "MB/s",
            "fio MB/s",
            "share",
            row("backup run", self.backup, "fio 50/50 read/write mix, read side"),
            row("verify --level 1", self.verify_level1, "fio sequential read"),
            row("verify --level 2", self.verify_level2, "fio sequential read"),
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
    let copy_before = fio(&fio_file, "rw", options)?;
    let spec = TargetSpec::new(root.join("backup").display().to_string(), S3Options::default());
    evict(&data_dir)?;
    let started = Instant::now();
    let mut seal =
        || block_on(engine.seal_active()).map_err(|error| mailvault_backup::BackupError::Invalid(error.to_string()));
    let report = mailvault_backup::run_backup(&data_dir, &mut seal, &token.hsm, &spec)?;
    let backup_seconds = started.elapsed().as_secs_f64();
    drop(engine);
    let copy_after = fio(&fio_file, "rw", options)?;
    let backup = StepRate {
        bytes_per_second: report.bytes_copied as f64 / backup_seconds,
        fio_bytes_per_second: f64::midpoint(copy_before, copy_after),
    };

    let verify_rate = |level| -> anyhow::Result<f64> {
        evict(&root)?;
        let started = Instant::now();
        let verified = mailvault_backup::verify(&spec, level, &token.hsm, None, &root)?;
        anyhow::ensure!(
            verified.verdict() == VerifyVerdict::Equal,
            "the fresh backup does not verify: {:?}",
            verified.findings
        );
        Ok(verified.bytes_checked as f64 / started.elapsed().as_secs_f64())
    };
    let reads = [fio(&fio_file, "read", options)?];
    let level1 = verify_rate(VerifyLevel::Files)?;
    let reads = [reads[0], fio(&fio_file, "read", options)?];
    let level2 = verify_rate(VerifyLevel::Frames)?;
    let reads = [reads[0], reads[1], fio(&fio_file, "read", options)?];
    let _ = std::fs::remove_dir_all(&root);
    Ok(BackupBenchReport {
        store_bytes: report.bytes_copied,
        fio_write_bytes_per_second: fio_write,
        backup,
        verify_level1: StepRate { bytes_per_second: level1, fio_bytes_per_second: f64::midpoint(reads[0], reads[1]) },
        verify_level2: StepRate { bytes_per_second: level2, fio_bytes_per_second: f64::midpoint(reads[1], reads[2]) },
    })
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
