//! Reads a segment back, frame by frame, and classifies how it ends.
//!
//! A sealed segment must end with a footer whose digest matches; anything else wrong in it is
//! corruption. The active (last) segment may end in a torn tail: a short or bad frame with
//! nothing after it that proves it durable, which is what a crash during a commit leaves and is
//! safe to cut (that commit was never acknowledged). Damage that a later commit proves durable
//! is corruption: acknowledged data was damaged, and it is reported, never skipped.
//!
//! Commits overlap on disk (format version 3): a commit's writes may begin before the commits
//! ahead of it are durable, so after a crash any of the commits in flight may be torn, in any
//! order, and complete ones may follow torn ones. Each commit's first frame says how far the
//! log was durable when its writes began (its durable gap): the log before
//! `start − gap × 64 KiB` was synced. What proves damage to acknowledged data is a *later*
//! commit whose claim reaches past the end of the last complete commit; later commits that
//! claim less were in flight with the damaged one, never acknowledged, and are cut with it. A
//! version 2 segment's commits carry no gap: each vouches for everything before it. Damage no
//! later commit vouches for cannot be told apart from a torn write and is cut (docs/format.md,
//! "Recovery").

use std::io;

use super::OpenLog;
use crate::format::{
    BLOCK_BYTES, CrcSeed, DURABLE_GAP_UNIT_BYTES, FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES, FrameDecode, FrameHeader,
    Record, RecordKind, SEGMENT_HEADER_BYTES, SegmentDigest, SegmentHeader, SegmentHeaderError, commit_durable_gap,
    decode_frame, decode_frame_for_aead, frame_extent, skip_block_gap,
};
use crate::io::StorageFile;

/// How much of a segment is read at a time during a scan.
const SCAN_CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// A scan lets other tasks run after about this many bytes of frames: the scans that run on a
/// shard's thread beside its requests (compaction's check of a victim, the scrub) would
/// otherwise check a whole chunk at a time (several ms of CRC and AEAD work) while requests
/// wait. One wake per MiB costs nothing a scan would notice.
const SCAN_YIELD_BYTES: u64 = 1024 * 1024;

#[derive(Debug)]
pub struct ScannedFrame {
    pub header: FrameHeader,
    pub offset: u64,
    pub frame_bytes: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub enum ScanEnd {
    /// A sealed segment. `untrimmed_end` is set when only zeroes follow the footer (or, from
    /// format 6, anything: a reused file's earlier bytes): a crash came between writing the
    /// footer and trimming the file; trim it there.
    Sealed { record_count: u64, untrimmed_end: Option<u64> },
    /// The active segment: appending resumes at the end of its last complete commit, as `log`
    /// says. `torn` gives the reason when torn commits follow it (cut on resume).
    Open { log: Box<OpenLog>, torn: Option<String> },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("reading segment {segment_id}: {source}")]
    Io { segment_id: u64, source: io::Error },
    #[error("segment {segment_id} header: {source}")]
    Header { segment_id: u64, source: SegmentHeaderError },
    #[error("segment {segment_id} is corrupt at offset {offset}: {reason}")]
    Corrupt { segment_id: u64, offset: u64, reason: String },
    #[error("replaying segment {segment_id} at offset {offset}: {reason}")]
    Replay { segment_id: u64, offset: u64, reason: String },
}

/// Where a scan begins: the first record, or the end of a commit a checkpoint covers (the frames
/// before it are then only digested, for the footer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanStart {
    pub offset: u64,
    pub record_count: u64,
}

impl ScanStart {
    pub const BEGINNING: Self = Self { offset: BLOCK_BYTES as u64, record_count: 0 };
}

