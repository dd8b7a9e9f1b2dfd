//! The selected mailbox as this session has told the client about it: the uid behind each
//! message sequence number, the flags last reported, and the keywords announced in FLAGS.
//! Comparing it with the engine's current listing gives the untagged EXPUNGE, EXISTS, FLAGS
//! and FETCH updates that keep the client's sequence numbers right.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use mailvault_engine::{Flags, MailboxInfo, MessageInfo};

use super::flags::{system_flags, to_imap};
use crate::proto::imap::{self, FetchData, Flag, SequenceSet};

/// One message the client knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ViewMessage {
    pub(super) uid: u32,
    pub(super) flags: Flags,
    /// Never changes for a uid: kept so that FETCH FAST needs no engine call.
    pub(super) size: u64,
    pub(super) internal_date_unix_ms: i64,
}

impl From<MessageInfo> for ViewMessage {
    fn from(info: MessageInfo) -> Self {
        Self { uid: info.uid, flags: info.flags, size: info.size, internal_date_unix_ms: info.internal_date_unix_ms }
    }
}

/// A message named by a command: its sequence number and uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) sequence: u32,
    pub(super) uid: u32,
}

/// A sequence set naming a message that does not exist (RFC 3501 §9: seq-number must exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NoSuchSequenceNumber;

/// The mailbox was deleted, renamed or recreated behind this session: its uids mean nothing
/// now, and the session must end (RFC 3501 §7.1.5 BYE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MailboxVanished;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MailboxView {
    pub(super) name: String,
    pub(super) read_only: bool,
    pub(super) uid_validity: u32,
    messages: Vec<ViewMessage>,
    keywords: BTreeSet<String>,
    /// The highest uid ever in this view: anything the engine lists above it is new.
    uid_high_water: u32,
}

impl MailboxView {
    pub(super) fn new(name: String, read_only: bool, info: &MailboxInfo, listing: Vec<MessageInfo>) -> Self {
        let messages: Vec<ViewMessage> = listing.into_iter().map(ViewMessage::from).collect();
        let keywords = messages.iter().flat_map(|message| message.flags.keywords.iter().cloned()).collect();
        let uid_high_water = messages.last().map_or(0, |message| message.uid);
        Self { name, read_only, uid_validity: info.uid_validity, messages, keywords, uid_high_water }
    }

    pub(super) fn messages(&self) -> &[ViewMessage] {
        &self.messages
    }

    pub(super) fn count(&self) -> u32 {
        self.messages.len() as u32
    }

    /// Every flag defined in the mailbox: the system flags and the keywords in use.
    pub(super) fn defined_flags(&self) -> Vec<Flag> {
        let mut flags = system_flags();
        flags.extend(self.keywords.iter().cloned().map(Flag::Keyword));
        flags
    }

    /// The sequence number of the first unseen message.
    pub(super) fn first_unseen(&self) -> Option<u32> {
        self.messages.iter().position(|message| !message.flags.contains(Flags::SEEN)).map(|index| index as u32 + 1)
    }

    /// The index of `uid` in the view.
    pub(super) fn index_of(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |message| message.uid).ok()
    }

    /// The messages `set` names, in ascending order. UIDs that do not exist are skipped
    /// (RFC 3501 §6.4.8); sequence numbers must exist.
    pub(super) fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<Target>, NoSuchSequenceNumber> {
        if uid {
            let largest = self.messages.last().map_or(0, |message| message.uid);
            let ranges = set.resolve(largest);
            let targets = self
                .messages
                .iter()
                .enumerate()
                .filter(|(_, message)| in_ranges(&ranges, message.uid))
                .map(|(index, message)| Target { sequence: index as u32 + 1, uid: message.uid })
                .collect();
            return Ok(targets);
        }
        if set.exceeds(self.count()) || (self.messages.is_empty()) {
            return Err(NoSuchSequenceNumber);
        }
        Ok(set
            .iter(self.count())
            .filter_map(|sequence| {
                let message = self.messages.get(sequence as usize - 1)?;
                Some(Target { sequence, uid: message.uid })
            })
            .collect())
    }

    /// Records flags the session itself set; writes FLAGS first if they bring new keywords.
    pub(super) fn set_flags(&mut self, index: usize, flags: Flags, out: &mut Vec<u8>) {
        self.announce_keywords(&flags, out);
        if let Some(message) = self.messages.get_mut(index) {
            message.flags = flags;
        }
    }

    fn announce_keywords(&mut self, flags: &Flags, out: &mut Vec<u8>) {
        let before = self.keywords.len();
        self.keywords.extend(flags.keywords.iter().cloned());
        if self.keywords.len() != before {
            imap::write_flags(&self.defined_flags(), out);
        }
    }

    /// Brings the view up to date with the engine's `listing` (uid order) and writes what
    /// changed: `* n EXPUNGE` from the highest number down (so earlier numbers stay valid
    /// while the client applies them), `* FLAGS` for new keywords, `* n EXISTS` for new
    /// messages, `* n FETCH (FLAGS ... UID ...)` for flags changed by others.
    pub(super) fn update(
        &mut self,
        info: &MailboxInfo,
        listing: Vec<MessageInfo>,
        out: &mut Vec<u8>,
    ) -> Result<(), MailboxVanished> {
        if info.uid_validity != self.uid_validity {
            return Err(MailboxVanished);
        }
        let (kept, changed_flags) = self.compare(&listing);
        for index in (0..self.messages.len()).rev() {
            if !kept[index] {
                imap::write_expunge(index as u32 + 1, out);
            }
        }
        let mut index = 0;
        self.messages.retain(|_| {
            index += 1;
            kept[index - 1]
        });
        let new: Vec<ViewMessage> =
            listing.into_iter().filter(|message| message.uid > self.uid_high_water).map(ViewMessage::from).collect();
        let keywords_before = self.keywords.len();
        let new_keywords = new.iter().map(|message| &message.flags).chain(changed_flags.iter().map(|(_, flags)| flags));
        for flags in new_keywords {
            self.keywords.extend(flags.keywords.iter().cloned());
        }
        if self.keywords.len() != keywords_before {
            imap::write_flags(&self.defined_flags(), out);
        }
        if let Some(last) = new.last() {
            self.uid_high_water = last.uid;
            self.messages.extend(new);
            imap::write_exists(self.count(), out);
        }
        for (uid, flags) in changed_flags {
            if let Some(index) = self.index_of(uid) {
                imap::write_fetch(index as u32 + 1, &[FetchData::Flags(&to_imap(&flags)), FetchData::Uid(uid)], out);
                self.messages[index].flags = flags;
            }
        }
        Ok(())
    }

    /// Which view messages the listing still has, and the (uid, flags) of those whose flags
    /// differ from what the client was told. Both lists are in uid order: one merge pass.
    fn compare(&self, listing: &[MessageInfo]) -> (Vec<bool>, Vec<(u32, Flags)>) {
        let mut kept = vec![false; self.messages.len()];
        let mut changed = Vec::new();
        let mut current = listing.iter().peekable();
        for (index, message) in self.messages.iter().enumerate() {
            while current.next_if(|candidate| candidate.uid < message.uid).is_some() {}
            if let Some(candidate) = current.next_if(|candidate| candidate.uid == message.uid) {
                kept[index] = true;
                if candidate.flags != message.flags {
                    changed.push((message.uid, candidate.flags.clone()));
                }
            }
        }
        (kept, changed)
    }
}

