//! Checkpoints: the shard's index and key table as of a commit boundary, so that opening a
//! store replays only the log written after it.
//!
//! ```text
//!  0 [u8; 8] magic "MVCKPT\0\0"   24 u64 log_end           48 u32 wrapped_key_length
//!  8 u32 format_version           32 u64 record_count      52 u64 body_length (plaintext)
//! 12 u32 shard_id                 40 u64 max_record_id     60 u32 crc32c of bytes 0..60
//! 16 u64 segment_id
//! 64 wrapped checkpoint key (HSM-wrapped, fresh for each checkpoint)
//!    AES-256-GCM(body) with nonce 0 (the key is used once) and the header's bytes 0..60 as
//!    associated data; zero padding to 4 KiB
//! ```
//! The body: the key table (count, then account id and wrapped key bytes) and the index
//! snapshot (`index::snapshot`). A checkpoint that fails any check is ignored with a warning:
//! the log is the truth, so the shard then replays everything.

use mailvault_hsm::{Dek, HsmSession, WrappedDek};

use crate::crypto::{KeyTable, RecordCipher, TAG_BYTES};
use crate::format::{BLOCK_BYTES, ByteReader, ByteWriter, FORMAT_VERSION, FORMAT_VERSION_READ_MIN, align_up};
use crate::index::Index;
use crate::io::{BlockBuffer, Storage, StorageFile};

use super::Shard;

pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINT_TEMPORARY_FILE: &str = "checkpoint.tmp";
const MAGIC: [u8; 8] = *b"MVCKPT\0\0";
const HEADER_BYTES: usize = 64;
const AUTHENTICATED_HEADER_BYTES: usize = 60;
/// Wrapped keys are a few dozen bytes; anything larger is damage.
const WRAPPED_KEY_BYTES_MAX: usize = 512;
const KEY_COUNT_MAX: u32 = 1 << 28;

/// Where replay resumes: the end of the last commit the checkpoint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointPosition {
    pub segment_id: u64,
    pub log_end: u64,
    /// Records in `segment_id` before `log_end` (for the segment's footer).
    pub record_count: u64,
    pub max_record_id: u64,
}

#[derive(Debug)]
pub(crate) struct LoadedCheckpoint {
    pub position: CheckpointPosition,
    pub index: Index,
    pub keys: KeyTable,
}

fn header_bytes(
    shard_id: u32,
    position: &CheckpointPosition,
    wrapped_length: usize,
    body_length: usize,
) -> [u8; HEADER_BYTES] {
    let mut header = [0; HEADER_BYTES];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&shard_id.to_le_bytes());
    header[16..24].copy_from_slice(&position.segment_id.to_le_bytes());
    header[24..32].copy_from_slice(&position.log_end.to_le_bytes());
    header[32..40].copy_from_slice(&position.record_count.to_le_bytes());
    header[40..48].copy_from_slice(&position.max_record_id.to_le_bytes());
    header[48..52].copy_from_slice(&(wrapped_length as u32).to_le_bytes());
    header[52..60].copy_from_slice(&(body_length as u64).to_le_bytes());
    let crc = crc32c::crc32c(&header[..AUTHENTICATED_HEADER_BYTES]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    header
}

/// A checkpoint encoded but not yet encrypted: the index's bytes in the clear, in memory only,
/// with the fresh key that will seal them. Its `Debug` shows neither.
pub(crate) struct UnsealedCheckpoint {
    storage: Vec<u8>,
    /// Where the file's bytes start in `storage` (a block-aligned address).
    start: usize,
    header: [u8; HEADER_BYTES],
    wrapped: Vec<u8>,
    dek: Dek,
}

impl std::fmt::Debug for UnsealedCheckpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("UnsealedCheckpoint").field("bytes", &self.storage.len()).finish_non_exhaustive()
    }
}

