//! Reads: listings straight from the index, message bodies from disk on a task of their own
//! (so a slow read never holds up the commit loop).

use std::rc::Rc;
use std::sync::Arc;

use crate::api::{
    CompactionStatus, Credentials, DeletedMessageId, DeletedMessageInfo, MailboxInfo, MessageInfo, SegmentStats,
    ShardStats,
};
use crate::crypto::RecordCipher;
use crate::error::EngineError;
use crate::format::{FRAME_HEADER_BYTES, Flags, FrameDecode, RecordKind, decode_frame_for_aead};
use crate::index::{Account, BlobLocation, Mailbox, MessageEntry};
use crate::io::{Storage, StorageFile, spawn_started, want_prompt_round};

use super::Shard;
use super::plan::normalize_mailbox;
use super::request::{Query, Reply};
use super::sealed_message::SealedMessage;

/// Answers a request; a requester that went away no longer needs the answer.
fn respond<T>(reply: &Reply<T>, answer: Result<T, EngineError>) {
    let _ = reply.send(answer);
}

fn mailbox_info(mailbox: &Mailbox) -> MailboxInfo {
    MailboxInfo {
        name: mailbox.name.clone(),
        uid_validity: mailbox.uid_validity,
        uid_next: mailbox.uid_next,
        messages: mailbox.messages.len() as u32,
        unseen: mailbox.messages.values().filter(|entry| !entry.flags.contains(Flags::SEEN)).count() as u32,
        size_bytes: mailbox.messages.values().map(|entry| entry.message.size).sum(),
    }
}

fn message_info(uid: u32, entry: &MessageEntry) -> MessageInfo {
    MessageInfo {
        uid,
        flags: entry.flags.clone(),
        size: entry.message.size,
        internal_date_unix_ms: entry.message.internal_date_unix_ms,
        digest: entry.message.digest,
    }
}

