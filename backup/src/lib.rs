//! mailvault backups: incremental, signed, verified equal to the live store, restorable.
//!
//! A target is a directory or an S3-compatible bucket (one code path, through `object_store`).
//! It holds copies of the store's sealed segments (which never change, so a backup is
//! incremental by nature), the account keys re-wrapped under an HSM backup key (so erasure can
//! reach backups: [`rekey_targets`]), and a manifest signed with the HSM's HMAC key.
//! docs/backups.md has the format and the guarantees.
//!
//! `object_store` needs tokio: each command runs a current-thread tokio runtime of its own for
//! the target's IO, and replays segments on a compio runtime (`mailvault_engine::block_on`)
//! in separate phases, never one inside the other.

mod compare;
mod error;
mod every_core;
mod frame_check;
mod key_table;
mod live;
mod local_copy;
mod manifest;
mod objects;
mod progress;
mod purge_observer;
mod read_ahead;
mod registry;
mod rekey;
mod restore;
mod restore_shard;
mod run;
mod scrub;
mod target;
mod verify;

pub use compare::{Difference, compare_contents};
pub use error::BackupError;
pub use key_table::{KeyTable, KeyTableError};
pub use live::{live_contents, live_key_table};
pub use manifest::{
    MANIFEST_FORMAT, Manifest, ManifestError, ManifestFile, ManifestSegment, SignedManifest, StoreIdentity,
    join_signed, split_signed,
};
pub use purge_observer::RekeyBackupsOnPurge;
pub use registry::{register_target, registered_targets};
pub use rekey::{RekeyReport, rekey, rekey_targets};
pub use restore::{RestoreReport, restore};
pub use restore_shard::{ShardRestoreReport, restore_shard};
pub use run::{RunReport, Seal, run_backup};
pub use scrub::{ScrubReport, scrub};
pub use target::{S3Options, Target, TargetSpec};
pub use verify::{Finding, VerifyLevel, VerifyReport, VerifyVerdict, verify};

/// Exit codes of `mailvault backup verify` (and of `restore`'s closing check).
pub mod exit_code {
    /// Everything checked is intact (and, at level 3, equal to the compared store).
    pub const EQUAL: u8 = 0;
    /// The verification could not run (bad arguments, target or HSM unreachable).
    pub const ERROR: u8 = 1;
    /// The backup is intact but differs from the compared store (level 3).
    pub const DIFFERENT: u8 = 2;
    /// The backup is damaged: bad signature, missing or altered file, bad frame or tag.
    pub const DAMAGED: u8 = 3;
}
