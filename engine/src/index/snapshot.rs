//! The index as bytes, for checkpoints: a plain, bounded codec (encryption and framing are the
//! checkpoint's job, in `shard::checkpoint`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{Account, AppPassword, BlobLocation, Closure, DeletedMessage, Index, Mailbox, MessageEntry, UidMap};
use crate::format::{
    AccessEvent, ByteReader, ByteWriter, Flags, HASH_BYTES_MAX, LABEL_BYTES_MAX, MessageReference, NAME_BYTES_MAX,
    ReadError,
};

/// Upper bound on any count in a snapshot, so a damaged length cannot ask for absurd memory
/// before the data runs out.
const COUNT_MAX: u32 = 1 << 28;

fn count(reader: &mut ByteReader<'_>, field: &'static str) -> Result<u32, ReadError> {
    let value = reader.u32()?;
    if value > COUNT_MAX { Err(ReadError::Invalid { field }) } else { Ok(value) }
}

fn encode_entry(writer: &mut ByteWriter, entry: &MessageEntry) {
    entry.message.encode(writer);
    entry.flags.encode(writer);
}

fn decode_entry(reader: &mut ByteReader<'_>) -> Result<MessageEntry, ReadError> {
    Ok(MessageEntry::new(MessageReference::decode(reader)?, Flags::decode(reader)?))
}

impl Index {
    pub fn encode_snapshot(&self, writer: &mut ByteWriter) {
        writer.u32(self.blobs.len() as u32);
        for (record_id, blob) in self.blobs.iter() {
            writer.u64(*record_id).u64(blob.segment_id).u64(blob.offset).u32(blob.frame_bytes);
        }
        writer.u32(self.accounts.len() as u32);
        for account in self.accounts.values() {
            encode_account(writer, account, |_| true);
        }
        writer.u32(self.purged.len() as u32);
        for account_id in &self.purged {
            writer.u64(*account_id);
        }
    }

    /// One account's whole state, for an `AccountSnapshot` record; deleted messages for which
    /// `keep_deleted` is false are left out (retention ended, or pruned).
    pub fn encode_account_snapshot(
        &self,
        account_id: u64,
        keep_deleted: impl Fn(&DeletedMessage) -> bool,
    ) -> Option<Vec<u8>> {
        let account = self.accounts.get(&account_id)?;
        let mut writer = ByteWriter::new();
        encode_account(&mut writer, account, keep_deleted);
        Some(writer.into_inner())
    }

    /// Replaces an account's state with a decoded `AccountSnapshot` (its id must match).
    pub(super) fn replace_account(&mut self, account_id: u64, record_id: u64, encoded: &[u8]) -> Result<(), ReadError> {
        let mut reader = ByteReader::new(encoded);
        let mut account = decode_account(&mut reader)?;
        account.snapshot_record_id = record_id;
        reader.finish("account snapshot")?;
        if account.id != account_id {
            return Err(ReadError::Invalid { field: "account snapshot id" });
        }
        if let Some(previous) = self.accounts.remove(&account_id) {
            self.account_ids.remove(&previous.name);
        }
        self.account_ids.insert(account.name.clone(), account_id);
        self.accounts.insert(account_id, account);
        Ok(())
    }

    pub fn decode_snapshot(reader: &mut ByteReader<'_>) -> Result<Self, ReadError> {
        let mut index = Self::default();
        for _ in 0..count(reader, "blob count")? {
            let record_id = reader.u64()?;
            let blob = BlobLocation { segment_id: reader.u64()?, offset: reader.u64()?, frame_bytes: reader.u32()? };
            index.blobs.insert(record_id, blob);
        }
        for _ in 0..count(reader, "account count")? {
            let account = decode_account(reader)?;
            index.account_ids.insert(account.name.clone(), account.id);
            index.accounts.insert(account.id, account);
        }
        for _ in 0..count(reader, "purged account count")? {
            index.purged.insert(reader.u64()?);
        }
        Ok(index)
    }
}