impl<S: Storage> Shard<S> {
    pub(super) fn answer(&mut self, query: Query) {
        if self.failure.is_some() {
            query.refuse(self.failed_error());
            return;
        }
        match query {
            Query::Accounts(reply) => {
                respond(&reply, Ok(self.index.accounts().map(|account| account.name.clone()).collect()));
            }
            Query::Mailboxes { account, reply } => respond(
                &reply,
                self.find_account(&account).map(|account| account.mailboxes.values().map(mailbox_info).collect()),
            ),
            Query::Messages { account, mailbox, reply } => respond(&reply, self.messages(&account, &mailbox)),
            Query::Deleted { account, reply } => respond(&reply, self.deleted(&account)),
            Query::Stats(reply) => respond(&reply, Ok(self.stats())),
            Query::Compaction(reply) => respond(&reply, Ok(self.compaction_status())),
            Query::AccountStates(reply) => respond(&reply, Ok(self.account_states())),
            Query::DuePurges(reply) => respond(&reply, Ok(self.due_purges())),
            Query::Credentials { account, reply } => respond(
                &reply,
                self.find_account(&account).map(|account| Credentials {
                    password_hash: account.password_hash.clone(),
                    app_passwords: account.app_passwords.clone(),
                }),
            ),
            Query::AccessLog { account, limit, reply } => respond(
                &reply,
                self.find_account(&account)
                    .map(|account| account.access_log.iter().rev().take(limit).cloned().collect()),
            ),
            Query::Fetch { account, mailbox, uid, local, reply } => match self.locate(&account, &mailbox, uid) {
                // The read is queued now, with the requests taken alongside it, not when the
                // runtime first runs its task.
                Ok(located) => spawn_started(async move {
                    let _ = reply.send(read_message(located).await);
                    // A caller on another thread asks for its next message through the queue,
                    // which the loop takes when the round ends. A caller on this thread is a
                    // task of this round: ending it would only cost a wake and a poll of the
                    // driver per fetch (see `io::prompt_loop`).
                    if !local {
                        want_prompt_round();
                    }
                }),
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
        }
    }

    /// An open account: a closed one is unreachable until reopened.
    fn find_account(&self, name: &str) -> Result<&Account, EngineError> {
        let account = self.index.account_by_name(name).ok_or_else(|| EngineError::NoSuchAccount(name.to_owned()))?;
        match account.closure {
            None => Ok(account),
            Some(closure) => Err(EngineError::AccountClosed {
                account: name.to_owned(),
                purge_after_unix_ms: closure.purge_after_unix_ms,
            }),
        }
    }

    fn messages(&self, account: &str, mailbox: &str) -> Result<(MailboxInfo, Vec<MessageInfo>), EngineError> {
        let name = normalize_mailbox(mailbox);
        let mailbox =
            self.find_account(account)?.mailbox(name).ok_or_else(|| EngineError::NoSuchMailbox(name.to_owned()))?;
        let messages = mailbox.messages.iter().map(|(uid, entry)| message_info(uid, entry)).collect();
        Ok((mailbox_info(mailbox), messages))
    }

    fn deleted(&self, account: &str) -> Result<Vec<DeletedMessageInfo>, EngineError> {
        let now = self.config.clock.now_unix_ms();
        let retention_ms = self.config.retention_ms;
        let mut deleted: Vec<_> = self
            .find_account(account)?
            .deleted
            .iter()
            .map(|message| DeletedMessageInfo {
                id: DeletedMessageId { mailbox_id: message.mailbox_id, uid: message.uid },
                mailbox_name: message.mailbox_name.clone(),
                size: message.entry.message.size,
                expunged_unix_ms: message.expunged_unix_ms,
                restorable_until_unix_ms: message.expunged_unix_ms.saturating_add(retention_ms),
            })
            .filter(|message| now < message.restorable_until_unix_ms)
            .collect();
        deleted.sort_by_key(|message| (message.expunged_unix_ms, message.id.mailbox_id, message.id.uid));
        Ok(deleted)
    }

    fn stats(&self) -> ShardStats {
        let accounts = self.index.accounts();
        let (mut account_count, mut messages, mut deleted_messages) = (0, 0, 0);
        for account in accounts {
            account_count += 1;
            messages += account.mailboxes.values().map(|mailbox| mailbox.messages.len() as u64).sum::<u64>();
            deleted_messages += account.deleted.len() as u64;
        }
        let (spare_segment_files, spare_segment_bytes) = self.recycled.files_and_bytes();
        ShardStats {
            shard_id: self.config.shard_id,
            accounts: account_count,
            messages,
            deleted_messages,
            segments: self.readers.len() as u64,
            active_segment_id: self.active.segment_id(),
            active_segment_bytes: self.active.log_end(),
            commits: self.commits,
            records_committed: self.records_committed,
            checkpoints_written: self.checkpoints_written,
            usage_passes: self.usage_passes,
            segment_details: self.segment_details(),
            compacting: self.compaction_progress(),
            scrub: self.scrub_status(),
            spare_segment_files,
            spare_segment_bytes,
            out_of_space_since_unix_ms: self.out_of_space_since_unix_ms(),
        }
    }

    fn compaction_status(&self) -> CompactionStatus {
        CompactionStatus {
            shard_id: self.config.shard_id,
            compacting: self.compaction_progress(),
            segment_bytes: self.sealed_segment_bytes.values().sum::<u64>() + self.active.log_end(),
        }
    }

    fn segment_details(&self) -> Vec<SegmentStats> {
        let per_segment = self.index.segment_usage(&self.blob_usage());
        let active = self.active.segment_id();
        let mut sizes: Vec<(u64, u64)> = self.sealed_segment_bytes.iter().map(|(id, bytes)| (*id, *bytes)).collect();
        sizes.push((active, self.active.log_end()));
        sizes.sort_unstable();
        sizes
            .into_iter()
            .map(|(segment_id, bytes)| {
                let usage = per_segment.get(&segment_id).copied().unwrap_or_default();
                SegmentStats {
                    segment_id,
                    bytes,
                    live_bytes: usage.live_bytes,
                    retained_bytes: usage.retained_bytes,
                    retained_until_unix_ms: usage.retained_until_unix_ms,
                    active: segment_id == active,
                }
            })
            .collect()
    }

    fn locate(&mut self, account: &str, mailbox: &str, uid: u32) -> Result<Located<S::File>, EngineError> {
        let name = normalize_mailbox(mailbox);
        let account = self.find_account(account)?;
        let account_id = account.id;
        let mailbox = account.mailbox(name).ok_or_else(|| EngineError::NoSuchMailbox(name.to_owned()))?;
        let entry = mailbox.messages.get(uid).ok_or(EngineError::NoSuchMessage(uid))?;
        let info = message_info(uid, entry);
        let blob_record_id = entry.message.blob_record_id;
        let location = self
            .index
            .body_location(entry)
            .ok_or_else(|| EngineError::Corrupt(format!("message uid {uid} has no stored body")))?;
        let file = self
            .readers
            .get(&location.segment_id)
            .cloned()
            .ok_or_else(|| EngineError::Corrupt(format!("segment {} is missing", location.segment_id)))?;
        let cipher =
            self.keys.cipher(account_id, &self.hsm).map_err(|error| EngineError::Corrupt(error.to_string()))?;
        Ok(Located { file, location, cipher, account_id, blob_record_id, info })
    }
}

/// Everything a body read needs, taken from the shard so the read can run on its own task.
struct Located<F> {
    file: Rc<F>,
    location: BlobLocation,
    cipher: Arc<RecordCipher>,
    account_id: u64,
    blob_record_id: u64,
    info: MessageInfo,
}

/// Reads one message's frame and checks that it is the record the index named (record id,
/// account, kind); the caller decrypts it ([`SealedMessage::open`]).
async fn read_message<F: StorageFile>(located: Located<F>) -> Result<SealedMessage, EngineError> {
    let Located { file, location, cipher, account_id, blob_record_id, info } = located;
    let corrupt = |what: &str| EngineError::Corrupt(format!("message uid {}: {what}", info.uid));
    let mut read = file.read_reused(location.offset, location.frame_bytes as usize).await?;
    let (header, payload_length) = match decode_frame_for_aead(&read) {
        Ok(FrameDecode::Frame(frame)) => (frame.header, frame.payload.len()),
        Ok(_) => return Err(corrupt("frame is incomplete")),
        Err(error) => return Err(corrupt(&error.to_string())),
    };
    if header.record_id != blob_record_id
        || header.account_id != account_id
        || header.kind != RecordKind::MessageAppended as u8
    {
        return Err(corrupt("frame is not the record the index names"));
    }
    // The caller gets the bytes where they were read, not a copy (`ReadBytes`).
    read.truncate(FRAME_HEADER_BYTES + payload_length);
    Ok(SealedMessage { info, header, frame: read, segment_id: location.segment_id, cipher })
}
