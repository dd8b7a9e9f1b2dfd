//! Crash tests on real segment bytes: a commit torn at any byte (cut to zeros, overwritten with
//! garbage, a lost sector, a lost size update) never loses or changes an acknowledged message
//! and is either wholly present or wholly absent after reopening; damage to acknowledged data
//! followed by later commits is reported with its segment and offset, never dropped.
#![allow(clippy::unwrap_used)] // helpers fail the test the way the tests themselves do

mod common;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{FrameSpan, TestStore, active_segment_path, frame_spans, segment_paths};
use mailvault_engine::format::{BLOCK_BYTES, Record, RecordKind, align_up, frame_encoded_bytes};
use mailvault_engine::segment::ScanError;
use mailvault_engine::{Engine, EngineConfig, EngineError, Flags, INBOX, OpenError, block_on, init_store};

const ACCOUNT: &str = "crash@example.org";
const ARCHIVE: &str = "Archive";
const ACKED_MESSAGES: usize = 12;
const SECTOR_BYTES: usize = 512;
/// Where the acknowledged log ends inside its block: late, so that each in-flight commit
/// rewrites acknowledged bytes in the block it starts in and crosses into the next block.
const ACKED_END_IN_BLOCK: usize = 3000;
/// Stores opened at once: an open mostly waits (thread start, io_uring, HSM), so four
/// overlapping opens get through about four times as many iterations on two cores.
const WORKERS: usize = 4;

/// The commit that was being written when the machine crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    /// One frame spanning a block boundary.
    Append,
    /// One `MessageCopied` frame per acknowledged message: a many-frame commit.
    CopyAll,
}

/// A store's segment after `ACKED_MESSAGES` acknowledged appends and one more commit.
struct Crash {
    store: TestStore,
    in_flight: InFlight,
    bodies: Vec<Vec<u8>>,
    in_flight_body: Vec<u8>,
    segment_name: OsString,
    acked_end: usize,
    in_flight_end: usize,
    /// The whole segment file once the in-flight commit was durable.
    after: Vec<u8>,
    /// The checkpoint written when the store closed before the in-flight commit's session: it
    /// covers the acknowledged log up to just before that session's record-id floor commit.
    checkpoint: Vec<u8>,
}

fn body(index: usize, length: usize) -> Vec<u8> {
    let header = format!("Subject: message {index}\r\n\r\n");
    let mut body = header.into_bytes();
    body.extend((0..length).map(|position| b'a' + ((index * 7 + position) % 26) as u8));
    body
}

/// Bytes a `MessageAppended` frame of this body takes on disk.
fn appended_frame_bytes(body_length: usize) -> usize {
    let record = Record::MessageAppended {
        internal_date_unix_ms: 0,
        flags: Flags::default(),
        digest: [0; 32],
        body: vec![0; body_length],
    };
    frame_encoded_bytes(record.encode().len() + mailvault_engine::crypto::TAG_BYTES)
}

/// A body whose frame ends the log at `ACKED_END_IN_BLOCK` within a block, from `log_end`.
fn body_ending_at_target(index: usize, log_end: usize) -> Vec<u8> {
    let wanted = (ACKED_END_IN_BLOCK + 2 * BLOCK_BYTES - log_end % BLOCK_BYTES) % BLOCK_BYTES + BLOCK_BYTES;
    let base = body(index, 0).len();
    let extra = (0..wanted).find(|extra| appended_frame_bytes(base + extra) == wanted).unwrap();
    body(index, extra)
}

async fn log_end(engine: &Engine) -> usize {
    engine.stats().await.unwrap()[0].active_segment_bytes as usize
}

