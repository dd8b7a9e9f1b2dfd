//! FETCH and UID FETCH: flags, dates and sizes from the session's view; bodies, sections and
//! structures from the engine, read a few messages ahead of the one being written
//! (`read_ahead.rs`), so memory stays bounded by the largest message plus the read-ahead
//! window. A body fetch without PEEK sets `\Seen` first, so the responses carry it.

use mailvault_engine::{EngineError, FlagChange, Flags};

use super::client::Client;
use super::completion::Completion;
use super::flags::to_imap;
use super::read_ahead::{ReadAhead, Window};
use super::section;
use super::state::Selected;
use super::view::Target;
use crate::proto::imap::envelope::{MessageStructure, message_structure};
use crate::proto::imap::{self, DateTime, FetchAttribute, FetchAttributes, FetchData, SequenceSet};
use crate::session::SessionIo;
use crate::session::context::Interrupted;

/// Output buffered before it is sent mid-command.
const OUTPUT_FLUSH_BYTES: usize = 256 * 1024;
/// Most uids in one engine request (the engine's own cap is 10 000).
pub(super) const UIDS_PER_REQUEST_MAX: usize = 10_000;

/// What the attributes need.
#[derive(Debug, Clone, Copy)]
struct Plan {
    needs_body: bool,
    needs_structure: bool,
    sets_seen: bool,
}

impl Plan {
    fn of(attributes: &[FetchAttribute], read_only: bool) -> Self {
        use FetchAttribute as A;
        let needs_structure =
            attributes.iter().any(|attribute| matches!(attribute, A::Envelope | A::Body | A::BodyStructure));
        let needs_body = needs_structure
            || attributes.iter().any(|attribute| {
                matches!(attribute, A::Rfc822 | A::Rfc822Header | A::Rfc822Text | A::BodySection { .. })
            });
        let sets_seen = !read_only
            && attributes
                .iter()
                .any(|attribute| matches!(attribute, A::Rfc822 | A::Rfc822Text | A::BodySection { peek: false, .. }));
        Self { needs_body, needs_structure, sets_seen }
    }
}

pub(super) async fn run<C: SessionIo>(
    state: &mut Selected,
    uid: bool,
    set: &SequenceSet,
    attributes: &FetchAttributes,
    client: &mut Client<'_, C>,
) -> Result<Completion, Interrupted> {
    let Ok(targets) = state.view.resolve(set, uid) else {
        return Ok(Completion::bad("Invalid message sequence number"));
    };
    let mut attributes = attributes.expand();
    if uid && !attributes.contains(&FetchAttribute::Uid) {
        // RFC 3501 §6.4.8: UID FETCH always returns the UID.
        attributes.insert(0, FetchAttribute::Uid);
    }
    let plan = Plan::of(&attributes, state.view.read_only);
    let newly_seen = if plan.sets_seen {
        match mark_seen(state, &targets, client).await {
            Ok(uids) => uids,
            Err(error) => return Ok(Completion::from_engine(&error)),
        }
    } else {
        Vec::new()
    };
    let mut vanished = false;
    if plan.needs_body {
        let engine = client.engine();
        let (account, mailbox) = (&state.account, &state.view.name);
        let sized = targets.iter().map(|target| (*target, message_size(state, target.uid))).collect();
        let mut bodies =
            ReadAhead::new(sized, Window::DEFAULT, |target: Target| engine.fetch(account, mailbox, target.uid));
        while let Some((target, fetched)) = bodies.next().await {
            let body = match fetched {
                Ok(message) => message.body,
                Err(EngineError::NoSuchMessage(_)) => {
                    vanished = true;
                    continue;
                }
                Err(error) => return Ok(Completion::from_engine(&error)),
            };
            let add_flags = newly_seen.binary_search(&target.uid).is_ok();
            write_message(state, target, &attributes, plan, Some(&body), add_flags, &mut client.output);
            if client.output.len() >= OUTPUT_FLUSH_BYTES {
                client.flush().await?;
            }
        }
    } else {
        for target in &targets {
            let add_flags = newly_seen.binary_search(&target.uid).is_ok();
            write_message(state, *target, &attributes, plan, None, add_flags, &mut client.output);
            if client.output.len() >= OUTPUT_FLUSH_BYTES {
                client.flush().await?;
            }
        }
    }
    if vanished {
        // RFC 2180 §4.1.2: another session expunged some of them; the rest were sent.
        return Ok(Completion::no("Some of the requested messages no longer exist"));
    }
    Ok(Completion::ok(if uid { "UID FETCH completed" } else { "FETCH completed" }))
}

