//! A fault-injecting storage around the real one, for tests: seeded and reproducible.
//!
//! It fails writes and fsyncs with EIO, flips a bit or cuts a read short, "crashes" at a chosen
//! write (from then on every operation fails, as if the process had died), and on
//! [`FaultController::power_loss`] decides for each write not yet covered by an fsync whether it
//! survived, was lost, or tore at a 512-byte sector boundary, by restoring the bytes that write
//! replaced. Metadata operations (create, rename, remove, `set_len`, `zero_range`) are passed
//! through and treated as durable: the engine syncs the directory and data after each of them.
//! [`FaultController::fill_disk`] makes the filesystem full until freed.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BlockBuffer, DiskFile, DiskStorage, Storage, StorageFile};

const SECTOR_BYTES: usize = 512;
const PER_MILLE: u64 = 1000;

/// How often each fault happens, in events per thousand operations of its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    pub write_error_per_mille: u64,
    pub sync_error_per_mille: u64,
    pub read_bit_flip_per_mille: u64,
    pub short_read_per_mille: u64,
}

/// What was injected, for the test's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub write_errors: u64,
    pub sync_errors: u64,
    pub read_bit_flips: u64,
    pub short_reads: u64,
    pub crashes: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    pub writes_kept: u64,
    /// Writes issued while another write to an overlapping range of the same file was still
    /// in flight: the engine must never do that (the two could land in either order).
    pub overlapping_writes: u64,
    /// Preallocations and writes refused with `ENOSPC` while the disk was full.
    pub out_of_space: u64,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    WriteError,
    SyncError,
    ReadBitFlip,
    ShortRead,
}

#[derive(Debug)]
struct UnsyncedWrite {
    /// Which write, for the syncs that vouch for it (see `FaultyFile::sync_data`).
    id: u64,
    offset: u64,
    replaced: Vec<u8>,
    written_bytes: usize,
}

/// Operations the test holds back.
#[derive(Debug, Default)]
struct Held {
    /// Syncs do not return until the crash (then they fail): a slow disk cache flush, during
    /// which later writes go on.
    syncs_until_crash: bool,
    /// Writes wait (without touching the file) until released: a slow disk, with the writes of
    /// a commit still in flight while the engine goes on.
    writes: bool,
    /// Syncs wait (before they start) until released: a slow flush that ends well.
    syncs: bool,
}

#[derive(Debug)]
struct FaultState {
    random: u64,
    rates: FaultRates,
    crashed: bool,
    writes_until_crash: Option<u64>,
    held: Held,
    writes_waiting: u64,
    syncs_waiting: u64,
    unsynced: HashMap<PathBuf, Vec<UnsyncedWrite>>,
    /// Byte ranges of writes in flight, per file.
    writing: HashMap<PathBuf, Vec<(u64, u64)>>,
    /// The current name of every open file (each handle's, shared with it): a rename moves
    /// the handles open under the old name, and a file created later under that name is
    /// another file.
    open_files: Vec<std::sync::Weak<Mutex<PathBuf>>>,
    /// The id of the next write.
    next_write_id: u64,
    /// The filesystem is full: a file gets no space beyond what it holds already.
    disk_full: bool,
    /// Removing a file whose name ends so fails with `EIO` (and removes nothing).
    failing_removes: Option<String>,
    counts: FaultCounts,
}

