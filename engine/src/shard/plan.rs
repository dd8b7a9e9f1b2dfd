//! Mutations: validated in full against the index first, then emitted as records. A mutation
//! that fails validation emits nothing, so bad input changes nothing.

use std::sync::Arc;

use crate::api::{DeletedMessageId, FlagChange, INBOX};
use crate::crypto::RecordCipher;
use crate::error::EngineError;
use crate::format::{Flags, NAME_BYTES_MAX, Record, SHARD_ID_SHIFT};
use crate::index::{Account, Mailbox, MessageEntry};
use crate::io::Storage;

use super::emit::Place;
use super::request::{Mutation, OneShot, Outcome, SpentBody};
use super::{Batch, Shard};

/// Most messages one request may touch; bounds the records one commit can hold (see
/// `recovery::RECORD_ID_GAP`).
pub(crate) const UIDS_PER_REQUEST_MAX: usize = 10_000;

/// A message to append, as the request gave it.
struct NewMessage {
    body: Vec<u8>,
    /// BLAKE3 of `body`.
    digest: [u8; 32],
    flags: Flags,
    internal_date_unix_ms: i64,
}

/// Where a copy or move goes, and whether the source stays.
struct CopyTargets<'a> {
    from: &'a str,
    to: &'a str,
    remove_source: bool,
}

/// IMAP's INBOX is case-insensitive; every other name is kept as given. Borrowed, not copied:
/// every fetch normalizes its mailbox's name.
pub(crate) fn normalize_mailbox(name: &str) -> &str {
    if name.eq_ignore_ascii_case(INBOX) { INBOX } else { name }
}

fn validate_name(what: &'static str, name: &str) -> Result<(), EngineError> {
    let reason = if name.is_empty() {
        "must not be empty".to_owned()
    } else if name.len() > NAME_BYTES_MAX {
        format!("longer than {NAME_BYTES_MAX} bytes")
    } else if name.chars().any(char::is_control) {
        "must not contain control characters".to_owned()
    } else {
        return Ok(());
    };
    Err(EngineError::InvalidInput { what, reason })
}

fn mailbox<'a>(account: &'a Account, name: &str) -> Result<&'a Mailbox, EngineError> {
    account.mailbox(name).ok_or_else(|| EngineError::NoSuchMailbox(name.to_owned()))
}

fn entries(mailbox: &Mailbox, uids: &[u32]) -> Result<Vec<(u32, MessageEntry)>, EngineError> {
    if uids.len() > UIDS_PER_REQUEST_MAX {
        return Err(EngineError::InvalidInput {
            what: "uid list",
            reason: format!("more than {UIDS_PER_REQUEST_MAX} messages in one request"),
        });
    }
    // One record per listed uid: a uid listed twice would make a second record contradict the
    // first (an expunge of a message already gone), which replay refuses.
    let mut listed = std::collections::HashSet::with_capacity(uids.len());
    if let Some(repeated) = uids.iter().find(|uid| !listed.insert(**uid)) {
        return Err(EngineError::InvalidInput { what: "uid list", reason: format!("uid {repeated} is listed twice") });
    }
    uids.iter()
        .map(|uid| {
            mailbox.messages.get(*uid).map(|entry| (*uid, entry.clone())).ok_or(EngineError::NoSuchMessage(*uid))
        })
        .collect()
}

impl<S: Storage> Shard<S> {
    pub(super) fn plan_into(&mut self, mutation: Mutation, reply: OneShot<Outcome>, batch: &mut Batch) {
        if self.failure.is_some() {
            let _ = reply.send(Err(self.failed_error()));
            return;
        }
        let answer = self.plan(mutation, batch);
        batch.answers.push((reply, answer));
    }

    pub(super) fn account(&mut self, name: &str) -> Result<(&Account, Arc<RecordCipher>), EngineError> {
        let account_id = self.index.account_id(name).ok_or_else(|| EngineError::NoSuchAccount(name.to_owned()))?;
        if let Some(closure) = self.index.account(account_id).and_then(|account| account.closure) {
            let purge_after_unix_ms = closure.purge_after_unix_ms;
            return Err(EngineError::AccountClosed { account: name.to_owned(), purge_after_unix_ms });
        }
        let cipher =
            self.keys.cipher(account_id, &self.hsm).map_err(|error| EngineError::Corrupt(error.to_string()))?;
        let account = self.index.account(account_id).ok_or_else(|| EngineError::NoSuchAccount(name.to_owned()))?;
        Ok((account, cipher))
    }

