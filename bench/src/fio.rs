//! Runs the three fio jobs the engine is compared with, on the engine's own directory, and
//! reads their `--output-format=json` results.
//!
//! Write jobs start from a fresh file each time (fio preallocates it, like the engine's
//! segments), so neither side gets to overwrite blocks that are already written. The
//! sequential-write job's file is sized so that it never wraps around within its run: until
//! session 7 it was the engine's `--file-mib` (512 MiB by default), which fio filled in a fifth
//! of a second and then overwrote for the rest of the run, at 1.7× the rate of fresh space on
//! the development VM (bench/README.md, session 7).
//!
//! The `*Overwrite` jobs measure exactly that on purpose: the durable write rate over blocks
//! already written, which a recycled segment file gets (the recycle bench compares the two).
//! Their file is written whole and synced by a layout run first, then the timed run writes it
//! once from the start and stops at its end (it never wraps around, so every write it times
//! lands on a written block).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One fio job, matching one engine measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FioJob {
    /// 64 KiB sequential writes, O_DIRECT, io_uring at depth 8: the disk's write bandwidth.
    SequentialWrite64k,
    /// 64 KiB sequential writes as [`Self::SequentialWrite64k`], with an fdatasync after every
    /// 8 (512 KiB, the engine's largest commit): the disk's bandwidth for durable writes of
    /// the engine's shape, for information beside the target's comparison.
    DurableWrite64k,
    /// 4 KiB sequential writes, O_DIRECT, each followed by fdatasync: one durable append at a time.
    AppendFdatasync4k,
    /// [`Self::DurableWrite64k`] over blocks already written (see the module docs): the
    /// commits of a 64 KiB load into a recycled segment file. ext4 syncs such writes without
    /// converting unwritten extents in its journal, so the rate differs from fresh space.
    DurableWrite64kOverwrite,
    /// [`Self::AppendFdatasync4k`] over blocks already written: one durable append at a time
    /// into a recycled segment file.
    AppendFdatasync4kOverwrite,
    /// 4 KiB random reads, O_DIRECT, io_uring at depth 32.
    RandomRead4k,
    /// Random reads as [`Self::RandomRead4k`] of `bytes` each, at offsets aligned to `align`:
    /// the shape of the engine's fetches, which read a message's whole frame (a little over
    /// 4 KiB for a 4 KiB message) from the sector it starts in. For information: some disks
    /// serve reads over 4 KiB at two thirds of the 4 KiB rate (bench/README.md, session 15).
    /// With `batch` above 1, fio waits until `batch` reads are done and submits the next
    /// `batch` together: the pattern of callers that each ask for the next message once they
    /// have the last, on a disk that answers its reads in flight at once (bench/README.md,
    /// session 24). Reads [`Self::RandomRead4k`]'s file.
    RandomReadSpan { bytes: u32, align: u32, batch: u32 },
    /// Sequential 1 MiB reads and writes on one file, two bytes read for each written,
    /// O_DIRECT, io_uring at depth 8: the disk's bandwidth for compaction's shape (it reads
    /// every byte of a victim and writes the part it keeps, half in its bench). Its rate is
    /// bytes read plus bytes written per second.
    CompactionMix1m,
    /// 8 MiB sequential reads, O_DIRECT, one at a time: the scrub's shape (it reads a segment
    /// in 8 MiB chunks, the next one once the last is checked).
    SequentialRead8m,
}

