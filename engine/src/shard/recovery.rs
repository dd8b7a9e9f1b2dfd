//! Opening a shard: replay every segment into a fresh index, cut a torn tail, and resume (or
//! start) the active segment.
//!
//! Record ids are nonces under each account's key, so they must never repeat, not even for a
//! commit that was torn away (its ciphertext may survive in a disk image). After a restart the
//! counter resumes `RECORD_ID_GAP` past the highest id seen, more than one commit can hold.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use mailvault_hsm::{Hsm, HsmSession, WrappedDek};

use super::checkpoint::{LoadedCheckpoint, load_checkpoint};
use super::plan::UIDS_PER_REQUEST_MAX;
use super::{BATCH_REQUESTS_MAX, Shard, ShardConfig};
use crate::crypto::{KeyTable, KeyTableError, RecordCipher};
use crate::error::OpenError;
use crate::format::{
    BLOCK_BYTES, FrameDecode, FrameHeader, Record, RecordKind, SHARD_ID_SHIFT, SegmentHeader, align_up,
    decode_frame_for_aead,
};
use crate::index::{ApplyError, BlobLocation, Index, RecordLocation};
use crate::io::{Storage, StorageFile, is_out_of_space};
use crate::segment::{
    ActiveSegment, OpenLog, PreparedSegment, RESERVE_STEP_BYTES, RecycledSegments, ScanEnd, ScanError, ScanStart,
    ScannedFrame, TEMPORARY_SUFFIX, parse_segment_name, scan_segment, segment_name,
};

const RECORD_ID_GAP: u64 = 1 << 24;
const _: () = assert!((BATCH_REQUESTS_MAX * (UIDS_PER_REQUEST_MAX + 3)) as u64 <= RECORD_ID_GAP);
/// Low bits of record ids and account ids; the shard id sits above them, so ids are unique
/// across the whole store.
const LOCAL_ID_MASK: u64 = (1 << SHARD_ID_SHIFT) - 1;

/// What replay builds up before the shard exists (or, read-only, what a store or a backup
/// holds: `crate::offline`).
pub(crate) struct Replay<'a> {
    index: Index,
    keys: KeyTable,
    hsm: &'a HsmSession,
    max_record_id: u64,
    /// Accounts with a record that no longer fits the replayed state (its predecessors were
    /// compacted away), and why. Each must be superseded by a later snapshot of the account.
    awaiting_snapshot: HashMap<u64, String>,
    /// Records waiting for a usable key of their account, in log order, by place only (they
    /// are read again from disk when the key appears, so a full replay after a KEK rotation,
    /// which meets every account's old key first, never holds the store's mail in memory).
    pending: BTreeMap<u64, Vec<RecordLocation>>,
    /// Accounts whose latest wrapped key did not unwrap, and why (until a newer one appears).
    unusable: HashMap<u64, String>,
    /// Accounts with pending records whose key now unwraps: applied after the current segment.
    ready: BTreeSet<u64>,
    /// Set when the keys come from elsewhere (a backup's key table): `KeyWrapped` records are
    /// then ignored, and an account without a key (erased from the table) is skipped whole.
    keys_fixed: bool,
    /// Accounts skipped for lack of a key (only with `keys_fixed`).
    accounts_without_key: std::collections::BTreeSet<u64>,
}

