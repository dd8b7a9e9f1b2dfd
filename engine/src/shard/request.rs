//! What frontends ask of a shard, and what it answers.

use crate::api::{
    AccessEvent, AccountState, CompactionReport, CompactionStatus, Credentials, DeletedMessageId, DeletedMessageInfo,
    FlagChange, Flags, MailboxInfo, MessageInfo, ShardStats,
};
use crate::error::EngineError;

use super::sealed_message::SealedMessage;

pub(crate) type Reply<T> = flume::Sender<Result<T, EngineError>>;

/// The answer to one of the requests every message costs (a fetch, an append and every other
/// mutation): a one-shot channel, one allocation where a `Reply` takes three or four (its
/// queue, and the waiter's hook when the caller waits first) and a lock (bench/README.md,
/// session 30).
pub(crate) type OneShot<T> = futures_channel::oneshot::Sender<Result<T, EngineError>>;

/// A mutation's answer, sent once its batch is durable: its outcome, or why it was refused
/// (a refusal may rest on changes still in flight, so it waits for them too).
pub(crate) type Answer = (OneShot<Outcome>, Result<Outcome, EngineError>);

/// Changes: validated, turned into records, committed together with the rest of their batch,
/// and answered only once durable.
#[derive(Debug)]
pub(crate) enum Mutation {
    CreateAccount {
        account: String,
    },
    CreateMailbox {
        account: String,
        name: String,
    },
    RenameMailbox {
        account: String,
        from: String,
        to: String,
    },
    DeleteMailbox {
        account: String,
        name: String,
    },
    Append {
        account: String,
        mailbox: String,
        body: Vec<u8>,
        /// BLAKE3 of `body`, computed by the caller (`Engine::append`).
        digest: [u8; 32],
        flags: Flags,
        internal_date_unix_ms: Option<i64>,
    },
    ChangeFlags {
        account: String,
        mailbox: String,
        uids: Vec<u32>,
        change: FlagChange,
    },
    Copy {
        account: String,
        from: String,
        uids: Vec<u32>,
        to: String,
        remove_source: bool,
    },
    Expunge {
        account: String,
        mailbox: String,
        uids: Vec<u32>,
    },
    Restore {
        account: String,
        deleted: DeletedMessageId,
    },
    SetPassword {
        account: String,
        password_hash: String,
    },
    AddAppPassword {
        account: String,
        label: String,
        password_hash: String,
    },
    RevokeAppPasswords {
        account: String,
    },
    RecordAccess {
        account: String,
        event: AccessEvent,
    },
    PruneDeleted {
        account: String,
    },
    /// Close the account; purge it once `purge_delay_ms` has passed.
    CloseAccount {
        account: String,
        purge_delay_ms: i64,
    },
    ReopenAccount {
        account: String,
    },
    /// Purge a closed account: it leaves the index and the key table (crypto-shredding of its
    /// key is the engine's job, across shards, after this commit).
    PurgeAccount {
        account: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    /// A message appended: its uid, and its body handed back to be freed by the caller.
    Appended {
        uid: u32,
        body: SpentBody,
    },
    /// (source uid, new uid) pairs, for COPYUID.
    UidMap(Vec<(u32, u32)>),
    Restored {
        mailbox: String,
        uid: u32,
    },
    Count(u32),
    /// An instant (Unix milliseconds): when a closed account will be purged.
    At(i64),
}

/// An appended message's body, sealed into its commit and handed back with the answer so that
/// the caller's thread, which allocated it, frees it. Freed on the shard's thread instead, a
/// block from another thread's glibc arena is freed under that arena's lock, which the caller
/// holds while it allocates the next body: in 4 KiB appends the shard spent 13% of its time in
/// `free`, half of it asleep on that lock (bench/README.md, session 32). Fetched bodies go back
/// the other way for the same reason (`ReadBytes`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SpentBody(pub(crate) Vec<u8>);

/// A message's bytes stay out of logs and error messages: only their count is shown.
impl std::fmt::Debug for SpentBody {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SpentBody({} bytes)", self.0.len())
    }
}

