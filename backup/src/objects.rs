//! Moving bytes to and from a target: whole small objects, and files streamed in chunks (a
//! segment is up to 256 MiB: never held whole in memory), hashed with BLAKE3 on the way.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use indicatif::ProgressBar;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::BackupError;
use crate::target::Target;

/// Files up to this size go up in one request; larger ones in parts of this size.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT_MAX: usize = 4;

/// A file's size and BLAKE3 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub size: u64,
    pub digest: [u8; 32],
}

pub(crate) async fn put_bytes(target: &Target, relative: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
    target.store.put(&target.path(relative), PutPayload::from(bytes)).await.map_err(target.error())?;
    Ok(())
}

/// The object's bytes, or `None` if it does not exist.
pub(crate) async fn get_bytes(target: &Target, relative: &str) -> Result<Option<Bytes>, BackupError> {
    match target.store.get(&target.path(relative)).await {
        Ok(result) => Ok(Some(result.bytes().await.map_err(target.error())?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(target.error()(error)),
    }
}

/// Objects under `relative_prefix`: (path relative to the target, size).
pub(crate) async fn list(target: &Target, relative_prefix: &str) -> Result<Vec<(String, u64)>, BackupError> {
    let prefix = target.path(relative_prefix);
    let mut listing = target.store.list(Some(&prefix));
    let mut objects = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(target.error())?;
        objects.push((target.relative(&meta.location).to_owned(), meta.size));
    }
    objects.sort();
    Ok(objects)
}

pub(crate) async fn delete(target: &Target, relative: &str) -> Result<(), BackupError> {
    match target.store.delete(&target.path(relative)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(target.error()(error)),
    }
}

/// Streams the local file at `source` to `relative` in an object store, returning its size
/// and digest; `None` if the file is gone (compaction removed it). (A directory target copies
/// with `local_copy` instead.)
pub(crate) async fn upload_file(
    target: &Target,
    relative: &str,
    source: &Path,
    bar: &ProgressBar,
) -> Result<Option<Fingerprint>, BackupError> {
    let what = || format!("reading {}", source.display());
    let mut file = match tokio::fs::File::open(source).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(BackupError::io(what())(error)),
    };
    let length = file.metadata().await.map_err(BackupError::io(what()))?.len();
    let mut hasher = blake3::Hasher::new();
    let location = target.path(relative);
    if length <= PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(length as usize);
        file.read_to_end(&mut bytes).await.map_err(BackupError::io(what()))?;
        hasher.update(&bytes);
        let size = bytes.len() as u64;
        target.store.put(&location, PutPayload::from(bytes)).await.map_err(target.error())?;
        bar.inc(size);
        return Ok(Some(Fingerprint { size, digest: *hasher.finalize().as_bytes() }));
    }
    let upload = target.store.put_multipart(&location).await.map_err(target.error())?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let mut size = 0u64;
    let mut buffer = vec![0; PART_BYTES];
    loop {
        let read = match file.read(&mut buffer).await {
            Ok(read) => read,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(BackupError::io(what())(error));
            }
        };
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT_MAX).await {
            let _ = writer.abort().await;
            return Err(target.error()(error));
        }
        writer.write(&buffer[..read]);
        size += read as u64;
        bar.inc(read as u64);
    }
    writer.finish().await.map_err(target.error())?;
    Ok(Some(Fingerprint { size, digest: *hasher.finalize().as_bytes() }))
}

/// Streams the object at `relative`, hashing it, and writing it to `into` if given; `None` if
/// it does not exist. (A directory target's file is hashed in place by `local_copy` instead.)
pub(crate) async fn fetch_object(
    target: &Target,
    relative: &str,
    into: Option<&Path>,
    bar: &ProgressBar,
) -> Result<Option<Fingerprint>, BackupError> {
    let result = match target.store.get(&target.path(relative)).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(target.error()(error)),
    };
    let mut file = match into {
        Some(path) => {
            let what = format!("writing {}", path.display());
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(BackupError::io(what.clone()))?;
            }
            Some((tokio::fs::File::create(path).await.map_err(BackupError::io(what.clone()))?, what))
        }
        None => None,
    };
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let mut stream = result.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(target.error())?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
        if let Some((file, what)) = &mut file {
            file.write_all(&chunk).await.map_err(BackupError::io(what.clone()))?;
        }
    }
    if let Some((mut file, what)) = file {
        file.flush().await.map_err(BackupError::io(what.clone()))?;
        file.sync_all().await.map_err(BackupError::io(what))?;
    }
    Ok(Some(Fingerprint { size, digest: *hasher.finalize().as_bytes() }))
}

/// A current-thread tokio runtime for one command's target IO.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, BackupError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BackupError::io("starting the tokio runtime for the backup target"))
}