/// Builds the acknowledged store, restarts it (which writes a checkpoint), then commits the
/// in-flight change as the first commit after the restart's record-id floor.
fn crash(in_flight: InFlight) -> Crash {
    let store = TestStore::new(1);
    let engine = store.open();
    let in_flight_body = body(99, 2500);
    let bodies = block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        engine.create_mailbox(ACCOUNT, ARCHIVE).await.unwrap();
        let mut bodies: Vec<Vec<u8>> = (0..ACKED_MESSAGES - 1).map(|index| body(index, 40 + 17 * index)).collect();
        for body in &bodies {
            engine.append(ACCOUNT, INBOX, body.clone(), Flags::default(), None).await.unwrap();
        }
        bodies.push(body_ending_at_target(ACKED_MESSAGES - 1, log_end(&engine).await));
        engine.append(ACCOUNT, INBOX, bodies[ACKED_MESSAGES - 1].clone(), Flags::default(), None).await.unwrap();
        bodies
    });
    drop(engine);
    let checkpoint = std::fs::read(checkpoint_path(&store.config)).unwrap();
    let engine = store.open();
    let (acked_end, in_flight_end) = block_on(async {
        let acked_end = log_end(&engine).await;
        match in_flight {
            InFlight::Append => {
                engine.append(ACCOUNT, INBOX, in_flight_body.clone(), Flags::default(), None).await.unwrap();
            }
            InFlight::CopyAll => {
                let uids: Vec<u32> = (1..=ACKED_MESSAGES as u32).collect();
                engine.copy(ACCOUNT, INBOX, &uids, ARCHIVE).await.unwrap();
            }
        }
        (acked_end, log_end(&engine).await)
    });
    drop(engine);
    let path = active_segment_path(&store.config.data_dir, 0);
    let after = std::fs::read(&path).unwrap();
    assert!(acked_end % BLOCK_BYTES >= ACKED_END_IN_BLOCK, "{acked_end}");
    assert!(in_flight_end / BLOCK_BYTES > acked_end / BLOCK_BYTES, "the in-flight commit crosses a block boundary");
    assert!(after.len() >= align_up(in_flight_end, BLOCK_BYTES));
    let segment_name = path.file_name().unwrap().to_owned();
    Crash { store, in_flight, bodies, in_flight_body, segment_name, acked_end, in_flight_end, after, checkpoint }
}

/// How the in-flight commit reached the disk.
#[derive(Debug, Clone, Copy)]
enum Tear {
    /// Nothing from this offset on was written: zeros, as in preallocated space.
    ZerosFrom(usize),
    /// From this offset to the end of the commit's last block, every byte differs from what
    /// was written (stale or random sector contents).
    GarbageFrom(usize),
    /// The sector at this offset was lost while the rest of the commit landed.
    LostSector(usize),
    /// The file ends here: the write's size update was lost.
    FileEndsAt(usize),
}

impl Crash {
    /// The segment bytes after this tear, and whether the in-flight commit must survive it.
    fn torn(&self, tear: Tear) -> (Vec<u8>, bool) {
        let mut bytes = self.after.clone();
        let lost_nothing = |from: usize, to: usize| self.after[from..to.max(from)].iter().all(|byte| *byte == 0);
        match tear {
            Tear::ZerosFrom(at) => {
                bytes[at..].fill(0);
                (bytes, lost_nothing(at, self.in_flight_end))
            }
            Tear::GarbageFrom(at) => {
                let end = align_up(self.in_flight_end, BLOCK_BYTES);
                let mut state = at as u64 | 1;
                for byte in &mut bytes[at..end] {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *byte ^= (state as u8) | 1;
                }
                (bytes, at >= self.in_flight_end)
            }
            Tear::LostSector(at) => {
                let (from, to) = (at.max(self.acked_end), (at + SECTOR_BYTES).min(self.in_flight_end));
                bytes[from..to].fill(0);
                (bytes, lost_nothing(from, to))
            }
            Tear::FileEndsAt(at) => {
                bytes.truncate(at);
                (bytes, lost_nothing(at, self.in_flight_end))
            }
        }
    }

    /// The tears to try: zeros from every `zeros_step`th byte and garbage from every
    /// `garbage_step`th byte of the in-flight commit, each also from every sector boundary and
    /// frame boundary ±1; each lost sector; the file ending at each sector boundary ±1.
    fn tears(&self, zeros_step: usize, garbage_step: usize) -> Vec<Tear> {
        let range = self.acked_end..=self.in_flight_end;
        let frame_starts: Vec<usize> = frame_spans(&self.after).iter().map(|span| span.offset).collect();
        let near_sector = |at: usize| {
            let near = |boundary: usize| at.abs_diff(boundary) <= 1;
            near(at.next_multiple_of(SECTOR_BYTES)) || near(at / SECTOR_BYTES * SECTOR_BYTES)
        };
        let near_any = |at: usize| near_sector(at) || frame_starts.iter().any(|start| at.abs_diff(*start) <= 1);
        let every =
            |step: usize| range.clone().filter(move |at| (at - self.acked_end).is_multiple_of(step) || near_any(*at));
        let mut tears: Vec<Tear> = every(zeros_step).map(Tear::ZerosFrom).collect();
        tears.extend(every(garbage_step).map(Tear::GarbageFrom));
        let first_sector = self.acked_end / SECTOR_BYTES * SECTOR_BYTES;
        tears.extend((first_sector..self.in_flight_end).step_by(SECTOR_BYTES).map(Tear::LostSector));
        tears.extend(range.clone().filter(|at| near_sector(*at)).map(Tear::FileEndsAt));
        tears
    }
}