impl FioJob {
    pub fn name(self) -> &'static str {
        match self {
            Self::SequentialWrite64k => "seq-write-64k",
            Self::DurableWrite64k => "durable-write-64k",
            Self::AppendFdatasync4k => "append-fdatasync-4k",
            Self::DurableWrite64kOverwrite => "durable-write-64k-overwrite",
            Self::AppendFdatasync4kOverwrite => "append-fdatasync-4k-overwrite",
            Self::RandomRead4k => "rand-read-4k",
            Self::RandomReadSpan { batch: 0 | 1, .. } => "rand-read-span",
            Self::RandomReadSpan { .. } => "rand-read-span-batched",
            Self::CompactionMix1m => "compaction-mix-1m",
            Self::SequentialRead8m => "seq-read-8m",
        }
    }

    /// The name of the job's file under `<directory>/fio/`.
    fn file_stem(self) -> &'static str {
        match self {
            Self::RandomReadSpan { .. } => Self::RandomRead4k.name(),
            other => other.name(),
        }
    }

    /// The job-specific fio arguments.
    pub fn arguments(self) -> Vec<String> {
        let fixed: &[&str] = match self {
            Self::DurableWrite64kOverwrite => return overwriting(Self::DurableWrite64k),
            Self::AppendFdatasync4kOverwrite => return overwriting(Self::AppendFdatasync4k),
            Self::SequentialWrite64k => {
                &["--rw=write", "--bs=64k", "--direct=1", "--ioengine=io_uring", "--iodepth=8", "--end_fsync=1"]
            }
            Self::DurableWrite64k => &[
                "--rw=write",
                "--bs=64k",
                "--direct=1",
                "--ioengine=io_uring",
                "--iodepth=8",
                "--fdatasync=8",
                "--end_fsync=1",
            ],
            Self::AppendFdatasync4k => {
                &["--rw=write", "--bs=4k", "--direct=1", "--fdatasync=1", "--ioengine=psync", "--iodepth=1"]
            }
            Self::RandomRead4k => &["--rw=randread", "--bs=4k", "--direct=1", "--ioengine=io_uring", "--iodepth=32"],
            Self::RandomReadSpan { bytes, align, batch } => {
                let mut arguments = vec![
                    "--rw=randread".to_owned(),
                    format!("--bs={bytes}"),
                    format!("--blockalign={align}"),
                    "--direct=1".to_owned(),
                    "--ioengine=io_uring".to_owned(),
                    "--iodepth=32".to_owned(),
                ];
                if batch > 1 {
                    arguments.push(format!("--iodepth_batch_submit={batch}"));
                    arguments.push(format!("--iodepth_batch_complete_min={batch}"));
                }
                return arguments;
            }
            Self::SequentialRead8m => &["--rw=read", "--bs=8m", "--direct=1", "--ioengine=io_uring", "--iodepth=1"],
            Self::CompactionMix1m => {
                &["--rw=rw", "--rwmixread=67", "--bs=1m", "--direct=1", "--ioengine=io_uring", "--iodepth=8"]
            }
        };
        fixed.iter().map(|&argument| argument.to_owned()).collect()
    }

    fn writes(self) -> bool {
        !matches!(self, Self::RandomRead4k | Self::RandomReadSpan { .. } | Self::SequentialRead8m)
    }

    /// Whether the job's file must hold all it writes in its run (a sequential writer would
    /// otherwise wrap around and overwrite its own blocks). Jobs that read the file, or write
    /// it too slowly to wrap, use the engine's file size.
    fn writes_fresh_space(self) -> bool {
        matches!(self, Self::SequentialWrite64k | Self::DurableWrite64k)
    }

    /// For the jobs that write over blocks already written: the fastest rate their file is
    /// sized for (see [`file_size`]). The file is written whole before the run, which costs
    /// real writes, so it holds what a disk this fast writes in the run and no more; a faster
    /// disk ends the run at the file's end, early, rather than wrapping around.
    fn overwrite_bytes_per_second_max(self) -> Option<u64> {
        match self {
            Self::DurableWrite64kOverwrite => Some(OVERWRITE_64K_BYTES_PER_SECOND_MAX),
            Self::AppendFdatasync4kOverwrite => Some(APPEND_4K_BYTES_PER_SECOND_MAX),
            _ => None,
        }
    }

    /// Whether fio runs for the whole runtime, going round its file as often as it takes: not
    /// the jobs whose every write must land on fresh space, or on written blocks.
    fn time_based(self) -> bool {
        !self.writes_fresh_space() && self.overwrite_bytes_per_second_max().is_none()
    }
}

