//! `mailbox list|create|rename|delete|messages`: admin commands (they also work while the
//! server runs, through its admin socket).

use clap::Subcommand;
use mailvault_frontends::admin::AdminCommand;

use super::{Context, admin_command};

#[derive(Debug, Subcommand)]
pub(crate) enum MailboxCommand {
    /// Mailboxes with UIDVALIDITY, UIDNEXT, message and unseen counts.
    List {
        /// The account (its address, as created with `account add`).
        account: String,
    },
    /// Create a mailbox (IMAP clients read a `/` in its name as hierarchy).
    Create {
        /// The account (its address, as created with `account add`).
        account: String,
        /// The new mailbox's name.
        name: String,
    },
    /// Rename a mailbox (not INBOX); its messages keep their uids. Only this mailbox: the names
    /// of its children stay (IMAP's RENAME renames those too).
    Rename {
        /// The account (its address, as created with `account add`).
        account: String,
        /// The mailbox's name now.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Delete a mailbox; its messages stay restorable for the retention window.
    Delete {
        /// The account (its address, as created with `account add`).
        account: String,
        /// The mailbox to delete.
        name: String,
    },
    /// The messages of a mailbox: uid, size, flags.
    Messages {
        /// The account (its address, as created with `account add`).
        account: String,
        /// The mailbox (INBOX, say).
        mailbox: String,
    },
}

pub(crate) fn run(context: &Context, command: MailboxCommand) -> anyhow::Result<()> {
    let command = match command {
        MailboxCommand::List { account } => AdminCommand::MailboxList { account },
        MailboxCommand::Create { account, name } => AdminCommand::MailboxCreate { account, name },
        MailboxCommand::Rename { account, from, to } => AdminCommand::MailboxRename { account, from, to },
        MailboxCommand::Delete { account, name } => AdminCommand::MailboxDelete { account, name },
        MailboxCommand::Messages { account, mailbox } => AdminCommand::MailboxMessages { account, mailbox },
    };
    admin_command::run(context, command)
}
