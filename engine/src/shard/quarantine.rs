//! A quarantined shard: one whose data failed verification when the store opened, set aside on
//! the operator's word (`EngineConfig::quarantine_corrupt_shards`) so that the other shards can
//! serve.
//!
//! Its thread answers every request with `EngineError::Quarantined`, naming the damage, and
//! touches none of its files: they stay as the open found them, for a repair from backup or a
//! closer look. Work across all shards (stats, account lists, compaction, backups, purges)
//! fails on it too, so nothing that needs the whole store runs without it. A purge in
//! particular must not: it ends by destroying the old KEK, which would shred the quarantined
//! shard's data keys along with the purged account's.

use crate::error::EngineError;

use super::reopen::refuse_for;
use super::request::Request;

/// Refuses every request until shutdown or until the queue closes.
pub(crate) async fn serve_quarantined(shard_id: u32, reason: &str, receiver: &flume::Receiver<Request>) {
    refuse_for(receiver, None, || EngineError::Quarantined { shard_id, reason: reason.to_owned() }).await;
}