impl Replay<'_> {
    pub(crate) fn new(hsm: &HsmSession, index: Index, keys: KeyTable, max_record_id: u64) -> Replay<'_> {
        Replay {
            index,
            keys,
            hsm,
            max_record_id,
            awaiting_snapshot: HashMap::new(),
            pending: BTreeMap::new(),
            unusable: HashMap::new(),
            ready: BTreeSet::new(),
            keys_fixed: false,
            accounts_without_key: std::collections::BTreeSet::new(),
        }
    }

    /// A replay whose keys are all in `keys` already (see `keys_fixed`).
    pub(crate) fn with_fixed_keys(hsm: &HsmSession, keys: KeyTable) -> Replay<'_> {
        Replay { keys_fixed: true, ..Replay::new(hsm, Index::default(), keys, 0) }
    }

    pub(crate) fn take_accounts_without_key(&mut self) -> std::collections::BTreeSet<u64> {
        std::mem::take(&mut self.accounts_without_key)
    }

    pub(crate) fn apply(&mut self, segment_id: u64, frame: ScannedFrame) -> Result<(), String> {
        let header = frame.header;
        let account_id = header.account_id;
        self.max_record_id = self.max_record_id.max(header.record_id);
        let kind = RecordKind::from_u8(header.kind).ok_or_else(|| format!("unknown record kind {}", header.kind))?;
        let location = RecordLocation { segment_id, offset: frame.offset, frame_bytes: frame.frame_bytes };
        if kind == RecordKind::AccountPurged {
            self.forget_purged(account_id);
            return Ok(());
        }
        if account_id != 0 && self.index.is_purged(account_id) {
            return Ok(()); // a purged account's records are dead, and its key is gone
        }
        if kind == RecordKind::MessageAppended {
            // Where a body lives is in the clear header: learn it even when the record cannot be
            // applied yet (its account's key record was compacted away and rewritten later).
            self.index.relocate_blob(header.record_id, location);
        }
        if header.is_relocated() {
            if kind != RecordKind::MessageAppended {
                return Err(format!("a relocated frame holds a {kind:?} record"));
            }
            return Ok(());
        }
        if kind == RecordKind::KeyWrapped {
            if self.keys_fixed {
                return Ok(());
            }
            let wrapped = WrappedDek::from_bytes(&frame.payload).map_err(|error| error.to_string())?;
            self.keys.insert(account_id, wrapped);
            self.unusable.remove(&account_id);
            if self.pending.contains_key(&account_id) {
                match self.keys.cipher(account_id, self.hsm) {
                    Ok(_) => {
                        self.ready.insert(account_id);
                    }
                    Err(error) => {
                        self.unusable.insert(account_id, error.to_string());
                    }
                }
            }
            return Ok(());
        }
        if kind.is_clear() {
            return Ok(()); // the record-id floor: its id was counted above; nothing to apply
        }
        if self.keys_fixed && !self.keys.contains(account_id) {
            // The backup's key table has no key for it (erased by a purge): skip it whole.
            self.accounts_without_key.insert(account_id);
            return Ok(());
        }
        if let Some(waiting) = self.pending.get_mut(&account_id) {
            waiting.push(location); // after earlier records still waiting: order is kept
            return Ok(());
        }
        if let Some(cipher) = self.usable_cipher(account_id) {
            return self.apply_sealed(header, kind, frame.payload, location, &cipher);
        }
        self.pending.entry(account_id).or_default().push(location);
        Ok(())
    }

    /// The account's cipher, or `None` (reason kept in `unusable`) if it has no key, or its
    /// key is wrapped under a KEK this HSM no longer has (destroyed by a purge).
    fn usable_cipher(&mut self, account_id: u64) -> Option<std::sync::Arc<RecordCipher>> {
        if self.unusable.contains_key(&account_id) {
            return None;
        }
        match self.keys.cipher(account_id, self.hsm) {
            Ok(cipher) => Some(cipher),
            Err(error) => {
                let reason = match error {
                    KeyTableError::Missing { .. } => "its data key is gone".to_owned(),
                    other => other.to_string(),
                };
                self.unusable.insert(account_id, reason);
                None
            }
        }
    }

    fn apply_sealed(
        &mut self,
        header: FrameHeader,
        kind: RecordKind,
        payload: Vec<u8>,
        location: RecordLocation,
        cipher: &RecordCipher,
    ) -> Result<(), String> {
        let plaintext = cipher.open(&header, payload).map_err(|error| error.to_string())?;
        let record = Record::decode(kind, plaintext).map_err(|error| error.to_string())?;
        // A body applied late (it waited for its key) must not move back over a relocated copy
        // seen since: the place learned last, from the clear headers, stays.
        let latest_place =
            if kind == RecordKind::MessageAppended { self.index.blob(header.record_id).copied() } else { None };
        // A replayed body was decrypted on this thread: it is freed here.
        let applied = self.index.apply(&header, record, location).map(drop);
        if let Some(place) = latest_place {
            let BlobLocation { segment_id, offset, frame_bytes } = place;
            self.index.relocate_blob(header.record_id, RecordLocation { segment_id, offset, frame_bytes });
        }
        match applied {
            Ok(()) if kind == RecordKind::AccountSnapshot => {
                self.awaiting_snapshot.remove(&header.account_id);
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(ApplyError::BadSnapshot { .. }) => Err("an account snapshot does not decode".into()),
            Err(error) => {
                self.awaiting_snapshot.entry(header.account_id).or_insert_with(|| error.to_string());
                Ok(())
            }
        }
    }

    /// An `AccountPurged` record: whatever of the account waits or was applied is dropped.
    fn forget_purged(&mut self, account_id: u64) {
        self.pending.remove(&account_id);
        self.ready.remove(&account_id);
        self.unusable.remove(&account_id);
        self.awaiting_snapshot.remove(&account_id);
        self.index.purge_account(account_id);
        self.keys.remove(account_id);
    }

    /// Applies, in log order, the waiting records of every account whose key became usable
    /// during the segment just scanned, reading them again from their segments.
    pub(crate) async fn apply_ready<F: StorageFile>(&mut self, files: &HashMap<u64, Rc<F>>) -> Result<(), String> {
        for account_id in std::mem::take(&mut self.ready) {
            let Some(cipher) = self.usable_cipher(account_id) else { continue };
            for location in self.pending.remove(&account_id).unwrap_or_default() {
                let file = files.get(&location.segment_id).ok_or("a waiting record's segment is gone")?;
                let bytes = file
                    .read_exact(location.offset, location.frame_bytes as usize)
                    .await
                    .map_err(|error| format!("reading a record again: {error}"))?;
                // The scan checked its CRC; its AEAD tag is checked as it is applied.
                let Ok(FrameDecode::Frame(frame)) = decode_frame_for_aead(&bytes) else {
                    return Err(format!("the record at offset {} changed since it was scanned", location.offset));
                };
                let kind = RecordKind::from_u8(frame.header.kind).ok_or("unknown record kind")?;
                self.apply_sealed(frame.header, kind, frame.payload.to_vec(), location, &cipher)?;
            }
        }
        Ok(())
    }

    /// After the whole log: every inconsistency was superseded, every body has a place.
    pub(crate) fn finish(
        mut self,
        segments: &HashMap<u64, Rc<impl StorageFile>>,
    ) -> Result<(Index, KeyTable, u64), String> {
        if let Some((account_id, _)) = self.pending.iter().next() {
            let reason = self.unusable.get(account_id).map_or("its data key is gone", String::as_str);
            return Err(format!("account {account_id}: no usable data key ({reason}), and it was not purged"));
        }
        if let Some((account_id, reason)) = self.awaiting_snapshot.iter().next() {
            return Err(format!("account {account_id}: {reason}, and no later snapshot supersedes it"));
        }
        for segment_id in
            self.index.blobs().map(|(_, location)| location.segment_id).collect::<std::collections::HashSet<_>>()
        {
            if !segments.contains_key(&segment_id) {
                self.index.forget_blobs_in(segment_id); // bodies of a compacted segment no one needs
            }
        }
        if let Some((mailbox, uid)) = self.index.first_missing_blob() {
            return Err(format!("message {mailbox} uid {uid} has no stored body"));
        }
        Ok((self.index, self.keys, self.max_record_id))
    }
}

