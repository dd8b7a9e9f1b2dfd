//! Commands on mailboxes, valid whether or not one is selected: LIST, LSUB, CREATE, DELETE,
//! RENAME, STATUS, SUBSCRIBE, UNSUBSCRIBE, NAMESPACE and APPEND.

use std::num::NonZeroU32;

use mailvault_engine::{EngineError, MailboxInfo};

use super::client::Client;
use super::completion::Completion;
use super::flags::from_imap;
use super::list_pattern::{self, DELIMITER, PATTERN_CHARACTERS_MAX};
use crate::proto::imap::{self, CommandKind, DateTime, Flag, ResponseCode, SequenceSet, StatusItem};
use crate::session::SessionIo;

/// Runs `kind` if it is one of these commands; `None` otherwise. APPEND's message is taken
/// out of `kind` rather than copied.
pub(super) async fn run<C: SessionIo>(
    account: &str,
    kind: &mut CommandKind,
    client: &mut Client<'_, C>,
) -> Option<Completion> {
    Some(match kind {
        CommandKind::List { reference, pattern } => list(account, reference, pattern, false, client).await,
        CommandKind::Lsub { reference, pattern } => list(account, reference, pattern, true, client).await,
        CommandKind::Create { mailbox } => create(account, mailbox, client).await,
        CommandKind::Delete { mailbox } => match client.engine().delete_mailbox(account, mailbox).await {
            Ok(()) => Completion::ok("DELETE completed"),
            Err(error) => Completion::from_engine(&error),
        },
        CommandKind::Rename { from, to } => rename(account, from, to, client).await,
        CommandKind::Status { mailbox, items } => status(account, mailbox, items, client).await,
        // Every mailbox counts as subscribed: the frontends keep no state of their own.
        CommandKind::Subscribe { .. } => Completion::ok("SUBSCRIBE completed"),
        CommandKind::Unsubscribe { .. } => Completion::ok("UNSUBSCRIBE completed"),
        CommandKind::Namespace => {
            imap::write_namespace("", DELIMITER, &mut client.output);
            Completion::ok("NAMESPACE completed")
        }
        CommandKind::Append { mailbox, flags, date_time, message } => {
            append(account, mailbox, flags, *date_time, std::mem::take(message), client).await
        }
        _ => return None,
    })
}

async fn list<C: SessionIo>(
    account: &str,
    reference: &str,
    pattern: &str,
    subscribed_only: bool,
    client: &mut Client<'_, C>,
) -> Completion {
    let done = if subscribed_only { "LSUB completed" } else { "LIST completed" };
    if pattern.is_empty() {
        // RFC 3501 §6.3.8: an empty pattern asks for the delimiter and the root.
        imap::write_list(subscribed_only, &["\\Noselect"], Some(DELIMITER), "", &mut client.output);
        return Completion::ok(done);
    }
    if reference.chars().count() + pattern.chars().count() > PATTERN_CHARACTERS_MAX {
        return Completion::bad("Pattern too long");
    }
    let names: Vec<String> = match client.engine().list_mailboxes(account).await {
        Ok(mailboxes) => mailboxes.into_iter().map(|mailbox| mailbox.name).collect(),
        Err(error) => return Completion::from_engine(&error),
    };
    for listed in list_pattern::list(&names, reference, pattern) {
        imap::write_list(subscribed_only, &listed.attributes, Some(DELIMITER), &listed.name, &mut client.output);
    }
    Completion::ok(done)
}

async fn create<C: SessionIo>(account: &str, mailbox: &str, client: &mut Client<'_, C>) -> Completion {
    // RFC 3501 §6.3.3: a trailing delimiter only says the client means to create children.
    let name = mailbox.strip_suffix(DELIMITER).unwrap_or(mailbox);
    if name.is_empty() {
        return Completion::bad("Empty mailbox name");
    }
    match client.engine().create_mailbox(account, name).await {
        Ok(()) => Completion::ok("CREATE completed"),
        Err(error) => Completion::from_engine(&error),
    }
}