/// A store directory of its own, into which each case installs its segment bytes.
struct Workspace {
    _directory: tempfile::TempDir,
    config: EngineConfig,
    segment: PathBuf,
}

impl Workspace {
    fn new(crash: &Crash) -> Self {
        let directory = tempfile::tempdir().unwrap();
        init_store(directory.path(), 1).unwrap();
        let mut config = crash.store.config.clone();
        config.data_dir = PathBuf::from(directory.path());
        // Room for what recovery writes, not for the re-check's later append: that one seals.
        config.segment_bytes_max = (align_up(crash.in_flight_end, BLOCK_BYTES) + BLOCK_BYTES) as u64;
        let segment = directory.path().join("shard-000").join(&crash.segment_name);
        Self { _directory: directory, config, segment }
    }

    /// Makes the shard directory hold exactly this segment, and this checkpoint if any.
    fn install(&self, bytes: &[u8], checkpoint: Option<&[u8]>) {
        for entry in std::fs::read_dir(self.segment.parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            if path != self.segment {
                std::fs::remove_file(path).unwrap();
            }
        }
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&self.segment).unwrap();
        file.write_all(bytes).unwrap();
        file.set_len(bytes.len() as u64).unwrap();
        if let Some(checkpoint) = checkpoint {
            std::fs::write(checkpoint_path(&self.config), checkpoint).unwrap();
        }
    }

    fn open(&self, crash: &Crash) -> Result<Engine, OpenError> {
        Engine::open(&self.config, &crash.store.token.hsm)
    }
}

/// Raised when the worker thread holding it panics, so the others stop early.
struct FailureFlag<'a>(&'a AtomicBool);

impl Drop for FailureFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `check` on every case, `WORKERS` at a time, each worker in its own store directory;
/// stops handing out cases once one has failed.
fn check_all<T: Sync>(crash: &Crash, cases: &[T], check: impl Fn(&Workspace, &T) + Sync) {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Keep the token logged in between opens (the last session closing logs it out).
    let _session = crash.store.token.hsm.session().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                let _flag = FailureFlag(&failed);
                let workspace = Workspace::new(crash);
                while !failed.load(Ordering::Relaxed) {
                    let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                    check(&workspace, case);
                }
            });
        }
    });
}

/// Checks every acknowledged message byte for byte; returns whether the in-flight commit is
/// present, panicking if it is there only in part. `later_uid` is a message appended to INBOX
/// after the crash, left out of the comparison.
fn in_flight_present(engine: &Engine, crash: &Crash, context: &str, later_uid: Option<u32>) -> bool {
    block_on(async {
        let (inbox, messages) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
        for (uid, body) in (1..).zip(&crash.bodies) {
            let message = engine.fetch(ACCOUNT, INBOX, uid).await.unwrap_or_else(|error| panic!("{context}: {error}"));
            assert_eq!(&message.body, body, "{context}: acknowledged uid {uid} changed");
        }
        let uids: Vec<u32> = messages.iter().map(|message| message.uid).filter(|uid| Some(*uid) != later_uid).collect();
        let uid_next = later_uid.map_or(uids.len() + 1, |uid| uid as usize + 1);
        let acked_uids: Vec<u32> = (1..=ACKED_MESSAGES as u32).collect();
        match crash.in_flight {
            InFlight::Append => {
                let present = uids.len() == ACKED_MESSAGES + 1;
                assert!(uids.starts_with(&acked_uids) && uids.len() <= ACKED_MESSAGES + 1, "{context}: {uids:?}");
                assert_eq!(inbox.uid_next as usize, uid_next, "{context}");
                if present {
                    let message = engine.fetch(ACCOUNT, INBOX, 13).await.unwrap();
                    assert_eq!(message.body, crash.in_flight_body, "{context}: in-flight message changed");
                }
                present
            }
            InFlight::CopyAll => {
                assert_eq!((uids, inbox.uid_next as usize), (acked_uids, uid_next), "{context}");
                let (archive, copies) = engine.list_messages(ACCOUNT, ARCHIVE).await.unwrap();
                assert!(copies.is_empty() || copies.len() == ACKED_MESSAGES, "{context}: half a commit: {copies:?}");
                assert_eq!(archive.uid_next as usize, copies.len() + 1, "{context}");
                for (copy, body) in copies.iter().zip(&crash.bodies) {
                    assert_eq!(
                        (copy.size, copy.digest),
                        (body.len() as u64, *blake3::hash(body).as_bytes()),
                        "{context}"
                    );
                }
                !copies.is_empty()
            }
        }
    })
}

