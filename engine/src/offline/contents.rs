//! What a store holds, as a backup verification compares it: accounts by name, mailboxes by
//! name, messages by uid, each with what identifies its content (digest, size) and its flags.

use std::collections::BTreeMap;

use crate::format::Flags;
use crate::index::Index;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreContents {
    pub accounts: BTreeMap<String, AccountContents>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountContents {
    pub account_id: u64,
    pub mailboxes: BTreeMap<String, MailboxContents>,
    /// Deleted messages still held (restorable, or waiting for compaction).
    pub deleted_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxContents {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: BTreeMap<u32, MessageContents>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContents {
    /// BLAKE3 of the body.
    pub digest: [u8; 32],
    pub size: u64,
    pub flags: Flags,
}

impl StoreContents {
    /// Adds every account of one shard's index.
    pub fn add_index(&mut self, index: &Index) {
        for account in index.accounts() {
            let mailboxes = account
                .mailboxes
                .values()
                .map(|mailbox| {
                    let messages = mailbox
                        .messages
                        .iter()
                        .map(|(uid, entry)| {
                            let message = MessageContents {
                                digest: entry.message.digest,
                                size: entry.message.size,
                                flags: entry.flags.clone(),
                            };
                            (uid, message)
                        })
                        .collect();
                    let contents =
                        MailboxContents { uid_validity: mailbox.uid_validity, uid_next: mailbox.uid_next, messages };
                    (mailbox.name.clone(), contents)
                })
                .collect();
            let contents = AccountContents { account_id: account.id, mailboxes, deleted_count: account.deleted.len() };
            self.accounts.insert(account.name.clone(), contents);
        }
    }

    pub fn message_count(&self) -> usize {
        self.accounts
            .values()
            .flat_map(|account| account.mailboxes.values())
            .map(|mailbox| mailbox.messages.len())
            .sum()
    }
}
