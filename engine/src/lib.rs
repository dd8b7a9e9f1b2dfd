//! mailvault storage engine: encrypted append-only segments, one shard per core.
//!
//! Frontends use [`Engine`]: accounts, mailboxes and messages, never segments. Each shard
//! runs on its own thread and io_uring runtime; requests are routed to the shard that owns the
//! account and answered once durable.

pub mod api;
pub mod clock;
pub mod crypto;
mod engine;
pub mod error;
pub mod format;
pub mod index;
pub mod io;
mod lifecycle;
pub mod offline;
pub mod segment;
mod shard;
mod store;

pub use api::*;
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    CHECKPOINT_INTERVAL_BYTES_DEFAULT, COMPACTION_BYTES_PER_SECOND_DEFAULT, Engine, EngineConfig, QuarantinedShard,
    RECYCLED_SEGMENTS_MAX_DEFAULT, SCRUB_BYTES_PER_SECOND_DEFAULT, SHARD_WAKE_QUEUE_ENTRIES, ShardTaskHandle,
    WAKE_QUEUE_ENTRIES, block_on, lock_store,
};
pub use error::{EngineError, OpenError};
pub use lifecycle::{
    PURGE_DELAY_DAYS_DEFAULT, PURGE_DELAY_DAYS_MAX, PURGE_DELAY_DAYS_MIN, PurgeObserver, SHRED_PENDING_FILE,
    check_purge_delay_days,
};
pub use store::{StoreMetadata, init_store};