/// Opens the shard in `storage`; a storage error names the shard.
pub(crate) async fn open_named<S: Storage>(storage: S, config: ShardConfig, hsm: &Hsm) -> Result<Shard<S>, OpenError> {
    let shard_id = config.shard_id;
    match hsm.session() {
        Ok(session) => open_shard(storage, config, session).await.map_err(|error| match error {
            OpenError::Io(error) => OpenError::Shard { shard_id, source: error.into() },
            other => other,
        }),
        Err(error) => Err(OpenError::Shard { shard_id, source: error.into() }),
    }
}

#[allow(clippy::too_many_lines)] // most of it is the one literal naming every field of `Shard`
async fn open_shard<S: Storage>(storage: S, config: ShardConfig, hsm: HsmSession) -> Result<Shard<S>, OpenError> {
    let shard_id = config.shard_id;
    let recovery = |source| OpenError::Recovery { shard_id, source };
    let segment_ids = list_segments(&storage, shard_id).await.map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => OpenError::MissingShard { shard_id },
        _ => OpenError::Shard { shard_id, source: error.into() },
    })?;

    let checkpoint = usable_checkpoint(&storage, &hsm, shard_id, &segment_ids).await;
    let resume = checkpoint.as_ref().map(|checkpoint| checkpoint.position);
    let replayed_from = resume.map_or(0, |resume| resume.segment_id);
    let replayed: Vec<u64> = segment_ids.iter().copied().filter(|segment| *segment >= replayed_from).collect();
    sync_segments(&storage, &replayed).await.map_err(|error| OpenError::Shard { shard_id, source: error.into() })?;
    let mut replay = match checkpoint {
        Some(LoadedCheckpoint { position, index, keys }) => Replay::new(&hsm, index, keys, position.max_record_id),
        None => Replay::new(&hsm, Index::default(), KeyTable::default(), 0),
    };
    let mut readers = HashMap::new();
    let mut active = None;
    // What this open replays past the checkpoint: the next checkpoint is due that much sooner,
    // so that opens after repeated crashes do not each replay more than the last.
    let (mut replayed_records, mut replayed_bytes) = (0u64, 0u64);
    for (position, &segment_id) in segment_ids.iter().enumerate() {
        let is_last = position + 1 == segment_ids.len();
        let name = segment_name(segment_id);
        let start = match resume {
            Some(resume) if segment_id < resume.segment_id => {
                readers.insert(segment_id, Rc::new(storage.open(&name, false).await?));
                continue; // wholly covered by the checkpoint
            }
            Some(resume) if segment_id == resume.segment_id => {
                ScanStart { offset: resume.log_end, record_count: resume.record_count }
            }
            _ => ScanStart::BEGINNING,
        };
        let file = storage.open(&name, is_last).await?;
        let end = scan_segment(&file, segment_id, is_last, start, |frame| {
            replayed_records += 1;
            replayed_bytes += u64::from(frame.frame_bytes);
            replay.apply(segment_id, frame)
        })
        .await
        .map_err(recovery)?;
        match end {
            ScanEnd::Sealed { untrimmed_end, .. } => {
                let file = match untrimmed_end {
                    None => file,
                    Some(end) => trim_sealed(&storage, &name, end).await?,
                };
                readers.insert(segment_id, Rc::new(file));
            }
            ScanEnd::Open { log, torn } => {
                if let Some(reason) = torn {
                    tracing::warn!(shard = shard_id, segment = segment_id, offset = log.log_end, %reason, "cutting the torn tail of an unacknowledged commit");
                }
                active = Some(resume_active(file, *log, config.segment_bytes_max).await.map_err(recovery)?);
                readers.insert(segment_id, Rc::new(storage.open(&name, false).await?));
            }
        }
        replay
            .apply_ready(&readers)
            .await
            .map_err(|reason| OpenError::Shard { shard_id, source: crate::error::EngineError::Corrupt(reason) })?;
    }
    let recycled = RecycledSegments::load(&storage, config.recycled_segments_max, shard_id).await?;
    // A prune's or purge's rewrite that a restart interrupted goes on (format.md §10.4).
    let forced_compaction =
        super::forced_compaction::load_forced_compaction(&storage, shard_id, |segment| segment_ids.contains(&segment))
            .await;
    if forced_compaction.spares_withheld {
        recycled.withhold();
    }
    let active = if let Some(active) = active {
        active
    } else {
        // A fresh shard, or a crash right after sealing: start the next segment.
        let segment_id = segment_ids.last().map_or(1, |last| last + 1);
        let header = SegmentHeader::new(shard_id, segment_id, config.clock.now_unix_ms());
        let prepared = prepare_next_segment(&storage, header, config.segment_bytes_max, recycled.take()).await?;
        let active = prepared.install(&storage).await?;
        readers.insert(segment_id, Rc::new(storage.open(&segment_name(segment_id), false).await?));
        active
    };
    let (index, keys, max_record_id) = replay
        .finish(&readers)
        .map_err(|reason| OpenError::Shard { shard_id, source: crate::error::EngineError::Corrupt(reason) })?;
    let shard_base = u64::from(shard_id) << SHARD_ID_SHIFT;
    let next_record_id = if max_record_id == 0 { shard_base + 1 } else { max_record_id + RECORD_ID_GAP };
    let next_account_number = next_account_number(&index);
    let sealed_segment_bytes = sealed_sizes(&readers, active.segment_id()).await?;
    let config_budget = config.compaction_bytes_per_second;
    // Floors of earlier opens may count too: at worst one backup seals a segment of floors.
    let active_has_data = active.record_count() > 0;
    let scrubber = start_scrubber(&config, &storage, &hsm).await;
    let mut shard = Shard {
        config,
        storage,
        hsm,
        index,
        keys,
        active,
        readers,
        next_record_id,
        next_account_number,
        failure: None,
        commits: 0,
        records_committed: 0,
        checkpoints_written: 0,
        checkpoint_writing: None,
        checkpoint_body_bytes: 0,
        records_since_checkpoint: replayed_records,
        bytes_since_checkpoint: replayed_bytes,
        sealed_segment_bytes,
        // Look for work at once: retention windows may have ended while the store was closed.
        compaction_wanted: true,
        usage_summary: None,
        usage_passes: 0,
        compaction_job: None,
        victim_reader: None,
        compaction_forced: forced_compaction.segments.clone(),
        forced_compaction_file: super::forced_compaction::ForcedCompactionFile::written(forced_compaction),
        compaction_skipped: std::collections::BTreeSet::new(),
        compaction_rejected: std::collections::BTreeMap::new(),
        compaction_budget: super::throttle::IoBudget::new(config_budget),
        compaction_report: crate::api::CompactionReport::default(),
        compaction_checkpoint_due: false,
        compaction_waiters: Vec::new(),
        compaction_spare_buffer: None,
        segment_removals: Vec::new(),
        recycled,
        pipeline: super::pipeline::Pipeline::default(),
        read_fence: super::read_fence::ReadFence::default(),
        active_has_data,
        backup_hold_until_ms: None,
        scrubber,
        room: super::room::RoomState::default(),
    };
    shard.commit_record_id_floor().await?;
    Ok(shard)
}

