//! The block device's own counters (`/sys/dev/block/M:m/stat`) for the disk holding a
//! directory: what reached the disk during a measurement, and how deep its queue was.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The device counters at one instant (see the kernel's Documentation/block/stat.rst).
#[derive(Debug, Clone)]
pub struct DiskSnapshot {
    at: Instant,
    fields: Vec<u64>,
}

/// What the disk did between two snapshots.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskActivity {
    pub reads_per_second: f64,
    pub read_kib_per_io: f64,
    /// Mean time from a read's arrival at the block layer to its completion (the scheduler's
    /// queue included), in µs: with equal sizes and queue depths, a difference here is the
    /// device treating the two loads differently.
    pub read_us_per_io: f64,
    pub writes_per_second: f64,
    pub write_kib_per_io: f64,
    pub flushes_per_second: f64,
    /// Mean requests in flight at the device (time in queue over elapsed time).
    pub mean_queue_depth: f64,
}

const READS: usize = 0;
const READ_SECTORS: usize = 2;
const READ_TICKS_MS: usize = 3;
const WRITES: usize = 4;
const WRITE_SECTORS: usize = 6;
const TIME_IN_QUEUE_MS: usize = 10;
const IN_FLIGHT: usize = 8;
const DISCARDS: usize = 11;
const FLUSHES: usize = 15;

/// How long the disk must stay idle (nothing in flight, no discard finished) to count as settled.
const QUIET_FOR: Duration = Duration::from_millis(300);
const POLL_EVERY: Duration = Duration::from_millis(20);

/// The stat file of the device `path` lives on; `None` if it is not a block device (tmpfs).
pub fn stat_file(path: &Path) -> Option<PathBuf> {
    let device = std::fs::metadata(path).ok()?.dev();
    let file =
        PathBuf::from(format!("/sys/dev/block/{}:{}/stat", rustix::fs::major(device), rustix::fs::minor(device)));
    file.exists().then_some(file)
}

impl DiskSnapshot {
    pub fn take(stat_file: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(stat_file).ok()?;
        let fields: Vec<u64> = text.split_whitespace().filter_map(|field| field.parse().ok()).collect();
        (fields.len() > TIME_IN_QUEUE_MS).then(|| Self { at: Instant::now(), fields })
    }

    fn field(&self, index: usize) -> u64 {
        self.fields.get(index).copied().unwrap_or(0)
    }

    pub fn activity_since(&self, earlier: &Self) -> DiskActivity {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(f64::EPSILON);
        let delta = |field: usize| crate::workload::count_f64(self.field(field).saturating_sub(earlier.field(field)));
        let kib_per_io = |sectors: f64, ios: f64| if ios > 0.0 { sectors / 2.0 / ios } else { 0.0 };
        DiskActivity {
            reads_per_second: delta(READS) / seconds,
            read_kib_per_io: kib_per_io(delta(READ_SECTORS), delta(READS)),
            read_us_per_io: if delta(READS) > 0.0 { delta(READ_TICKS_MS) * 1000.0 / delta(READS) } else { 0.0 },
            writes_per_second: delta(WRITES) / seconds,
            write_kib_per_io: kib_per_io(delta(WRITE_SECTORS), delta(WRITES)),
            flushes_per_second: delta(FLUSHES) / seconds,
            mean_queue_depth: delta(TIME_IN_QUEUE_MS) / 1000.0 / seconds,
        }
    }
}

/// Makes the filesystem holding `directory` commit what was just deleted, then waits (at most
/// `at_most`) until the disk behind `stat_file` is idle: nothing in flight and no discard
/// finished for [`QUIET_FOR`]. Returns how long it waited.
///
/// On a filesystem mounted with `discard`, deleting a run's files (fio lays out tens of GB)
/// makes ext4 trim them in the background for a second or more, which the next measurement,
/// the engine's or fio's, would otherwise share the disk with.
pub fn settle(directory: &Path, stat_file: &Path, at_most: Duration) -> std::io::Result<Duration> {
    let start = Instant::now();
    rustix::fs::syncfs(std::fs::File::open(directory)?)?;
    let mut last = DiskSnapshot::take(stat_file);
    let mut quiet_since = Instant::now();
    while start.elapsed() < at_most {
        std::thread::sleep(POLL_EVERY);
        let now = DiskSnapshot::take(stat_file);
        let idle = match (&last, &now) {
            (Some(last), Some(now)) => now.field(IN_FLIGHT) == 0 && now.field(DISCARDS) == last.field(DISCARDS),
            _ => true,
        };
        if !idle {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= QUIET_FOR {
            break;
        }
        last = now;
    }
    Ok(start.elapsed())
}

impl DiskActivity {
    pub fn summary(&self) -> String {
        format!(
            "disk {:.0} reads/s x {:.1} KiB ({:.0} us each), {:.0} writes/s x {:.1} KiB, {:.0} flushes/s, queue depth {:.1}",
            self.reads_per_second,
            self.read_kib_per_io,
            self.read_us_per_io,
            self.writes_per_second,
            self.write_kib_per_io,
            self.flushes_per_second,
            self.mean_queue_depth
        )
    }
}
