//! STORE and UID STORE: replace, add or remove flags, then report the new flags (unless
//! `.SILENT`). Messages another session expunged meanwhile are skipped.

use mailvault_engine::{EngineError, FlagChange};

use super::client::Client;
use super::completion::Completion;
use super::fetch::UIDS_PER_REQUEST_MAX;
use super::flags::{from_imap, to_imap};
use super::state::Selected;
use crate::proto::imap::{self, FetchData, Flag, SequenceSet, StoreMode};
use crate::session::SessionIo;

pub(super) async fn run<C: SessionIo>(
    state: &mut Selected,
    uid: bool,
    set: &SequenceSet,
    mode: StoreMode,
    silent: bool,
    flags: &[Flag],
    client: &mut Client<'_, C>,
) -> Completion {
    if state.view.read_only {
        return Completion::no("The mailbox is read-only (EXAMINE)");
    }
    let Ok(targets) = state.view.resolve(set, uid) else {
        return Completion::bad("Invalid message sequence number");
    };
    let flags = match from_imap(flags) {
        Ok(flags) => flags,
        Err(refused) => return Completion::no(format!("Cannot store flag {refused}")),
    };
    let change = match mode {
        StoreMode::Replace => FlagChange::Replace(flags),
        StoreMode::Add => FlagChange::Add(flags),
        StoreMode::Remove => FlagChange::Remove(flags),
    };
    let mut uids: Vec<u32> = targets.iter().map(|target| target.uid).collect();
    if let Err(error) = change_flags(state, &mut uids, &change, client).await {
        return Completion::from_engine(&error);
    }
    for target in &targets {
        if uids.binary_search(&target.uid).is_err() {
            continue;
        }
        let Some(index) = state.view.index_of(target.uid) else { continue };
        let flags = change.apply(&state.view.messages()[index].flags);
        let listed = to_imap(&flags);
        state.view.set_flags(index, flags, &mut client.output);
        if !silent {
            let mut items = vec![FetchData::Flags(&listed)];
            if uid {
                items.push(FetchData::Uid(target.uid));
            }
            imap::write_fetch(target.sequence, &items, &mut client.output);
        }
    }
    Completion::ok(if uid { "UID STORE completed" } else { "STORE completed" })
}

/// Applies `change` to `uids` (ascending). If some were expunged by another session, the
/// engine refuses the whole request: list what still exists and try once more with that.
async fn change_flags<C: SessionIo>(
    state: &Selected,
    uids: &mut Vec<u32>,
    change: &FlagChange,
    client: &mut Client<'_, C>,
) -> Result<(), EngineError> {
    let engine = client.engine().clone();
    let mut retried = false;
    let mut done = 0;
    while done < uids.len() {
        let end = (done + UIDS_PER_REQUEST_MAX).min(uids.len());
        match engine.change_flags(&state.account, &state.view.name, &uids[done..end], change.clone()).await {
            Ok(()) => done = end,
            Err(EngineError::NoSuchMessage(_)) if !retried => {
                retried = true;
                let (_, listing) = engine.list_messages(&state.account, &state.view.name).await?;
                let existing: Vec<u32> = listing.iter().map(|message| message.uid).collect();
                let (finished, rest) = uids.split_at(done);
                let mut kept = finished.to_vec();
                kept.extend(rest.iter().filter(|uid| existing.binary_search(uid).is_ok()));
                *uids = kept;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