/// The scrub's record of earlier passes, and its task when it is on and its HSM session
/// opens (if not, the shard serves without it, and says so).
async fn start_scrubber<S: Storage>(
    config: &ShardConfig,
    storage: &S,
    hsm: &HsmSession,
) -> super::scrub::Scrubber<S::File> {
    let shard_id = config.shard_id;
    let task = config.scrub_interval.and_then(|interval| match hsm.hsm().session() {
        Ok(session) => Some((session, interval)),
        Err(error) => {
            tracing::error!(shard = shard_id, %error, "no HSM session for the scrub; scrubbing is off until a restart");
            None
        }
    });
    super::scrub::Scrubber::start(shard_id, storage, task, config.scrub_bytes_per_second).await
}

/// The size of every segment but the active one.
async fn sealed_sizes<F: StorageFile>(
    readers: &HashMap<u64, Rc<F>>,
    active: u64,
) -> std::io::Result<HashMap<u64, u64>> {
    let mut sizes = HashMap::new();
    for (segment_id, reader) in readers {
        if *segment_id != active {
            sizes.insert(*segment_id, reader.size().await?);
        }
    }
    Ok(sizes)
}

/// One past the highest local account number ever used. Purged ids count too: an id is never
/// handed out twice (old records of it stay in the log).
fn next_account_number(index: &Index) -> u64 {
    index
        .accounts()
        .map(|account| account.id)
        .chain(index.purged_accounts())
        .map(|account_id| (account_id & LOCAL_ID_MASK) + 1)
        .max()
        .unwrap_or(1)
}