/// Reads: answered from the index (and the disk, for message bodies).
#[derive(Debug)]
pub(crate) enum Query {
    Accounts(Reply<Vec<String>>),
    Mailboxes {
        account: String,
        reply: Reply<Vec<MailboxInfo>>,
    },
    Messages {
        account: String,
        mailbox: String,
        reply: Reply<(MailboxInfo, Vec<MessageInfo>)>,
    },
    Fetch {
        account: String,
        mailbox: String,
        uid: u32,
        /// Sent from a task on this shard's own thread (`Engine::on_shard_thread`).
        local: bool,
        reply: OneShot<SealedMessage>,
    },
    Deleted {
        account: String,
        reply: Reply<Vec<DeletedMessageInfo>>,
    },
    Stats(Reply<ShardStats>),
    Compaction(Reply<CompactionStatus>),
    Credentials {
        account: String,
        reply: Reply<Credentials>,
    },
    AccessLog {
        account: String,
        limit: usize,
        reply: Reply<Vec<AccessEvent>>,
    },
    /// Every account with its state (open or closed), closed ones included.
    AccountStates(Reply<Vec<AccountState>>),
    /// Closed accounts whose purge time has passed (by the engine's clock).
    DuePurges(Reply<Vec<String>>),
}

impl Query {
    /// The one account this read looks at; `None` for reads of the whole shard.
    pub(super) fn account(&self) -> Option<&str> {
        match self {
            Query::Mailboxes { account, .. }
            | Query::Messages { account, .. }
            | Query::Fetch { account, .. }
            | Query::Deleted { account, .. }
            | Query::Credentials { account, .. }
            | Query::AccessLog { account, .. } => Some(account),
            Query::Accounts(_)
            | Query::Stats(_)
            | Query::Compaction(_)
            | Query::AccountStates(_)
            | Query::DuePurges(_) => None,
        }
    }

    /// Answers the query with `error` (a shard that cannot serve it).
    pub(super) fn refuse(self, error: EngineError) {
        match self {
            Query::Accounts(reply) | Query::DuePurges(reply) => refuse(&reply, error),
            Query::Mailboxes { reply, .. } => refuse(&reply, error),
            Query::Messages { reply, .. } => refuse(&reply, error),
            Query::Fetch { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Query::Deleted { reply, .. } => refuse(&reply, error),
            Query::Stats(reply) => refuse(&reply, error),
            Query::Compaction(reply) => refuse(&reply, error),
            Query::Credentials { reply, .. } => refuse(&reply, error),
            Query::AccessLog { reply, .. } => refuse(&reply, error),
            Query::AccountStates(reply) => refuse(&reply, error),
        }
    }
}

/// Answers with `error`; a requester that went away no longer needs the answer.
fn refuse<T>(reply: &Reply<T>, error: EngineError) {
    let _ = reply.send(Err(error));
}

/// Log bytes of a record that carries no body: its frame, with room for the longest names.
const SMALL_RECORD_BYTES_MAX: u64 = 128 + 2 * crate::format::NAME_BYTES_MAX as u64;

impl Mutation {
    /// The log bytes this mutation writes at most, as far as the request tells: a body's
    /// size, or a record per listed uid. What depends on the index (a prune's account
    /// snapshot) is for `Shard::room_needed` to add.
    pub(super) fn log_bytes_hint(&self) -> u64 {
        let records = |count: usize| (count as u64 + 1) * SMALL_RECORD_BYTES_MAX;
        match self {
            Mutation::Append { body, .. } => body.len() as u64 + SMALL_RECORD_BYTES_MAX,
            Mutation::ChangeFlags { uids, .. } | Mutation::Copy { uids, .. } | Mutation::Expunge { uids, .. } => {
                records(uids.len())
            }
            _ => records(1),
        }
    }