/// Reopens the store at `tear` (replaying from the checkpoint, or the whole log) and checks it.
/// On some cases it then also checks that the recovered segment takes a commit that seals it,
/// and that a full replay accepts the sealed segment's footer and keeps everything.
fn check_tear(workspace: &Workspace, crash: &Crash, tear: Tear, from_checkpoint: bool) {
    let context = format!("{:?} after {tear:?}, from a checkpoint: {from_checkpoint}", crash.in_flight);
    let (bytes, expect_present) = crash.torn(tear);
    workspace.install(&bytes, from_checkpoint.then_some(&crash.checkpoint[..]));
    let engine = workspace.open(crash).unwrap_or_else(|error| panic!("{context}: store does not open: {error}"));
    let present = in_flight_present(&engine, crash, &context, None);
    assert_eq!(present, expect_present, "{context}: in-flight commit present = {present}");
    let at = match tear {
        Tear::ZerosFrom(at) | Tear::GarbageFrom(at) | Tear::LostSector(at) | Tear::FileEndsAt(at) => at,
    };
    if at % 61 != 0 && at % SECTOR_BYTES > 1 && at != crash.in_flight_end {
        return;
    }
    let later = body(1000, 12_000 + at % 300);
    let uid = block_on(engine.append(ACCOUNT, INBOX, later.clone(), Flags::default(), None)).unwrap();
    drop(engine);
    let segments = segment_paths(&workspace.config.data_dir, 0);
    assert_eq!(segments.len(), 2, "{context}: the later commit sealed the segment");
    assert_no_record_id_reused(crash, &std::fs::read(&segments[0]).unwrap(), present, &context);
    std::fs::remove_file(checkpoint_path(&workspace.config)).unwrap();
    let engine = workspace.open(crash).unwrap_or_else(|error| panic!("{context}, then a sealing commit: {error}"));
    assert_eq!(in_flight_present(&engine, crash, &context, Some(uid)), present, "{context}, then a commit");
    assert_eq!(block_on(engine.fetch(ACCOUNT, INBOX, uid)).unwrap().body, later, "{context}, then a commit");
}

/// Record ids are GCM nonces: every record written after the crash (the recovery's record-id
/// floor, the later commit, and everything after) has an id above every id of the in-flight
/// commit, whose ciphertext may survive on disk even when it was cut.
fn assert_no_record_id_reused(crash: &Crash, sealed: &[u8], in_flight_present: bool, context: &str) {
    let in_flight = |span: &&FrameSpan| (crash.acked_end..crash.in_flight_end).contains(&span.offset);
    let in_flight_max = frame_spans(&crash.after).iter().filter(in_flight).map(|span| span.header.record_id).max();
    let in_flight_max = in_flight_max.unwrap();
    let written_after = frame_spans(sealed).into_iter().filter(|span| {
        span.offset >= crash.acked_end
            && span.header.kind != RecordKind::SegmentSealed as u8
            && !(in_flight_present && in_flight(&span))
    });
    for span in written_after {
        assert!(
            span.header.record_id > in_flight_max,
            "{context}: record id {} reused at {}",
            span.header.record_id,
            span.offset
        );
    }
}

fn torn_commits_are_all_or_nothing(in_flight: InFlight, steps: (usize, usize), from_checkpoint: bool) {
    let started = std::time::Instant::now();
    let crash = crash(in_flight);
    if from_checkpoint {
        // The premise: opening starts from the checkpoint, so a flipped byte in the log it
        // covers (which a full replay would refuse) is not checked: here the first frame's
        // record id, which its CRC covers (the open walks covered frames by magic and length).
        let workspace = Workspace::new(&crash);
        let mut bytes = crash.after.clone();
        bytes[BLOCK_BYTES + 20] ^= 1;
        workspace.install(&bytes, Some(&crash.checkpoint));
        drop(workspace.open(&crash).unwrap());
        workspace.install(&bytes, None);
        assert!(workspace.open(&crash).is_err());
    }
    let tears = crash.tears(steps.0, steps.1);
    check_all(&crash, &tears, |workspace, tear| check_tear(workspace, &crash, *tear, from_checkpoint));
    eprintln!(
        "{in_flight:?} (from a checkpoint: {from_checkpoint}): {} tears over bytes {}..={} checked in {:?}",
        tears.len(),
        crash.acked_end,
        crash.in_flight_end,
        started.elapsed()
    );
}

