//! The values the engine API hands to frontends: accounts, mailboxes and messages, never
//! segments or records.

pub use crate::format::{AccessEvent, Flags};
pub use crate::index::AppPassword;

/// Names the special mailbox every account has; IMAP treats it case-insensitively.
pub const INBOX: &str = "INBOX";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: u32,
    pub unseen: u32,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub uid: u32,
    pub flags: Flags,
    pub size: u64,
    pub internal_date_unix_ms: i64,
    /// BLAKE3 of the message bytes.
    pub digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub info: MessageInfo,
    pub body: Vec<u8>,
}

/// Identifies an expunged message for restore: the mailbox it was in and its uid there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeletedMessageId {
    pub mailbox_id: u32,
    pub uid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedMessageInfo {
    pub id: DeletedMessageId,
    pub mailbox_name: String,
    pub size: u64,
    pub expunged_unix_ms: i64,
    pub restorable_until_unix_ms: i64,
}

/// How STORE changes flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagChange {
    Replace(Flags),
    Add(Flags),
    Remove(Flags),
}

impl FlagChange {
    /// The flags after the change. Keywords compare case-insensitively (RFC 3501 §2.3.2), so
    /// `$Junk` and `$junk` are one keyword; the spelling first stored is kept.
    pub fn apply(&self, current: &Flags) -> Flags {
        let same = |left: &String, right: &String| left.eq_ignore_ascii_case(right);
        let add = |keywords: &mut Vec<String>, keyword: &String| {
            if !keywords.iter().any(|existing| same(existing, keyword)) {
                keywords.push(keyword.clone());
            }
        };
        match self {
            Self::Replace(flags) => {
                let mut keywords = Vec::new();
                flags.keywords.iter().for_each(|keyword| add(&mut keywords, keyword));
                Flags { system: flags.system, keywords }
            }
            Self::Add(flags) => {
                let mut keywords = current.keywords.clone();
                flags.keywords.iter().for_each(|keyword| add(&mut keywords, keyword));
                Flags { system: current.system | flags.system, keywords }
            }
            Self::Remove(flags) => Flags {
                system: current.system & !flags.system,
                keywords: current
                    .keywords
                    .iter()
                    .filter(|keyword| !flags.keywords.iter().any(|removed| same(removed, keyword)))
                    .cloned()
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(words: &[&str]) -> Flags {
        Flags { system: 0, keywords: words.iter().map(|word| (*word).to_owned()).collect() }
    }

    #[test]
    fn keywords_compare_case_insensitively() {
        let current = keywords(&["$Junk"]);
        assert_eq!(FlagChange::Add(keywords(&["$junk", "Work"])).apply(&current), keywords(&["$Junk", "Work"]));
        assert_eq!(FlagChange::Remove(keywords(&["$JUNK"])).apply(&current), keywords(&[]));
        assert_eq!(FlagChange::Replace(keywords(&["a", "A", "b"])).apply(&current), keywords(&["a", "b"]));
    }
}

/// What login needs to check a password: hashes only, never passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub password_hash: Option<String>,
    pub app_passwords: Vec<AppPassword>,
}

/// What a compaction run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub segments_compacted: u64,
    pub bytes_reclaimed: u64,
    /// A backup in progress holds compaction back (see `Engine::seal_active`): a shard answered
    /// at once, having rewritten nothing now; its compaction runs once the hold is released
    /// or lapses.
    pub held_for_backup: bool,
    /// A shard stopped compacting for want of disk space to copy live mail into (compaction
    /// writes before it frees). It tries again at its next look, or at the next `compact`.
    pub out_of_space: bool,
    /// A prune or purge left segments still to rewrite (on a full disk: see `out_of_space`),
    /// and a shard could not write them down in its `compaction-forced` file (a new file needs
    /// room): a restart before that file is written would leave their deleted mail to
    /// compaction by live share, which may keep it. The shard tries again at each commit.
    pub rewrite_unrecorded: bool,
}

/// One segment's accounting: its size, the bytes of bodies still in a mailbox (`live`), and
/// those held only by deleted messages inside their retention window (`retained`, until the
/// last of those windows ends). The rest is the header, metadata records (current until a
/// snapshot of their account supersedes them) and dead bodies, which compaction reclaims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentStats {
    pub segment_id: u64,
    pub bytes: u64,
    pub live_bytes: u64,
    pub retained_bytes: u64,
    pub retained_until_unix_ms: Option<i64>,
    pub active: bool,
}

