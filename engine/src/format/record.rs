//! Record payloads: what a frame's AEAD plaintext holds for each record kind.
//!
//! Where a record is placed (account, mailbox, uid) lives in the clear frame header and is
//! authenticated as associated data; the payload carries the rest. Records that add a message
//! by reference (copy, move, restore) carry the whole message reference, so replaying one never
//! depends on the state of another message: compaction may drop the source's records freely.

use super::bytes::{ByteReader, ByteWriter, ReadError};

/// Longest account or mailbox name, in bytes (RFC 5321 caps an address at 256 octets).
pub const NAME_BYTES_MAX: usize = 1024;
/// Most keywords on one message, and longest keyword, in bytes.
pub const KEYWORDS_MAX: usize = 64;
pub const KEYWORD_BYTES_MAX: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    AccountCreated = 1,
    MailboxCreated = 2,
    MailboxRenamed = 3,
    MailboxDeleted = 4,
    MessageAppended = 5,
    FlagsChanged = 6,
    MessageCopied = 7,
    MessageMoved = 8,
    MessageExpunged = 9,
    MessageRestored = 10,
    /// An account's data key wrapped by the HSM KEK; its payload is not encrypted again (the
    /// wrapped key is already ciphertext only the HSM can open).
    KeyWrapped = 11,
    /// Written alone as the first commit after every open: its record id is the new floor of
    /// the record-id counter, made durable before any id above it encrypts anything (see
    /// `shard::recovery`). Empty payload.
    RecordIdFloor = 12,
    PasswordSet = 13,
    AppPasswordAdded = 14,
    AppPasswordsRevoked = 15,
    AccessRecorded = 16,
    /// An account's whole state (written by compaction or prune): replaying it replaces the
    /// account, so every earlier record of that account is superseded.
    AccountSnapshot = 17,
    /// The account was closed: unreachable at once, purged once `purge_after_unix_ms` passes
    /// unless reopened first.
    AccountClosed = 18,
    /// A closed account was reopened before its purge: everything is reachable again.
    AccountReopened = 19,
    /// The account was purged: its records are dead and its data key is being shredded. Clear
    /// (the key it would be encrypted with is gone), and carried forward by compaction, so replay
    /// always knows the account id is gone and never waits for a key of it.
    AccountPurged = 20,
    /// A leading piece of an account snapshot over one record's payload (format version 5):
    /// the pieces and the `AccountSnapshot` holding the last one have consecutive record ids in
    /// one commit, and replay joins them (docs/format.md §5.1).
    AccountSnapshotPart = 21,
    /// The footer of a sealed segment; its payload is not encrypted (it holds no mail data).
    SegmentSealed = 100,
}

impl RecordKind {
    /// Whether the payload is stored in the clear (it holds no mail data, or is already
    /// ciphertext). Every other kind is AES-256-GCM under the account's data key.
    pub fn is_clear(self) -> bool {
        matches!(self, Self::KeyWrapped | Self::RecordIdFloor | Self::AccountPurged | Self::SegmentSealed)
    }

    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::AccountCreated,
            2 => Self::MailboxCreated,
            3 => Self::MailboxRenamed,
            4 => Self::MailboxDeleted,
            5 => Self::MessageAppended,
            6 => Self::FlagsChanged,
            7 => Self::MessageCopied,
            8 => Self::MessageMoved,
            9 => Self::MessageExpunged,
            10 => Self::MessageRestored,
            11 => Self::KeyWrapped,
            12 => Self::RecordIdFloor,
            13 => Self::PasswordSet,
            14 => Self::AppPasswordAdded,
            15 => Self::AppPasswordsRevoked,
            16 => Self::AccessRecorded,
            17 => Self::AccountSnapshot,
            18 => Self::AccountClosed,
            19 => Self::AccountReopened,
            20 => Self::AccountPurged,
            21 => Self::AccountSnapshotPart,
            100 => Self::SegmentSealed,
            _ => return None,
        })
    }
}

/// Plaintext bytes of one snapshot record at most, by default: half a frame's payload limit.
pub const ACCOUNT_SNAPSHOT_PART_BYTES: usize = 32 * 1024 * 1024;
/// The most a snapshot record may hold: the payload limit less the AEAD tag.
pub const ACCOUNT_SNAPSHOT_PART_BYTES_MAX: usize = super::RECORD_PAYLOAD_BYTES_MAX - 16;