#[test]
fn an_append_torn_at_any_byte_is_all_or_nothing_and_acknowledged_mail_survives() {
    torn_commits_are_all_or_nothing(InFlight::Append, (1, 7), false);
}

#[test]
fn a_many_frame_copy_torn_at_any_byte_is_all_or_nothing_and_acknowledged_mail_survives() {
    torn_commits_are_all_or_nothing(InFlight::CopyAll, (1, 5), false);
}

/// The same tears while a checkpoint covers the acknowledged log: the scan starts mid-segment.
#[test]
fn a_commit_torn_after_a_checkpoint_is_all_or_nothing_and_acknowledged_mail_survives() {
    torn_commits_are_all_or_nothing(InFlight::CopyAll, (5, 11), true);
}

/// Damage to an acknowledged frame: `(first byte, bytes)` replaced.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// One byte inverted.
    FlippedByte(usize),
    /// Zeros over a range: a lost or misdirected write.
    Zeroed(usize, usize),
}

impl Damage {
    fn apply(self, bytes: &mut [u8]) {
        match self {
            Self::FlippedByte(at) => bytes[at] ^= 0xff,
            Self::Zeroed(from, to) => bytes[from..to].fill(0),
        }
    }
}

/// Commits as frame lists, in log order (a commit ends at its `COMMIT_END` frame).
fn commits(spans: &[FrameSpan]) -> Vec<Vec<FrameSpan>> {
    let mut commits = vec![Vec::new()];
    for span in spans {
        commits.last_mut().unwrap().push(*span);
        if span.header.is_commit_end() {
            commits.push(Vec::new());
        }
    }
    commits.pop();
    commits
}

#[test]
fn damage_to_acknowledged_commits_followed_by_later_ones_is_reported_never_dropped() {
    let crash = crash(InFlight::Append);
    let spans = frame_spans(&crash.after);
    let commits = commits(&spans);
    // Two intact commits after the damage prove it is not a torn last commit.
    let protected_from = commits[commits.len() - 2][0].offset;
    let mut cases = Vec::new();
    for span in spans.iter().filter(|span| span.end() <= protected_from) {
        let payload_end = 40 + span.header.payload_length as usize;
        for position in [0, 1, 4, 5, 8, 11, 12, 13, 14, 16, 24, 32, 36, 39, 40, payload_end / 2, payload_end - 1] {
            cases.push(Damage::FlippedByte(span.offset + position.min(span.encoded_bytes - 1)));
        }
        cases.push(Damage::FlippedByte(span.end() - 1));
        cases.push(Damage::Zeroed(span.offset, span.offset + 8));
    }
    let sectors = (BLOCK_BYTES..protected_from).step_by(SECTOR_BYTES);
    cases.extend(sectors.map(|sector| Damage::Zeroed(sector, (sector + SECTOR_BYTES).min(protected_from))));

    let reported = AtomicUsize::new(0);
    check_all(&crash, &cases, |workspace, damage| {
        let mut bytes = crash.after.clone();
        damage.apply(&mut bytes);
        let damaged = spans.iter().find(|span| bytes[span.offset..span.end()] != crash.after[span.offset..span.end()]);
        let Some(damaged) = damaged else { return }; // zeros over zeros (padding) change nothing
        workspace.install(&bytes, None);
        let Err(error) = workspace.open(&crash) else {
            panic!("{damage:?}: the store opened over damaged acknowledged data");
        };
        let OpenError::Recovery { shard_id: 0, source: ScanError::Corrupt { segment_id, offset, .. } } = &error else {
            panic!("{damage:?}: expected a corruption error, got {error}");
        };
        assert_eq!(*offset, damaged.offset as u64, "{damage:?}: {error}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("segment {segment_id}")) && message.contains(&format!("offset {offset}")),
            "{message}"
        );
        assert_eq!(
            std::fs::read(&workspace.segment).unwrap(),
            bytes,
            "{damage:?}: the failed open changed the segment"
        );
        reported.fetch_add(1, Ordering::Relaxed);
    });
    eprintln!("{} of {} damages changed acknowledged bytes; each was reported", reported.into_inner(), cases.len());
}

