//! Level-3 comparison: a backup's contents against a store's, message by message and mailbox
//! by mailbox. Each difference names account/mailbox/uid and what differs.

use std::collections::BTreeMap;
use std::fmt;

use mailvault_engine::offline::{AccountContents, MailboxContents, MessageContents, StoreContents};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub account: String,
    pub mailbox: Option<String>,
    pub uid: Option<u32>,
    pub what: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.account)?;
        if let Some(mailbox) = &self.mailbox {
            write!(formatter, "/{mailbox}")?;
        }
        if let Some(uid) = self.uid {
            write!(formatter, "/{uid}")?;
        }
        write!(formatter, ": {}", self.what)
    }
}

/// Every difference between `backup` and `store` (empty: equal).
pub fn compare_contents(backup: &StoreContents, store: &StoreContents) -> Vec<Difference> {
    let mut differences = Vec::new();
    for_each_key(&backup.accounts, &store.accounts, |name, in_backup, in_store| {
        let difference = |what: String| Difference { account: name.to_owned(), mailbox: None, uid: None, what };
        match (in_backup, in_store) {
            (Some(_), None) => differences.push(difference("account only in the backup".into())),
            (None, Some(_)) => differences.push(difference("account only in the store".into())),
            (Some(backup), Some(store)) => compare_accounts(name, backup, store, &mut differences),
            (None, None) => {}
        }
    });
    differences
}

fn compare_accounts(account: &str, backup: &AccountContents, store: &AccountContents, out: &mut Vec<Difference>) {
    if backup.deleted_count != store.deleted_count {
        let what = format!("deleted messages held: backup {}, store {}", backup.deleted_count, store.deleted_count);
        out.push(Difference { account: account.to_owned(), mailbox: None, uid: None, what });
    }
    for_each_key(&backup.mailboxes, &store.mailboxes, |name, in_backup, in_store| {
        let difference =
            |what: String| Difference { account: account.to_owned(), mailbox: Some(name.clone()), uid: None, what };
        match (in_backup, in_store) {
            (Some(_), None) => out.push(difference("mailbox only in the backup".into())),
            (None, Some(_)) => out.push(difference("mailbox only in the store".into())),
            (Some(backup), Some(store)) => compare_mailboxes(account, name, backup, store, out),
            (None, None) => {}
        }
    });
}

fn compare_mailboxes(
    account: &str,
    mailbox: &str,
    backup: &MailboxContents,
    store: &MailboxContents,
    out: &mut Vec<Difference>,
) {
    let at = |uid: Option<u32>, what: String| Difference {
        account: account.to_owned(),
        mailbox: Some(mailbox.to_owned()),
        uid,
        what,
    };
    if backup.uid_validity != store.uid_validity {
        out.push(at(None, format!("UIDVALIDITY: backup {}, store {}", backup.uid_validity, store.uid_validity)));
    }
    if backup.uid_next != store.uid_next {
        out.push(at(None, format!("UIDNEXT: backup {}, store {}", backup.uid_next, store.uid_next)));
    }
    for_each_key(&backup.messages, &store.messages, |uid, in_backup, in_store| match (in_backup, in_store) {
        (Some(_), None) => out.push(at(Some(*uid), "message only in the backup".into())),
        (None, Some(_)) => out.push(at(Some(*uid), "message only in the store".into())),
        (Some(backup), Some(store)) => {
            for what in message_differences(backup, store) {
                out.push(at(Some(*uid), what));
            }
        }
        (None, None) => {}
    });
}

fn message_differences(backup: &MessageContents, store: &MessageContents) -> Vec<String> {
    let mut differences = Vec::new();
    if backup.digest != store.digest {
        differences.push(format!(
            "content digest: backup {}, store {}",
            &hex::encode(backup.digest)[..16],
            &hex::encode(store.digest)[..16]
        ));
    }
    if backup.size != store.size {
        differences.push(format!("size: backup {}, store {}", backup.size, store.size));
    }
    if backup.flags != store.flags {
        differences.push(format!("flags: backup {:?}, store {:?}", backup.flags, store.flags));
    }
    differences
}

/// Calls `visit` for every key of either map, in order, with its value on each side.
fn for_each_key<K: Ord, V>(
    left: &BTreeMap<K, V>,
    right: &BTreeMap<K, V>,
    mut visit: impl FnMut(&K, Option<&V>, Option<&V>),
) {
    let mut keys: Vec<&K> = left.keys().chain(right.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        visit(key, left.get(key), right.get(key));
    }
}