/// Encodes a checkpoint of `index` and `keys` as of `position`, under a fresh key from the HSM:
/// the part the shard waits for (the index must not change under it). Sealing it
/// ([`UnsealedCheckpoint::seal`]) and the write can go on elsewhere.
///
/// The file is built in one vector from a block-aligned offset: header and wrapped key first,
/// then the body encoded and sealed in place. `body_bytes_hint` (the last checkpoint's body)
/// sizes it, so that the body neither grows by doubling (a copy and fresh pages each time) nor
/// is copied into an aligned buffer at the end: those passes were a third of encoding a
/// checkpoint of 800k messages (bench/README.md, session 9). Also answers the body's length.
pub(crate) fn encode_checkpoint(
    hsm: &HsmSession,
    shard_id: u32,
    position: &CheckpointPosition,
    index: &Index,
    keys: &KeyTable,
    body_bytes_hint: usize,
) -> Result<(UnsealedCheckpoint, usize), String> {
    let dek = hsm.generate_dek().map_err(|error| error.to_string())?;
    let wrapped = hsm.wrap_dek(&dek).map_err(|error| error.to_string())?.to_bytes();
    let body_start = HEADER_BYTES + wrapped.len();
    let room = body_bytes_hint + body_bytes_hint / 8 + TAG_BYTES + 2 * BLOCK_BYTES;
    let mut storage = crate::io::vec_in_huge_pages(BLOCK_BYTES + body_start + room);
    let start = storage.as_ptr().align_offset(BLOCK_BYTES).min(BLOCK_BYTES);
    storage.resize(start + body_start, 0);

    let mut writer = ByteWriter::appending_to(storage);
    writer.u32(keys.len() as u32);
    for (account_id, wrapped) in keys.wrapped_keys() {
        writer.u64(account_id).bytes(&wrapped.to_bytes());
    }
    index.encode_snapshot(&mut writer);
    let storage = writer.into_inner();

    let body_length = storage.len() - start - body_start;
    let header = header_bytes(shard_id, position, wrapped.len(), body_length);
    Ok((UnsealedCheckpoint { storage, start, header, wrapped, dek }, body_length))
}

impl UnsealedCheckpoint {
    /// Encrypts the body in place and lays out the file: the bytes [`store_checkpoint`] writes.
    /// At two million messages this is about 25 ms of AES-GCM, which need not hold up the shard.
    pub(crate) fn seal(self) -> BlockBuffer {
        let Self { mut storage, start, header, wrapped, dek } = self;
        let body_start = HEADER_BYTES + wrapped.len();
        let cipher = RecordCipher::new(&dek);
        let tag = cipher.seal_with([0; 12], &header[..AUTHENTICATED_HEADER_BYTES], &mut storage[start + body_start..]);
        storage.extend_from_slice(&tag);
        storage[start..start + HEADER_BYTES].copy_from_slice(&header);
        storage[start + HEADER_BYTES..start + body_start].copy_from_slice(&wrapped);
        let padded = align_up(storage.len() - start, BLOCK_BYTES);
        storage.resize(start + padded, 0);
        BlockBuffer::adopt(storage, start, padded)
    }
}

/// Writes an encoded checkpoint atomically: a temporary file, synced, renamed over the old
/// one. One at a time per shard (they share the temporary file).
pub(crate) async fn store_checkpoint<S: Storage>(storage: &S, buffer: BlockBuffer) -> Result<(), String> {
    let io = |error: std::io::Error| format!("writing checkpoint: {error}");
    if storage.list().await.map_err(io)?.iter().any(|name| name == CHECKPOINT_TEMPORARY_FILE) {
        storage.remove(CHECKPOINT_TEMPORARY_FILE).await.map_err(io)?;
    }
    let file = storage.create(CHECKPOINT_TEMPORARY_FILE).await.map_err(io)?;
    let written = async {
        let (result, _) = file.write_blocks(buffer, 0).await;
        result?;
        file.sync_data().await
    };
    if let Err(error) = written.await {
        // Its space goes back now, not at the next open (a full disk is the likely cause).
        drop(file);
        let _ = storage.remove(CHECKPOINT_TEMPORARY_FILE).await;
        return Err(io(error));
    }
    storage.rename(CHECKPOINT_TEMPORARY_FILE, CHECKPOINT_FILE).await.map_err(io)?;
    storage.sync_directory().await.map_err(io)
}

/// Seals `unsealed` off the shard's thread ([`crate::io::elsewhere`]), then stores it.
async fn seal_and_store<S: Storage>(storage: &S, unsealed: UnsealedCheckpoint) -> Result<(), String> {
    let buffer = crate::io::elsewhere(move || unsealed.seal()).await.ok_or("sealing the checkpoint failed")?;
    store_checkpoint(storage, buffer).await
}

/// Reads and checks the shard's checkpoint: `Ok(None)` if there is none, `Err` with the reason
/// if it is unusable.
pub(crate) async fn load_checkpoint<S: Storage>(
    storage: &S,
    hsm: &HsmSession,
    shard_id: u32,
) -> Result<Option<LoadedCheckpoint>, String> {
    let io = |error: std::io::Error| format!("reading checkpoint: {error}");
    if !storage.list().await.map_err(io)?.iter().any(|name| name == CHECKPOINT_FILE) {
        return Ok(None);
    }
    let file = storage.open(CHECKPOINT_FILE, false).await.map_err(io)?;
    let bytes = file.read_exact(0, file.size().await.map_err(io)? as usize).await.map_err(io)?;
    decode_checkpoint(&bytes, hsm, shard_id).map(Some)
}

