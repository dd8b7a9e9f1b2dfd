//! `mailbox list|create|rename|delete|messages`, `account deleted|restore`, `append` and
//! `cat`: an operator's view of an account's mail, run by the server beside its live sessions
//! (admin socket) or by the CLI on a store no server has open.

use std::fmt::Write as _;

use mailvault_engine::{Clock as _, DeletedMessageId, Engine, Flags, SystemClock};

use super::command::AdminOutput;
use super::execute::AdminError;

pub(super) async fn mailbox_list(engine: &Engine, account: &str) -> Result<String, AdminError> {
    // Asked first, so that an error (no such account) comes without a table header.
    let mailboxes = engine.list_mailboxes(account).await?;
    let mut output = format!("{:>12} {:>8} {:>8} {:>8} name", "uidvalidity", "uidnext", "messages", "unseen");
    for mailbox in mailboxes {
        let _ = write!(
            output,
            "\n{:>12} {:>8} {:>8} {:>8} {}",
            mailbox.uid_validity, mailbox.uid_next, mailbox.messages, mailbox.unseen, mailbox.name
        );
    }
    Ok(output)
}

pub(super) async fn mailbox_messages(engine: &Engine, account: &str, mailbox: &str) -> Result<String, AdminError> {
    let (_, messages) = engine.list_messages(account, mailbox).await?;
    let mut output = format!("{:>8} {:>10} flags", "uid", "bytes");
    for message in messages {
        let _ = write!(output, "\n{:>8} {:>10} {}", message.uid, message.size, describe_flags(&message.flags));
    }
    Ok(output)
}

pub(super) async fn deleted(engine: &Engine, account: &str) -> Result<String, AdminError> {
    let deleted = engine.list_deleted(account).await?;
    let mut output = format!("{:>10} {:>8} {:>10} {:>14} mailbox", "mailbox-id", "uid", "bytes", "restorable-for");
    let now = SystemClock.now_unix_ms();
    for message in deleted {
        let hours = (message.restorable_until_unix_ms - now) / 3_600_000;
        let _ = write!(
            output,
            "\n{:>10} {:>8} {:>10} {:>13}h {}",
            message.id.mailbox_id, message.id.uid, message.size, hours, message.mailbox_name
        );
    }
    Ok(output)
}

pub(super) async fn restore(engine: &Engine, account: &str, mailbox_id: u32, uid: u32) -> Result<String, AdminError> {
    let (mailbox, new_uid) = engine.restore(account, DeletedMessageId { mailbox_id, uid }).await?;
    Ok(format!("restored into {mailbox} as uid {new_uid}"))
}

/// Stores `message`; answers with its uid once it is durable.
pub(super) async fn append(
    engine: &Engine,
    account: &str,
    mailbox: &str,
    message: Vec<u8>,
) -> Result<String, AdminError> {
    let uid = engine.append(account, mailbox, message, Flags::default(), None).await?;
    Ok(uid.to_string())
}

/// The message's bytes, checked by the fetch (CRC, AEAD tag, BLAKE3).
pub(super) async fn cat(engine: &Engine, account: &str, mailbox: &str, uid: u32) -> Result<AdminOutput, AdminError> {
    let message = engine.fetch(account, mailbox, uid).await?;
    Ok(AdminOutput { text: String::new(), bytes: message.body })
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
