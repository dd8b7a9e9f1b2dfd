//! The engine's typed errors. Messages name accounts and mailboxes, never mail content or keys.

use crate::format::SegmentHeaderError;
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
    /// The shard's filesystem has no room for this write. Nothing changed; reads go on, and
    /// writes resume by themselves once space is freed (no restart).
    #[error(
        "shard {shard_id} is out of disk space: this write was refused and nothing changed; it works again once space is freed"
    )]
    StorageFull { shard_id: u32 },
    #[error("shard {shard_id} is unavailable after a storage failure: {reason}")]
    ShardFailed { shard_id: u32, reason: String },
    /// The shard's data failed verification when the store opened, and the operator chose to
    /// open the rest of the store without it (`EngineConfig::quarantine_corrupt_shards`). Its
    /// files are left as they were; nothing of its accounts is reachable until it is repaired.
    #[error("shard {shard_id} is quarantined, its accounts unavailable until it is repaired: {reason}")]
    Quarantined { shard_id: u32, reason: String },
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
    /// The store has the shard (`store.meta`) but its directory is gone: its mail is missing,
    /// which is damage (it may be quarantined), not a storage error.
    #[error("shard {shard_id}: {}", missing_shard_reason(*shard_id))]
    MissingShard { shard_id: u32 },
    #[error("HSM: {0}")]
    Hsm(#[from] mailvault_hsm::HsmError),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

impl OpenError {
    /// Whether the store's data failed verification (a damaged or undecryptable record, a bad
    /// segment header), as opposed to a store that could not be reached (a storage error, the
    /// HSM, a lock) or one written by a newer build: only a damaged shard may be quarantined.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Recovery { source, .. } => match source {
                ScanError::Io { .. }
                | ScanError::Header { source: SegmentHeaderError::UnsupportedVersion { .. }, .. } => false,
                ScanError::Header { .. } | ScanError::Corrupt { .. } | ScanError::Replay { .. } => true,
            },
            Self::Shard { source, .. } => matches!(source, EngineError::Corrupt(_)),
            Self::MissingShard { .. } => true,
            _ => false,
        }
    }

    /// What a shard's open found, without the "shard N: " its message starts with (a
    /// quarantine's messages name the shard themselves).
    pub(crate) fn damage_reason(&self) -> String {
        match self {
            Self::Recovery { source, .. } => source.to_string(),
            Self::Shard { source, .. } => source.to_string(),
            Self::MissingShard { shard_id } => missing_shard_reason(*shard_id),
            other => other.to_string(),
        }
    }
}

fn missing_shard_reason(shard_id: u32) -> String {
    format!("its directory shard-{shard_id:03} is missing from the store")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(source: ScanError) -> OpenError {
        OpenError::Recovery { shard_id: 1, source }
    }

    #[test]
    fn only_data_that_failed_verification_counts_as_damage() {
        let corrupt = ScanError::Corrupt { segment_id: 2, offset: 4096, reason: "frame checksum mismatch".into() };
        assert!(recovery(corrupt).is_damage());
        assert!(recovery(ScanError::Replay { segment_id: 2, offset: 4096, reason: "tag".into() }).is_damage());
        assert!(recovery(ScanError::Header { segment_id: 2, source: SegmentHeaderError::BadChecksum }).is_damage());
        let shard = |source| OpenError::Shard { shard_id: 1, source };
        assert!(shard(EngineError::Corrupt("message uid 3 has no stored body".into())).is_damage());
        let missing = OpenError::MissingShard { shard_id: 7 };
        assert!(missing.is_damage());
        assert_eq!(missing.to_string(), "shard 7: its directory shard-007 is missing from the store");

        let newer = SegmentHeaderError::UnsupportedVersion { found: 99 };
        assert!(!recovery(ScanError::Header { segment_id: 2, source: newer }).is_damage());
        let io = || std::io::Error::other("EIO");
        assert!(!recovery(ScanError::Io { segment_id: 2, source: io() }).is_damage());
        assert!(!shard(EngineError::Io(io())).is_damage());
        assert!(!shard(EngineError::ShutDown).is_damage());
        assert!(!OpenError::Io(io()).is_damage());
        assert!(!OpenError::InUse("/srv/mail".into()).is_damage());
    }
}