/// A store whose first segment is sealed; returns it with its own config (small segments).
fn store_with_a_sealed_segment() -> (TestStore, EngineConfig, Vec<Vec<u8>>) {
    let store = TestStore::new(1);
    let mut config = store.config.clone();
    config.segment_bytes_max = 16 * 1024;
    let engine = Engine::open(&config, &store.token.hsm).unwrap();
    let bodies: Vec<Vec<u8>> = (0..8).map(|index| body(index, 3000)).collect();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for body in &bodies {
            engine.append(ACCOUNT, INBOX, body.clone(), Flags::default(), None).await.unwrap();
        }
    });
    drop(engine);
    assert!(segment_paths(&config.data_dir, 0).len() >= 2, "the first segment was sealed");
    (store, config, bodies)
}

fn checkpoint_path(config: &EngineConfig) -> PathBuf {
    config.data_dir.join("shard-000").join("checkpoint")
}

/// Without a checkpoint, opening replays every segment: any flipped byte of a sealed one, or
/// a cut end, stops the open and names the segment.
#[test]
fn damage_anywhere_in_a_sealed_segment_fails_a_full_replay() {
    let (store, config, _) = store_with_a_sealed_segment();
    std::fs::remove_file(checkpoint_path(&config)).unwrap();
    let path = segment_paths(&config.data_dir, 0).remove(0);
    let sealed = std::fs::read(&path).unwrap();
    let mut positions: Vec<usize> = (0..sealed.len()).step_by(89).collect();
    positions.extend([36, 50, 63, 64, 4095, 4096, sealed.len() - 88, sealed.len() - 48, sealed.len() - 1]);

    let broken = |bytes: &[u8], what: &str| {
        std::fs::write(&path, bytes).unwrap();
        match Engine::open(&config, &store.token.hsm) {
            Ok(_) => panic!("{what}: the store opened over a damaged sealed segment"),
            Err(OpenError::Recovery {
                source: ScanError::Header { segment_id: 1, .. } | ScanError::Corrupt { segment_id: 1, .. },
                ..
            }) => {}
            Err(other) => panic!("{what}: expected segment 1 to be reported, got {other}"),
        }
    };
    for position in &positions {
        let mut bytes = sealed.clone();
        bytes[*position] ^= 0x10;
        broken(&bytes, &format!("byte {position} flipped"));
    }
    broken(&sealed[..sealed.len() - 8], "last 8 bytes cut");
    std::fs::write(&path, &sealed).unwrap();
    drop(Engine::open(&config, &store.token.hsm).unwrap());
}

/// With a checkpoint covering a sealed segment, opening does not re-read it; a damaged message
/// body there is reported when fetched, and never returned altered.
#[test]
fn a_damaged_message_under_a_checkpoint_is_reported_when_fetched() {
    let (store, config, bodies) = store_with_a_sealed_segment();
    assert!(checkpoint_path(&config).exists(), "closing wrote a checkpoint");
    let path = segment_paths(&config.data_dir, 0).remove(0);
    let sealed = std::fs::read(&path).unwrap();
    let messages: Vec<FrameSpan> =
        frame_spans(&sealed).into_iter().filter(|span| span.header.kind == RecordKind::MessageAppended as u8).collect();
    assert!(messages.len() >= 2);
    for damaged in &messages {
        let mut bytes = sealed.clone();
        bytes[damaged.offset + damaged.encoded_bytes / 2] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let engine = Engine::open(&config, &store.token.hsm).unwrap();
        block_on(async {
            for (uid, body) in (1..).zip(&bodies) {
                match engine.fetch(ACCOUNT, INBOX, uid).await {
                    // Told apart from a wrong key: the fetch consults the CRC once the tag fails.
                    Err(EngineError::Corrupt(what)) if uid == damaged.header.uid => {
                        assert!(what.contains("checksum mismatch"), "uid {uid}: {what}");
                    }
                    Ok(message) if uid != damaged.header.uid => assert_eq!(&message.body, body),
                    other => panic!("uid {uid} with uid {} damaged: {other:?}", damaged.header.uid),
                }
            }
        });
    }
}
