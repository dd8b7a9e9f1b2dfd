//! A directory target's copy of a local segment (and a file's digest alone, for verify level
//! 1): the segment's frames checked as the engine's recovery checks a sealed segment while it is
//! copied, O_DIRECT reads and writes through io_uring (compio) with several chunks in flight
//! each way (`ReadAheadFile`), hashed with BLAKE3 in file order on the way through, written to
//! a temporary name beside the destination, fsynced, renamed, directory fsynced (the
//! all-or-nothing object `LocalFileSystem` would write, without its per-part overhead).
//!
//! Why check frames here: sealed segments are copied once and never read again by later runs,
//! so a segment damaged on the store's disk before its first copy went into every backup from
//! then on, found only by `verify --level 2` or by a repair that then failed (docs/backups.md
//! §3). The scan reads the bytes the copy needs anyway, so the check costs CPU, not reads.
//!
//! Why not two threads with blocking reads and writes (as before session 6): one read and one
//! write in flight copied at 260–420 MB/s here, io_uring at 520–820 (1 GiB, page cache
//! dropped). A buffered read that misses the cache reaches about 630 MB/s on this disk, an
//! O_DIRECT one at queue depth 1 about 1000, at depth 4 about 1400. What remains is the writes'
//! block allocation: the same copy over an existing file's blocks ran at 1000 MB/s (ext4
//! serializes writes that extend a file; preallocating with fallocate did not help measurably).

use std::io;
use std::path::Path;
use std::rc::Rc;

use compio::BufResult;
use compio::buf::{IntoInner as _, IoBuf as _};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAt as _, AsyncWriteAtExt as _};
use indicatif::ProgressBar;
use mailvault_engine::format::{BLOCK_BYTES, align_up};
use mailvault_engine::io::BlockBuffer;
use mailvault_engine::segment::{ScanError, ScanStart, scan_segment};

use crate::error::BackupError;
use crate::objects::Fingerprint;
use crate::read_ahead::ReadAheadFile;

/// What a checked copy of a segment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegmentCopy {
    /// The copy is in place, every frame checked: its size and digest, and its frame count.
    Whole { fingerprint: Fingerprint, frames: u64 },
    /// The source does not exist (compaction removed it).
    Vanished,
    /// The source's frames fail the check (where, and what): nothing is left at the destination.
    Damaged(String),
}

/// Copies segment `segment_id` (sealed) from `source` to `destination` (replacing it), checking
/// every frame on the way. Runs on the caller's compio runtime.
pub(crate) async fn copy_segment(
    source: &Path,
    destination: &Path,
    segment_id: u64,
    bar: &ProgressBar,
) -> Result<SegmentCopy, BackupError> {
    let what = format!("copying {} to {}", source.display(), destination.display());
    let directory = directory_of(destination);
    std::fs::create_dir_all(directory).map_err(BackupError::io(what.clone()))?;
    let temporary = destination.with_extension("seg.partial");
    let copied = async {
        let input = match ReadAheadFile::open(source, true).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(SegmentCopy::Vanished),
            Err(error) => return Err(BackupError::io(what.clone())(error)),
        };
        let output = Rc::new(open(&temporary, true).await.map_err(BackupError::io(what.clone()))?);
        let input = input.copying_to(Rc::clone(&output));
        let mut frames = 0u64;
        let scanned = scan_segment(&input, segment_id, false, ScanStart::BEGINNING, |_| {
            frames += 1;
            Ok(())
        })
        .await;
        match scanned {
            Ok(_) => {}
            Err(ScanError::Io { source, .. }) => return Err(BackupError::io(what.clone())(source)),
            // Said as verify level 2 says it: "segment N is corrupt at offset O: what".
            Err(error) => return Ok(SegmentCopy::Damaged(error.to_string())),
        }
        let digest = input.finish().await.map_err(BackupError::io(what.clone()))?;
        let digest = digest.ok_or_else(|| BackupError::Invalid(format!("{what}: no digest was taken")))?;
        let size = input.file_size();
        bar.inc(size);
        // The last chunk was written padded to a whole block (O_DIRECT): cut it back.
        output.set_len(size).await.map_err(BackupError::io(what.clone()))?;
        output.sync_all().await.map_err(BackupError::io(what.clone()))?;
        Ok(SegmentCopy::Whole { fingerprint: Fingerprint { size, digest }, frames })
    }
    .await;
    if !matches!(copied, Ok(SegmentCopy::Whole { .. })) {
        // A failed or refused copy leaves nothing behind (the next run would overwrite it, but
        // an operator looking at the target should not find half a segment).
        let _ = std::fs::remove_file(&temporary);
        return copied;
    }
    std::fs::rename(&temporary, destination).map_err(BackupError::io(what.clone()))?;
    std::fs::File::open(directory).and_then(|directory| directory.sync_all()).map_err(BackupError::io(what))?;
    copied
}

