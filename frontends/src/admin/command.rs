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
}

impl AdminCommand {
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
        }
    }
}

/// The answer: what to print, or why the command failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminReply {
    pub ok: bool,
    pub output: String,
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
}