/// The records that store an encoded account: one `AccountSnapshot`, or, when it is over
/// `part_bytes` (clamped to 1 to [`ACCOUNT_SNAPSHOT_PART_BYTES_MAX`]), `AccountSnapshotPart`s of
/// `part_bytes` each and an `AccountSnapshot` holding the rest. They must be emitted in this
/// order, with consecutive record ids, in one commit.
pub fn snapshot_records(encoded: Vec<u8>, part_bytes: usize) -> Vec<Record> {
    let part_bytes = part_bytes.clamp(1, ACCOUNT_SNAPSHOT_PART_BYTES_MAX);
    if encoded.len() <= part_bytes {
        return vec![Record::AccountSnapshot { encoded }];
    }
    let mut pieces: Vec<Vec<u8>> = encoded.chunks(part_bytes).map(<[u8]>::to_vec).collect();
    let last = pieces.pop().unwrap_or_default();
    pieces
        .into_iter()
        .map(|piece| Record::AccountSnapshotPart { piece })
        .chain(std::iter::once(Record::AccountSnapshot { encoded: last }))
        .collect()
}

/// IMAP system flags as a bit set plus keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    pub system: u8,
    pub keywords: Vec<String>,
}

impl Flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    const SYSTEM_ALL: u8 = 31;

    pub fn contains(&self, flag: u8) -> bool {
        self.system & flag == flag
    }

    pub(crate) fn encode(&self, writer: &mut ByteWriter) {
        writer.u8(self.system);
        writer.u8(u8::try_from(self.keywords.len()).unwrap_or(u8::MAX));
        for keyword in &self.keywords {
            writer.string(keyword);
        }
    }

    pub(crate) fn decode(reader: &mut ByteReader<'_>) -> Result<Self, ReadError> {
        let system = reader.u8()?;
        if system & !Self::SYSTEM_ALL != 0 {
            return Err(ReadError::Invalid { field: "flags" });
        }
        let count = usize::from(reader.u8()?);
        if count > KEYWORDS_MAX {
            return Err(ReadError::Invalid { field: "keywords" });
        }
        let keywords = (0..count)
            .map(|_| reader.string(KEYWORD_BYTES_MAX, "keyword").and_then(non_empty_keyword))
            .collect::<Result<_, _>>()?;
        Ok(Self { system, keywords })
    }

    /// Whether these flags fit the on-disk limits.
    pub fn is_valid(&self) -> bool {
        self.system & !Self::SYSTEM_ALL == 0
            && self.keywords.len() <= KEYWORDS_MAX
            && self.keywords.iter().all(|keyword| !keyword.is_empty() && keyword.len() <= KEYWORD_BYTES_MAX)
    }
}

fn non_empty_keyword(keyword: String) -> Result<String, ReadError> {
    if keyword.is_empty() { Err(ReadError::Invalid { field: "keyword" }) } else { Ok(keyword) }
}

/// Longest password hash (a PHC string is ~100 bytes), app password label, and access-log field.
pub const HASH_BYTES_MAX: usize = 512;
pub const LABEL_BYTES_MAX: usize = 128;
pub const ACCESS_FIELD_BYTES_MAX: usize = 128;

/// One login attempt: when, from where, over what, how, and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    pub at_unix_ms: i64,
    pub remote_ip: String,
    pub protocol: String,
    pub method: String,
    pub success: bool,
}

impl AccessEvent {
    pub(crate) fn encode(&self, writer: &mut ByteWriter) {
        writer.i64(self.at_unix_ms).string(&self.remote_ip).string(&self.protocol).string(&self.method);
        writer.u8(u8::from(self.success));
    }

    pub(crate) fn decode(reader: &mut ByteReader<'_>) -> Result<Self, ReadError> {
        Ok(Self {
            at_unix_ms: reader.i64()?,
            remote_ip: reader.string(ACCESS_FIELD_BYTES_MAX, "remote ip")?,
            protocol: reader.string(ACCESS_FIELD_BYTES_MAX, "protocol")?,
            method: reader.string(ACCESS_FIELD_BYTES_MAX, "method")?,
            success: match reader.u8()? {
                0 => false,
                1 => true,
                _ => return Err(ReadError::Invalid { field: "success" }),
            },
        })
    }

