//! Reading compaction's next victim ahead of the copy: one task per shard reads and verifies
//! the victim it is asked for while the shard copies the current one (`Shard::ask_for_next_victim`
//! asks for one at a time).
//!
//! Reading a 64 MiB victim is most of compaction's time on disks like ours; reading the next
//! one while the current one is copied keeps the disk busy with both, and the scan that
//! verifies it yields between chunks, so the shard's commits and requests run meanwhile.

use std::collections::BTreeSet;
use std::rc::Rc;

use crate::index::BlobUsage;
use crate::io::{BlockBuffer, StorageFile};
use crate::segment::{ScanEnd, ScanStart, ScannedFrame, scan_segment};

/// A victim's bytes, all verified (every frame, the footer and its digest), and the accounts
/// it mentions.
#[derive(Debug)]
pub(super) struct VerifiedVictim {
    pub(super) bytes: BlockBuffer,
    pub(super) accounts: BTreeSet<u64>,
}

/// A victim asked of the reader: which segment, and the usage it was chosen under (the copy
/// keeps the bodies that usage needs; needs only shrink meanwhile, so nothing needed is missed,
/// and a prune, which makes retained bodies dead at once, replaces it:
/// `Shard::use_for_compaction_in_flight`).
#[derive(Debug)]
pub(super) struct AskedVictim {
    pub(super) victim: u64,
    pub(super) usage: Rc<BlobUsage>,
}

type ReadResult = Result<VerifiedVictim, String>;

struct ReadRequest<F> {
    victim: u64,
    file: Rc<F>,
    buffer: BlockBuffer,
}

/// The shard's side of its reader task: what it asked for, and the answer.
pub(super) struct VictimReader<F> {
    requests: flume::Sender<ReadRequest<F>>,
    results: flume::Receiver<ReadResult>,
    /// Asked for and not yet taken.
    pub(super) asked: Option<AskedVictim>,
    /// The answer, when it was received while waiting for requests (see `next_request`).
    received: Option<ReadResult>,
}

impl<F: StorageFile> VictimReader<F> {
    pub(super) fn spawn() -> Self {
        let (requests, incoming) = flume::unbounded::<ReadRequest<F>>();
        let (answers, results) = flume::unbounded();
        compio::runtime::spawn(async move {
            while let Ok(ReadRequest { victim, file, buffer }) = incoming.recv_async().await {
                if answers.send(read_victim(&*file, victim, buffer).await).is_err() {
                    break;
                }
            }
        })
        .detach();
        Self { requests, results, asked: None, received: None }
    }

    /// Asks for `victim` to be read (into `buffer`, reused); nothing else may be asked for
    /// until it is taken.
    pub(super) fn ask(&mut self, victim: u64, usage: Rc<BlobUsage>, file: Rc<F>, buffer: BlockBuffer) {
        // The task ends only when this side is dropped: a failed send cannot happen here, and
        // if it did, the victim would just never be answered (`take` reports that).
        let _ = self.requests.send(ReadRequest { victim, file, buffer });
        debug_assert!(self.asked.is_none(), "one victim ahead at a time");
        self.asked = Some(AskedVictim { victim, usage });
    }

    pub(super) fn is_asked(&self, victim: u64) -> bool {
        self.asked.as_ref().is_some_and(|asked| asked.victim == victim)
    }

    /// The victim asked for with its answer, if it has come.
    pub(super) fn take(&mut self) -> Option<(AskedVictim, ReadResult)> {
        self.asked.as_ref()?;
        let result = match self.received.take() {
            Some(result) => result,
            None => match self.results.try_recv() {
                Ok(result) => result,
                Err(flume::TryRecvError::Empty) => return None,
                Err(flume::TryRecvError::Disconnected) => Err("the read task stopped".to_owned()),
            },
        };
        self.asked.take().map(|asked| (asked, result))
    }

    /// Whether the victim asked for is still being read.
    pub(super) fn is_waiting(&self) -> bool {
        self.asked.is_some() && self.received.is_none() && self.results.is_empty()
    }

    /// Waits for the answer and keeps it for `take`.
    pub(super) async fn wait(&mut self) {
        if self.is_waiting() {
            let result = self.results.recv_async().await;
            self.received = Some(result.unwrap_or_else(|_| Err("the read task stopped".to_owned())));
        }
    }
}

/// Reads the victim after verifying all of it: a segment covered by a checkpoint was not read
/// at open, and one that is damaged must be reported and kept, never rewritten from a partial
/// reading and removed.
async fn read_victim<F: StorageFile>(file: &F, victim: u64, buffer: BlockBuffer) -> ReadResult {
    // One read; the scan verifies exactly the bytes the copy will use.
    let (read, bytes) = file.read_whole(buffer).await;
    read.map_err(|error| error.to_string())?;
    let file = VictimBytes(bytes);
    let mut accounts = BTreeSet::new();
    let collect = |frame: ScannedFrame| {
        if frame.header.account_id != 0 {
            accounts.insert(frame.header.account_id);
        }
        Ok(())
    };
    let end =
        scan_segment(&file, victim, false, ScanStart::BEGINNING, collect).await.map_err(|error| error.to_string())?;
    if !matches!(end, ScanEnd::Sealed { untrimmed_end: None, .. }) {
        return Err("segment is not sealed and trimmed".into());
    }
    Ok(VerifiedVictim { bytes: file.0, accounts })
}

/// A victim's bytes, read once, as a read-only file for the scan.
struct VictimBytes(BlockBuffer);

impl StorageFile for VictimBytes {
    async fn write_blocks(&self, buffer: BlockBuffer, _offset: u64) -> (std::io::Result<()>, BlockBuffer) {
        (Err(read_only()), buffer)
    }

    async fn read_exact(&self, offset: u64, length: usize) -> std::io::Result<Vec<u8>> {
        // The scan reads a chunk at a time: let the shard serve requests and run its commits
        // between chunks rather than stall for the whole victim's verification.
        crate::io::yield_now().await;
        let start = usize::try_from(offset).map_err(|_| short())?;
        let end = start.checked_add(length).ok_or_else(short)?;
        self.0.as_slice().get(start..end).map(<[u8]>::to_vec).ok_or_else(short)
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
        Ok(self.0.len() as u64)
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::other("a victim's bytes are read-only")
}

fn short() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
}
