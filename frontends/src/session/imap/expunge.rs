//! EXPUNGE, UID EXPUNGE (RFC 4315) and the silent expunge of CLOSE. What to remove is
//! decided on the engine's current flags, not the view's (another session may have set
//! `\Deleted`). Expunged messages stay restorable in the engine for the retention window.
//! The EXPUNGE responses come from the view refresh that follows.

use mailvault_engine::Flags;

use super::client::Client;
use super::completion::Completion;
use super::fetch::UIDS_PER_REQUEST_MAX;
use super::state::Selected;
use super::view::in_ranges;
use crate::proto::imap::SequenceSet;
use crate::session::SessionIo;

pub(super) async fn run<C: SessionIo>(
    state: &Selected,
    uids: Option<&SequenceSet>,
    client: &mut Client<'_, C>,
) -> Completion {
    if state.view.read_only {
        return Completion::no("The mailbox is read-only (EXAMINE)");
    }
    match remove_deleted(state, uids, client).await {
        Ok(()) => Completion::ok(if uids.is_some() { "UID EXPUNGE completed" } else { "EXPUNGE completed" }),
        Err(completion) => completion,
    }
}

/// CLOSE: expunge without responses, unless the mailbox was opened read-only.
pub(super) async fn close<C: SessionIo>(state: &Selected, client: &mut Client<'_, C>) -> Completion {
    if !state.view.read_only
        && let Err(completion) = remove_deleted(state, None, client).await
    {
        return completion;
    }
    Completion::ok("CLOSE completed")
}

async fn remove_deleted<C: SessionIo>(
    state: &Selected,
    only: Option<&SequenceSet>,
    client: &mut Client<'_, C>,
) -> Result<(), Completion> {
    let engine = client.engine().clone();
    let (_, listing) = engine
        .list_messages(&state.account, &state.view.name)
        .await
        .map_err(|error| Completion::from_engine(&error))?;
    let largest = listing.last().map_or(0, |message| message.uid);
    let ranges = only.map(|set| set.resolve(largest));
    let doomed: Vec<u32> = listing
        .iter()
        .filter(|message| message.flags.contains(Flags::DELETED))
        .filter(|message| ranges.as_ref().is_none_or(|ranges| in_ranges(ranges, message.uid)))
        .map(|message| message.uid)
        .collect();
    for chunk in doomed.chunks(UIDS_PER_REQUEST_MAX) {
        engine
            .expunge(&state.account, &state.view.name, chunk)
            .await
            .map_err(|error| Completion::from_engine(&error))?;
    }
    Ok(())
}
