//! The session's states (RFC 3501 §3): each consumes itself on a command and returns the next.
//! CAPABILITY and LOGOUT are answered here in any state; the rest goes to the state's module.

use super::capability::{authenticated_capabilities, capabilities};
use super::client::Client;
use super::completion::Completion;
use super::view::MailboxView;
use super::{authenticated, not_authenticated, selected};
use crate::proto::imap::{self, Command, CommandKind, Status};
use crate::session::SessionIo;
use crate::session::context::Interrupted;

/// Logged in, no mailbox selected.
#[derive(Debug)]
pub(super) struct Authenticated {
    pub(super) account: String,
}

/// Logged in with a mailbox selected.
#[derive(Debug)]
pub(super) struct Selected {
    pub(super) account: String,
    pub(super) view: MailboxView,
}

#[derive(Debug)]
pub(super) enum State {
    NotAuthenticated,
    Authenticated(Authenticated),
    Selected(Selected),
    /// The session is over: the connection closes once the output is sent.
    Logout,
}

impl State {
    /// Runs one command and returns the state it leads to.
    pub(super) async fn handle<C: SessionIo>(
        self,
        command: Command,
        client: &mut Client<'_, C>,
    ) -> Result<Self, Interrupted> {
        let Command { tag, kind } = command;
        match kind {
            CommandKind::Capability => {
                let list = match self {
                    Self::NotAuthenticated => capabilities(client.io.is_tls(), client.session.tls_available()),
                    _ => authenticated_capabilities(),
                };
                imap::write_capability(&list, &mut client.output);
                client.complete(&tag, &Completion::ok("CAPABILITY completed"));
                Ok(self)
            }
            CommandKind::Logout => {
                client.untagged(Status::Bye, None, "Logging out");
                client.complete(&tag, &Completion::ok("LOGOUT completed"));
                Ok(Self::Logout)
            }
            kind => match self {
                Self::NotAuthenticated => not_authenticated::handle(tag, kind, client).await,
                Self::Authenticated(state) => authenticated::handle(state, tag, kind, client).await,
                Self::Selected(state) => selected::handle(state, tag, kind, client).await,
                Self::Logout => Ok(Self::Logout),
            },
        }
    }
}