/// Whether `number` is in `ranges` (sorted and disjoint, as `SequenceSet::resolve` gives).
pub(super) fn in_ranges(ranges: &[RangeInclusive<u32>], number: u32) -> bool {
    ranges
        .binary_search_by(|range| {
            if *range.end() < number {
                std::cmp::Ordering::Less
            } else if *range.start() > number {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(uid_validity: u32) -> MailboxInfo {
        MailboxInfo { name: "INBOX".into(), uid_validity, uid_next: 100, messages: 0, unseen: 0, size_bytes: 0 }
    }

    fn message(uid: u32, system: u8) -> MessageInfo {
        MessageInfo {
            uid,
            flags: Flags { system, keywords: Vec::new() },
            size: 10,
            internal_date_unix_ms: 0,
            digest: [0; 32],
        }
    }

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn resolves_sequence_numbers_and_uids() {
        let view = MailboxView::new("INBOX".into(), false, &info(1), vec![message(3, 0), message(7, 0), message(9, 0)]);
        let set = |text: &str| SequenceSet::parse(text.as_bytes()).unwrap();
        let uids = |targets: Vec<Target>| targets.iter().map(|target| target.uid).collect::<Vec<_>>();
        assert_eq!(uids(view.resolve(&set("2:*"), false).unwrap()), vec![7, 9]);
        assert_eq!(view.resolve(&set("4"), false), Err(NoSuchSequenceNumber));
        assert_eq!(uids(view.resolve(&set("4:8"), true).unwrap()), vec![7]);
        assert_eq!(uids(view.resolve(&set("1:4294967295"), true).unwrap()), vec![3, 7, 9]);
        assert_eq!(uids(view.resolve(&set("100:*"), true).unwrap()), vec![9]);
        let targets = view.resolve(&set("9"), true).unwrap();
        assert_eq!(targets, vec![Target { sequence: 3, uid: 9 }]);
    }

    #[test]
    fn update_reports_expunges_new_messages_and_flags() {
        let mut view = MailboxView::new(
            "INBOX".into(),
            false,
            &info(1),
            vec![message(1, 0), message(2, 0), message(3, 0), message(4, 0)],
        );
        let mut keyword = message(4, Flags::SEEN);
        keyword.flags.keywords.push("$Junk".into());
        let listing = vec![message(1, 0), keyword, message(5, 0)];
        let mut out = Vec::new();
        view.update(&info(1), listing, &mut out).unwrap();
        assert_eq!(
            text(&out),
            "* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Junk)\r\n\
             * 3 EXISTS\r\n* 2 FETCH (FLAGS (\\Seen $Junk) UID 4)\r\n"
        );
        assert_eq!(view.messages().iter().map(|message| message.uid).collect::<Vec<_>>(), vec![1, 4, 5]);
        let mut out = Vec::new();
        view.update(&info(1), vec![message(1, 0), view.messages()[1].clone().into_info(), message(5, 0)], &mut out)
            .unwrap();
        assert_eq!(text(&out), "", "nothing changed, nothing said");
        assert_eq!(view.update(&info(2), Vec::new(), &mut out), Err(MailboxVanished));
    }

    impl ViewMessage {
        fn into_info(self) -> MessageInfo {
            MessageInfo {
                uid: self.uid,
                flags: self.flags,
                size: self.size,
                internal_date_unix_ms: self.internal_date_unix_ms,
                digest: [0; 32],
            }
        }
    }
}
