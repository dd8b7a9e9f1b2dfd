//! The store directory: a metadata file naming the format and shard count, and one directory
//! per shard. Written once by `init`, read by every open.
//!
//! ```text
//! <data dir>/store.meta            "mailvault-store 1\nshards N\n"
//! <data dir>/shard-000/0000000000000001.seg …
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::OpenError;

const METADATA_FILE: &str = "store.meta";
const METADATA_MAGIC: &str = "mailvault-store 1";
/// More shards than this is a configuration mistake, not a machine.
pub(crate) const SHARDS_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMetadata {
    pub shards: usize,
}

pub(crate) fn shard_directory(data_dir: &Path, shard_id: usize) -> PathBuf {
    data_dir.join(format!("shard-{shard_id:03}"))
}

fn bad(path: &Path, reason: impl Into<String>) -> OpenError {
    OpenError::BadStoreMetadata { path: path.display().to_string(), reason: reason.into() }
}

impl StoreMetadata {
    pub fn read(data_dir: &Path) -> Result<Self, OpenError> {
        let path = data_dir.join(METADATA_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::NotInitialized(data_dir.display().to_string()));
            }
            Err(error) => return Err(error.into()),
        };
        let mut lines = text.lines();
        if lines.next() != Some(METADATA_MAGIC) {
            return Err(bad(&path, "not a mailvault store, or a newer format"));
        }
        let shards = lines
            .next()
            .and_then(|line| line.strip_prefix("shards "))
            .and_then(|count| count.parse::<usize>().ok())
            .filter(|count| (1..=SHARDS_MAX).contains(count))
            .ok_or_else(|| bad(&path, "missing or invalid shard count"))?;
        Ok(Self { shards })
    }
}

/// Creates a store with `shards` shards, or checks that the existing one matches.
pub fn init_store(data_dir: &Path, shards: usize) -> Result<StoreMetadata, OpenError> {
    if !(1..=SHARDS_MAX).contains(&shards) {
        return Err(bad(data_dir, format!("shard count must be 1 to {SHARDS_MAX}")));
    }
    match StoreMetadata::read(data_dir) {
        Ok(existing) if existing.shards == shards => return Ok(existing),
        Ok(existing) => {
            return Err(bad(
                data_dir,
                format!("store has {} shards; changing the count is not supported yet", existing.shards),
            ));
        }
        Err(OpenError::NotInitialized(_)) => {}
        Err(error) => return Err(error),
    }
    fs::create_dir_all(data_dir)?;
    for shard_id in 0..shards {
        fs::create_dir_all(shard_directory(data_dir, shard_id))?;
    }
    let temporary = data_dir.join(format!("{METADATA_FILE}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    write!(file, "{METADATA_MAGIC}\nshards {shards}\n")?;
    file.sync_all()?;
    fs::rename(&temporary, data_dir.join(METADATA_FILE))?;
    fs::File::open(data_dir)?.sync_all()?;
    Ok(StoreMetadata { shards })
}
