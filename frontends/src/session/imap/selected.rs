//! The selected state: message commands on the selected mailbox, and after the commands that
//! may change it, an update of the client's view (EXPUNGE, EXISTS, FLAGS) before the tagged
//! response. FETCH, STORE and SEARCH by sequence number never send EXPUNGE (RFC 3501 §7.4.1).

use mailvault_engine::{Engine, EngineError};

use super::client::Client;
use super::completion::Completion;
use super::state::{Authenticated, Selected, State};
use super::view::MailboxVanished;
use super::{expunge, fetch, idle, mailboxes, search, select, store, transfer};
use crate::proto::imap::{CommandKind, Status, Tag};
use crate::session::SessionIo;
use crate::session::context::Interrupted;

pub(super) async fn handle<C: SessionIo>(
    mut state: Selected,
    tag: Tag,
    mut kind: CommandKind,
    client: &mut Client<'_, C>,
) -> Result<State, Interrupted> {
    // Commands after which the view is compared with the engine: those that change the
    // mailbox, and those clients use to poll. UID commands do not poll, to keep them cheap.
    let refresh_after = matches!(
        kind,
        CommandKind::Noop
            | CommandKind::Check
            | CommandKind::Idle
            | CommandKind::Expunge { .. }
            | CommandKind::Append { .. }
            | CommandKind::Copy { .. }
            | CommandKind::Move { .. }
            | CommandKind::Delete { .. }
    );
    let completion = match &kind {
        CommandKind::Select { mailbox } => return Ok(select::open(state.account, mailbox, false, &tag, client).await),
        CommandKind::Examine { mailbox } => return Ok(select::open(state.account, mailbox, true, &tag, client).await),
        CommandKind::Close => {
            let completion = expunge::close(&state, client).await;
            client.complete(&tag, &completion);
            return Ok(State::Authenticated(Authenticated { account: state.account }));
        }
        CommandKind::Unselect => {
            client.complete(&tag, &Completion::ok("UNSELECT completed"));
            return Ok(State::Authenticated(Authenticated { account: state.account }));
        }
        CommandKind::Noop => Completion::ok("NOOP completed"),
        CommandKind::Check => Completion::ok("CHECK completed"),
        CommandKind::Idle => idle::run(Some(&mut state), client).await?,
        CommandKind::Fetch { uid, set, attributes } => fetch::run(&mut state, *uid, set, attributes, client).await?,
        CommandKind::Store { uid, set, mode, silent, flags } => {
            store::run(&mut state, *uid, set, *mode, *silent, flags, client).await
        }
        CommandKind::Search { uid, criteria, .. } => search::run(&state, *uid, criteria, client).await,
        CommandKind::Copy { uid, set, mailbox } => transfer::run(&mut state, *uid, set, mailbox, false, client).await,
        CommandKind::Move { uid, set, mailbox } => transfer::run(&mut state, *uid, set, mailbox, true, client).await,
        CommandKind::Expunge { uids } => expunge::run(&state, uids.as_ref(), client).await,
        CommandKind::StartTls | CommandKind::Login { .. } | CommandKind::Authenticate { .. } => {
            Completion::bad("Already logged in")
        }
        _ => {
            let renamed = match &kind {
                CommandKind::Rename { from, to } => Some((from.clone(), to.clone())),
                _ => None,
            };
            let completion = mailboxes::run(&state.account, &mut kind, client)
                .await
                .unwrap_or_else(|| Completion::bad("Unknown command"));
            if let Some((from, to)) = renamed
                && completion.status == Status::Ok
            {
                follow_rename(&mut state, &from, &to);
            }
            completion
        }
    };
    if refresh_after {
        let engine = client.engine().clone();
        if refresh(&engine, &mut state, &mut client.output).await.is_err() {
            client.untagged(Status::Bye, None, "The selected mailbox was deleted or renamed elsewhere");
            return Ok(State::Logout);
        }
    }
    client.complete(&tag, &completion);
    Ok(State::Selected(state))
}

/// Keeps the selection on a mailbox this session renamed (or whose parent it renamed).
fn follow_rename(state: &mut Selected, from: &str, to: &str) {
    if state.view.name == from {
        to.clone_into(&mut state.view.name);
    } else if let Some(rest) = state.view.name.strip_prefix(from)
        && rest.starts_with(super::list_pattern::DELIMITER)
    {
        state.view.name = format!("{to}{rest}");
    }
}

/// Compares the view with the engine and writes the updates. A failed listing other than a
/// missing mailbox is left for the next refresh: the view stays consistent, only older.
pub(super) async fn refresh(engine: &Engine, state: &mut Selected, out: &mut Vec<u8>) -> Result<(), MailboxVanished> {
    match engine.list_messages(&state.account, &state.view.name).await {
        Ok((info, listing)) => state.view.update(&info, listing, out),
        Err(EngineError::NoSuchMailbox(_)) => Err(MailboxVanished),
        Err(error) => {
            tracing::warn!(%error, "refreshing the selected mailbox");
            Ok(())
        }
    }
}