/// Scans a segment from `start`, handing every record frame (footer excluded) to `on_frame`.
/// `is_last` says whether this is the active segment (which may be unsealed or torn).
pub async fn scan_segment<F: StorageFile>(
    file: &F,
    segment_id: u64,
    is_last: bool,
    start: ScanStart,
    mut on_frame: impl FnMut(ScannedFrame) -> Result<(), String>,
) -> Result<ScanEnd, ScanError> {
    let io_error = |source| ScanError::Io { segment_id, source };
    let corrupt = |offset: u64, reason: String| ScanError::Corrupt { segment_id, offset, reason };
    let file_length = file.size().await.map_err(io_error)?;
    let mut reader = ChunkReader { file, file_length, buffer: Vec::new(), buffer_offset: 0 };

    let (header, mut digest) = check_header_and_digest_prefix(&mut reader, segment_id, start).await?;
    let seed = header.crc_seed();
    let mut offset = start.offset;
    // Frames are handed on only once their commit is complete: a crash must never leave half
    // of a commit (say, an account without its INBOX) visible.
    let mut committed = Committed { log_end: offset, digest: digest.clone(), record_count: start.record_count };
    let mut pending: Vec<ScannedFrame> = Vec::new();
    let mut yielded_at = offset;
    loop {
        if offset >= yielded_at + SCAN_YIELD_BYTES {
            crate::io::yield_now().await;
            yielded_at = offset;
        }
        fill_for_frame(&mut reader, offset).await.map_err(io_error)?;
        let decoded = decode_frame(reader.bytes_at(offset), seed);
        let problem = match decoded {
            Ok(FrameDecode::Frame(frame)) if frame.header.kind == RecordKind::SegmentSealed as u8 => {
                if !pending.is_empty() {
                    return Err(corrupt(offset, "footer follows an incomplete commit".into()));
                }
                let frame_end = offset + frame.encoded_bytes as u64;
                let record_count = committed.record_count;
                check_footer(frame.payload, offset, record_count, &committed.digest)
                    .map_err(|reason| corrupt(offset, reason))?;
                return after_footer(&mut reader, &header, frame_end, record_count).await;
            }
            Ok(FrameDecode::Frame(frame)) => {
                let frame_bytes = frame.encoded_bytes;
                digest.add_frame(reader.bytes_at(offset));
                pending.push(ScannedFrame {
                    header: frame.header,
                    offset,
                    frame_bytes: frame_bytes as u32,
                    payload: frame.payload.to_vec(),
                });
                offset += frame_bytes as u64;
                if frame.header.is_commit_end() {
                    committed.record_count += pending.len() as u64;
                    committed.log_end = offset;
                    committed.digest = digest.clone();
                    for scanned in pending.drain(..) {
                        let at = scanned.offset;
                        on_frame(scanned).map_err(|reason| ScanError::Replay { segment_id, offset: at, reason })?;
                    }
                }
                continue;
            }
            Ok(FrameDecode::End) if pending.is_empty() && header.allows_block_gaps() => {
                match commit_after_block_gap(&mut reader, offset).await.map_err(io_error)? {
                    Some(next_commit) => {
                        offset = next_commit;
                        continue;
                    }
                    None => None,
                }
            }
            Ok(FrameDecode::End) => None,
            Ok(FrameDecode::NeedsMoreData { .. }) if offset >= file_length => None,
            Ok(FrameDecode::NeedsMoreData { .. }) => Some("frame cut short by the end of the file".to_owned()),
            Err(error) => Some(error.to_string()),
        };
        let problem = match (problem, pending.is_empty()) {
            (None, true) => None,
            (None, false) => Some(format!("last commit incomplete ({} frames without a commit end)", pending.len())),
            (Some(reason), _) => Some(reason),
        };
        if !is_last {
            let reason = problem.unwrap_or_else(|| "sealed segment has no footer".to_owned());
            return Err(corrupt(offset, reason));
        }
        // An early end (zeros) is checked too: a lost write reads back as zeros. A later commit
        // proves damage only if it vouches for bytes of the first commit the scan could not
        // complete, so its claim is measured against where that commit starts: after a block gap
        // that is the next block boundary, not the end of the last complete commit (a commit
        // planned while the damaged one was the oldest in flight vouches exactly up to its start).
        let first_incomplete = match pending.first() {
            Some(frame) => frame.offset,
            None if header.allows_block_gaps() => {
                block_gap_end(&mut reader, committed.log_end).await.map_err(io_error)?
            }
            None => committed.log_end,
        };
        let vouching =
            find_commit_vouching_past(&mut reader, seed, offset, first_incomplete).await.map_err(io_error)?;
        if let Some(start) = vouching {
            let reason = problem.unwrap_or_else(|| "the log ends early".to_owned());
            return Err(corrupt(offset, format!("{reason}; a later commit starts at offset {start}")));
        }
        let log_end = committed.log_end;
        let tail_start = log_end / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        reader.fill(tail_start, (log_end - tail_start) as usize).await.map_err(io_error)?;
        let tail_block = reader.bytes_at(tail_start)[..(log_end - tail_start) as usize].to_vec();
        // From format 6 the file may be a reused one, whose earlier segment's bytes follow the
        // log and read as damage: where no commit was under way that is the log's end, as zeros
        // are. (So is a lost or torn commit whose first frame did not survive, which then goes
        // without the torn-tail warning; a later commit vouching past it was looked for above.)
        let torn = problem.filter(|_| !(pending.is_empty() && header.may_be_in_a_reused_file()));
        let Committed { digest, record_count, .. } = committed;
        let log = OpenLog { segment_id, log_end, digest, tail_block, record_count, header };
        return Ok(ScanEnd::Open { log: Box::new(log), torn });
    }
}

