//! Applying one record to the index: the single definition of what each record means.

use std::collections::{BTreeMap, HashMap};

use super::{
    ACCESS_LOG_ENTRIES_MAX, Account, AppPassword, BlobLocation, DeletedMessage, Index, Mailbox, MessageEntry, UidMap,
};
use crate::format::{Flags, FrameHeader, MessageReference, Record};

/// The log contradicts itself: a record refers to something that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("record {record_id} refers to unknown account {account_id}")]
    UnknownAccount { record_id: u64, account_id: u64 },
    #[error("record {record_id} refers to unknown mailbox {mailbox_id}")]
    UnknownMailbox { record_id: u64, mailbox_id: u32 },
    #[error("record {record_id} refers to unknown message uid {uid}")]
    UnknownMessage { record_id: u64, uid: u32 },
    #[error("record {record_id} holds an account snapshot for {account_id} that does not decode")]
    BadSnapshot { record_id: u64, account_id: u64 },
    #[error("record {record_id} creates account {account_id}, which exists")]
    DuplicateAccount { record_id: u64, account_id: u64 },
}

/// Where a record's frame sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLocation {
    pub segment_id: u64,
    pub offset: u64,
    pub frame_bytes: u32,
}

impl Index {
    /// Applies one (decrypted) record. Clear records (keys, footers) are not index state. An
    /// appended message's body is handed back, as the index keeps only its length: the caller
    /// chooses the thread that frees it (`Outcome::Appended`).
    pub fn apply(
        &mut self,
        header: &FrameHeader,
        record: Record,
        location: RecordLocation,
    ) -> Result<Option<Vec<u8>>, ApplyError> {
        let context = RecordContext { header, location };
        if let Record::MessageAppended { internal_date_unix_ms, flags, digest, body } = record {
            let message = MessageReference {
                blob_record_id: header.record_id,
                size: body.len() as u64,
                internal_date_unix_ms,
                digest,
            };
            self.apply_append(&context, message, flags)?;
            return Ok(Some(body));
        }
        self.apply_other(&context, record).map(|()| None)
    }

    fn apply_other(&mut self, context: &RecordContext<'_>, record: Record) -> Result<(), ApplyError> {
        let header = context.header;
        let record_id = header.record_id;
        match record {
            Record::AccountCreated { name, created_unix_ms } => {
                return self.create_account(header, name, created_unix_ms);
            }
            // A snapshot stands alone: it applies even where the account's earlier records are gone.
            Record::AccountSnapshot { encoded } => {
                self.releases += 1;
                let encoded = self.snapshot_pieces.join(header.account_id, record_id, encoded);
                return self
                    .replace_account(header.account_id, record_id, &encoded)
                    .map_err(|_| ApplyError::BadSnapshot { record_id, account_id: header.account_id });
            }
            Record::AccountSnapshotPart { piece } => {
                self.snapshot_pieces.add(header.account_id, record_id, &piece);
                return Ok(());
            }
            _ => {}
        }
        let account = self.accounts.get_mut(&header.account_id).ok_or_else(|| context.unknown_account())?;
        if matches!(record, Record::MessageExpunged { .. } | Record::MailboxDeleted { .. }) {
            self.releases += 1;
        }
        match record {
            Record::AccountCreated { .. }
            | Record::AccountSnapshot { .. }
            | Record::AccountSnapshotPart { .. }
            | Record::KeyWrapped { .. }
            | Record::RecordIdFloor
            | Record::AccountPurged { .. }
            | Record::SegmentSealed { .. } => Ok(()),
            Record::AccountClosed { closed_unix_ms, purge_after_unix_ms } => {
                account.closure = Some(super::Closure { closed_unix_ms, purge_after_unix_ms });
                Ok(())
            }
            Record::AccountReopened { .. } => {
                account.closure = None;
                Ok(())
            }
            Record::MailboxCreated { .. } | Record::MailboxRenamed { .. } | Record::MailboxDeleted { .. } => {
                apply_mailbox_record(account, context, record)
            }
            Record::PasswordSet { .. }
            | Record::AppPasswordAdded { .. }
            | Record::AppPasswordsRevoked { .. }
            | Record::AccessRecorded { .. } => {
                apply_credential_record(account, record);
                Ok(())
            }
            record => apply_message_record(account, context, record),
        }
    }

    /// A new message: its body's place goes into the blob table, its entry into the mailbox.
    fn apply_append(
        &mut self,
        context: &RecordContext<'_>,
        message: MessageReference,
        flags: Flags,
    ) -> Result<(), ApplyError> {
        let header = context.header;
        let account = self.accounts.get_mut(&header.account_id).ok_or_else(|| context.unknown_account())?;
        let location = context.location;
        let blob = BlobLocation {
            segment_id: location.segment_id,
            offset: location.offset,
            frame_bytes: location.frame_bytes,
        };
        self.blobs.insert(header.record_id, blob);
        let entry = MessageEntry::new(message, flags);
        entry.remember_body(blob, self.blobs.changes());
        let mailbox = account.mailboxes.get_mut(&header.mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
        add_message(mailbox, header.uid, entry);
        Ok(())
    }

    fn create_account(&mut self, header: &FrameHeader, name: String, created_unix_ms: i64) -> Result<(), ApplyError> {
        if self.accounts.contains_key(&header.account_id) {
            return Err(ApplyError::DuplicateAccount { record_id: header.record_id, account_id: header.account_id });
        }
        self.account_ids.insert(name.clone(), header.account_id);
        self.accounts.insert(
            header.account_id,
            Account {
                id: header.account_id,
                name,
                created_unix_ms,
                mailboxes: BTreeMap::new(),
                mailbox_ids: HashMap::new(),
                next_mailbox_id: 1,
                last_uid_validity: 0,
                snapshot_record_id: 0,
                deleted: Vec::new(),
                password_hash: None,
                app_passwords: Vec::new(),
                access_log: std::collections::VecDeque::new(),
                closure: None,
            },
        );
        Ok(())
    }
}

/// The header and location of the record being applied.
struct RecordContext<'a> {
    header: &'a FrameHeader,
    location: RecordLocation,
}