    /// Whether every field fits the on-disk limits.
    pub fn is_valid(&self) -> bool {
        [&self.remote_ip, &self.protocol, &self.method].iter().all(|field| field.len() <= ACCESS_FIELD_BYTES_MAX)
    }
}

/// A message as mailboxes reference it: the blob record holding its body and what the index
/// keeps about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageReference {
    pub blob_record_id: u64,
    pub size: u64,
    pub internal_date_unix_ms: i64,
    pub digest: [u8; 32],
}

impl MessageReference {
    pub(crate) fn encode(&self, writer: &mut ByteWriter) {
        writer.u64(self.blob_record_id).u64(self.size).i64(self.internal_date_unix_ms).raw(&self.digest);
    }

    pub(crate) fn decode(reader: &mut ByteReader<'_>) -> Result<Self, ReadError> {
        Ok(Self {
            blob_record_id: reader.u64()?,
            size: reader.u64()?,
            internal_date_unix_ms: reader.i64()?,
            digest: reader.array()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    AccountCreated {
        name: String,
        created_unix_ms: i64,
    },
    MailboxCreated {
        name: String,
        uid_validity: u32,
    },
    MailboxRenamed {
        name: String,
    },
    MailboxDeleted {
        at_unix_ms: i64,
    },
    /// A new message; its body is the rest of the payload. The digest is BLAKE3 of the body.
    MessageAppended {
        internal_date_unix_ms: i64,
        flags: Flags,
        digest: [u8; 32],
        body: Vec<u8>,
    },
    FlagsChanged {
        flags: Flags,
    },
    MessageCopied {
        message: MessageReference,
        flags: Flags,
    },
    MessageMoved {
        source_mailbox_id: u32,
        source_uid: u32,
        message: MessageReference,
        flags: Flags,
    },
    MessageExpunged {
        at_unix_ms: i64,
    },
    MessageRestored {
        deleted_mailbox_id: u32,
        deleted_uid: u32,
        message: MessageReference,
        flags: Flags,
    },
    KeyWrapped {
        wrapped_key: Vec<u8>,
    },
    RecordIdFloor,
    /// The account's login password, as an argon2id PHC string (never the password).
    PasswordSet {
        password_hash: String,
    },
    AppPasswordAdded {
        label: String,
        password_hash: String,
    },
    AppPasswordsRevoked {
        at_unix_ms: i64,
    },
    /// One login attempt, for the account's access log.
    AccessRecorded {
        event: AccessEvent,
    },
    /// The account encoded by `index::snapshot` (opaque here), or the last piece of it.
    AccountSnapshot {
        encoded: Vec<u8>,
    },
    /// A leading piece of an encoded account (see [`snapshot_records`]).
    AccountSnapshotPart {
        piece: Vec<u8>,
    },
    /// Closing: when, and from when on the account may be purged.
    AccountClosed {
        closed_unix_ms: i64,
        purge_after_unix_ms: i64,
    },
    AccountReopened {
        at_unix_ms: i64,
    },
    /// In the clear: no key is left to encrypt it with.
    AccountPurged {
        at_unix_ms: i64,
    },
    SegmentSealed {
        record_count: u64,
        records_end: u64,
        digest: [u8; 32],
    },
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Self::AccountCreated { .. } => RecordKind::AccountCreated,
            Self::MailboxCreated { .. } => RecordKind::MailboxCreated,
            Self::MailboxRenamed { .. } => RecordKind::MailboxRenamed,
            Self::MailboxDeleted { .. } => RecordKind::MailboxDeleted,
            Self::MessageAppended { .. } => RecordKind::MessageAppended,
            Self::FlagsChanged { .. } => RecordKind::FlagsChanged,
            Self::MessageCopied { .. } => RecordKind::MessageCopied,
            Self::MessageMoved { .. } => RecordKind::MessageMoved,
            Self::MessageExpunged { .. } => RecordKind::MessageExpunged,
            Self::MessageRestored { .. } => RecordKind::MessageRestored,
            Self::KeyWrapped { .. } => RecordKind::KeyWrapped,
            Self::RecordIdFloor => RecordKind::RecordIdFloor,
            Self::PasswordSet { .. } => RecordKind::PasswordSet,
            Self::AppPasswordAdded { .. } => RecordKind::AppPasswordAdded,
            Self::AppPasswordsRevoked { .. } => RecordKind::AppPasswordsRevoked,
            Self::AccessRecorded { .. } => RecordKind::AccessRecorded,
            Self::AccountSnapshot { .. } => RecordKind::AccountSnapshot,
            Self::AccountSnapshotPart { .. } => RecordKind::AccountSnapshotPart,
            Self::AccountClosed { .. } => RecordKind::AccountClosed,
            Self::AccountReopened { .. } => RecordKind::AccountReopened,
            Self::AccountPurged { .. } => RecordKind::AccountPurged,
            Self::SegmentSealed { .. } => RecordKind::SegmentSealed,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.encode_into(&mut bytes);
        bytes
    }

    /// Appends the payload encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let tail = self.encode_head_into(out);
        out.extend_from_slice(tail);
    }

    /// Appends the payload encoding to `out` except a message body, which ends the payload and
    /// is returned instead (empty for other kinds): the shard seals a body from the request
    /// straight into its batch, so the body is read once on its way to the disk and never copied.
    pub fn encode_head_into(&self, out: &mut Vec<u8>) -> &[u8] {
        let mut writer = ByteWriter::appending_to(std::mem::take(out));
        let mut tail: &[u8] = &[];
        match self {
            Self::AccountCreated { name, created_unix_ms } => {
                writer.string(name).i64(*created_unix_ms);
            }
            Self::MailboxCreated { name, uid_validity } => {
                writer.string(name).u32(*uid_validity);
            }
            Self::MailboxRenamed { name } => {
                writer.string(name);
            }
            Self::MailboxDeleted { at_unix_ms }
            | Self::MessageExpunged { at_unix_ms }
            | Self::AppPasswordsRevoked { at_unix_ms }
            | Self::AccountReopened { at_unix_ms }
            | Self::AccountPurged { at_unix_ms } => {
                writer.i64(*at_unix_ms);
            }
            Self::AccountClosed { closed_unix_ms, purge_after_unix_ms } => {
                writer.i64(*closed_unix_ms).i64(*purge_after_unix_ms);
            }
            Self::MessageAppended { internal_date_unix_ms, flags, digest, body } => {
                writer.i64(*internal_date_unix_ms);
                flags.encode(&mut writer);
                writer.raw(digest);
                tail = body;
            }
            Self::FlagsChanged { flags } => flags.encode(&mut writer),
            Self::MessageCopied { message, flags } => {
                message.encode(&mut writer);
                flags.encode(&mut writer);
            }
            Self::MessageMoved { source_mailbox_id, source_uid, message, flags } => {
                writer.u32(*source_mailbox_id).u32(*source_uid);
                message.encode(&mut writer);
                flags.encode(&mut writer);
            }
            Self::MessageRestored { deleted_mailbox_id, deleted_uid, message, flags } => {
                writer.u32(*deleted_mailbox_id).u32(*deleted_uid);
                message.encode(&mut writer);
                flags.encode(&mut writer);
            }
            Self::KeyWrapped { wrapped_key } => {
                writer.raw(wrapped_key);
            }
            Self::RecordIdFloor => {}
            Self::PasswordSet { password_hash } => {
                writer.string(password_hash);
            }
            Self::AppPasswordAdded { label, password_hash } => {
                writer.string(label).string(password_hash);
            }
            Self::AccessRecorded { event } => event.encode(&mut writer),
            Self::AccountSnapshot { encoded: bytes } | Self::AccountSnapshotPart { piece: bytes } => {
                writer.raw(bytes);
            }
            Self::SegmentSealed { record_count, records_end, digest } => {
                writer.u64(*record_count).u64(*records_end).raw(digest);
            }
        }
        *out = writer.into_inner();
        tail
    }

    /// Decodes a payload of `kind`. Takes the plaintext by value so that a message body is
    /// returned without copying it.
    pub fn decode(kind: RecordKind, mut payload: Vec<u8>) -> Result<Self, ReadError> {
        let mut reader = ByteReader::new(&payload);
        let record = match kind {
            RecordKind::AccountCreated => Self::AccountCreated {
                name: reader.string(NAME_BYTES_MAX, "account name")?,
                created_unix_ms: reader.i64()?,
            },
            RecordKind::MailboxCreated => Self::MailboxCreated {
                name: reader.string(NAME_BYTES_MAX, "mailbox name")?,
                uid_validity: reader.u32()?,
            },
            RecordKind::MailboxRenamed => Self::MailboxRenamed { name: reader.string(NAME_BYTES_MAX, "mailbox name")? },
            RecordKind::MailboxDeleted => Self::MailboxDeleted { at_unix_ms: reader.i64()? },
            RecordKind::MessageExpunged => Self::MessageExpunged { at_unix_ms: reader.i64()? },
            RecordKind::MessageAppended => {
                let (internal_date_unix_ms, flags, digest) = appended_prefix(&mut reader)?;
                let body_start = reader.position();
                payload.drain(..body_start);
                return Ok(Self::MessageAppended { internal_date_unix_ms, flags, digest, body: payload });
            }
            RecordKind::FlagsChanged => Self::FlagsChanged { flags: Flags::decode(&mut reader)? },
            RecordKind::MessageCopied => Self::MessageCopied {
                message: MessageReference::decode(&mut reader)?,
                flags: Flags::decode(&mut reader)?,
            },
            RecordKind::MessageMoved => Self::MessageMoved {
                source_mailbox_id: reader.u32()?,
                source_uid: reader.u32()?,
                message: MessageReference::decode(&mut reader)?,
                flags: Flags::decode(&mut reader)?,
            },
            RecordKind::MessageRestored => Self::MessageRestored {
                deleted_mailbox_id: reader.u32()?,
                deleted_uid: reader.u32()?,
                message: MessageReference::decode(&mut reader)?,
                flags: Flags::decode(&mut reader)?,
            },
            RecordKind::KeyWrapped => {
                return Ok(Self::KeyWrapped { wrapped_key: payload });
            }
            RecordKind::RecordIdFloor => Self::RecordIdFloor,
            RecordKind::PasswordSet => {
                Self::PasswordSet { password_hash: reader.string(HASH_BYTES_MAX, "password hash")? }
            }
            RecordKind::AppPasswordAdded => Self::AppPasswordAdded {
                label: reader.string(LABEL_BYTES_MAX, "app password label")?,
                password_hash: reader.string(HASH_BYTES_MAX, "password hash")?,
            },
            RecordKind::AppPasswordsRevoked => Self::AppPasswordsRevoked { at_unix_ms: reader.i64()? },
            RecordKind::AccessRecorded => Self::AccessRecorded { event: AccessEvent::decode(&mut reader)? },
            RecordKind::AccountSnapshot => return Ok(Self::AccountSnapshot { encoded: payload }),
            RecordKind::AccountSnapshotPart => return Ok(Self::AccountSnapshotPart { piece: payload }),
            RecordKind::AccountClosed => {
                Self::AccountClosed { closed_unix_ms: reader.i64()?, purge_after_unix_ms: reader.i64()? }
            }
            RecordKind::AccountReopened => Self::AccountReopened { at_unix_ms: reader.i64()? },
            RecordKind::AccountPurged => Self::AccountPurged { at_unix_ms: reader.i64()? },
            RecordKind::SegmentSealed => {
                Self::SegmentSealed { record_count: reader.u64()?, records_end: reader.u64()?, digest: reader.array()? }
            }
        };
        reader.finish("record payload")?;
        Ok(record)
    }
}

/// The digest and body of a `MessageAppended` payload, borrowed from it (a fetch copies only
/// the body out of its read buffer).
pub fn appended_digest_and_body(payload: &[u8]) -> Result<([u8; 32], &[u8]), ReadError> {
    let mut reader = ByteReader::new(payload);
    let (_, _, digest) = appended_prefix(&mut reader)?;
    Ok((digest, &payload[reader.position()..]))
}

/// What a `MessageAppended` payload holds before its body.
fn appended_prefix(reader: &mut ByteReader<'_>) -> Result<(i64, Flags, [u8; 32]), ReadError> {
    let internal_date_unix_ms = reader.i64()?;
    let flags = Flags::decode(reader)?;
    let digest = reader.array()?;
    Ok((internal_date_unix_ms, flags, digest))
}