/// Sets `\Seen` on the targets that lack it; returns their uids, ascending.
async fn mark_seen<C: SessionIo>(
    state: &mut Selected,
    targets: &[Target],
    client: &mut Client<'_, C>,
) -> Result<Vec<u32>, EngineError> {
    let unseen: Vec<u32> = targets
        .iter()
        .filter(|target| {
            state
                .view
                .index_of(target.uid)
                .is_some_and(|index| !state.view.messages()[index].flags.contains(Flags::SEEN))
        })
        .map(|target| target.uid)
        .collect();
    let seen = Flags { system: Flags::SEEN, keywords: Vec::new() };
    for chunk in unseen.chunks(UIDS_PER_REQUEST_MAX) {
        client.engine().change_flags(&state.account, &state.view.name, chunk, FlagChange::Add(seen.clone())).await?;
    }
    for uid in &unseen {
        if let Some(index) = state.view.index_of(*uid) {
            let mut flags = state.view.messages()[index].flags.clone();
            flags.system |= Flags::SEEN;
            state.view.set_flags(index, flags, &mut client.output);
        }
    }
    Ok(unseen)
}

/// The message's size as the view knows it (0 once it is gone from the view: its read then
/// finds it gone too).
fn message_size(state: &Selected, uid: u32) -> u64 {
    state.view.index_of(uid).map_or(0, |index| state.view.messages()[index].size)
}

/// Writes one `* n FETCH (...)` response.
fn write_message(
    state: &Selected,
    target: Target,
    attributes: &[FetchAttribute],
    plan: Plan,
    body: Option<&[u8]>,
    add_flags: bool,
    out: &mut Vec<u8>,
) {
    let Some(message) = state.view.index_of(target.uid).map(|index| &state.view.messages()[index]) else { return };
    let flags = to_imap(&message.flags);
    let body = body.unwrap_or_default();
    let structure: Option<MessageStructure> = plan.needs_structure.then(|| message_structure(body));
    let header_end = section::header_length(body);
    let sections: Vec<Option<std::borrow::Cow<'_, [u8]>>> = attributes
        .iter()
        .filter_map(|attribute| match attribute {
            FetchAttribute::BodySection { section, partial, .. } => Some(section::extract(body, section, *partial)),
            _ => None,
        })
        .collect();
    let internal_date = DateTime::from_unix_seconds(message.internal_date_unix_ms.div_euclid(1000), 0);
    let mut sections = sections.iter();
    let mut items = Vec::with_capacity(attributes.len() + 1);
    for attribute in attributes {
        let item = match attribute {
            FetchAttribute::Flags => FetchData::Flags(&flags),
            FetchAttribute::Uid => FetchData::Uid(target.uid),
            FetchAttribute::InternalDate => match internal_date {
                Some(date) => FetchData::InternalDate(date),
                None => continue,
            },
            FetchAttribute::Rfc822Size => FetchData::Rfc822Size(message.size),
            FetchAttribute::Envelope => {
                FetchData::Envelope(structure.as_ref().map_or(&[], |rendered| &rendered.envelope))
            }
            FetchAttribute::Body => FetchData::Body(structure.as_ref().map_or(&[], |rendered| &rendered.body)),
            FetchAttribute::BodyStructure => {
                FetchData::BodyStructure(structure.as_ref().map_or(&[], |rendered| &rendered.body_structure))
            }
            FetchAttribute::Rfc822 => FetchData::Rfc822(Some(body)),
            FetchAttribute::Rfc822Header => FetchData::Rfc822Header(Some(&body[..header_end])),
            FetchAttribute::Rfc822Text => FetchData::Rfc822Text(Some(&body[header_end..])),
            FetchAttribute::BodySection { section, partial, .. } => FetchData::BodySection {
                section,
                origin: partial.map(|partial| partial.origin),
                data: sections.next().and_then(|data| data.as_deref()),
            },
        };
        items.push(item);
    }
    if add_flags && !attributes.contains(&FetchAttribute::Flags) {
        // RFC 3501 §6.4.5: a fetch that sets \Seen reports the new flags.
        items.push(FetchData::Flags(&flags));
    }
    imap::write_fetch(target.sequence, &items, out);
}