/// The directory `path` is in: for a bare file name, `.` (not the empty path, which no
/// directory fsync can open).
fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Size and BLAKE3 digest of a local file, read ahead as verify level 2 reads it; `None` if
/// it does not exist. Runs on the caller's compio runtime.
pub(crate) async fn hash_local_file(path: &Path, bar: &ProgressBar) -> Result<Option<Fingerprint>, BackupError> {
    let what = || format!("reading {}", path.display());
    let file = match ReadAheadFile::open(path, true).await {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(BackupError::io(what())(error)),
    };
    let digest = file.finish().await.map_err(BackupError::io(what()))?;
    bar.inc(file.file_size());
    Ok(digest.map(|digest| Fingerprint { size: file.file_size(), digest }))
}

/// Opens `path` for reading, with O_DIRECT where the filesystem allows it.
pub(crate) async fn open_for_reading(path: &Path) -> io::Result<File> {
    open(path, false).await
}

/// Opens `path` with O_DIRECT where the filesystem allows it (not tmpfs): for reading, or
/// created (truncated) for writing.
async fn open(path: &Path, write: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    if write {
        options.write(true).create(true).truncate(true);
    } else {
        options.read(true);
    }
    let mut direct = options.clone();
    direct.custom_flags(rustix::fs::OFlags::DIRECT.bits().cast_signed());
    match direct.open(path).await {
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => options.open(path).await,
        other => other,
    }
}

/// Reads `length` bytes at `offset` (block-aligned) into `buffer`; an O_DIRECT read past the
/// end of a file whose size is not whole blocks comes back short, ending at the file's end.
pub(crate) async fn read_chunk(
    input: &File,
    buffer: BlockBuffer,
    offset: u64,
    length: usize,
) -> io::Result<(u64, BlockBuffer)> {
    let span = align_up(length, BLOCK_BYTES);
    let (mut storage, start, _) = reserve(buffer, span).into_parts();
    let mut filled = 0;
    while filled < length {
        let BufResult(result, slice) =
            input.read_at(storage.slice(start + filled..start + span), offset + filled as u64).await;
        storage = slice.into_inner();
        match result? {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was copied")),
            read => filled += read,
        }
    }
    Ok((offset, BlockBuffer::from_parts(storage, start, length)))
}

/// `buffer`, able to hold `length` bytes.
fn reserve(mut buffer: BlockBuffer, length: usize) -> BlockBuffer {
    if buffer.capacity() < length {
        buffer = BlockBuffer::with_capacity(length);
    }
    buffer
}

/// Writes `buffer` (whole blocks) at `offset`; gives the buffer back for the next read.
pub(crate) async fn write_chunk(output: &File, buffer: BlockBuffer, offset: u64) -> io::Result<BlockBuffer> {
    let mut output = output;
    let (storage, start, length) = buffer.into_parts();
    let BufResult(result, slice) = output.write_all_at(storage.slice(start..start + length), offset).await;
    result?;
    Ok(BlockBuffer::from_parts(slice.into_inner(), start, 0))
}

#[cfg(test)]
mod tests {
    use mailvault_engine::segment::segment_name;
    use mailvault_engine::{Engine, EngineConfig, Flags, block_on, init_store};
    use mailvault_hsm::testing::TestToken;

    use super::*;
    use crate::read_ahead::CHUNK_BYTES;

    /// Bytes per test message: three of them make a segment of several read chunks.
    const MESSAGE_BYTES: usize = 6 * 1024 * 1024;

    /// A one-shard store whose first segment is sealed after three 6 MiB appends (18 MiB: two
    /// whole read chunks and part of a third), and its second after one small append; their
    /// paths.
    fn store_with_a_large_and_a_small_sealed_segment(directory: &Path) -> [std::path::PathBuf; 2] {
        let token = TestToken::create_with_keys();
        let data_dir = directory.join("data");
        init_store(&data_dir, 1).expect("init");
        let mut config = EngineConfig::new(&data_dir);
        // No compaction: once the hold is released it could rewrite the small segment, whose
        // records are few and partly superseded, and remove its file before the test reads it
        // (about one run in six did).
        config.compaction_live_ratio = 0.0;
        let engine = Engine::open(&config, &token.hsm).expect("open");
        let sealed = block_on(async {
            engine.create_account("alice").await.expect("account");
            for number in 0..3u8 {
                let body = [b"Subject: large\r\n\r\n".as_slice(), &vec![b'a' + number; MESSAGE_BYTES]].concat();
                engine.append("alice", "INBOX", body, Flags::default(), None).await.expect("append");
            }
            engine.seal_active().await.expect("seal");
            engine
                .append("alice", "INBOX", b"Subject: small\r\n\r\n".to_vec(), Flags::default(), None)
                .await
                .expect("append");
            let sealed = engine.seal_active().await.expect("seal");
            engine.release_backup_hold().await.expect("release");
            sealed
        });
        let path = |segment_id: u64| data_dir.join("shard-000").join(segment_name(segment_id));
        match sealed[0].as_slice() {
            [large, small] => [path(*large), path(*small)],
            other => panic!("two sealed segments expected: {other:?}"),
        }
    }

