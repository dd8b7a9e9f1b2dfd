//! `account add|list|close|reopen|purge|deleted|restore|prune`, and the credential commands (in
//! `credentials.rs`).

use clap::Subcommand;
use mailvault_frontends::admin::AdminCommand;

use super::credentials::{self, AppPasswordCommand};
use super::{Context, admin_command};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account (with its INBOX and its own data key, wrapped by the HSM).
    Add {
        /// The new account's name: the address its mail is delivered to (alice@example.org, say).
        account: String,
    },
    /// List every account with its state (open, or closed and when it will be purged).
    List,
    /// Close an account: unreachable at once (logins fail, delivery is refused, live sessions
    /// end); purged after the delay unless reopened first.
    Close {
        /// The account (its address, as created with `account add`).
        account: String,
        /// Days until the purge: 37 to 365 (default 37, or the server's `--account-purge-delay-days`).
        #[arg(long)]
        purge_after_days: Option<u32>,
    },
    /// Reopen a closed account before its purge: everything comes back.
    Reopen {
        /// The account (its address, as created with `account add`).
        account: String,
    },
    /// Purge a closed account now: its mail becomes dead and its data key is crypto-shredded
    /// (new KEK, every other key re-wrapped, old KEK destroyed). Needs `--now`: it cannot be undone.
    Purge {
        /// The account (its address, as created with `account add`).
        account: String,
        /// Confirms: the account and all its mail are gone for good, backups included.
        #[arg(long)]
        now: bool,
    },
    /// List an account's deleted messages that can still be restored.
    Deleted {
        /// The account (its address, as created with `account add`).
        account: String,
    },
    /// Restore a deleted message (ids as printed by `account deleted`).
    Restore {
        /// The account (its address, as created with `account add`).
        account: String,
        /// The mailbox id of the deleted message, as `account deleted` prints it.
        mailbox_id: u32,
        /// Its uid, as `account deleted` prints it.
        uid: u32,
    },
    /// Drop the account's deleted mail whatever its retention window, and rewrite the segments
    /// that held it so the bytes are gone (needs `--now`: it cannot be undone).
    Prune {
        /// The account (its address, as created with `account add`).
        account: String,
        /// Confirms: the deleted mail can no longer be restored.
        #[arg(long)]
        now: bool,
    },
    /// Set the login password, read from `MAILVAULT_NEW_PASSWORD` or standard input (never an
    /// argument).
    Password {
        /// The account (its address, as created with `account add`).
        account: String,
    },
    /// App passwords: one per device, all revoked by `logout`.
    #[command(subcommand)]
    AppPassword(AppPasswordCommand),
    /// End every live session of the account now and revoke its app passwords.
    Logout {
        /// The account (its address, as created with `account add`).
        account: String,
    },
    /// Login attempts (time, result, protocol, remote IP, method), newest first.
    AccessLog {
        /// The account (its address, as created with `account add`).
        account: String,
        /// The newest attempts to print at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// Every account command works while the server runs (through its admin socket).
pub(crate) fn run(context: &Context, command: AccountCommand) -> anyhow::Result<()> {
    let command = match command {
        AccountCommand::Add { account } => AdminCommand::AccountAdd { account },
        AccountCommand::Password { account } => return credentials::set_password(context, account),
        AccountCommand::AppPassword(command) => return credentials::app_password(context, command),
        AccountCommand::Logout { account } => return credentials::logout(context, account),
        AccountCommand::AccessLog { account, limit } => return credentials::access_log(context, account, limit),
        AccountCommand::List => AdminCommand::AccountList,
        AccountCommand::Close { account, purge_after_days } => {
            if let Some(days) = purge_after_days {
                mailvault_engine::check_purge_delay_days(days)?;
            }
            AdminCommand::AccountClose { account, purge_after_days }
        }
        AccountCommand::Reopen { account } => AdminCommand::AccountReopen { account },
        AccountCommand::Purge { account, now } => {
            anyhow::ensure!(now, "purging cannot be undone: add --now to confirm");
            AdminCommand::AccountPurge { account }
        }
        AccountCommand::Deleted { account } => AdminCommand::AccountDeleted { account },
        AccountCommand::Restore { account, mailbox_id, uid } => {
            AdminCommand::AccountRestore { account, mailbox_id, uid }
        }
        AccountCommand::Prune { account, now } => {
            anyhow::ensure!(now, "pruning cannot be undone: add --now to confirm");
            AdminCommand::AccountPrune { account }
        }
    };
    admin_command::run(context, command)
}
