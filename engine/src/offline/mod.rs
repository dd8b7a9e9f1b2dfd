//! Reading a store without opening it: for backups. Nothing here writes, takes the store lock
//! or needs the server stopped.
//!
//! - [`read_shard`]: replays a directory of segments (a live shard, or a backup's copy of one)
//!   through the same `Replay` that recovery uses, into the accounts → mailboxes → messages a
//!   backup verification compares ([`StoreContents`]).
//! - [`key_segment_image`]: the bytes of a segment holding only `KeyWrapped` records, which a
//!   restore writes after the copied segments so that the restored store finds every key.

mod contents;
mod key_segment;
mod read;

pub use contents::{AccountContents, MailboxContents, MessageContents, StoreContents};
pub use key_segment::key_segment_image;
pub use read::{KeySource, ReadError, SegmentSelection, ShardRead, TableKey, read_shard};