/// The shard's segment ids in log order, after removing what a crash left half-created.
async fn list_segments<S: Storage>(storage: &S, shard_id: u32) -> std::io::Result<Vec<u64>> {
    let names = storage.list().await?;
    for leftover in names.iter().filter(|name| name.ends_with(TEMPORARY_SUFFIX)) {
        tracing::info!(shard = shard_id, file = %leftover, "removing a file a crash left half-created");
        storage.remove(leftover).await?;
    }
    let mut segment_ids: Vec<u64> = names.iter().filter_map(|name| parse_segment_name(name)).collect();
    segment_ids.sort_unstable();
    Ok(segment_ids)
}

/// Syncs the segments that replay reads, and the directory, before recovery trusts what it
/// reads (as Postgres syncs its data directory before crash recovery). After a process crash
/// without a power loss, or a failed write or sync and the shard's reopen (`shard/reopen.rs`),
/// a segment can hold writes that no sync vouched for: read back they look like any other
/// bytes, the shard builds on them, and a power loss later takes them back from under what it
/// built. The simulation found one (seed 5): a footer whose sync had failed was read back, the
/// shard went on in the next segment, and after a power loss the sealed segment had no footer.
///
/// The segments before the checkpoint's need none: a checkpoint is written only once the log
/// up to it is durable, footers included. Nor do the small state files: each is synced before
/// it is renamed into place, and the directory sync here makes the renames durable. A segment
/// with nothing unsynced costs the call only (about 50 µs on the development VM's disk).
async fn sync_segments<S: Storage>(storage: &S, segment_ids: &[u64]) -> std::io::Result<()> {
    for &segment_id in segment_ids {
        let name = segment_name(segment_id);
        let synced = match storage.open(&name, true).await {
            Ok(file) => file.sync_data().await,
            Err(error) => Err(error),
        };
        synced
            .map_err(|error| std::io::Error::new(error.kind(), format!("syncing {name} before recovery: {error}")))?;
    }
    storage.sync_directory().await
}