/// Renames the mailbox and its children (RFC 3501 §6.3.5: inferior names move with it).
async fn rename<C: SessionIo>(account: &str, from: &str, to: &str, client: &mut Client<'_, C>) -> Completion {
    let engine = client.engine().clone();
    let children: Vec<String> = match engine.list_mailboxes(account).await {
        Ok(mailboxes) => {
            let prefix = format!("{from}{DELIMITER}");
            mailboxes.into_iter().map(|mailbox| mailbox.name).filter(|name| name.starts_with(&prefix)).collect()
        }
        Err(error) => return Completion::from_engine(&error),
    };
    if let Err(error) = engine.rename_mailbox(account, from, to).await {
        return Completion::from_engine(&error);
    }
    for child in children {
        let renamed = format!("{to}{}", &child[from.len()..]);
        if let Err(error) = engine.rename_mailbox(account, &child, &renamed).await {
            tracing::warn!(%error, "renaming a child mailbox");
            return Completion::no("Renamed, but not all of its children");
        }
    }
    Completion::ok("RENAME completed")
}

async fn find_mailbox<C: SessionIo>(
    account: &str,
    mailbox: &str,
    client: &mut Client<'_, C>,
) -> Result<MailboxInfo, EngineError> {
    let mailboxes = client.engine().list_mailboxes(account).await?;
    mailboxes
        .into_iter()
        .find(|info| info.name == mailbox)
        .ok_or_else(|| EngineError::NoSuchMailbox(mailbox.to_owned()))
}

async fn status<C: SessionIo>(
    account: &str,
    mailbox: &str,
    items: &[StatusItem],
    client: &mut Client<'_, C>,
) -> Completion {
    let info = match find_mailbox(account, mailbox, client).await {
        Ok(info) => info,
        Err(error) => return Completion::from_engine(&error),
    };
    let values: Vec<(StatusItem, u32)> = items
        .iter()
        .map(|item| {
            let value = match item {
                StatusItem::Messages => info.messages,
                // \Recent is never set: every session sees messages as not recent.
                StatusItem::Recent => 0,
                StatusItem::UidNext => info.uid_next,
                StatusItem::UidValidity => info.uid_validity,
                StatusItem::Unseen => info.unseen,
            };
            (*item, value)
        })
        .collect();
    imap::write_status(&info.name, &values, &mut client.output);
    Completion::ok("STATUS completed")
}

async fn append<C: SessionIo>(
    account: &str,
    mailbox: &str,
    flags: &[Flag],
    date_time: Option<DateTime>,
    message: Vec<u8>,
    client: &mut Client<'_, C>,
) -> Completion {
    let flags = match from_imap(flags) {
        Ok(flags) => flags,
        Err(refused) => return Completion::no(format!("Cannot set flag {refused}")),
    };
    let internal_date_unix_ms = date_time.map(|date_time| date_time.unix_seconds().saturating_mul(1000));
    let engine = client.engine().clone();
    let uid = match engine.append(account, mailbox, message, flags, internal_date_unix_ms).await {
        Ok(uid) => uid,
        Err(EngineError::NoSuchMailbox(_)) => {
            return Completion::no("No such mailbox").with_code(ResponseCode::TryCreate);
        }
        Err(error) => return Completion::from_engine(&error),
    };
    let uid_validity = find_mailbox(account, mailbox, client).await.map(|info| info.uid_validity);
    match (uid_validity, NonZeroU32::new(uid)) {
        (Ok(uid_validity), Some(uid)) => Completion::ok("APPEND completed")
            .with_code(ResponseCode::AppendUid { uid_validity, uids: SequenceSet::single(uid) }),
        // Stored and durable; only the UIDPLUS code is missing (e.g. renamed meanwhile).
        _ => Completion::ok("APPEND completed"),
    }
}