    fn plan(&mut self, mutation: Mutation, batch: &mut Batch) -> Result<Outcome, EngineError> {
        let now = self.config.clock.now_unix_ms();
        match mutation {
            Mutation::CreateAccount { account } => self.create_account(&account, now, batch),
            Mutation::CreateMailbox { account, name } => self.create_mailbox(&account, &name, now, batch),
            Mutation::RenameMailbox { account, from, to } => self.rename_mailbox(&account, &from, &to, batch),
            Mutation::DeleteMailbox { account, name } => self.delete_mailbox(&account, &name, now, batch),
            Mutation::Append { account, mailbox, body, digest, flags, internal_date_unix_ms } => {
                let internal_date_unix_ms = internal_date_unix_ms.unwrap_or(now);
                let message = NewMessage { body, digest, flags, internal_date_unix_ms };
                self.append(&account, &mailbox, message, batch)
            }
            Mutation::ChangeFlags { account, mailbox, uids, change } => {
                self.change_flags(&account, &mailbox, &uids, &change, batch)
            }
            Mutation::Copy { account, from, uids, to, remove_source } => {
                let targets = CopyTargets { from: &from, to: &to, remove_source };
                self.copy(&account, &targets, &uids, batch)
            }
            Mutation::Expunge { account, mailbox, uids } => self.expunge(&account, &mailbox, &uids, now, batch),
            Mutation::Restore { account, deleted } => self.restore(&account, deleted, now, batch),
            Mutation::SetPassword { account, password_hash } => self.set_password(&account, password_hash, batch),
            Mutation::AddAppPassword { account, label, password_hash } => {
                self.add_app_password(&account, label, password_hash, batch)
            }
            Mutation::RevokeAppPasswords { account } => self.revoke_app_passwords(&account, now, batch),
            Mutation::RecordAccess { account, event } => self.record_access(&account, event, batch),
            Mutation::PruneDeleted { account } => self.prune_deleted(&account, batch),
            Mutation::CloseAccount { account, purge_delay_ms } => {
                self.close_account(&account, purge_delay_ms, now, batch)
            }
            Mutation::ReopenAccount { account } => self.reopen_account(&account, now, batch),
            Mutation::PurgeAccount { account } => self.purge_account(&account, now, batch),
        }
    }

    fn create_mailbox(
        &mut self,
        account: &str,
        name: &str,
        now: i64,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let name = normalize_mailbox(name).to_owned();
        validate_name("mailbox name", &name)?;
        let (account, cipher) = self.account(account)?;
        if account.mailbox_ids.contains_key(&name) {
            return Err(EngineError::MailboxExists(name));
        }
        let place = Place { account_id: account.id, mailbox_id: account.next_mailbox_id, uid: 0 };
        let uid_validity = account.next_uid_validity(now);
        self.emit(batch, place, Record::MailboxCreated { name, uid_validity }, &cipher);
        Ok(Outcome::Done)
    }

    fn rename_mailbox(
        &mut self,
        account: &str,
        from: &str,
        to: &str,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let (from, to) = (normalize_mailbox(from), normalize_mailbox(to).to_owned());
        validate_name("mailbox name", &to)?;
        let (account, cipher) = self.account(account)?;
        let source = mailbox(account, from)?;
        if from == INBOX {
            return Err(EngineError::InvalidInput { what: "rename", reason: "INBOX cannot be renamed".into() });
        }
        if account.mailbox_ids.contains_key(&to) {
            return Err(EngineError::MailboxExists(to));
        }
        let place = Place { account_id: account.id, mailbox_id: source.id, uid: 0 };
        self.emit(batch, place, Record::MailboxRenamed { name: to }, &cipher);
        Ok(Outcome::Done)
    }

    fn delete_mailbox(
        &mut self,
        account: &str,
        name: &str,
        now: i64,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let name = normalize_mailbox(name);
        let (account, cipher) = self.account(account)?;
        let target = mailbox(account, name)?;
        if name == INBOX {
            return Err(EngineError::InvalidInput { what: "delete", reason: "INBOX cannot be deleted".into() });
        }
        let place = Place { account_id: account.id, mailbox_id: target.id, uid: 0 };
        self.emit(batch, place, Record::MailboxDeleted { at_unix_ms: now }, &cipher);
        Ok(Outcome::Done)
    }

    fn append(
        &mut self,
        account: &str,
        mailbox_name: &str,
        message: NewMessage,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let NewMessage { body, digest, flags, internal_date_unix_ms } = message;
        let limit = self.config.message_bytes_max.min(crate::format::MESSAGE_BYTES_MAX);
        if body.len() > limit {
            return Err(EngineError::MessageTooLarge { size: body.len(), limit });
        }
        if body.is_empty() {
            return Err(EngineError::InvalidInput { what: "message", reason: "must not be empty".into() });
        }
        validate_flags(&flags)?;
        let (account, cipher) = self.account(account)?;
        let target = mailbox(account, normalize_mailbox(mailbox_name))?;
        let place = Place { account_id: account.id, mailbox_id: target.id, uid: target.uid_next };
        let record = Record::MessageAppended { internal_date_unix_ms, flags, digest, body };
        let body = self.emit_append(batch, place, record, &cipher).unwrap_or_default();
        Ok(Outcome::Appended { uid: place.uid, body: SpentBody(body) })
    }