/// How a sealed segment whose footer ends at `frame_end` ends: there, or with bytes after it
/// that a crash between writing the footer and trimming the file left (zeros of the
/// preallocation; from format 6, also a reused file's earlier bytes: nothing a segment writes
/// lies past its footer), to be trimmed. Anything else after it is corruption.
async fn after_footer<F: StorageFile>(
    reader: &mut ChunkReader<'_, F>,
    header: &SegmentHeader,
    frame_end: u64,
    record_count: u64,
) -> Result<ScanEnd, ScanError> {
    let file_length = reader.file_length;
    if frame_end == file_length {
        return Ok(ScanEnd::Sealed { record_count, untrimmed_end: None });
    }
    let segment_id = header.segment_id;
    let trimmable = header.may_be_in_a_reused_file()
        || only_zeroes_after(reader, frame_end).await.map_err(|source| ScanError::Io { segment_id, source })?;
    if !trimmable {
        let reason = format!("{} bytes follow the footer", file_length - frame_end);
        return Err(ScanError::Corrupt { segment_id, offset: frame_end, reason });
    }
    Ok(ScanEnd::Sealed { record_count, untrimmed_end: Some(frame_end) })
}

/// Checks the header block and digests the frames before `start` (for the footer); returns
/// the header and the digest so far. Those frames are walked by their headers only: the
/// checkpoint vouches for them, and an open that uses a checkpoint must not pay for checking
/// what it covers (damage there is found by the next full scan, or the backup verify, since
/// the CRCs do not match).
async fn check_header_and_digest_prefix<F: StorageFile>(
    reader: &mut ChunkReader<'_, F>,
    segment_id: u64,
    start: ScanStart,
) -> Result<(SegmentHeader, SegmentDigest), ScanError> {
    let io_error = |source| ScanError::Io { segment_id, source };
    let corrupt = |offset: u64, reason: String| ScanError::Corrupt { segment_id, offset, reason };
    reader.fill(0, BLOCK_BYTES).await.map_err(io_error)?;
    let header =
        SegmentHeader::decode(reader.bytes_at(0)).map_err(|source| ScanError::Header { segment_id, source })?;
    if header.segment_id != segment_id {
        return Err(corrupt(0, format!("header names segment {}", header.segment_id)));
    }
    if reader.bytes_at(0).get(SEGMENT_HEADER_BYTES..BLOCK_BYTES).is_none_or(|rest| rest.iter().any(|b| *b != 0)) {
        return Err(corrupt(0, "header block is short or not zero-padded".into()));
    }
    if start.offset > reader.file_length {
        let reason = format!("the checkpoint's offset {} lies past the end of the file", start.offset);
        return Err(corrupt(reader.file_length, reason));
    }
    let mut digest = SegmentDigest::new(&reader.bytes_at(0)[..BLOCK_BYTES]);
    let mut offset = BLOCK_BYTES as u64;
    while offset < start.offset {
        if reader.bytes_at(offset).len() < FRAME_HEADER_BYTES {
            reader.fill(offset, SCAN_CHUNK_BYTES.min((start.offset - offset) as usize)).await.map_err(io_error)?;
        }
        let after_gap = skip_block_gap(reader.bytes_at(offset), offset);
        if after_gap != offset && header.allows_block_gaps() {
            offset = after_gap;
            continue;
        }
        let Some(frame_bytes) = frame_extent(reader.bytes_at(offset)) else {
            return Err(corrupt(offset, format!("no frame here, before the checkpoint's offset {}", start.offset)));
        };
        digest.add_frame(reader.bytes_at(offset));
        offset += frame_bytes as u64;
    }
    if offset != start.offset {
        return Err(corrupt(offset, format!("no frame starts at the checkpoint's offset {}", start.offset)));
    }
    Ok((header, digest))
}

