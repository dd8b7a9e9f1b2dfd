//! The IMAP command values the parser produces (RFC 3501 §6, RFC 4315 UIDPLUS, RFC 2177 IDLE,
//! RFC 6851 MOVE, RFC 3691 UNSELECT, RFC 2342 NAMESPACE).

use std::fmt;

use super::date_time::DateTime;
use super::fetch::FetchAttributes;
use super::flag::Flag;
use super::search::SearchKey;
use super::sequence_set::SequenceSet;
use crate::proto::Secret;
use crate::proto::sasl::SaslResponse;

/// What a parser made of the bytes it was given (the IMAP form of [`crate::proto::Parsed`],
/// with literals).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Parsed<T> {
    /// One whole command was parsed from the front of the input.
    Complete {
        /// The command.
        value: T,
        /// Input bytes it occupied, literals included.
        consumed_bytes: usize,
    },
    /// The current line has not ended: read more, then parse the whole buffer again.
    NeedsMoreData,
    /// A literal's data has not all arrived. For a synchronizing literal the session sends a
    /// continuation request ("+ Ready for literal data") once, then reads more.
    NeedsLiteral(LiteralRequest),
}

/// A literal whose data the parser is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiteralRequest {
    /// Announced size in bytes (already checked against the limit).
    pub size: u64,
    /// `{n+}` (RFC 7888): the client sends the data without waiting for a continuation.
    pub non_synchronizing: bool,
    /// Where the literal's data starts in the input. Parsing again before more data arrives
    /// gives the same offset: send the continuation only when it is beyond the last one sent.
    pub data_offset: usize,
}

/// A command tag: 1*ASTRING-CHAR other than '+'.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    /// A tag, if `text` is a valid one.
    pub fn new(text: &str) -> Option<Self> {
        let valid = !text.is_empty() && text.bytes().all(|byte| super::reader::is_astring_char(byte) && byte != b'+');
        valid.then(|| Self(text.to_owned()))
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A tagged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The client's tag, echoed in the completion response.
    pub tag: Tag,
    /// What to do.
    pub kind: CommandKind,
}

/// A STATUS data item (RFC 3501 §6.3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusItem {
    /// `MESSAGES`.
    Messages,
    /// `RECENT`.
    Recent,
    /// `UIDNEXT`.
    UidNext,
    /// `UIDVALIDITY`.
    UidValidity,
    /// `UNSEEN`.
    Unseen,
}

impl StatusItem {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Messages => "MESSAGES",
            Self::Recent => "RECENT",
            Self::UidNext => "UIDNEXT",
            Self::UidValidity => "UIDVALIDITY",
            Self::Unseen => "UNSEEN",
        }
    }
}

/// How STORE changes the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// What a command asks for. Mailbox names are decoded from modified UTF-7, and `INBOX` is
/// upper-cased in any spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandKind {
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `STARTTLS`.
    StartTls,
    /// `AUTHENTICATE mechanism [initial-response]` (RFC 4959). Without an initial response
    /// the session sends "+ " and reads the answer with
    /// [`sasl::parse_response_line`](crate::proto::sasl::parse_response_line).
    Authenticate {
        /// Upper-cased mechanism name.
        mechanism: String,
        /// The initial response, if sent.
        initial_response: Option<SaslResponse>,
    },
    /// `LOGIN user password`.
    Login {
        /// The user name (UTF-8).
        username: String,
        /// The password bytes.
        password: Secret,
    },
    /// `SELECT mailbox`.
    Select {
        /// The mailbox.
        mailbox: String,
    },
    /// `EXAMINE mailbox`.
    Examine {
        /// The mailbox.
        mailbox: String,
    },
    /// `CREATE mailbox`.
    Create {
        /// The mailbox.
        mailbox: String,
    },
    /// `DELETE mailbox`.
    Delete {
        /// The mailbox.
        mailbox: String,
    },
    /// `RENAME from to`.
    Rename {
        /// The existing name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `SUBSCRIBE mailbox`.
    Subscribe {
        /// The mailbox.
        mailbox: String,
    },
    /// `UNSUBSCRIBE mailbox`.
    Unsubscribe {
        /// The mailbox.
        mailbox: String,
    },
    /// `LIST reference pattern`.
    List {
        /// The reference name (often empty).
        reference: String,
        /// The pattern, with `*` and `%` wildcards.
        pattern: String,
    },
    /// `LSUB reference pattern`.
    Lsub {
        /// The reference name.
        reference: String,
        /// The pattern.
        pattern: String,
    },
    /// `STATUS mailbox (items)`.
    Status {
        /// The mailbox.
        mailbox: String,
        /// The requested items, in order.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [(flags)] [date-time] literal`.
    Append {
        /// The target mailbox.
        mailbox: String,
        /// Flags to set on the new message.
        flags: Vec<Flag>,
        /// The internal date to give it, if not now.
        date_time: Option<DateTime>,
        /// The message (bounded by `message_bytes_max`).
        message: Vec<u8>,
    },
    /// `IDLE`: the session sends "+ idling" and waits for
    /// [`parse_idle_done`](super::parse_idle_done).
    Idle,
    /// `NAMESPACE`.
    Namespace,
    /// `CHECK`.
    Check,
    /// `CLOSE`.
    Close,
    /// `UNSELECT`.
    Unselect,
    /// `EXPUNGE`, or `UID EXPUNGE set` (RFC 4315) when `uids` is given.
    Expunge {
        /// Only these UIDs (UID EXPUNGE).
        uids: Option<SequenceSet>,
    },
    /// `[UID] SEARCH [CHARSET c] keys`: the keys are `ANDed`.
    Search {
        /// Whether UID SEARCH (answer with UIDs).
        uid: bool,
        /// The charset, when given (only UTF-8 and US-ASCII are accepted).
        charset: Option<String>,
        /// The criteria, all of which must match.
        criteria: Vec<SearchKey>,
    },
    /// `[UID] FETCH set items`.
    Fetch {
        /// Whether `set` holds UIDs (and UID is then always returned).
        uid: bool,
        /// The messages.
        set: SequenceSet,
        /// What to return.
        attributes: FetchAttributes,
    },
    /// `[UID] STORE set [+|-]FLAGS[.SILENT] flags`.
    Store {
        /// Whether `set` holds UIDs.
        uid: bool,
        /// The messages.
        set: SequenceSet,
        /// Replace, add or remove.
        mode: StoreMode,
        /// Whether to skip the untagged FETCH responses.
        silent: bool,
        /// The flags.
        flags: Vec<Flag>,
    },
    /// `[UID] COPY set mailbox`.
    Copy {
        /// Whether `set` holds UIDs.
        uid: bool,
        /// The messages.
        set: SequenceSet,
        /// The destination.
        mailbox: String,
    },
    /// `[UID] MOVE set mailbox` (RFC 6851).
    Move {
        /// Whether `set` holds UIDs.
        uid: bool,
        /// The messages.
        set: SequenceSet,
        /// The destination.
        mailbox: String,
    },
}