/// Where the scan found the active segment's log to end.
/// Clears what a crashed commit left past the log and resumes appending there.
async fn resume_active<F: StorageFile>(
    file: F,
    open: OpenLog,
    reserved_bytes: u64,
) -> Result<ActiveSegment<F>, ScanError> {
    let (segment_id, log_end) = (open.segment_id, open.log_end);
    let (file_size, reserved_bytes) =
        clear_after(&file, log_end, reserved_bytes).await.map_err(|source| ScanError::Io { segment_id, source })?;
    Ok(ActiveSegment::resume(file, open, (file_size, reserved_bytes)))
}

/// Trims the preallocated tail a crash left after a sealed segment's footer.
async fn trim_sealed<S: Storage>(storage: &S, name: &str, end: u64) -> std::io::Result<S::File> {
    tracing::warn!(segment = name, "trimming a sealed segment a crash left untrimmed");
    let writable = storage.open(name, true).await?;
    writable.set_len(end).await?;
    writable.sync_data().await?;
    Ok(writable)
}

/// The shard's checkpoint, if it exists and can be trusted; otherwise the reason is logged and
/// the shard replays its whole log.
async fn usable_checkpoint<S: Storage>(
    storage: &S,
    hsm: &HsmSession,
    shard_id: u32,
    segment_ids: &[u64],
) -> Option<LoadedCheckpoint> {
    match load_checkpoint(storage, hsm, shard_id).await {
        Ok(Some(checkpoint)) if segment_ids.contains(&checkpoint.position.segment_id) => Some(checkpoint),
        Ok(Some(checkpoint)) => {
            let segment = checkpoint.position.segment_id;
            tracing::warn!(shard = shard_id, segment, "checkpoint names a missing segment; replaying the whole log");
            None
        }
        Ok(None) => None,
        Err(reason) => {
            tracing::warn!(shard = shard_id, %reason, "checkpoint unusable; replaying the whole log");
            None
        }
    }
}

