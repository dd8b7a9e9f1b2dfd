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