/// The segment compaction is rewriting at the moment: how far its copy got (`done_bytes` of
/// `bytes`, in the victim's offsets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompactionProgress {
    pub segment_id: u64,
    pub bytes: u64,
    pub done_bytes: u64,
}

/// A shard's compaction at a glance, cheap to ask for often (unlike [`ShardStats`], whose
/// per-segment figures walk every message): what `mailvault compact` shows while it waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompactionStatus {
    pub shard_id: u32,
    /// The segment being rewritten right now, if any (as [`ShardStats::compacting`]).
    pub compacting: Option<CompactionProgress>,
    /// The bytes of every segment of the shard, sealed and active: what compaction shrinks.
    pub segment_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub shard_id: u32,
    pub accounts: u64,
    pub messages: u64,
    pub deleted_messages: u64,
    pub segments: u64,
    pub active_segment_id: u64,
    pub active_segment_bytes: u64,
    pub commits: u64,
    pub records_committed: u64,
    /// Checkpoints written since the shard opened (see `EngineConfig::checkpoint_interval_records`).
    pub checkpoints_written: u64,
    /// Times compaction walked every message of the shard to learn which bodies are still
    /// needed, since the shard opened. A search after nothing was released reuses the last walk.
    pub usage_passes: u64,
    pub segment_details: Vec<SegmentStats>,
    /// A segment being rewritten right now (read and verified, its copy under way), if any.
    pub compacting: Option<CompactionProgress>,
    /// The background scrub's progress and findings (`EngineConfig::scrub_interval`); with the
    /// scrub off, what earlier passes recorded; `None` if none ever ran on this shard.
    pub scrub: Option<ScrubStatus>,
    /// Compacted segment files kept to be written over by new segments
    /// (`EngineConfig::recycled_segments_max`), and the disk space they hold.
    pub spare_segment_files: u64,
    pub spare_segment_bytes: u64,
    /// Since when (Unix ms, engine clock) the shard has found its filesystem full, refusing the
    /// writes that need room (`EngineError::StorageFull`); `None` while it has room.
    pub out_of_space_since_unix_ms: Option<i64>,
}

/// What the background scrub has done: each pass reads every sealed segment of the shard and
/// checks it as recovery would (every frame's CRC, the footer and its digest) and every
/// encrypted record's AEAD tag under its account's key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStatus {
    /// When the pass under way started (engine clock), if one is.
    pub pass_started_unix_ms: Option<i64>,
    /// The last complete pass: when it started and when it finished.
    pub last_pass: Option<ScrubPass>,
    /// Since the shard opened.
    pub segments_checked: u64,
    pub bytes_checked: u64,
    pub frames_checked: u64,
    /// Encrypted frames whose tag could not be checked: their account's key is gone (a purged
    /// account's frames wait for compaction; its key was destroyed on purpose).
    pub frames_without_key: u64,
    /// Sealed segments whose last check found damage (a segment checked intact since, or
    /// removed by compaction, is no longer listed). Kept across restarts.
    pub damaged: Vec<ScrubFinding>,
}

/// A complete scrub pass: when it started and finished (engine clock, unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubPass {
    pub started_unix_ms: i64,
    pub finished_unix_ms: i64,
}

/// A damaged sealed segment and what is wrong with it (with the offset, where there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubFinding {
    pub segment_id: u64,
    pub reason: String,
}

/// An account as `account list` shows it: open, or closed with its purge time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub name: String,
    pub closed_unix_ms: Option<i64>,
    pub purge_after_unix_ms: Option<i64>,
}

/// What a purge did: the accounts it removed and the KEK versions it destroyed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub purged_accounts: Vec<String>,
    /// The KEK version every surviving data key is now wrapped under.
    pub kek_version: u32,
    pub destroyed_kek_versions: Vec<u32>,
    /// Data keys re-wrapped (all shards).
    pub rewrapped_keys: u64,
}
