//! The authenticated state: mailbox commands, SELECT/EXAMINE, and IDLE without a mailbox.

use super::client::Client;
use super::completion::Completion;
use super::state::{Authenticated, State};
use super::{idle, mailboxes, select};
use crate::proto::imap::{CommandKind, Tag};
use crate::session::SessionIo;
use crate::session::context::Interrupted;

pub(super) async fn handle<C: SessionIo>(
    state: Authenticated,
    tag: Tag,
    mut kind: CommandKind,
    client: &mut Client<'_, C>,
) -> Result<State, Interrupted> {
    let completion = match &kind {
        CommandKind::Select { mailbox } => return Ok(select::open(state.account, mailbox, false, &tag, client).await),
        CommandKind::Examine { mailbox } => return Ok(select::open(state.account, mailbox, true, &tag, client).await),
        CommandKind::Noop => Completion::ok("NOOP completed"),
        CommandKind::Idle => idle::run(None, client).await?,
        CommandKind::StartTls | CommandKind::Login { .. } | CommandKind::Authenticate { .. } => {
            Completion::bad("Already logged in")
        }
        _ => match mailboxes::run(&state.account, &mut kind, client).await {
            Some(completion) => completion,
            None => Completion::bad("No mailbox selected"),
        },
    };
    client.complete(&tag, &completion);
    Ok(State::Authenticated(state))
}
