//! The admin commands and their reply, as they travel over the admin socket (JSON).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One operator command.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AdminCommand {
    /// Create an account.
    AccountAdd { account: String },
    /// Set an account's login password (hashed by the side that runs the command).
    AccountPassword { account: String, password: String },
    /// Create an app password; the reply shows it once.
    AppPasswordAdd { account: String, label: String },
    /// Revoke every app password and end every live session of the account.
    Logout { account: String },
    /// The newest access-log entries.
    AccessLog { account: String, limit: usize },
    /// Every account with its state (open, or closed with its purge time).
    AccountList,
    /// Close an account (unreachable at once, its live sessions ended); purge after the delay
    /// (days; the server's configured delay if `None`).
    AccountClose { account: String, purge_after_days: Option<u32> },
    /// Reopen a closed account before its purge.
    AccountReopen { account: String },
    /// Purge a closed account now: its mail is dead and its data key crypto-shredded.
    AccountPurge { account: String },
    /// Seal every active segment holding data, for a backup; the reply is the JSON list of
    /// the newest sealed segment id per shard.
    SealForBackup,
    /// Let compaction run again after a backup.
    ReleaseBackupHold,
    /// Per-shard statistics, segments, compaction and scrub progress.
    Stats,
    /// An account's mailboxes with UIDVALIDITY, UIDNEXT, message and unseen counts.
    MailboxList { account: String },
    /// Create a mailbox.
    MailboxCreate { account: String, name: String },
    /// Rename a mailbox (not INBOX).
    MailboxRename { account: String, from: String, to: String },
    /// Delete a mailbox; its messages stay restorable for the retention window.
    MailboxDelete { account: String, name: String },
    /// A mailbox's messages: uid, size, flags.
    MailboxMessages { account: String, mailbox: String },
    /// An account's deleted messages that can still be restored.
    AccountDeleted { account: String },
    /// Restore one deleted message (ids as `AccountDeleted` prints them).
    AccountRestore { account: String, mailbox_id: u32, uid: u32 },
    /// Drop the account's deleted mail now and compact until the segments that held it are
    /// rewritten. Takes as long as the rewrite: the client waits without a timeout.
    AccountPrune { account: String },
    /// Compact until no segment qualifies. Takes as long as the rewrite, like `AccountPrune`.
    Compact,
    /// Each shard's compaction at a glance, as JSON (`Vec<CompactionStatus>`): what the CLI's
    /// progress line asks a few times a second while it waits for `Compact` or `AccountPrune`.
    CompactionStatus,
    /// Store a message; the reply is its uid once durable. On the socket the message's bytes
    /// follow the command's line, `message_bytes` of them (make it with [`AdminCommand::append`]).
    Append {
        account: String,
        mailbox: String,
        message_bytes: usize,
        #[serde(skip)]
        message: Vec<u8>,
    },
    /// A message's bytes, checked (CRC, AEAD tag, BLAKE3): the reply's payload.
    Cat { account: String, mailbox: String, uid: u32 },
}

impl AdminCommand {
    /// An `Append` of `message` to `mailbox`.
    pub fn append(account: String, mailbox: String, message: Vec<u8>) -> Self {
        Self::Append { account, mailbox, message_bytes: message.len(), message }
    }

    /// The bytes that follow the command's line on the socket.
    pub fn payload(&self) -> &[u8] {
        match self {
            Self::Append { message, .. } => message,
            _ => &[],
        }
    }

    /// Whether the command waits for compaction, which has no bound on its time.
    pub fn waits_for_compaction(&self) -> bool {
        matches!(self, Self::Compact | Self::AccountPrune { .. })
    }
}