/// `fresh`'s arguments with `--overwrite=1`: were the file missing or short, fio would lay it
/// out by writing it rather than by fallocate (the layout run has written it already, so fio
/// finds it whole and leaves it).
fn overwriting(fresh: FioJob) -> Vec<String> {
    let mut arguments = fresh.arguments();
    arguments.push("--overwrite=1".to_owned());
    arguments
}

/// 32k durable 4 KiB writes a second, one at a time: twice what the development VM did over
/// written blocks (16.5k). The 4 KiB overwrite job's file holds a run at this rate; a
/// time-based 4 KiB job into fresh space needs a file as large to never wrap around.
pub const APPEND_4K_BYTES_PER_SECOND_MAX: u64 = 32_000 * 4096;

/// The 64 KiB overwrite job's rate at most ([`FioJob::overwrite_bytes_per_second_max`]): 1.5x
/// what the development VM did over written blocks (fdatasync every 5 writes of 128 KiB: 561 MB/s).
const OVERWRITE_64K_BYTES_PER_SECOND_MAX: u64 = 800 << 20;

/// The block size of the layout run that writes an overwrite job's file (a multiple of every
/// job's block size, so that the file's size is too).
const LAYOUT_BLOCK_BYTES: u64 = 1 << 20;

/// The sequential-write job's file holds what a disk this fast writes in its run, so that fio
/// never wraps around; the job stops at the end of the file if the disk is faster still.
const FRESH_WRITE_BYTES_PER_SECOND_MAX: u64 = 8 << 30;

/// The size of `job`'s file: see [`FioJob::writes_fresh_space`]. The fresh-space file is at
/// most half the free space under `directory`, and never smaller than the engine's file.
/// An overwrite job's file is [`FioJob::overwrite_bytes_per_second_max`] times the run's
/// seconds, at most half the free space, in whole [`LAYOUT_BLOCK_BYTES`].
fn file_size(job: FioJob, options: &FioOptions, directory: &Path) -> u64 {
    let free = || rustix::fs::statvfs(directory).map_or(0, |stats| stats.f_bavail.saturating_mul(stats.f_frsize));
    if let Some(rate) = job.overwrite_bytes_per_second_max() {
        let wanted = options.seconds.max(1).saturating_mul(rate).min(free() / 2);
        return (wanted / LAYOUT_BLOCK_BYTES).max(1) * LAYOUT_BLOCK_BYTES;
    }
    if !job.writes_fresh_space() {
        return options.file_bytes;
    }
    let wanted = options.seconds.max(1).saturating_mul(FRESH_WRITE_BYTES_PER_SECOND_MAX);
    wanted.min(free() / 2).max(options.file_bytes)
}

/// The fio run that writes `file` whole (`size` bytes, 1 MiB O_DIRECT writes, synced at the
/// end) before an overwrite job: afterwards none of its extents is unwritten.
fn layout_command(job: FioJob, file: &Path, size: u64) -> Command {
    let mut command = Command::new("fio");
    command
        .arg(format!("--name={}-layout", job.name()))
        .arg(format!("--filename={}", file.display()))
        .arg(format!("--size={size}"))
        .args(["--rw=write", &format!("--bs={LAYOUT_BLOCK_BYTES}"), "--direct=1", "--ioengine=io_uring"])
        .args(["--iodepth=8", "--end_fsync=1", "--output-format=json"]);
    command
}

/// Runs `command`, a fio run whose output is not wanted.
fn run_quietly(mut command: Command) -> Result<(), FioError> {
    let output = command.output().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => FioError::NotInstalled,
        _ => FioError::Io(error),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(FioError::Failed { status: output.status, stderr });
    }
    Ok(())
}

