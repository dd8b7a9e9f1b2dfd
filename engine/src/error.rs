//! The engine's typed errors. Messages name accounts and mailboxes, never mail content or keys.

use crate::segment::ScanError;

/// Why a request failed. Nothing in the store changed unless the variant says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("account `{0}` does not exist")]
    NoSuchAccount(String),
    #[error("account `{0}` already exists")]
    AccountExists(String),
    /// The account is closed: nothing of it is reachable until it is reopened, and it will be
    /// purged at `purge_after_unix_ms` (Unix milliseconds).
    #[error("account `{account}` is closed (purge scheduled at {purge_after_unix_ms} ms since the epoch)")]
    AccountClosed { account: String, purge_after_unix_ms: i64 },
    #[error("account `{0}` is not closed")]
    AccountNotClosed(String),
    /// The purge observer (the backups' step) failed after the live store was shredded; the
    /// whole shredding runs again at the next open or lifecycle tick.
    #[error("purge unfinished: the live store is shredded, but the purge observer failed: {0}; it is retried")]
    PurgeUnfinished(String),
    #[error("mailbox `{0}` does not exist")]
    NoSuchMailbox(String),
    #[error("mailbox `{0}` already exists")]
    MailboxExists(String),
    #[error("message uid {0} does not exist")]
    NoSuchMessage(u32),
    #[error("no restorable deleted message with that id (gone, or its retention window ended)")]
    NotRestorable,
    #[error("invalid {what}: {reason}")]
    InvalidInput { what: &'static str, reason: String },
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("the store's data failed verification: {0}")]
    Corrupt(String),
    #[error("HSM: {0}")]
    Hsm(#[from] mailvault_hsm::HsmError),
    #[error("shard {shard_id} stopped accepting writes after a storage failure: {reason}")]
    ShardFailed { shard_id: u32, reason: String },
    #[error("the engine is shut down")]
    ShutDown,
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("no mailvault store at {0} (run `mailvault init`)")]
    NotInitialized(String),
    #[error("store {0} is open in another process (a running server?); stop it first")]
    InUse(String),
    #[error("store at {path}: {reason}")]
    BadStoreMetadata { path: String, reason: String },
    #[error("shard {shard_id}: {source}")]
    Recovery { shard_id: u32, source: ScanError },
    #[error("shard {shard_id}: {source}")]
    Shard { shard_id: u32, source: EngineError },
    #[error("HSM: {0}")]
    Hsm(#[from] mailvault_hsm::HsmError),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}
