//! Background scrub: every `scrub_interval` each shard reads all of its sealed segments, within
//! an IO budget, and checks them as recovery checks a sealed segment (every frame's CRC, the
//! commit flags, the footer and its digest) and every encrypted record's AEAD tag under its
//! account's key. Nothing else reads a sealed segment regularly (an open replays from its
//! checkpoint, a backup copies a segment once, compaction reads only its victims), so without
//! it damage stays hidden until a fetch of the mail in it fails, perhaps after the backups that
//! held a good copy were replaced.
//!
//! One segment at a time is checked by a task of its own on the shard's runtime; the shard
//! hands it the next one (with a copy of its key table, whose keys the task unwraps as it
//! needs them through its own HSM session) and records the answer. What is found is logged as
//! an error, listed in the shard's stats, and kept in `scrub-state` (`scrub_state`) with the
//! pass's progress.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use mailvault_hsm::{HsmSession, WrappedDek};

use crate::api::{ScrubFinding, ScrubPass, ScrubStatus};
use crate::crypto::{KeyTable, RecordCipher};
use crate::format::{RecordKind, ScrubState};
use crate::io::{BlockBuffer, Storage, StorageFile};
use crate::segment::{ScanEnd, ScanError, ScanStart, scan_segment};

use super::Shard;
use super::scrub_state::{load_scrub_state, store_scrub_state};
use super::throttle::IoBudget;

/// A segment handed to the scrub task.
struct ScrubRequest<F> {
    segment_id: u64,
    file: Rc<F>,
    /// The shard's keys when the segment was handed over (unwrapped ones included).
    keys: KeyTable,
}

/// What checking one segment found.
#[derive(Debug)]
struct SegmentScrub {
    segment_id: u64,
    bytes: u64,
    frames: u64,
    frames_without_key: u64,
    /// What is wrong with it, if anything.
    damage: Option<String>,
    /// Keys the task unwrapped that the shard's table had not, for the shard to keep.
    unwrapped: Vec<(u64, WrappedDek, Arc<RecordCipher>)>,
}

/// The shard's side of the scrub: the task's channels, the pass's progress and what was found.
/// With the scrub off it only holds what the last passes recorded, for the stats.
pub(super) struct Scrubber<F> {
    /// The task's channels and the interval between passes; `None` when the scrub is off.
    task: Option<ScrubTask<F>>,
    /// The segment the task is checking.
    in_flight: Option<u64>,
    /// Its answer, when it came while the idle shard waited (see `wait_for_answer`).
    received: Option<SegmentScrub>,
    state: ScrubState,
    status: ScrubStatus,
    /// Whether the last write of the state failed (logged once until one succeeds).
    state_unwritten: bool,
}

struct ScrubTask<F> {
    requests: flume::Sender<ScrubRequest<F>>,
    results: flume::Receiver<SegmentScrub>,
    interval_ms: i64,
}

impl<F: StorageFile> Scrubber<F> {
    /// Reads what the shard's `scrub-state` recorded and, when `task` (an HSM session of its
    /// own, the shard's being busy with requests, and the interval) is given, starts the scrub
    /// task, resuming the pass recorded.
    pub(super) async fn start<S: Storage<File = F>>(
        shard_id: u32,
        storage: &S,
        task: Option<(HsmSession, std::time::Duration)>,
        bytes_per_second: Option<u64>,
    ) -> Self {
        let state = match load_scrub_state(storage).await {
            Ok(state) => state.unwrap_or_default(),
            Err(reason) => {
                tracing::warn!(shard = shard_id, %reason, "scrub state unreadable; the next scrub pass starts from the first segment");
                ScrubState::default()
            }
        };
        let task = task.map(|(hsm, interval)| {
            let (requests, incoming) = flume::unbounded::<ScrubRequest<F>>();
            let (answers, results) = flume::unbounded();
            compio::runtime::spawn(async move {
                let budget = Rc::new(RefCell::new(IoBudget::new(bytes_per_second)));
                while let Ok(request) = incoming.recv_async().await {
                    if answers.send(scrub_segment(request, &hsm, &budget).await).is_err() {
                        break;
                    }
                }
            })
            .detach();
            let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
            ScrubTask { requests, results, interval_ms }
        });
        Self { task, in_flight: None, received: None, state, status: ScrubStatus::default(), state_unwritten: false }
    }

    /// The stats' view: counters since the open, the pass, and the damage known.
    pub(super) fn status(&self) -> ScrubStatus {
        let damaged = self
            .state
            .damaged
            .iter()
            .map(|(segment_id, reason)| ScrubFinding { segment_id: *segment_id, reason: reason.clone() })
            .collect();
        ScrubStatus {
            pass_started_unix_ms: self.state.pass_started_unix_ms,
            last_pass: self.state.last_pass,
            damaged,
            ..self.status.clone()
        }
    }