    /// The account this mutation changes (every mutation changes exactly one).
    pub(super) fn account(&self) -> &str {
        match self {
            Mutation::CreateAccount { account }
            | Mutation::CreateMailbox { account, .. }
            | Mutation::RenameMailbox { account, .. }
            | Mutation::DeleteMailbox { account, .. }
            | Mutation::Append { account, .. }
            | Mutation::ChangeFlags { account, .. }
            | Mutation::Copy { account, .. }
            | Mutation::Expunge { account, .. }
            | Mutation::Restore { account, .. }
            | Mutation::SetPassword { account, .. }
            | Mutation::AddAppPassword { account, .. }
            | Mutation::RevokeAppPasswords { account }
            | Mutation::RecordAccess { account, .. }
            | Mutation::PruneDeleted { account }
            | Mutation::CloseAccount { account, .. }
            | Mutation::ReopenAccount { account }
            | Mutation::PurgeAccount { account } => account,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Request {
    Mutate {
        /// Boxed: a mutation is 152 bytes, the rest at most 64. Every request is moved
        /// through the queue and the shard's loop, and moves of 160 bytes were `memcpy` calls,
        /// 2-3% of a shard's time in random fetches (bench/README.md, session 30).
        mutation: Box<Mutation>,
        reply: OneShot<Outcome>,
    },
    Query(Query),
    /// Compact every segment that qualifies; answered when compaction has nothing left to do.
    Compact(Reply<CompactionReport>),
    /// Re-wrap every data key under the HSM's current KEK, commit the new `KeyWrapped`
    /// records, and write a checkpoint: answered once all of it is durable (crypto-shredding).
    RewrapKeys(Reply<u64>),
    /// Seal the active segment if it holds anything but record-id floors (after the batch it
    /// arrived in is committed); answered with the ids of the shard's sealed segments then.
    /// Also holds compaction back (no segment is removed) until `ReleaseBackupHold` or for
    /// `BACKUP_HOLD_MS`, so the backup can copy every segment it was told about.
    Seal(Reply<Vec<u64>>),
    /// Ends the hold a `Seal` started.
    ReleaseBackupHold(Reply<()>),
    /// Start a caller's task on the shard's own runtime (`Engine::spawn_on_shard`).
    Spawn(SpawnRequest),
    Shutdown,
}

/// A caller's work to run on a shard's thread: `start` spawns it on the shard's runtime, or
/// `refuse` tells the caller why it will not run. Exactly one of them is called.
pub(crate) struct SpawnRequest {
    pub start: Box<dyn FnOnce() + Send>,
    pub refuse: Box<dyn FnOnce(EngineError) + Send>,
}

impl std::fmt::Debug for SpawnRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SpawnRequest")
    }
}

impl Request {
    /// Answers the request with `error` (a shard that serves nothing: see `quarantine`);
    /// `Shutdown` has no answer.
    pub(super) fn refuse(self, error: EngineError) {
        match self {
            Request::Mutate { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Request::Query(query) => query.refuse(error),
            Request::Compact(reply) => refuse(&reply, error),
            Request::RewrapKeys(reply) => refuse(&reply, error),
            Request::Seal(reply) => refuse(&reply, error),
            Request::ReleaseBackupHold(reply) => refuse(&reply, error),
            Request::Spawn(task) => (task.refuse)(error),
            Request::Shutdown => {}
        }
    }
}

// See `Request::Mutate`: what every request costs to move.
const _: () = assert!(std::mem::size_of::<Request>() <= 72);

#[cfg(test)]
mod tests {
    use mailvault_hsm::testing::TestToken;

    use super::*;
    use crate::{Engine, EngineConfig, INBOX, block_on, init_store};

    /// The shard seals the body and hands the caller's own vector back with the uid, so the
    /// caller's thread frees it (`SpentBody`); its `Debug` shows no byte of the message.
    #[test]
    fn an_appended_body_comes_back_to_the_caller_in_its_own_allocation() {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().expect("temporary directory");
        init_store(directory.path(), 1).expect("init store");
        let engine = Engine::open(&EngineConfig::new(directory.path()), &token.hsm).expect("open engine");
        let body = b"Subject: handed back\r\n\r\nfreed by its caller\r\n".to_vec();
        let (original, allocation) = (body.clone(), body.as_ptr());
        let outcome = block_on(async {
            engine.create_account("alice@example.org").await.expect("create account");
            let digest = *blake3::hash(&body).as_bytes();
            let mutation = Mutation::Append {
                account: "alice@example.org".into(),
                mailbox: INBOX.into(),
                body,
                digest,
                flags: Flags::default(),
                internal_date_unix_ms: None,
            };
            engine.mutate("alice@example.org", mutation).await.expect("append")
        });
        let Outcome::Appended { uid, body } = outcome else { panic!("not an append's outcome: {outcome:?}") };
        assert_eq!(uid, 1);
        assert_eq!(body.0.as_ptr(), allocation, "the caller's own vector, not a copy");
        assert_eq!(body.0, original);
        assert_eq!(format!("{body:?}"), format!("SpentBody({} bytes)", original.len()));
        let fetched = block_on(engine.fetch("alice@example.org", INBOX, 1)).expect("fetch");
        assert_eq!(fetched.body, original, "what was handed back is what was stored");
    }
}