fn decode_checkpoint(bytes: &[u8], hsm: &HsmSession, shard_id: u32) -> Result<LoadedCheckpoint, String> {
    let mut reader = ByteReader::new(bytes);
    let header: [u8; HEADER_BYTES] = reader.array().map_err(|_| "checkpoint header truncated")?;
    let stored_crc = u32::from_le_bytes([header[60], header[61], header[62], header[63]]);
    if header[0..8] != MAGIC || crc32c::crc32c(&header[..AUTHENTICATED_HEADER_BYTES]) != stored_crc {
        return Err("checkpoint header is damaged".into());
    }
    let mut fields = ByteReader::new(&header[8..60]);
    let field_error = |_| "checkpoint header truncated".to_owned();
    let (version, header_shard) = (fields.u32().map_err(field_error)?, fields.u32().map_err(field_error)?);
    if !(FORMAT_VERSION_READ_MIN..=FORMAT_VERSION).contains(&version) || header_shard != shard_id {
        return Err(format!("checkpoint is for format {version} shard {header_shard}"));
    }
    let position = CheckpointPosition {
        segment_id: fields.u64().map_err(field_error)?,
        log_end: fields.u64().map_err(field_error)?,
        record_count: fields.u64().map_err(field_error)?,
        max_record_id: fields.u64().map_err(field_error)?,
    };
    let wrapped_length = fields.u32().map_err(field_error)? as usize;
    let body_length = usize::try_from(fields.u64().map_err(field_error)?).map_err(|_| "body too long")?;
    if wrapped_length > WRAPPED_KEY_BYTES_MAX {
        return Err("checkpoint key length is invalid".into());
    }
    let wrapped = reader.take(wrapped_length).map_err(|_| "checkpoint truncated")?;
    let ciphertext_length = body_length.checked_add(TAG_BYTES).ok_or("body too long")?;
    let ciphertext = reader.take(ciphertext_length).map_err(|_| "checkpoint truncated")?;
    let wrapped = WrappedDek::from_bytes(wrapped).map_err(|error| error.to_string())?;
    let dek = hsm.unwrap_dek(&wrapped).map_err(|error| format!("checkpoint key: {error}"))?;
    let body = RecordCipher::new(&dek)
        .open_with([0; 12], &header[..AUTHENTICATED_HEADER_BYTES], ciphertext.to_vec())
        .map_err(|error| format!("checkpoint body: {error}"))?;
    decode_body(&body).map(|(index, keys)| LoadedCheckpoint { position, index, keys })
}

fn decode_body(body: &[u8]) -> Result<(Index, KeyTable), String> {
    let mut reader = ByteReader::new(body);
    let mut keys = KeyTable::default();
    let key_count = reader.u32().map_err(|error| error.to_string())?;
    if key_count > KEY_COUNT_MAX {
        return Err("checkpoint key count is invalid".into());
    }
    for _ in 0..key_count {
        let account_id = reader.u64().map_err(|error| error.to_string())?;
        let wrapped = reader.bytes(WRAPPED_KEY_BYTES_MAX, "wrapped key").map_err(|error| error.to_string())?;
        keys.insert(account_id, WrappedDek::from_bytes(wrapped).map_err(|error| error.to_string())?);
    }
    let index = Index::decode_snapshot(&mut reader).map_err(|error| error.to_string())?;
    reader.finish("checkpoint body").map_err(|error| error.to_string())?;
    Ok((index, keys))
}

impl<S: Storage> Shard<S> {
    /// Whether enough was committed since the last checkpoint to write the next: the configured
    /// interval, or half as many records as the index holds bodies if that is more; or the
    /// configured bytes of log, or sixteen times the last checkpoint's body if that is more.
    ///
    /// A checkpoint encodes the whole index, so with a fixed interval its cost per record grew
    /// with the store: 4 KiB appends into one shard stalled 15 ms at 63k messages and 225 ms at
    /// 960k, about a quarter of the run (bench/README.md, session 9). Spacing checkpoints by
    /// half the index bounds that cost per record whatever the store's size, and an open still
    /// replays at most half as many records as its checkpoint holds, so its time stays in
    /// proportion to loading the checkpoint itself.
    ///
    /// Records alone bounded an open's replay by count, not by bytes: with large messages the
    /// interval was a whole store of log (the backup bench's 1 GiB of 1 MiB messages never
    /// reached one). The byte interval bounds what an open reads after a crash; scaling it with
    /// the checkpoint's own size keeps a checkpoint's write under a sixteenth of the log's.
    pub(super) fn checkpoint_due(&self) -> bool {
        let half_the_index = self.index.blob_count() as u64 / 2;
        let records_due = self.records_since_checkpoint >= self.config.checkpoint_interval_records.max(half_the_index);
        let checkpoint_bytes = self.checkpoint_body_bytes as u64;
        let bytes_interval = self.config.checkpoint_interval_bytes.max(checkpoint_bytes.saturating_mul(16));
        records_due || self.bytes_since_checkpoint >= bytes_interval
    }