    /// Waits until the task answers, keeping the answer for `Shard::scrub_tick`; never
    /// completes while no segment is being checked (so an idle shard can wait on it).
    pub(super) async fn wait_for_answer(&mut self) {
        match &self.task {
            Some(task) if self.in_flight.is_some() && self.received.is_none() => {
                // A closed channel returns at once; the tick then reports the task gone.
                self.received = task.results.recv_async().await.ok();
            }
            _ => std::future::pending::<()>().await,
        }
    }

    /// The task's answer, if it came; `Err` if the task is gone.
    fn take_answer(&mut self) -> Result<Option<SegmentScrub>, ()> {
        if let Some(answer) = self.received.take() {
            return Ok(Some(answer));
        }
        let Some(task) = &self.task else { return Ok(None) };
        match task.results.try_recv() {
            Ok(answer) => Ok(Some(answer)),
            Err(flume::TryRecvError::Empty) => Ok(None),
            Err(flume::TryRecvError::Disconnected) => Err(()),
        }
    }
}

impl<S: Storage> Shard<S> {
    /// Records the scrub task's answer, if one came, and hands it the next segment, or starts
    /// a pass when one is due. Cheap when there is nothing to do: it runs after every commit.
    pub(super) async fn scrub_tick(&mut self) {
        let scrubber = &mut self.scrubber;
        if scrubber.in_flight.is_some() {
            match scrubber.take_answer() {
                Ok(Some(answer)) => self.record_scrub(answer).await,
                Ok(None) => return,
                Err(()) => {
                    tracing::error!(
                        shard = self.config.shard_id,
                        "the scrub task stopped; scrubbing is off until a restart"
                    );
                    scrubber.task = None;
                    scrubber.in_flight = None;
                    return;
                }
            }
        }
        self.scrub_next().await;
    }

    async fn record_scrub(&mut self, answer: SegmentScrub) {
        let shard_id = self.config.shard_id;
        let SegmentScrub { segment_id, bytes, frames, frames_without_key, damage, unwrapped } = answer;
        for (account_id, wrapped, cipher) in unwrapped {
            self.keys.adopt(account_id, &wrapped, cipher);
        }
        let scrubber = &mut self.scrubber;
        scrubber.in_flight = None;
        scrubber.status.segments_checked += 1;
        scrubber.status.bytes_checked += bytes;
        scrubber.status.frames_checked += frames;
        scrubber.status.frames_without_key += frames_without_key;
        match damage {
            Some(reason) => {
                tracing::error!(shard = shard_id, segment = segment_id, %reason, "scrub found a damaged segment: restore this shard from a backup (docs/operations.md)");
                scrubber.state.damaged.insert(segment_id, reason);
            }
            None => {
                scrubber.state.damaged.remove(&segment_id);
            }
        }
        scrubber.state.next_segment = segment_id + 1;
        self.write_scrub_state().await;
    }

    /// Hands the task the pass's next sealed segment, finishes the pass when none is left, or
    /// starts a pass when one is due.
    async fn scrub_next(&mut self) {
        if self.failure.is_some() {
            return;
        }
        let scrubber = &mut self.scrubber;
        let Some(task) = &scrubber.task else { return };
        if scrubber.in_flight.is_some() {
            return;
        }
        let now = self.config.clock.now_unix_ms();
        // Segments compaction removed since their check are no longer damage to report.
        let before = scrubber.state.damaged.len();
        scrubber.state.damaged.retain(|segment_id, _| self.sealed_segment_bytes.contains_key(segment_id));
        let mut changed = scrubber.state.damaged.len() != before;
        if scrubber.state.pass_started_unix_ms.is_none() {
            let due = scrubber
                .state
                .last_pass
                .is_none_or(|last| now >= last.started_unix_ms.saturating_add(task.interval_ms));
            if !due {
                if changed {
                    self.write_scrub_state().await;
                }
                return;
            }
            tracing::info!(
                shard = self.config.shard_id,
                segments = self.sealed_segment_bytes.len(),
                "scrub pass starts"
            );
            scrubber.state.pass_started_unix_ms = Some(now);
            scrubber.state.next_segment = 0;
            scrubber.state.pass_through = self.sealed_segment_bytes.keys().copied().max().unwrap_or(0);
            changed = true;
        }
        let (from, through) = (scrubber.state.next_segment, scrubber.state.pass_through);
        let next = self.sealed_segment_bytes.keys().copied().filter(|segment| (from..=through).contains(segment)).min();
        if let Some((segment_id, file)) =
            next.and_then(|segment_id| self.readers.get(&segment_id).map(|file| (segment_id, file.clone())))
        {
            let request = ScrubRequest { segment_id, file, keys: self.keys.clone() };
            // The task ends only when this side is dropped; were it gone, the next tick would
            // find the channel closed and say so.
            let _ = task.requests.send(request);
            scrubber.in_flight = Some(segment_id);
        } else {
            let started = scrubber.state.pass_started_unix_ms.take().unwrap_or(now);
            scrubber.state.last_pass = Some(ScrubPass { started_unix_ms: started, finished_unix_ms: now });
            let damaged = scrubber.state.damaged.len();
            if damaged == 0 {
                tracing::info!(shard = self.config.shard_id, "scrub pass finished: every sealed segment is intact");
            } else {
                tracing::error!(shard = self.config.shard_id, damaged, "scrub pass finished with damaged segments");
            }
            changed = true;
        }
        if changed {
            self.write_scrub_state().await;
        }
    }

