//! `IMAP4rev1` (RFC 3501 with UIDPLUS, IDLE, MOVE, UNSELECT, NAMESPACE, LITERAL+ and SASL-IR):
//! command parsing and response building.
//!
//! A session calls [`parse_command`] on its whole buffer. `NeedsMoreData`: read more.
//! `NeedsLiteral(request)`: for a synchronizing literal send "+ Ready for literal data" once
//! per `request.data_offset`, then read more. `Complete`: drop `consumed_bytes` and run the
//! command. `Err(rejected)`: write `rejected.error.write_reply`, drop `consumed_bytes`.

mod command;
mod date_time;
pub mod envelope;
mod error;
mod fetch;
mod flag;
mod format;
mod mailbox_name;
mod parser;
mod reader;
mod response;
mod search;
mod sequence_set;
mod string;
#[cfg(test)]
mod tests;

pub use command::{Command, CommandKind, LiteralRequest, Parsed, StatusItem, StoreMode, Tag};
pub use date_time::{Date, DateTime};
pub use error::{ParseError, TaggedError};
pub use fetch::{FetchAttribute, FetchAttributes, Partial, Section, SectionText};
pub use flag::Flag;
pub use mailbox_name::{decode_mailbox_name, encode_mailbox_name};
pub use parser::{parse_command, parse_idle_done};
pub use response::{
    FetchData, ResponseCode, Status, write_capability, write_continuation, write_exists, write_expunge, write_fetch,
    write_flags, write_list, write_namespace, write_recent, write_search, write_status, write_tagged, write_untagged,
};
pub use search::SearchKey;
pub use sequence_set::{SequenceNumber, SequenceRange, SequenceSet};