/// Zeroes everything past the log's last whole block, where a crashed commit may have left
/// frames that must never be read as part of a later one, then restores the preallocation.
/// Returns the file size and the space reserved for the log.
///
/// On a full disk the preallocation may not fit (a segment started small, see
/// `prepare_next_segment`): the shard opens all the same, holding no reservation past its log,
/// and each write reserves its space first (`Shard::make_room`), refused while there is none.
/// Before, the open failed, and a store whose disk had filled could not start to serve reads.
async fn clear_after<F: StorageFile>(file: &F, log_end: u64, preallocate_bytes: u64) -> std::io::Result<(u64, u64)> {
    let clear_from = align_up(log_end as usize, BLOCK_BYTES) as u64;
    let length = file.size().await?;
    if length > clear_from {
        file.zero_range(clear_from, length - clear_from).await?;
        file.sync_data().await?;
    }
    let wanted = preallocate_bytes.max(length);
    match file.preallocate(wanted).await {
        Ok(()) => Ok((length, wanted)),
        Err(error) if is_out_of_space(&error) => {
            tracing::warn!(%error, "no room to preallocate the active segment; writes reserve their space as they come");
            Ok((length, clear_from))
        }
        Err(error) => Err(error),
    }
}

/// A new segment prepared with `segment_bytes` reserved, or, if the filesystem has not that
/// much room, with a smaller reservation that grows as its log does (`Shard::make_room`): a
/// rotation's full segment gives its unused reservation back only when it is sealed, after
/// this.
async fn prepare_next_segment<S: Storage>(
    storage: &S,
    header: SegmentHeader,
    segment_bytes: u64,
    reuse: Option<String>,
) -> std::io::Result<PreparedSegment<S::File>> {
    match ActiveSegment::prepare(storage, header, segment_bytes, reuse).await {
        Err(error) if is_out_of_space(&error) => {
            ActiveSegment::prepare(storage, header, RESERVE_STEP_BYTES.min(segment_bytes / 4), None).await
        }
        prepared => prepared,
    }
}

/// Why a rotation did not happen.
#[derive(Debug)]
pub(super) enum RotationError {
    /// No room for the next segment: nothing changed, the active segment stays active.
    NoRoom(std::io::Error),
    /// Sealing or installing failed: the log's state on disk is in doubt.
    Failed(std::io::Error),
}

impl<S: Storage> Shard<S> {
    /// Seals the full active segment and starts the next one. No checkpoint here: one written at
    /// every rotation cost a whole-index encode per segment whatever the interval (see
    /// `checkpoint_due`). The last checkpoint may so name a sealed segment, which an open reads
    /// from there on (docs/format.md §8); if compaction removed that segment before the next
    /// checkpoint, an open after a crash replays the whole log instead, slower but the same.
    ///
    /// The next segment is prepared (created and preallocated under a temporary name) before
    /// the active one is sealed: on a full disk that step fails, and the active segment stays
    /// active, unsealed, for the writes that still fit (see `room`).
    pub(super) async fn rotate_segment(&mut self) -> Result<(), RotationError> {
        let sealed_id = self.active.segment_id();
        let segment_id = sealed_id + 1;
        let header = SegmentHeader::new(self.config.shard_id, segment_id, self.config.clock.now_unix_ms());
        let reuse = self.recycled.take();
        let prepared = prepare_next_segment(&self.storage, header, self.config.segment_bytes_max, reuse)
            .await
            .map_err(|error| {
                if is_out_of_space(&error) { RotationError::NoRoom(error) } else { RotationError::Failed(error) }
            })?;
        self.active.seal().await.map_err(RotationError::Failed)?;
        let sealed_bytes = self.active.file().size().await.map_err(RotationError::Failed)?;
        self.sealed_segment_bytes.insert(sealed_id, sealed_bytes);
        self.compaction_wanted = true;
        self.compaction_rejected.clear();
        self.active_has_data = false;
        self.active = prepared.install(&self.storage).await.map_err(RotationError::Failed)?;
        let reader = self.storage.open(&segment_name(segment_id), false).await.map_err(RotationError::Failed)?;
        self.readers.insert(segment_id, Rc::new(reader));
        Ok(())
    }
}
