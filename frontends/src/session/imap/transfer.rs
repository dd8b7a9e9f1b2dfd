//! COPY and MOVE (RFC 3501 §6.4.7, RFC 6851) with their UIDPLUS COPYUID code. The engine
//! copies or moves all of the messages or none. MOVE's EXPUNGE responses come from the
//! view refresh that follows it.

use std::num::NonZeroU32;

use mailvault_engine::EngineError;

use super::client::Client;
use super::completion::Completion;
use super::fetch::UIDS_PER_REQUEST_MAX;
use super::state::Selected;
use crate::proto::imap::{ResponseCode, SequenceNumber, SequenceRange, SequenceSet, Status};
use crate::session::SessionIo;

pub(super) async fn run<C: SessionIo>(
    state: &mut Selected,
    uid: bool,
    set: &SequenceSet,
    destination: &str,
    remove_source: bool,
    client: &mut Client<'_, C>,
) -> Completion {
    let name = if remove_source { "MOVE" } else { "COPY" };
    if remove_source && state.view.read_only {
        return Completion::no("The mailbox is read-only (EXAMINE)");
    }
    let Ok(targets) = state.view.resolve(set, uid) else {
        return Completion::bad("Invalid message sequence number");
    };
    if targets.is_empty() {
        return Completion::ok(format!("{name} completed (no messages)"));
    }
    if targets.len() > UIDS_PER_REQUEST_MAX {
        return Completion::no(format!("At most {UIDS_PER_REQUEST_MAX} messages per {name}"))
            .with_code(ResponseCode::Limit);
    }
    let uids: Vec<u32> = targets.iter().map(|target| target.uid).collect();
    let engine = client.engine().clone();
    let (account, source) = (&state.account, &state.view.name);
    let moved = if remove_source {
        engine.move_messages(account, source, &uids, destination).await
    } else {
        engine.copy(account, source, &uids, destination).await
    };
    let mut pairs = match moved {
        Ok(pairs) => pairs,
        Err(EngineError::NoSuchMailbox(missing)) if missing != *source => {
            return Completion::no("No such mailbox").with_code(ResponseCode::TryCreate);
        }
        Err(EngineError::NoSuchMessage(_)) => {
            return Completion::no("Some of the messages no longer exist; nothing was copied");
        }
        Err(error) => return Completion::from_engine(&error),
    };
    pairs.sort_unstable();
    let uid_validity = match engine.list_mailboxes(account).await {
        Ok(mailboxes) => mailboxes.into_iter().find(|info| info.name == destination).map(|info| info.uid_validity),
        Err(_) => None,
    };
    let code = uid_validity.and_then(|uid_validity| {
        Some(ResponseCode::CopyUid {
            uid_validity,
            source: uid_set(pairs.iter().map(|pair| pair.0))?,
            destination: uid_set(pairs.iter().map(|pair| pair.1))?,
        })
    });
    let done = Completion::ok(format!("{name} completed"));
    match code {
        // RFC 6851 §4.3: MOVE sends COPYUID untagged, before the EXPUNGE responses.
        Some(code) if remove_source => {
            client.untagged(Status::Ok, Some(&code), "Moved");
            done
        }
        Some(code) => done.with_code(code),
        None => done,
    }
}

/// A sequence set of `uids` in their order, with runs of consecutive uids as ranges.
pub(super) fn uid_set(uids: impl IntoIterator<Item = u32>) -> Option<SequenceSet> {
    let mut ranges: Vec<SequenceRange> = Vec::new();
    let mut run: Option<(u32, u32)> = None;
    let number = |value: u32| NonZeroU32::new(value).map(SequenceNumber::Number);
    let push = |ranges: &mut Vec<SequenceRange>, (start, end): (u32, u32)| -> Option<()> {
        ranges.push(SequenceRange { start: number(start)?, end: number(end)? });
        Some(())
    };
    for uid in uids {
        run = match run {
            Some((start, end)) if end.checked_add(1) == Some(uid) => Some((start, uid)),
            Some(finished) => {
                push(&mut ranges, finished)?;
                Some((uid, uid))
            }
            None => Some((uid, uid)),
        };
    }
    if let Some(finished) = run {
        push(&mut ranges, finished)?;
    }
    SequenceSet::new(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_become_ranges() {
        assert_eq!(uid_set([1, 2, 3, 7, 9, 10]).unwrap().to_string(), "1:3,7,9:10");
        assert_eq!(uid_set([5]).unwrap().to_string(), "5");
        assert_eq!(uid_set([]), None);
        assert_eq!(uid_set([0]), None);
    }
}