    fn change_flags(
        &mut self,
        account: &str,
        mailbox_name: &str,
        uids: &[u32],
        change: &FlagChange,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let (account, cipher) = self.account(account)?;
        let target = mailbox(account, normalize_mailbox(mailbox_name))?;
        let (account_id, mailbox_id) = (account.id, target.id);
        let mut changes = Vec::new();
        for (uid, entry) in entries(target, uids)? {
            let flags = change.apply(&entry.flags);
            validate_flags(&flags)?;
            if flags != entry.flags {
                changes.push((uid, flags));
            }
        }
        for (uid, flags) in changes {
            self.emit(batch, Place { account_id, mailbox_id, uid }, Record::FlagsChanged { flags }, &cipher);
        }
        Ok(Outcome::Done)
    }

    fn copy(
        &mut self,
        account: &str,
        targets: &CopyTargets<'_>,
        uids: &[u32],
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let (account, cipher) = self.account(account)?;
        let source = mailbox(account, normalize_mailbox(targets.from))?;
        let target = mailbox(account, normalize_mailbox(targets.to))?;
        let (account_id, source_id, target_id, first_uid) = (account.id, source.id, target.id, target.uid_next);
        let copied = entries(source, uids)?;
        let mut map = Vec::with_capacity(copied.len());
        for ((source_uid, entry), new_uid) in copied.into_iter().zip(first_uid..) {
            let MessageEntry { message, flags, .. } = entry;
            let record = if targets.remove_source {
                Record::MessageMoved { source_mailbox_id: source_id, source_uid, message, flags }
            } else {
                Record::MessageCopied { message, flags }
            };
            self.emit(batch, Place { account_id, mailbox_id: target_id, uid: new_uid }, record, &cipher);
            map.push((source_uid, new_uid));
        }
        Ok(Outcome::UidMap(map))
    }

    fn expunge(
        &mut self,
        account: &str,
        mailbox_name: &str,
        uids: &[u32],
        now: i64,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let (account, cipher) = self.account(account)?;
        let target = mailbox(account, normalize_mailbox(mailbox_name))?;
        let (account_id, mailbox_id) = (account.id, target.id);
        let expunged = entries(target, uids)?;
        for (uid, _) in expunged {
            let record = Record::MessageExpunged { at_unix_ms: now };
            self.emit(batch, Place { account_id, mailbox_id, uid }, record, &cipher);
        }
        Ok(Outcome::Done)
    }

    fn restore(
        &mut self,
        account: &str,
        deleted: DeletedMessageId,
        now: i64,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let retention_ms = self.config.retention_ms;
        let (account, cipher) = self.account(account)?;
        let found = account
            .deleted
            .iter()
            .find(|message| message.mailbox_id == deleted.mailbox_id && message.uid == deleted.uid)
            .filter(|message| now < message.expunged_unix_ms.saturating_add(retention_ms))
            .ok_or(EngineError::NotRestorable)?;
        let target = account
            .mailboxes
            .get(&found.mailbox_id)
            .or_else(|| account.mailbox(INBOX))
            .ok_or_else(|| EngineError::NoSuchMailbox(INBOX.to_owned()))?;
        let place = Place { account_id: account.id, mailbox_id: target.id, uid: target.uid_next };
        let target_name = target.name.clone();
        let MessageEntry { message, flags, .. } = found.entry.clone();
        let (deleted_mailbox_id, deleted_uid) = (deleted.mailbox_id, deleted.uid);
        let record = Record::MessageRestored { deleted_mailbox_id, deleted_uid, message, flags };
        self.emit(batch, place, record, &cipher);
        Ok(Outcome::Restored { mailbox: target_name, uid: place.uid })
    }

    fn create_account(&mut self, name: &str, now: i64, batch: &mut Batch) -> Result<Outcome, EngineError> {
        validate_name("account name", name)?;
        if self.index.account_id(name).is_some() {
            return Err(EngineError::AccountExists(name.to_owned()));
        }
        let dek = self.hsm.generate_dek()?;
        let wrapped = self.hsm.wrap_dek(&dek)?;
        let account_id = (u64::from(self.config.shard_id) << SHARD_ID_SHIFT) | self.next_account_number;
        self.next_account_number += 1;
        let wrapped_key = wrapped.to_bytes();
        self.keys.insert_unwrapped(account_id, wrapped, RecordCipher::new(&dek));
        drop(dek);
        let cipher =
            self.keys.cipher(account_id, &self.hsm).map_err(|error| EngineError::Corrupt(error.to_string()))?;
        let account_place = Place { account_id, mailbox_id: 0, uid: 0 };
        self.emit_clear(batch, account_place, Record::KeyWrapped { wrapped_key });
        let record = Record::AccountCreated { name: name.to_owned(), created_unix_ms: now };
        self.emit(batch, account_place, record, &cipher);
        let inbox_place = Place { account_id, mailbox_id: 1, uid: 0 };
        let uid_validity = u32::try_from(now / 1000).unwrap_or(1).max(1);
        self.emit(batch, inbox_place, Record::MailboxCreated { name: INBOX.to_owned(), uid_validity }, &cipher);
        Ok(Outcome::Done)
    }
}

fn validate_flags(flags: &Flags) -> Result<(), EngineError> {
    if flags.is_valid() {
        Ok(())
    } else {
        Err(EngineError::InvalidInput { what: "flags", reason: "unknown system flag or keyword too long/many".into() })
    }
}