impl RecordContext<'_> {
    fn unknown_account(&self) -> ApplyError {
        ApplyError::UnknownAccount { record_id: self.header.record_id, account_id: self.header.account_id }
    }

    fn unknown_mailbox(&self) -> ApplyError {
        ApplyError::UnknownMailbox { record_id: self.header.record_id, mailbox_id: self.header.mailbox_id }
    }

    fn unknown_message(&self) -> ApplyError {
        ApplyError::UnknownMessage { record_id: self.header.record_id, uid: self.header.uid }
    }
}

fn apply_credential_record(account: &mut Account, record: Record) {
    match record {
        Record::PasswordSet { password_hash } => account.password_hash = Some(password_hash),
        Record::AppPasswordAdded { label, password_hash } => {
            account.app_passwords.push(AppPassword { label, password_hash });
        }
        Record::AppPasswordsRevoked { .. } => account.app_passwords.clear(),
        Record::AccessRecorded { event } => {
            if account.access_log.len() == ACCESS_LOG_ENTRIES_MAX {
                account.access_log.pop_front();
            }
            account.access_log.push_back(event);
        }
        _ => {}
    }
}

fn apply_mailbox_record(account: &mut Account, context: &RecordContext<'_>, record: Record) -> Result<(), ApplyError> {
    let mailbox_id = context.header.mailbox_id;
    match record {
        Record::MailboxCreated { name, uid_validity } => {
            account.mailbox_ids.insert(name.clone(), mailbox_id);
            let mailbox = Mailbox { id: mailbox_id, name, uid_validity, uid_next: 1, messages: UidMap::new() };
            account.mailboxes.insert(mailbox_id, mailbox);
            account.next_mailbox_id = account.next_mailbox_id.max(mailbox_id + 1);
            account.last_uid_validity = account.last_uid_validity.max(uid_validity);
        }
        Record::MailboxRenamed { name } => {
            let mailbox = account.mailboxes.get_mut(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            account.mailbox_ids.remove(&mailbox.name);
            account.mailbox_ids.insert(name.clone(), mailbox_id);
            mailbox.name = name;
        }
        Record::MailboxDeleted { at_unix_ms } => {
            let mailbox = account.mailboxes.remove(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            account.mailbox_ids.remove(&mailbox.name);
            for (uid, entry) in mailbox.messages.into_entries() {
                account.deleted.push(DeletedMessage {
                    mailbox_id,
                    mailbox_name: mailbox.name.clone(),
                    uid,
                    entry,
                    expunged_unix_ms: at_unix_ms,
                });
            }
        }
        _ => {}
    }
    Ok(())
}

fn apply_message_record(account: &mut Account, context: &RecordContext<'_>, record: Record) -> Result<(), ApplyError> {
    let header = context.header;
    let mailbox_id = header.mailbox_id;
    match record {
        Record::FlagsChanged { flags } => {
            let mailbox = account.mailboxes.get_mut(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            mailbox.messages.get_mut(header.uid).ok_or_else(|| context.unknown_message())?.flags = flags;
        }
        Record::MessageCopied { message, flags } => {
            let mailbox = account.mailboxes.get_mut(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            add_message(mailbox, header.uid, MessageEntry::new(message, flags));
        }
        Record::MessageMoved { source_mailbox_id, source_uid, message, flags } => {
            if let Some(source) = account.mailboxes.get_mut(&source_mailbox_id) {
                source.messages.remove(source_uid);
            }
            let mailbox = account.mailboxes.get_mut(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            add_message(mailbox, header.uid, MessageEntry::new(message, flags));
        }
        Record::MessageExpunged { at_unix_ms } => {
            let mailbox = account.mailboxes.get_mut(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            let entry = mailbox.messages.remove(header.uid).ok_or_else(|| context.unknown_message())?;
            let mailbox_name = mailbox.name.clone();
            let deleted =
                DeletedMessage { mailbox_id, mailbox_name, uid: header.uid, entry, expunged_unix_ms: at_unix_ms };
            account.deleted.push(deleted);
        }
        Record::MessageRestored { deleted_mailbox_id, deleted_uid, message, flags } => {
            let restored = account
                .deleted
                .iter()
                .position(|deleted| deleted.mailbox_id == deleted_mailbox_id && deleted.uid == deleted_uid);
            if let Some(position) = restored {
                account.deleted.swap_remove(position);
            }
            let mailbox = account.mailboxes.get_mut(&mailbox_id).ok_or_else(|| context.unknown_mailbox())?;
            add_message(mailbox, header.uid, MessageEntry::new(message, flags));
        }
        _ => {}
    }
    Ok(())
}

fn add_message(mailbox: &mut Mailbox, uid: u32, entry: MessageEntry) {
    mailbox.uid_next = mailbox.uid_next.max(uid + 1);
    mailbox.messages.insert(uid, entry);
}