fn encode_account(writer: &mut ByteWriter, account: &Account, keep_deleted: impl Fn(&DeletedMessage) -> bool) {
    writer.u64(account.id).string(&account.name).i64(account.created_unix_ms);
    writer.u32(account.next_mailbox_id).u32(account.last_uid_validity).u64(account.snapshot_record_id);
    writer.u32(account.mailboxes.len() as u32);
    for mailbox in account.mailboxes.values() {
        writer.u32(mailbox.id).string(&mailbox.name).u32(mailbox.uid_validity).u32(mailbox.uid_next);
        writer.u32(mailbox.messages.len() as u32);
        for (uid, entry) in mailbox.messages.iter() {
            writer.u32(uid);
            encode_entry(writer, entry);
        }
    }
    encode_credentials(writer, account);
    let deleted: Vec<&DeletedMessage> = account.deleted.iter().filter(|deleted| keep_deleted(deleted)).collect();
    writer.u32(deleted.len() as u32);
    for deleted in deleted {
        writer.u32(deleted.mailbox_id).string(&deleted.mailbox_name).u32(deleted.uid);
        encode_entry(writer, &deleted.entry);
        writer.i64(deleted.expunged_unix_ms);
    }
    match &account.closure {
        Some(closure) => writer.u8(1).i64(closure.closed_unix_ms).i64(closure.purge_after_unix_ms),
        None => writer.u8(0),
    };
}

fn encode_credentials(writer: &mut ByteWriter, account: &Account) {
    match &account.password_hash {
        Some(hash) => writer.u8(1).string(hash),
        None => writer.u8(0),
    };
    writer.u32(account.app_passwords.len() as u32);
    for app_password in &account.app_passwords {
        writer.string(&app_password.label).string(&app_password.password_hash);
    }
    writer.u32(account.access_log.len() as u32);
    for event in &account.access_log {
        event.encode(writer);
    }
}

fn decode_credentials(reader: &mut ByteReader<'_>, account: &mut Account) -> Result<(), ReadError> {
    account.password_hash = match reader.u8()? {
        0 => None,
        1 => Some(reader.string(HASH_BYTES_MAX, "password hash")?),
        _ => return Err(ReadError::Invalid { field: "password hash" }),
    };
    for _ in 0..count(reader, "app password count")? {
        let label = reader.string(LABEL_BYTES_MAX, "app password label")?;
        let password_hash = reader.string(HASH_BYTES_MAX, "password hash")?;
        account.app_passwords.push(AppPassword { label, password_hash });
    }
    for _ in 0..count(reader, "access log count")? {
        account.access_log.push_back(AccessEvent::decode(reader)?);
    }
    Ok(())
}

fn decode_account(reader: &mut ByteReader<'_>) -> Result<Account, ReadError> {
    let mut account = Account {
        id: reader.u64()?,
        name: reader.string(NAME_BYTES_MAX, "account name")?,
        created_unix_ms: reader.i64()?,
        next_mailbox_id: reader.u32()?,
        last_uid_validity: reader.u32()?,
        snapshot_record_id: reader.u64()?,
        mailboxes: BTreeMap::new(),
        mailbox_ids: HashMap::new(),
        deleted: Vec::new(),
        password_hash: None,
        app_passwords: Vec::new(),
        access_log: VecDeque::new(),
        closure: None,
    };
    for _ in 0..count(reader, "mailbox count")? {
        let mut mailbox = Mailbox {
            id: reader.u32()?,
            name: reader.string(NAME_BYTES_MAX, "mailbox name")?,
            uid_validity: reader.u32()?,
            uid_next: reader.u32()?,
            messages: UidMap::new(),
        };
        for _ in 0..count(reader, "message count")? {
            let uid = reader.u32()?;
            mailbox.messages.insert(uid, decode_entry(reader)?);
        }
        account.mailbox_ids.insert(mailbox.name.clone(), mailbox.id);
        account.mailboxes.insert(mailbox.id, mailbox);
    }
    decode_credentials(reader, &mut account)?;
    for _ in 0..count(reader, "deleted count")? {
        account.deleted.push(DeletedMessage {
            mailbox_id: reader.u32()?,
            mailbox_name: reader.string(NAME_BYTES_MAX, "mailbox name")?,
            uid: reader.u32()?,
            entry: decode_entry(reader)?,
            expunged_unix_ms: reader.i64()?,
        });
    }
    account.closure = match reader.u8()? {
        0 => None,
        1 => Some(Closure { closed_unix_ms: reader.i64()?, purge_after_unix_ms: reader.i64()? }),
        _ => return Err(ReadError::Invalid { field: "closure" }),
    };
    Ok(account)
}