/// Where and how long fio runs.
#[derive(Debug, Clone)]
pub struct FioOptions {
    /// fio's files go in `<directory>/fio/`.
    pub directory: PathBuf,
    pub seconds: u64,
    pub file_bytes: u64,
}

/// What one fio job measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FioResult {
    pub job: FioJob,
    pub iops: f64,
    pub bytes_per_second: f64,
    pub mean_latency_us: f64,
    /// fio's own CPU time (user and system) over its run, in percent of one core (0 if its
    /// output had none).
    pub cpu_percent: f64,
    /// The command line, to rerun it by hand.
    pub command: String,
    /// IOPS and bandwidth per [`LOG_INTERVAL_MS`], from fio's averaged logs; `None` if fio
    /// wrote none (the numbers above do not depend on them).
    pub timeline: Option<FioTimeline>,
}

/// fio's logs averaged over this many milliseconds (`--log_avg_msec`): the report's
/// throughput-over-time slots, the same width as the engine's.
pub const LOG_INTERVAL_MS: u64 = 100;

/// One value per [`LOG_INTERVAL_MS`] slot, in run order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FioTimeline {
    pub iops: Vec<f64>,
    pub bytes_per_second: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FioError {
    #[error("fio is not installed (scripts/setup installs it; or: apt-get install fio)")]
    NotInstalled,
    #[error("running fio: {0}")]
    Io(#[from] std::io::Error),
    #[error("fio failed ({status}): {stderr}")]
    Failed { status: std::process::ExitStatus, stderr: String },
    #[error("fio's JSON output: {0}")]
    Output(String),
}

/// The offset alignment the filesystem asks of O_DIRECT reads of `path` (statx
/// `STATX_DIOALIGN`, as the engine's reads use it), or 4096 where it does not say.
pub fn direct_read_alignment(path: &Path) -> u32 {
    use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
    match statx(CWD, path, AtFlags::empty(), StatxFlags::DIOALIGN) {
        Ok(stat) if stat.stx_mask & StatxFlags::DIOALIGN.bits() != 0 && stat.stx_dio_offset_align.is_power_of_two() => {
            stat.stx_dio_offset_align
        }
        _ => 4096,
    }
}

/// The path of `job`'s file under `options`' directory (a reading job's file stays between runs).
pub fn file_path(job: FioJob, options: &FioOptions) -> PathBuf {
    options.directory.join("fio").join(format!("{}.dat", job.file_stem()))
}

/// fio's version string, or `None` if it cannot be run.
pub fn version() -> Option<String> {
    let output = Command::new("fio").arg("--version").output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `job` and returns its numbers.
pub fn run(job: FioJob, options: &FioOptions) -> Result<FioResult, FioError> {
    let directory = options.directory.join("fio");
    std::fs::create_dir_all(&directory)?;
    let file = file_path(job, options);
    if job.writes() {
        remove_file(&file)?;
    }
    let size = file_size(job, options, &directory);
    let layout = job.overwrite_bytes_per_second_max().map(|_| layout_command(job, &file, size));
    let mut command = Command::new("fio");
    command
        .arg(format!("--name={}", job.name()))
        .arg(format!("--filename={}", file.display()))
        .arg(format!("--size={size}"))
        .args(job.arguments());
    if job.time_based() {
        // Stops at the runtime, going round the file as often as it takes.
        command.arg("--time_based");
    }
    command.args([&format!("--runtime={}", options.seconds), "--output-format=json"]);
    let command_line = match &layout {
        Some(layout) => format!("{} && {}", render(layout), render(&command)),
        None => render(&command),
    };
    if let Some(layout) = layout
        && let Err(error) = run_quietly(layout)
    {
        remove_file(&file)?;
        return Err(error);
    }
    // Added after rendering: the logs are the report's business, not part of the job to rerun.
    let log_prefix = directory.join(job.name());
    command.args([
        format!("--write_bw_log={}", log_prefix.display()),
        format!("--write_iops_log={}", log_prefix.display()),
        format!("--log_avg_msec={LOG_INTERVAL_MS}"),
    ]);
    let output = command.output().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => FioError::NotInstalled,
        _ => FioError::Io(error),
    })?;
    if job.writes() {
        remove_file(&file)?;
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(FioError::Failed { status: output.status, stderr });
    }
    let mut result = parse(job, &output.stdout)?;
    result.command = command_line;
    result.timeline = read_timeline(&directory, job.name());
    Ok(result)
}