/// Reads as much of the file at `offset` as decoding the frame there needs.
async fn fill_for_frame<F: StorageFile>(reader: &mut ChunkReader<'_, F>, offset: u64) -> io::Result<()> {
    // Only the frame's extent matters here; its CRC is checked once it is all in the window.
    while let Ok(FrameDecode::NeedsMoreData { bytes_needed }) = decode_frame_for_aead(reader.bytes_at(offset)) {
        if !reader.can_grow(offset, bytes_needed) {
            break;
        }
        reader.fill(offset, bytes_needed.max(SCAN_CHUNK_BYTES)).await?;
    }
    Ok(())
}

/// Where the log goes on after the complete commit that ends at `offset`, where no frame starts
/// (format version 4 on): the next block boundary, if every byte up to it is zero and a frame
/// begins there (a commit planned while this one was in flight, started on a fresh block).
/// `None`: the log ends at `offset`, or what follows is damage for the caller to judge.
async fn commit_after_block_gap<F: StorageFile>(
    reader: &mut ChunkReader<'_, F>,
    offset: u64,
) -> io::Result<Option<u64>> {
    let boundary = offset.next_multiple_of(BLOCK_BYTES as u64);
    let gap = (boundary - offset) as usize;
    if gap == 0 || boundary + 4 > reader.file_length {
        return Ok(None);
    }
    if !reader.contains(offset, gap + 4) {
        reader.fill(offset, SCAN_CHUNK_BYTES).await?;
    }
    let window = reader.bytes_at(offset);
    let zeros_to_boundary = window[..gap].iter().all(|byte| *byte == 0);
    let frame_at_boundary = window[gap..gap + 4] != [0; 4];
    Ok((zeros_to_boundary && frame_at_boundary).then_some(boundary))
}

/// Where a commit after the one ending at `log_end` may have started (format version 4 on): the
/// next block boundary if only zeros lie between (a block gap, whether or not a frame's magic
/// survived there), else `log_end`.
async fn block_gap_end<F: StorageFile>(reader: &mut ChunkReader<'_, F>, log_end: u64) -> io::Result<u64> {
    let boundary = log_end.next_multiple_of(BLOCK_BYTES as u64);
    let gap = (boundary - log_end) as usize;
    if gap == 0 || boundary > reader.file_length {
        return Ok(log_end);
    }
    if !reader.contains(log_end, gap) {
        reader.fill(log_end, SCAN_CHUNK_BYTES).await?;
    }
    let zeros = reader.bytes_at(log_end).get(..gap).is_some_and(|bytes| bytes.iter().all(|byte| *byte == 0));
    Ok(if zeros { boundary } else { log_end })
}

/// The scan's state at the end of the last complete commit.
struct Committed {
    log_end: u64,
    digest: SegmentDigest,
    record_count: u64,
}

fn check_footer(payload: &[u8], offset: u64, record_count: u64, digest: &SegmentDigest) -> Result<(), String> {
    let Ok(Record::SegmentSealed { record_count: sealed_count, records_end, digest: sealed_digest }) =
        Record::decode(RecordKind::SegmentSealed, payload.to_vec())
    else {
        return Err("footer does not decode".into());
    };
    if records_end != offset || sealed_count != record_count {
        return Err(format!(
            "footer says {sealed_count} records ending at {records_end}, found {record_count} ending at {offset}"
        ));
    }
    if digest.finalize() != sealed_digest {
        return Err("segment digest does not match its footer".into());
    }
    Ok(())
}

