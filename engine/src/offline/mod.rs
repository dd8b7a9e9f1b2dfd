//! Reading a store without opening it: for backups. Nothing here writes, takes the store lock
//! or needs the server stopped.
//!
//! - [`read_shard`]: replays a directory of segments (a live shard, or a backup's copy of one)
//!   through the same `Replay` that recovery uses, into the accounts → mailboxes → messages a
//!   backup verification compares ([`StoreContents`]).
//! - [`RestoreSegment`]: the bytes of the segment a restore writes after the copied ones, so
//!   that the restored store finds every key, gives every mailbox a new UIDVALIDITY, and uses
//!   no record id (nonce) the lost store may have used.

mod contents;
mod read;
mod restore_segment;

pub use contents::{AccountContents, MailboxContents, MessageContents, StoreContents};
pub use read::{KeySource, ReadError, SegmentSelection, ShardRead, TableKey, read_shard};
pub use restore_segment::{
    BackupTooOld, RESTORE_RECORD_ID_MARGIN, RESTORE_RECORD_IDS_PER_SECOND, RestoreSegment, RestoredKey,
    restored_record_id_floor,
};
