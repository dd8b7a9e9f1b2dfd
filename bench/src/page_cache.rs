//! Keeps a store's files out of the page cache, so that random reads measure the disk.
//!
//! The engine reads message bodies O_DIRECT, as fio's random reads do, but falls back to a
//! buffered descriptor where direct IO is refused (tmpfs) or comes up short; without eviction,
//! such reads over a store smaller than memory would soon measure RAM. Evicting keeps both
//! sides on the disk whatever path a read takes (session 11: with and without the evictor, the
//! engine's fetch rate was the same). `posix_fadvise(DONTNEED)` drops the clean cached pages
//! of a file from any descriptor of it; no privileges needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Drops the cached pages of every file under `directory`; returns how many files it visited.
pub fn evict(directory: &Path) -> std::io::Result<usize> {
    let mut files = 0;
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            files += evict(&path)?;
        } else if let Ok(file) = std::fs::File::open(&path) {
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
            files += 1;
        }
    }
    Ok(files)
}

/// A thread evicting a directory's files every `interval` until dropped.
#[derive(Debug)]
pub struct Evictor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Evictor {
    pub fn start(directory: PathBuf, interval: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name("page-cache-evictor".to_owned()).spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let _ = evict(&directory);
                std::thread::sleep(interval);
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Evictor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