    fn segment_id_of(path: &Path) -> u64 {
        let name = path.file_name().and_then(|name| name.to_str()).expect("segment name");
        mailvault_engine::segment::parse_segment_name(name).expect("a segment's name")
    }

    #[test]
    fn a_segment_of_several_chunks_is_copied_exactly_and_damage_anywhere_in_it_is_refused() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let [source, small] = store_with_a_large_and_a_small_sealed_segment(directory.path());
        let segment_id = segment_id_of(&source);
        let bytes = std::fs::read(&source).expect("read the segment");
        assert!(bytes.len() > 2 * CHUNK_BYTES && !bytes.len().is_multiple_of(CHUNK_BYTES), "{} bytes", bytes.len());
        let expected = Fingerprint { size: bytes.len() as u64, digest: *blake3::hash(&bytes).as_bytes() };

        let destination = directory.path().join("copies").join("copy.seg");
        let bar = ProgressBar::hidden();
        let copied = block_on(copy_segment(&source, &destination, segment_id, &bar)).expect("copy");
        let SegmentCopy::Whole { fingerprint, frames } = copied else { panic!("not copied: {copied:?}") };
        assert_eq!(fingerprint, expected);
        assert!(frames >= 4, "an account, its INBOX and three messages: {frames} frames");
        assert!(std::fs::read(&destination).expect("read the copy") == bytes, "the copy differs");
        assert!(!destination.with_extension("seg.partial").exists(), "the temporary was renamed");
        assert_eq!(block_on(hash_local_file(&destination, &bar)).expect("hash"), Some(expected));

        // One flipped bit in the first chunk, in the middle one, in the last (part) one, and
        // in the footer: each refused, and the earlier good copy left alone.
        for offset in [BLOCK_BYTES + 200, CHUNK_BYTES + 12_345, 2 * CHUNK_BYTES + 777, bytes.len() - 10] {
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x10;
            std::fs::write(&source, &damaged).expect("damage the segment");
            let copied = block_on(copy_segment(&source, &destination, segment_id, &bar)).expect("copy");
            assert!(
                matches!(&copied, SegmentCopy::Damaged(reason) if reason.contains("offset")),
                "{offset}: {copied:?}"
            );
            assert!(
                std::fs::read(&destination).expect("read the copy") == bytes,
                "{offset}: the good copy was replaced"
            );
            assert!(!destination.with_extension("seg.partial").exists(), "{offset}: a temporary was left");
        }

        // A smaller segment copied over the copy replaces it whole: no stale tail behind it.
        let small_bytes = std::fs::read(&small).expect("read the small segment");
        let copied = block_on(copy_segment(&small, &destination, segment_id_of(&small), &bar)).expect("copy");
        assert!(matches!(copied, SegmentCopy::Whole { .. }), "{copied:?}");
        assert!(std::fs::read(&destination).expect("read the copy") == small_bytes, "the copy differs");
    }

    /// A bare destination file name had the empty path for its directory, which the closing
    /// directory fsync could not open ("No such file or directory" after a complete copy).
    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("copy.seg")), Path::new("."));
        assert_eq!(directory_of(Path::new("segments/copy.seg")), Path::new("segments"));
        assert_eq!(directory_of(Path::new("/copy.seg")), Path::new("/"));
    }

    #[test]
    fn a_failed_or_refused_copy_leaves_no_temporary_behind() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let destination = directory.path().join("copies").join("copy.seg");
        let unreadable = directory.path().join("a-directory.seg");
        std::fs::create_dir(&unreadable).expect("create a directory");
        let failed = block_on(copy_segment(&unreadable, &destination, 1, &ProgressBar::hidden()));
        assert!(matches!(failed, Err(BackupError::Io { .. })), "{failed:?}");
        assert!(!destination.exists() && !destination.with_extension("seg.partial").exists());

        let not_a_segment = directory.path().join("not-a-segment.seg");
        std::fs::write(&not_a_segment, vec![7u8; 3 * BLOCK_BYTES]).expect("write");
        let refused = block_on(copy_segment(&not_a_segment, &destination, 1, &ProgressBar::hidden())).expect("copy");
        assert!(matches!(refused, SegmentCopy::Damaged(_)), "{refused:?}");
        assert!(!destination.exists() && !destination.with_extension("seg.partial").exists());
    }

    #[test]
    fn a_missing_source_has_vanished_and_writes_nothing() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let bar = ProgressBar::hidden();
        let destination = directory.path().join("copy.seg");
        let gone = directory.path().join("gone.seg");
        assert_eq!(block_on(copy_segment(&gone, &destination, 1, &bar)).expect("copy"), SegmentCopy::Vanished);
        assert_eq!(block_on(hash_local_file(&gone, &bar)).expect("hash"), None);
        assert!(!destination.exists() && !destination.with_extension("seg.partial").exists());
    }
}