impl FaultState {
    /// `SplitMix64`: tiny, seedable, good enough to pick faults.
    fn next(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut value = self.random;
        value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        value ^ (value >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }

    /// Moves every handle open under `from` to `to` (and forgets closed ones).
    fn rename_open_files(&mut self, from: &Path, to: &Path) {
        self.open_files.retain(|file| {
            let Some(path) = file.upgrade() else { return false };
            let mut path = path.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *path == from {
                *path = to.to_path_buf();
            }
            true
        });
    }

    /// Whether `fault` strikes now, at its configured rate.
    fn roll(&mut self, fault: Fault) -> bool {
        let per_mille = match fault {
            Fault::WriteError => self.rates.write_error_per_mille,
            Fault::SyncError => self.rates.sync_error_per_mille,
            Fault::ReadBitFlip => self.rates.read_bit_flip_per_mille,
            Fault::ShortRead => self.rates.short_read_per_mille,
        };
        self.happens(per_mille)
    }

    fn happens(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.below(PER_MILLE) < per_mille
    }
}

/// The test's handle on the faults of every `FaultyStorage` made with it.
#[derive(Debug, Clone)]
pub struct FaultController {
    state: Arc<Mutex<FaultState>>,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected EIO: {what}"))
}

impl FaultController {
    pub fn new(seed: u64) -> Self {
        let state = FaultState {
            random: seed,
            rates: FaultRates::default(),
            crashed: false,
            writes_until_crash: None,
            held: Held::default(),
            writes_waiting: 0,
            syncs_waiting: 0,
            unsynced: HashMap::new(),
            open_files: Vec::new(),
            next_write_id: 0,
            disk_full: false,
            failing_removes: None,
            writing: HashMap::new(),
            counts: FaultCounts::default(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_rates(&self, rates: FaultRates) {
        self.lock().rates = rates;
    }

    /// The `writes`-th write from now (0: the next) reaches the page cache, then the process
    /// "dies": that write and every later operation fail.
    pub fn crash_after_writes(&self, writes: u64) {
        self.lock().writes_until_crash = Some(writes);
    }

    /// From now until the next power loss, every sync waits for the crash and then fails, as
    /// a flush still running when the power fails: nothing becomes durable, while writes issued
    /// after the sync go on and may reach the disk. Pair it with `crash_after_writes`; a sync
    /// held past 20 s fails anyway, so a test that never crashes ends.
    pub fn hold_syncs_until_crash(&self) {
        self.lock().held.syncs_until_crash = true;
    }

    /// From now until [`Self::release_writes`], every write waits before it reaches the file
    /// (a write held past 20 s goes on anyway, so a test that never releases ends).
    pub fn hold_writes(&self) {
        self.lock().held.writes = true;
    }

    pub fn release_writes(&self) {
        self.lock().held.writes = false;
    }

    /// Writes waiting now because writes are held.
    pub fn writes_waiting(&self) -> u64 {
        self.lock().writes_waiting
    }

    /// From now until [`Self::release_syncs`], every sync waits before it starts, then goes on
    /// as usual (a sync paused past 20 s goes on anyway).
    pub fn pause_syncs(&self) {
        self.lock().held.syncs = true;
    }

    pub fn release_syncs(&self) {
        self.lock().held.syncs = false;
    }

    /// Syncs waiting now because syncs are paused.
    pub fn syncs_waiting(&self) -> u64 {
        self.lock().syncs_waiting
    }

    /// From now until [`Self::free_disk`], the filesystem is full: a preallocation or a write
    /// that needs space its file does not hold already (its allocated blocks, from the start;
    /// the engine's files are written and preallocated from offset 0) fails with `ENOSPC`,
    /// before it touches the file. Power losses leave the disk as full as it was.
    pub fn fill_disk(&self) {
        self.lock().disk_full = true;
    }

    pub fn free_disk(&self) {
        self.lock().disk_full = false;
    }

    /// From now on, removing a file whose name ends with `suffix` fails with `EIO`; `None`
    /// lets removes through again.
    pub fn fail_removes_ending(&self, suffix: Option<&str>) {
        self.lock().failing_removes = suffix.map(str::to_owned);
    }

    pub fn crash_now(&self) {
        let mut state = self.lock();
        state.crashed = true;
        state.counts.crashes += 1;
    }

    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    pub fn counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Power fails: each write since its file's last fsync survives, is lost, or tears at a
    /// sector boundary. Then the "machine" is back: faults are cleared for the next run.
    pub fn power_loss(&self) -> io::Result<()> {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        for (path, writes) in unsynced {
            let file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                // Removed since (a compacted segment): its unsynced writes no longer matter.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            // Undo newest first, so an older write's bytes are what remain underneath.
            for write in writes.iter().rev() {
                match state.below(3) {
                    0 => state.counts.writes_kept += 1,
                    1 => {
                        file.write_all_at(&write.replaced, write.offset)?;
                        state.counts.writes_lost += 1;
                    }
                    _ => {
                        let sectors = write.written_bytes.div_ceil(SECTOR_BYTES).max(1) as u64;
                        let kept_sectors = state.below(sectors) as usize;
                        let from = (kept_sectors * SECTOR_BYTES).min(write.replaced.len());
                        file.write_all_at(&write.replaced[from..], write.offset + from as u64)?;
                        state.counts.writes_torn += 1;
                    }
                }
            }
            file.sync_all()?;
        }
        state.crashed = false;
        state.writes_until_crash = None;
        state.held = Held::default();
        Ok(())
    }
}

/// A storage whose files inject the controller's faults.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    inner: DiskStorage,
    controller: FaultController,
}

impl FaultyStorage {
    pub fn new(directory: impl Into<PathBuf>, controller: FaultController) -> Self {
        Self { inner: DiskStorage::new(directory), controller }
    }

    fn check_alive(&self, what: &str) -> io::Result<()> {
        if self.controller.has_crashed() { Err(eio(what)) } else { Ok(()) }
    }

    fn wrap(&self, name: &str, inner: DiskFile) -> FaultyFile {
        let path = Arc::new(Mutex::new(self.inner.directory().join(name)));
        self.controller.lock().open_files.push(Arc::downgrade(&path));
        FaultyFile { inner, path, controller: self.controller.clone() }
    }
}

impl Storage for FaultyStorage {
    type File = FaultyFile;

    async fn create(&self, name: &str) -> io::Result<FaultyFile> {
        self.check_alive("create")?;
        let file = self.inner.create(name).await?;
        // A new file: writes of an earlier one of that name (removed) are not its own.
        self.controller.lock().unsynced.remove(&self.inner.directory().join(name));
        Ok(self.wrap(name, file))
    }

    async fn open(&self, name: &str, writable: bool) -> io::Result<FaultyFile> {
        self.check_alive("open")?;
        Ok(self.wrap(name, self.inner.open(name, writable).await?))
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        self.check_alive("list")?;
        self.inner.list().await
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.check_alive("remove")?;
        if self.controller.lock().failing_removes.as_deref().is_some_and(|suffix| name.ends_with(suffix)) {
            return Err(io::Error::other(format!("injected: removing {name} failed")));
        }
        self.inner.remove(name).await?;
        // Its unsynced writes no longer matter, and must not land on a later file of that name.
        self.controller.lock().unsynced.remove(&self.inner.directory().join(name));
        Ok(())
    }

    async fn is_unopened(&self, name: &str) -> io::Result<bool> {
        self.check_alive("is_unopened")?;
        self.inner.is_unopened(name).await
    }

    async fn free_bytes(&self) -> io::Result<Option<u64>> {
        self.check_alive("free bytes")?;
        if self.controller.lock().disk_full { Ok(Some(0)) } else { self.inner.free_bytes().await }
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.check_alive("rename")?;
        let result = self.inner.rename(from, to).await;
        // Unsynced writes follow the file to its new name.
        let directory = self.inner.directory();
        let mut state = self.controller.lock();
        if result.is_ok() {
            let (from, to) = (directory.join(from), directory.join(to));
            // The file replaced at `to` is gone, its unsynced writes with it.
            state.unsynced.remove(&to);
            if let Some(writes) = state.unsynced.remove(&from) {
                state.unsynced.insert(to.clone(), writes);
            }
            state.rename_open_files(&from, &to);
        }
        result
    }

    async fn sync_directory(&self) -> io::Result<()> {
        self.check_alive("sync directory")?;
        self.inner.sync_directory().await
    }
}

#[derive(Debug)]
pub struct FaultyFile {
    inner: DiskFile,
    /// Its current name (a rename of the file changes it).
    path: Arc<Mutex<PathBuf>>,
    controller: FaultController,
}

/// The bytes a write is about to replace (zeroes past the end of the file).
fn replaced_bytes(path: &Path, offset: u64, length: usize) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut replaced = vec![0; length];
    let mut filled = 0;
    while filled < length {
        match file.read_at(&mut replaced[filled..], offset + filled as u64)? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(replaced)
}

impl FaultyFile {
    fn current_path(&self) -> PathBuf {
        self.path.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn check_alive(&self, what: &str) -> io::Result<()> {
        if self.controller.has_crashed() { Err(eio(what)) } else { Ok(()) }
    }

    /// Returns once the process "crashed", or after 20 s (a held sync never hangs a test).
    async fn wait_for_crash(&self) {
        for _ in 0..20_000 {
            if self.controller.has_crashed() {
                return;
            }
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Returns once writes are no longer held, or after 20 s.
    async fn wait_while_writes_held(&self) {
        self.wait_while(|state| state.held.writes, |state| &mut state.writes_waiting).await;
    }

    /// Returns once syncs are no longer paused, or after 20 s.
    async fn wait_while_syncs_paused(&self) {
        self.wait_while(|state| state.held.syncs, |state| &mut state.syncs_waiting).await;
    }

    /// Waits while `held` says so (at most 20 s), counted meanwhile in `waiting`.
    async fn wait_while(&self, held: fn(&FaultState) -> bool, waiting: fn(&mut FaultState) -> &mut u64) {
        if !held(&self.controller.lock()) {
            return;
        }
        *waiting(&mut self.controller.lock()) += 1;
        for _ in 0..20_000 {
            if !held(&self.controller.lock()) {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        *waiting(&mut self.controller.lock()) -= 1;
    }

    /// `ENOSPC` if the disk is full and the file holds no space up to `end`.
    fn check_room(&self, end: u64, what: &str) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        if !self.controller.lock().disk_full {
            return Ok(());
        }
        let held = std::fs::metadata(self.current_path())?.blocks() * 512;
        if end <= held {
            return Ok(());
        }
        self.controller.lock().counts.out_of_space += 1;
        Err(io::Error::new(io::ErrorKind::StorageFull, format!("injected ENOSPC: {what}")))
    }

    /// The faults of one read of `length` bytes: an injected short read (an error), or which
    /// bit to flip in what comes back.
    fn roll_read_faults(&self, length: usize) -> io::Result<Option<u64>> {
        let mut state = self.controller.lock();
        if state.crashed {
            return Err(eio("read after crash"));
        }
        let flip = state.roll(Fault::ReadBitFlip) && length > 0;
        let short = state.roll(Fault::ShortRead);
        if flip {
            state.counts.read_bit_flips += 1;
        }
        // Drawn even for a short read, so a seed replays the same faults.
        let bit = state.below(length as u64 * 8);
        if short {
            state.counts.short_reads += 1;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "injected short read"));
        }
        Ok(flip.then_some(bit))
    }
}

impl StorageFile for FaultyFile {
    async fn write_blocks(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
        self.wait_while_writes_held().await;
        if let Err(error) = self.check_room(offset + buffer.len() as u64, "write") {
            return (Err(error), buffer);
        }
        let crash_now = {
            let mut state = self.controller.lock();
            if state.crashed {
                return (Err(eio("write after crash")), buffer);
            }
            if state.roll(Fault::WriteError) {
                state.counts.write_errors += 1;
                return (Err(eio("write")), buffer);
            }
            match state.writes_until_crash {
                Some(0) => true,
                Some(remaining) => {
                    state.writes_until_crash = Some(remaining - 1);
                    false
                }
                None => false,
            }
        };
        let path = self.current_path();
        let replaced = match replaced_bytes(&path, offset, buffer.len()) {
            Ok(replaced) => replaced,
            Err(error) => return (Err(error), buffer),
        };
        let written_bytes = buffer.len();
        let range = (offset, offset + written_bytes as u64);
        {
            let mut state = self.controller.lock();
            let writing = state.writing.entry(path.clone()).or_default();
            let overlaps = writing.iter().any(|&(start, end)| start < range.1 && range.0 < end);
            writing.push(range);
            if overlaps {
                state.counts.overlapping_writes += 1;
            }
        }
        let (result, buffer) = self.inner.write_blocks(buffer, offset).await;
        {
            let mut state = self.controller.lock();
            if let Some(writing) = state.writing.get_mut(&path)
                && let Some(position) = writing.iter().position(|&other| other == range)
            {
                writing.swap_remove(position);
            }
        }
        if result.is_ok() {
            let mut state = self.controller.lock();
            let id = state.next_write_id;
            state.next_write_id += 1;
            let write = UnsyncedWrite { id, offset, replaced, written_bytes };
            state.unsynced.entry(path).or_default().push(write);
            if crash_now {
                state.crashed = true;
                state.counts.crashes += 1;
                return (Err(eio("crash during write")), buffer);
            }
        }
        (result, buffer)
    }

    async fn read_exact(&self, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        let flip = self.roll_read_faults(length)?;
        let mut bytes = self.inner.read_exact(offset, length).await?;
        if let Some(bit) = flip {
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        Ok(bytes)
    }

    async fn read_whole(&self, buffer: BlockBuffer) -> (io::Result<()>, BlockBuffer) {
        let length = match self.inner.size().await {
            Ok(size) => usize::try_from(size).unwrap_or(usize::MAX),
            Err(error) => return (Err(error), buffer),
        };
        let flip = match self.roll_read_faults(length) {
            Ok(flip) => flip,
            Err(error) => return (Err(error), buffer),
        };
        let (result, mut buffer) = self.inner.read_whole(buffer).await;
        if result.is_ok()
            && let Some(bit) = flip
            && let Some(byte) = buffer.as_mut_slice().get_mut((bit / 8) as usize)
        {
            *byte ^= 1 << (bit % 8);
        }
        (result, buffer)
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.wait_while_syncs_paused().await;
        // Writes completed before the sync was issued: the only ones it vouches for (a write
        // that completes while the sync runs may or may not be durable, so it stays unsynced).
        let (covered, held) = {
            let mut state = self.controller.lock();
            if state.crashed {
                return Err(eio("sync after crash"));
            }
            // A failed fsync leaves the writes' fate unknown: they stay unsynced.
            if state.roll(Fault::SyncError) {
                state.counts.sync_errors += 1;
                return Err(eio("fsync"));
            }
            let covered: Vec<u64> = state
                .unsynced
                .get(&self.current_path())
                .map(|writes| writes.iter().map(|write| write.id).collect())
                .unwrap_or_default();
            (covered, state.held.syncs_until_crash)
        };
        if held {
            self.wait_for_crash().await;
            return Err(eio("sync interrupted by a crash"));
        }
        self.inner.sync_data().await?;
        let mut state = self.controller.lock();
        if state.crashed {
            // The power failed while the sync ran: it never returned, and vouches for nothing.
            return Err(eio("sync interrupted by a crash"));
        }
        let path = self.current_path();
        if let Some(writes) = state.unsynced.get_mut(&path) {
            // By id, not by count: another sync may have drained some of them meanwhile, and
            // writes completed since this one began are not its to vouch for.
            writes.retain(|write| !covered.contains(&write.id));
            if writes.is_empty() {
                state.unsynced.remove(&path);
            }
        }
        Ok(())
    }

    async fn preallocate(&self, length: u64) -> io::Result<()> {
        self.check_alive("preallocate")?;
        self.check_room(length, "preallocate")?;
        self.inner.preallocate(length).await
    }

    async fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        self.check_alive("seek")?;
        self.inner.next_data(offset).await
    }

    async fn zero_range(&self, offset: u64, length: u64) -> io::Result<()> {
        self.check_alive("zero range")?;
        self.inner.zero_range(offset, length).await
    }

    async fn set_len(&self, length: u64) -> io::Result<()> {
        self.check_alive("set length")?;
        self.inner.set_len(length).await
    }

    async fn size(&self) -> io::Result<u64> {
        self.check_alive("size")?;
        self.inner.size().await
    }
}