/// Reads and deletes fio's averaged `<name>_iops.1.log` and `<name>_bw.1.log` (bandwidth in KiB/s).
fn read_timeline(directory: &Path, name: &str) -> Option<FioTimeline> {
    let read_log = |kind: &str| {
        let path = directory.join(format!("{name}_{kind}.1.log"));
        let text = std::fs::read_to_string(&path).ok();
        let _ = remove_file(&path);
        text.map(|text| parse_log(&text))
    };
    let iops = read_log("iops")?;
    let kibibytes_per_second = read_log("bw")?;
    Some(FioTimeline { iops, bytes_per_second: kibibytes_per_second.iter().map(|kib| kib * 1024.0).collect() })
}

/// The value column of a fio log (`time_ms, value, direction, block_size, offset[, priority]`),
/// in time order; lines that do not parse are skipped.
pub fn parse_log(text: &str) -> Vec<f64> {
    text.lines().filter_map(|line| line.split(',').nth(1)?.trim().parse::<f64>().ok()).collect()
}

/// Deletes fio's files (the random-read file is kept between rounds, laid out once).
pub fn remove_files(directory: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(directory.join("fio")) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

fn render(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for argument in command.get_args() {
        line.push(' ');
        line.push_str(&argument.to_string_lossy());
    }
    line
}

/// Reads `jobs[0].read` or `jobs[0].write` of fio's JSON, or both added for a mix (fio may
/// print warnings before it).
pub fn parse(job: FioJob, stdout: &[u8]) -> Result<FioResult, FioError> {
    let text = String::from_utf8_lossy(stdout);
    let json = text.find('{').map_or("", |start| &text[start..]);
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|error| FioError::Output(format!("not JSON: {error}")))?;
    let directions: &[&str] = match job {
        FioJob::CompactionMix1m => &["read", "write"],
        FioJob::RandomRead4k | FioJob::RandomReadSpan { .. } | FioJob::SequentialRead8m => &["read"],
        FioJob::SequentialWrite64k
        | FioJob::DurableWrite64k
        | FioJob::AppendFdatasync4k
        | FioJob::DurableWrite64kOverwrite
        | FioJob::AppendFdatasync4kOverwrite => &["write"],
    };
    let number = |direction: &str, field: &str| {
        value["jobs"][0][direction][field]
            .as_f64()
            .ok_or_else(|| FioError::Output(format!("no jobs[0].{direction}.{field}")))
    };
    let sum = |field: &str| directions.iter().map(|direction| number(direction, field)).sum::<Result<f64, _>>();
    let latency_ns = |direction: &str| value["jobs"][0][direction]["lat_ns"]["mean"].as_f64().unwrap_or(0.0);
    Ok(FioResult {
        job,
        iops: sum("iops")?,
        bytes_per_second: sum("bw_bytes")?,
        mean_latency_us: directions.iter().map(|direction| latency_ns(direction)).sum::<f64>()
            / f64::from(u32::try_from(directions.len()).unwrap_or(1))
            / 1000.0,
        cpu_percent: ["usr_cpu", "sys_cpu"].iter().filter_map(|field| value["jobs"][0][field].as_f64()).sum(),
        command: String::new(),
        timeline: None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// fio's output is read from files and pipes: any bytes give values or an error, never a panic.
        #[test]
        fn readers_of_fio_output_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_log(&text);
            let _ = parse(FioJob::RandomRead4k, &bytes);
            let _ = parse(FioJob::AppendFdatasync4k, format!("{{\"jobs\": [{{\"write\": {text}}}]}}").as_bytes());
        }
    }

    #[test]
    fn parses_fio_json_after_warnings() {
        let output = br#"fio: some warning
{"fio version": "fio-3.33", "jobs": [{"jobname": "x",
  "read": {"iops": 0.0, "bw_bytes": 0, "lat_ns": {"mean": 0.0}},
  "write": {"iops": 1600.5, "bw_bytes": 6555648, "lat_ns": {"mean": 612000.0}},
  "usr_cpu": 12.5, "sys_cpu": 30.25}]}"#;
        let result = parse(FioJob::AppendFdatasync4k, output).unwrap();
        assert!((result.iops - 1600.5).abs() < 1e-9);
        assert!((result.cpu_percent - 42.75).abs() < 1e-9);
        assert!((result.bytes_per_second - 6_555_648.0).abs() < 1e-9);
        assert!((result.mean_latency_us - 612.0).abs() < 1e-9);
    }

    #[test]
    fn parses_averaged_logs() {
        let log = "100, 1612, 1, 0, 0, 0\n200, 1580, 1, 0, 0, 0\nbad line\n300, 1601, 1, 0, 0\n";
        assert_eq!(parse_log(log), vec![1612.0, 1580.0, 1601.0]);
        assert!(parse_log("").is_empty());
    }

    #[test]
    fn overwrite_jobs_are_their_fresh_jobs_over_a_file_written_once() {
        for (overwrite, fresh) in [
            (FioJob::DurableWrite64kOverwrite, FioJob::DurableWrite64k),
            (FioJob::AppendFdatasync4kOverwrite, FioJob::AppendFdatasync4k),
        ] {
            let arguments = overwrite.arguments();
            assert_eq!(arguments[..arguments.len() - 1], fresh.arguments()[..]);
            assert_eq!(arguments.last().map(String::as_str), Some("--overwrite=1"));
            assert!(!overwrite.time_based(), "{overwrite:?} would wrap around its file");
            assert!(overwrite.writes());
            let options = FioOptions { directory: std::env::temp_dir(), seconds: 3, file_bytes: 1 << 40 };
            let size = file_size(overwrite, &options, &options.directory);
            assert_eq!(size % LAYOUT_BLOCK_BYTES, 0);
            assert!(size <= 3 * overwrite.overwrite_bytes_per_second_max().unwrap_or(0).max(LAYOUT_BLOCK_BYTES));
        }
        assert!(FioJob::AppendFdatasync4k.time_based());
        assert!(!FioJob::DurableWrite64k.time_based());
    }

    #[test]
    fn a_batched_span_job_is_the_span_job_reaping_and_submitting_in_batches() {
        let steady = FioJob::RandomReadSpan { bytes: 4608, align: 512, batch: 1 };
        let batched = FioJob::RandomReadSpan { bytes: 4608, align: 512, batch: 32 };
        let arguments = batched.arguments();
        assert_eq!(arguments[..arguments.len() - 2], steady.arguments()[..]);
        assert_eq!(arguments[arguments.len() - 2..], ["--iodepth_batch_submit=32", "--iodepth_batch_complete_min=32"]);
        assert!(steady.arguments().contains(&"--bs=4608".to_owned()));
        assert_ne!(steady.name(), batched.name(), "their progress lines and JSON tell them apart");
        assert_eq!(batched.file_stem(), FioJob::RandomRead4k.name(), "both read the 4 KiB job's file");
    }

    #[test]
    fn missing_fields_are_an_error() {
        assert!(parse(FioJob::RandomRead4k, br#"{"jobs": [{}]}"#).is_err());
        assert!(parse(FioJob::RandomRead4k, b"no json").is_err());
    }
}
