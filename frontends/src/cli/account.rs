//! `account add|list|deleted|restore`.

use clap::Subcommand;
use mailvault_engine::{DeletedMessageId, block_on};

use super::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account (with its INBOX and its own data key, wrapped by the HSM).
    Add { account: String },
    /// List every account.
    List,
    /// List an account's deleted messages that can still be restored.
    Deleted { account: String },
    /// Restore a deleted message (ids as printed by `account deleted`).
    Restore { account: String, mailbox_id: u32, uid: u32 },
}

pub(crate) fn run(context: &Context, command: AccountCommand) -> anyhow::Result<()> {
    let engine = context.open_engine()?;
    block_on(async {
        match command {
            AccountCommand::Add { account } => {
                engine.create_account(&account).await?;
                println!("account {account} created");
            }
            AccountCommand::List => {
                for account in engine.list_accounts().await? {
                    println!("{account}");
                }
            }
            AccountCommand::Deleted { account } => {
                println!("{:>10} {:>8} {:>10} {:>14} mailbox", "mailbox-id", "uid", "bytes", "restorable-for");
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_millis() as i64);
                for message in engine.list_deleted(&account).await? {
                    let hours = (message.restorable_until_unix_ms - now) / 3_600_000;
                    println!(
                        "{:>10} {:>8} {:>10} {:>13}h {}",
                        message.id.mailbox_id, message.id.uid, message.size, hours, message.mailbox_name
                    );
                }
            }
            AccountCommand::Restore { account, mailbox_id, uid } => {
                let (mailbox, new_uid) = engine.restore(&account, DeletedMessageId { mailbox_id, uid }).await?;
                println!("restored into {mailbox} as uid {new_uid}");
            }
        }
        Ok(())
    })
}