async fn only_zeroes_after<F: StorageFile>(reader: &mut ChunkReader<'_, F>, from: u64) -> io::Result<bool> {
    let mut offset = from;
    while offset < reader.file_length {
        let Some(data) = reader.file.next_data(offset).await? else { return Ok(true) };
        offset = offset.max(data);
        if offset >= reader.file_length {
            break;
        }
        reader.fill(offset, SCAN_CHUNK_BYTES).await?;
        let window = reader.bytes_at(offset);
        if window.iter().any(|byte| *byte != 0) {
            return Ok(false);
        }
        offset += window.len().max(1) as u64;
    }
    Ok(true)
}

/// Looks past `from` for a valid frame that starts a commit and vouches for the log beyond
/// `durable_end` (where the first commit the scan could not complete starts): proof that
/// acknowledged data was lost where the log stopped making sense. A commit vouches for the log
/// up to its start minus its durable gap; one that claims less was in flight with the damage
/// and is cut with it.
async fn find_commit_vouching_past<F: StorageFile>(
    reader: &mut ChunkReader<'_, F>,
    seed: CrcSeed,
    from: u64,
    durable_end: u64,
) -> io::Result<Option<u64>> {
    let align = FRAME_ALIGN_BYTES as u64;
    let mut offset = from + align;
    while offset < reader.file_length {
        if !reader.contains(offset, FRAME_HEADER_BYTES) {
            reader.fill(offset, SCAN_CHUNK_BYTES).await?;
        }
        let window = reader.bytes_at(offset);
        // A frame starts with a non-zero magic: jump over zero runs (preallocated space) at once.
        match window.iter().position(|byte| *byte != 0) {
            None => {
                offset += (window.len() as u64 / align * align).max(align);
                // Preallocated space the file system knows is empty: skip it unread.
                match reader.file.next_data(offset).await? {
                    Some(data) => offset = offset.max(data / align * align),
                    None => return Ok(None),
                }
                continue;
            }
            Some(first) if first >= FRAME_ALIGN_BYTES => {
                offset += first as u64 / align * align;
                continue;
            }
            Some(_) => {}
        }
        let vouched_end = loop {
            match decode_frame(reader.bytes_at(offset), seed) {
                Ok(FrameDecode::Frame(frame)) if frame.header.is_commit_start() => {
                    let gap = u64::from(commit_durable_gap(reader.bytes_at(offset))) * DURABLE_GAP_UNIT_BYTES;
                    break Some(offset.saturating_sub(gap));
                }
                Ok(FrameDecode::NeedsMoreData { bytes_needed }) if reader.can_grow(offset, bytes_needed) => {
                    reader.fill(offset, bytes_needed).await?;
                }
                _ => break None,
            }
        };
        let vouches_past_durable_end = vouched_end.is_some_and(|vouched_end| vouched_end > durable_end);
        if vouches_past_durable_end {
            return Ok(Some(offset));
        }
        offset += align;
    }
    Ok(None)
}

/// A window of the file in memory, refilled as the scan moves forward.
struct ChunkReader<'a, F> {
    file: &'a F,
    file_length: u64,
    buffer: Vec<u8>,
    buffer_offset: u64,
}

impl<F: StorageFile> ChunkReader<'_, F> {
    fn bytes_at(&self, offset: u64) -> &[u8] {
        offset.checked_sub(self.buffer_offset).and_then(|start| self.buffer.get(start as usize..)).unwrap_or_default()
    }

    fn contains(&self, offset: u64, length: usize) -> bool {
        self.bytes_at(offset).len() >= length
    }

    /// Whether the file holds `length` bytes at `offset` that the window does not yet.
    fn can_grow(&self, offset: u64, length: usize) -> bool {
        !self.contains(offset, length) && offset + length as u64 <= self.file_length
    }

    /// Makes the window start at `offset` and hold `length` bytes (or up to the file's end; an
    /// offset at or past the end gives an empty window, never a read error: frame lengths come
    /// from the file and may point anywhere).
    async fn fill(&mut self, offset: u64, length: usize) -> io::Result<()> {
        let end = (offset + length as u64).min(self.file_length);
        let length = end.saturating_sub(offset) as usize;
        self.buffer = if length == 0 { Vec::new() } else { self.file.read_exact(offset, length).await? };
        self.buffer_offset = offset;
        Ok(())
    }
}
