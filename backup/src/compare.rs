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
    let mut found = Vec::new();
    if backup.uid_next != store.uid_next {
        found.push(at(None, format!("UIDNEXT: backup {}, store {}", backup.uid_next, store.uid_next)));
    }
    for_each_key(&backup.messages, &store.messages, |uid, in_backup, in_store| match (in_backup, in_store) {
        (Some(_), None) => found.push(at(Some(*uid), "message only in the backup".into())),
        (None, Some(_)) => found.push(at(Some(*uid), "message only in the store".into())),
        (Some(backup), Some(store)) => {
            for what in message_differences(backup, store) {
                found.push(at(Some(*uid), what));
            }
        }
        (None, None) => {}
    });
    // A restore gives every mailbox a newer UIDVALIDITY and keeps its uids and mail: that alone
    // is no difference. A newer one with other differences is a mailbox recreated since.
    let renewed = store.uid_validity > backup.uid_validity && found.is_empty();
    if backup.uid_validity != store.uid_validity && !renewed {
        out.push(at(None, format!("UIDVALIDITY: backup {}, store {}", backup.uid_validity, store.uid_validity)));
    }
    out.extend(found);
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

#[cfg(test)]
mod tests {
    use mailvault_engine::Flags;

    use super::*;

    fn store(uid_validity: u32, uids: &[u32]) -> StoreContents {
        let message = MessageContents { digest: [7; 32], size: 10, flags: Flags::default() };
        let messages = uids.iter().map(|uid| (*uid, message.clone())).collect();
        let uid_next = uids.iter().max().map_or(1, |last| last + 1);
        let mailbox = MailboxContents { uid_validity, uid_next, messages };
        let account = AccountContents {
            account_id: 1,
            mailboxes: BTreeMap::from([("INBOX".to_owned(), mailbox)]),
            deleted_count: 0,
        };
        StoreContents { accounts: BTreeMap::from([("alice".to_owned(), account)]) }
    }

    fn lines(differences: &[Difference]) -> Vec<String> {
        differences.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_newer_uid_validity_over_the_same_mail_is_a_restore_not_a_difference() {
        assert!(compare_contents(&store(100, &[1, 2]), &store(200, &[1, 2])).is_empty());
    }

    #[test]
    fn an_older_uid_validity_or_a_newer_one_over_other_mail_is_named() {
        assert_eq!(
            lines(&compare_contents(&store(200, &[1, 2]), &store(100, &[1, 2]))),
            ["alice/INBOX: UIDVALIDITY: backup 200, store 100"]
        );
        assert_eq!(
            lines(&compare_contents(&store(100, &[1, 2]), &store(200, &[1]))),
            [
                "alice/INBOX: UIDVALIDITY: backup 100, store 200",
                "alice/INBOX: UIDNEXT: backup 3, store 2",
                "alice/INBOX/2: message only in the backup",
            ]
        );
    }
}