    async fn write_scrub_state(&mut self) {
        let scrubber = &mut self.scrubber;
        match store_scrub_state(&self.storage, &scrubber.state).await {
            Ok(()) => scrubber.state_unwritten = false,
            Err(reason) if !scrubber.state_unwritten => {
                scrubber.state_unwritten = true;
                tracing::warn!(shard = self.config.shard_id, %reason, "scrub state not saved; a restart repeats this pass's checks");
            }
            Err(_) => {}
        }
    }

    /// The scrub's progress and the damage it knows of, in segments still there (with the
    /// scrub off: what the last passes recorded). `None` if it never ran here.
    pub(super) fn scrub_status(&self) -> Option<ScrubStatus> {
        let scrubber = &self.scrubber;
        if scrubber.task.is_none() && scrubber.state == ScrubState::default() {
            return None;
        }
        let mut status = scrubber.status();
        status.damaged.retain(|finding| self.sealed_segment_bytes.contains_key(&finding.segment_id));
        Some(status)
    }
}

/// Checks one sealed segment: every frame, the footer, and each encrypted record's tag under
/// its account's key (a frame whose account has no usable key, a purged one, is counted).
async fn scrub_segment<F: StorageFile>(
    request: ScrubRequest<F>,
    hsm: &HsmSession,
    budget: &Rc<RefCell<IoBudget>>,
) -> SegmentScrub {
    let ScrubRequest { segment_id, file, mut keys } = request;
    // Keys are unwrapped before the scan, one HSM call at a time with requests served in
    // between: the scan checks a whole chunk at once, and unwrapping inside it (a few ms
    // each on SoftHSM) would stall the shard for as many keys as the chunk's accounts. After
    // a restart the first segment pays for the shard's whole table; the shard keeps them.
    let mut unwrapped = Vec::new();
    for account_id in keys.uncached() {
        if let (Ok(cipher), Some(wrapped)) = (keys.cipher(account_id, hsm), keys.wrapped(account_id)) {
            unwrapped.push((account_id, wrapped.clone(), cipher));
        }
        crate::io::yield_now().await;
    }
    let file = PacedFile { file, budget: budget.clone() };
    let bytes = file.size().await.unwrap_or(0);
    let (mut frames, mut frames_without_key) = (0_u64, 0_u64);
    let scanned = scan_segment(&file, segment_id, false, ScanStart::BEGINNING, |frame| {
        frames += 1;
        if RecordKind::from_u8(frame.header.kind).is_some_and(RecordKind::is_clear) {
            return Ok(());
        }
        let account_id = frame.header.account_id;
        let Some(cipher) = keys.cached(account_id) else {
            frames_without_key += 1;
            return Ok(());
        };
        let record_id = frame.header.record_id;
        cipher
            .open(&frame.header, frame.payload)
            .map(drop)
            .map_err(|_| format!("record {record_id} of account {account_id} fails its AEAD tag"))
    })
    .await;
    let damage = match scanned {
        Ok(ScanEnd::Sealed { untrimmed_end: None, .. }) => None,
        Ok(_) => Some(format!("segment {segment_id} is not sealed and trimmed")),
        Err(ScanError::Replay { offset, reason, .. }) => {
            Some(format!("segment {segment_id} at offset {offset}: {reason}"))
        }
        Err(error) => Some(error.to_string()),
    };
    SegmentScrub { segment_id, bytes, frames, frames_without_key, damage, unwrapped }
}

/// A sealed segment read within the scrub's IO budget: each read waits while the budget is in
/// debt, then spends its length.
struct PacedFile<F> {
    file: Rc<F>,
    budget: Rc<RefCell<IoBudget>>,
}

impl<F: StorageFile> StorageFile for PacedFile<F> {
    async fn write_blocks(&self, buffer: BlockBuffer, _offset: u64) -> (std::io::Result<()>, BlockBuffer) {
        (Err(read_only()), buffer)
    }

    async fn read_exact(&self, offset: u64, length: usize) -> std::io::Result<Vec<u8>> {
        let wait = self.budget.borrow_mut().wait();
        match wait {
            Some(wait) => compio::time::sleep(wait).await,
            // The check of the chunk before ran on the shard's thread: let requests in.
            None => crate::io::yield_now().await,
        }
        self.budget.borrow_mut().spend(length as u64);
        self.file.read_exact(offset, length).await
    }

    async fn sync_data(&self) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn preallocate(&self, _length: u64) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn zero_range(&self, _offset: u64, _length: u64) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn set_len(&self, _length: u64) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn size(&self) -> std::io::Result<u64> {
        self.file.size().await
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::other("the scrub only reads")
}