impl fmt::Debug for AdminCommand {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AccountAdd { account } => write!(formatter, "AccountAdd({account})"),
            // Never the password.
            Self::AccountPassword { account, .. } => write!(formatter, "AccountPassword({account})"),
            Self::AppPasswordAdd { account, label } => write!(formatter, "AppPasswordAdd({account}, {label})"),
            Self::Logout { account } => write!(formatter, "Logout({account})"),
            Self::AccessLog { account, limit } => write!(formatter, "AccessLog({account}, {limit})"),
            Self::AccountList => write!(formatter, "AccountList"),
            Self::AccountClose { account, purge_after_days } => {
                write!(formatter, "AccountClose({account}, {purge_after_days:?})")
            }
            Self::AccountReopen { account } => write!(formatter, "AccountReopen({account})"),
            Self::AccountPurge { account } => write!(formatter, "AccountPurge({account})"),
            Self::SealForBackup => write!(formatter, "SealForBackup"),
            Self::ReleaseBackupHold => write!(formatter, "ReleaseBackupHold"),
            Self::Stats => write!(formatter, "Stats"),
            Self::MailboxList { account } => write!(formatter, "MailboxList({account})"),
            Self::MailboxCreate { account, name } => write!(formatter, "MailboxCreate({account}, {name})"),
            Self::MailboxRename { account, from, to } => write!(formatter, "MailboxRename({account}, {from}, {to})"),
            Self::MailboxDelete { account, name } => write!(formatter, "MailboxDelete({account}, {name})"),
            Self::MailboxMessages { account, mailbox } => write!(formatter, "MailboxMessages({account}, {mailbox})"),
            Self::AccountDeleted { account } => write!(formatter, "AccountDeleted({account})"),
            Self::AccountRestore { account, mailbox_id, uid } => {
                write!(formatter, "AccountRestore({account}, {mailbox_id}, {uid})")
            }
            Self::AccountPrune { account } => write!(formatter, "AccountPrune({account})"),
            Self::Compact => write!(formatter, "Compact"),
            Self::CompactionStatus => write!(formatter, "CompactionStatus"),
            // Never the message: it is someone's mail.
            Self::Append { account, mailbox, message_bytes, .. } => {
                write!(formatter, "Append({account}, {mailbox}, {message_bytes} bytes)")
            }
            Self::Cat { account, mailbox, uid } => write!(formatter, "Cat({account}, {mailbox}, {uid})"),
        }
    }
}

/// The answer: what to print, or why the command failed. On the socket, `payload_bytes` of
/// payload (a message `Cat` read) follow its line.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AdminReply {
    pub ok: bool,
    pub output: String,
    #[serde(default)]
    pub payload_bytes: usize,
    #[serde(skip)]
    pub payload: Vec<u8>,
}

impl AdminReply {
    pub fn failed(why: String) -> Self {
        Self { ok: false, output: why, ..Self::default() }
    }

    pub fn answered(output: AdminOutput) -> Self {
        Self { ok: true, output: output.text, payload_bytes: output.bytes.len(), payload: output.bytes }
    }
}

impl fmt::Debug for AdminReply {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the payload: it is someone's mail.
        formatter
            .debug_struct("AdminReply")
            .field("ok", &self.ok)
            .field("output", &self.output)
            .field("payload_bytes", &self.payload_bytes)
            .finish_non_exhaustive()
    }
}

/// What a command produced: text for the operator, and for `Cat` a message's bytes.
#[derive(Default, PartialEq, Eq)]
pub struct AdminOutput {
    pub text: String,
    pub bytes: Vec<u8>,
}

impl From<String> for AdminOutput {
    fn from(text: String) -> Self {
        Self { text, bytes: Vec::new() }
    }
}

impl fmt::Debug for AdminOutput {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "AdminOutput({:?}, {} bytes)", self.text, self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let command = AdminCommand::AccountPassword { account: "alice".into(), password: "hunter2".into() };
        assert!(!format!("{command:?}").contains("hunter2"));
        let json = serde_json::to_string(&command).unwrap();
        assert_eq!(serde_json::from_str::<AdminCommand>(&json).unwrap(), command);
    }

    #[test]
    fn a_message_travels_beside_the_json_and_never_shows_in_debug() {
        let command = AdminCommand::append("alice".into(), "INBOX".into(), b"Subject: secret plans".to_vec());
        assert!(!format!("{command:?}").contains("secret"), "{command:?}");
        let json = serde_json::to_string(&command).unwrap();
        assert!(!json.contains("secret") && json.contains("\"message_bytes\":21"), "{json}");
        assert_eq!(command.payload(), b"Subject: secret plans");
        let reply = AdminReply::answered(AdminOutput { text: String::new(), bytes: b"secret body".to_vec() });
        assert!(!format!("{reply:?}").contains("secret") && reply.payload_bytes == 11, "{reply:?}");
    }
}