    /// The state after the last commit, which a checkpoint taken now describes. Only valid
    /// with no commit in flight (the caller drained them): the checkpoint vouches for the log
    /// up to `log_end`.
    fn checkpoint_position(&self) -> CheckpointPosition {
        CheckpointPosition {
            segment_id: self.active.segment_id(),
            log_end: self.active.log_end(),
            record_count: self.active.record_count(),
            max_record_id: self.next_record_id.saturating_sub(1),
        }
    }

    /// Encodes a checkpoint of the state after the last commit, once the one being written in
    /// the background (if any) landed and compacted segments are gone. The buffer is sized by
    /// the last checkpoint's body, and this one's is remembered for the next.
    async fn encode_checkpoint_now(&mut self) -> Result<UnsealedCheckpoint, String> {
        self.finish_checkpoint_writing().await;
        self.finish_segment_removals().await;
        let position = self.checkpoint_position();
        let hint = self.checkpoint_body_bytes;
        let started = std::time::Instant::now();
        let (unsealed, body_bytes) =
            encode_checkpoint(&self.hsm, self.config.shard_id, &position, &self.index, &self.keys, hint)?;
        self.checkpoint_body_bytes = body_bytes;
        let waited_ms = started.elapsed().as_secs_f64() * 1e3;
        let messages = self.index.blob_count();
        tracing::debug!(shard = self.config.shard_id, messages, body_bytes, waited_ms, "checkpoint encoded");
        Ok(unsealed)
    }

    /// Writes a checkpoint of the state after the last commit and answers once it is durable
    /// (a purge needs that before the old KEK is destroyed).
    pub(super) async fn write_checkpoint_now(&mut self) -> Result<(), String> {
        let unsealed = self.encode_checkpoint_now().await?;
        seal_and_store(&self.storage, unsealed).await?;
        self.records_since_checkpoint = 0;
        self.bytes_since_checkpoint = 0;
        self.checkpoints_written += 1;
        Ok(())
    }

    /// Writes a checkpoint and waits until it is durable (compaction's, a backup seal's and
    /// shutdown's). A failure costs only replay time at the next open, so it is logged, not
    /// fatal.
    pub(super) async fn checkpoint(&mut self) {
        if self.failure.is_some() {
            return;
        }
        if let Err(reason) = self.write_checkpoint_now().await {
            tracing::warn!(shard = self.config.shard_id, %reason, "checkpoint failed; the next open replays more");
        }
    }

    /// The periodic checkpoint: the shard waits only while it encodes the index (which must not
    /// change under it), then serves requests while the body is sealed on another thread and the
    /// file written and synced. The write was about 30% of a checkpoint's time (55 of 185 ms at
    /// 800k messages, bench/README.md, session 9), the seal another 30% at two million
    /// (session 33). Until it lands, the previous checkpoint stands, and an open after a crash
    /// replays from there.
    pub(super) async fn start_checkpoint(&mut self) {
        if self.failure.is_some() {
            return;
        }
        match self.encode_checkpoint_now().await {
            Ok(unsealed) => {
                self.records_since_checkpoint = 0;
                self.bytes_since_checkpoint = 0;
                let storage = self.storage.clone();
                let writing = compio::runtime::spawn(async move { seal_and_store(&storage, unsealed).await });
                self.checkpoint_writing = Some(writing);
            }
            Err(reason) => {
                tracing::warn!(shard = self.config.shard_id, %reason, "checkpoint failed; the next open replays more");
            }
        }
    }

    /// Waits for the checkpoint being written in the background, if any: two must never write
    /// the temporary file at once, and one that must be durable replaces it only after it.
    pub(super) async fn finish_checkpoint_writing(&mut self) {
        let Some(writing) = self.checkpoint_writing.take() else { return };
        let result = writing.await.unwrap_or_else(|error| Err(format!("checkpoint task ended: {error}")));
        match result {
            Ok(()) => self.checkpoints_written += 1,
            Err(reason) => {
                tracing::warn!(shard = self.config.shard_id, %reason, "checkpoint failed; the next open replays more");
            }
        }
    }
}
