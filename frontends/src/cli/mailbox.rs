//! `mailbox list|create|rename|delete|messages`.

use clap::Subcommand;
use mailvault_engine::{Flags, block_on};

use super::Context;

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

fn describe_flags(flags: &Flags) -> String {
    let names = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ];
    let mut words: Vec<&str> = names.iter().filter(|(bit, _)| flags.contains(*bit)).map(|(_, name)| *name).collect();
    words.extend(flags.keywords.iter().map(String::as_str));
    words.join(" ")
}

pub(crate) fn run(context: &Context, command: MailboxCommand) -> anyhow::Result<()> {
    let engine = context.open_engine()?;
    block_on(async {
        match command {
            MailboxCommand::List { account } => {
                // Asked first, so that an error (no such account) comes without a table header.
                let mailboxes = engine.list_mailboxes(&account).await?;
                println!("{:>12} {:>8} {:>8} {:>8} name", "uidvalidity", "uidnext", "messages", "unseen");
                for mailbox in mailboxes {
                    println!(
                        "{:>12} {:>8} {:>8} {:>8} {}",
                        mailbox.uid_validity, mailbox.uid_next, mailbox.messages, mailbox.unseen, mailbox.name
                    );
                }
            }
            MailboxCommand::Create { account, name } => engine.create_mailbox(&account, &name).await?,
            MailboxCommand::Rename { account, from, to } => engine.rename_mailbox(&account, &from, &to).await?,
            MailboxCommand::Delete { account, name } => engine.delete_mailbox(&account, &name).await?,
            MailboxCommand::Messages { account, mailbox } => {
                let (_, messages) = engine.list_messages(&account, &mailbox).await?;
                println!("{:>8} {:>10} flags", "uid", "bytes");
                for message in messages {
                    println!("{:>8} {:>10} {}", message.uid, message.size, describe_flags(&message.flags));
                }
            }
        }
        Ok(())
    })
}
