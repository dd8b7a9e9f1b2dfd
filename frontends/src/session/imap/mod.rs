//! The `IMAP4rev1` session (RFC 3501 with UIDPLUS, IDLE, MOVE, UNSELECT, NAMESPACE, LITERAL+
//! and SASL-IR) over the engine API: a state machine driven through any [`SessionIo`].
//!
//! - [`serve`] runs one connection: greeting, then commands until LOGOUT, the client closing,
//!   the idle timeout, remote logout or shutdown (the last three say `* BYE` first).
//! - States (`state.rs`) consume themselves and return the next: not authenticated
//!   (`not_authenticated.rs`: STARTTLS, LOGIN, AUTHENTICATE), authenticated
//!   (`authenticated.rs`, `mailboxes.rs`), selected (`selected.rs` with `fetch.rs`,
//!   `store.rs`, `search.rs`, `transfer.rs`, `expunge.rs`, `idle.rs`), logout.
//! - The selected mailbox is held as a [`view`](self::view) of uids and flags, compared with
//!   the engine after commands that can change it and while idling, which gives the
//!   EXPUNGE/EXISTS/FETCH updates. Mail itself is always read from the engine.

mod authenticated;
mod capability;
mod client;
mod completion;
mod expunge;
mod fetch;
mod flags;
mod idle;
mod list_pattern;
mod mailboxes;
mod not_authenticated;
mod options;
mod read_ahead;
mod search;
mod search_match;
mod section;
mod select;
mod selected;
mod state;
mod store;
mod transfer;
mod view;

pub use options::{
    CONSECUTIVE_BAD_COMMANDS_MAX, IDLE_POLL_INTERVAL, ImapOptions, SEARCH_BYTES_MAX, SEARCH_MESSAGES_MAX,
};

use client::{Client, Incoming};
use state::State;

use crate::proto::imap::{ResponseCode, Status};
use crate::session::context::Interrupted;
use crate::session::registry::EndReason;
use crate::session::{SessionContext, SessionIo};

/// Serves one IMAP connection to its end, with the default [`ImapOptions`]; returns when the
/// connection should be closed (the caller closes it and drops the context).
///
/// Called by the listener for each accepted IMAP connection, like the other protocols:
/// `session::imap::serve(&mut connection, &context).await`, with a [`SessionContext`] made
/// for `Protocol::Imap`. On the implicit-TLS port pass the connection after its handshake
/// (`is_tls()` true): the greeting then offers AUTH=PLAIN; on the plain port it offers
/// STARTTLS (when `tls_available`) and LOGINDISABLED.
///
/// IDLE drops a pending `read_into` when it must write a mailbox update, so reads must be
/// cancel-safe (`net::Connection`'s are).
pub async fn serve<C: SessionIo>(connection: &mut C, context: &SessionContext) {
    serve_with(connection, context, ImapOptions::default()).await;
}

/// [`serve`] with other IMAP settings (tests shorten the IDLE poll interval).
pub async fn serve_with<C: SessionIo>(connection: &mut C, context: &SessionContext, options: ImapOptions) {
    let mut client = Client::new(connection, context, options);
    let capabilities = capability::capabilities(client.io.is_tls(), client.session.tls_available());
    let greeting = format!("{} IMAP4rev1 ready", client.session.host_name());
    let code = ResponseCode::Capability(capabilities.into_iter().map(str::to_owned).collect());
    client.untagged(Status::Ok, Some(&code), &greeting);
    let mut state = State::NotAuthenticated;
    let interrupted = loop {
        if let Err(interrupted) = client.flush().await {
            break Some(interrupted);
        }
        if matches!(state, State::Logout) {
            break None;
        }
        if client.is_babbling() {
            client.untagged(Status::Bye, None, "Too many invalid commands");
            break None;
        }
        match client.read_command().await {
            Ok(Incoming::Command(command)) => match state.handle(command, &mut client).await {
                Ok(next) => state = next,
                Err(interrupted) => break Some(interrupted),
            },
            Ok(Incoming::Refused { error, must_close }) => {
                client.refuse(&error);
                if must_close {
                    // The oversized {n+} literal's bytes are on their way and would be read
                    // as commands.
                    client.untagged(Status::Bye, None, "Literal too large");
                    break None;
                }
            }
            Err(interrupted) => break Some(interrupted),
        }
    };
    let farewell = match interrupted {
        Some(Interrupted::IdleTimeout) => Some("Autologout: idle for too long"),
        Some(Interrupted::Ended(EndReason::LoggedOut)) => Some("Logged out remotely"),
        Some(Interrupted::Ended(EndReason::ShuttingDown)) => Some("Server shutting down"),
        // Closed or broken: nobody to tell.
        Some(_) => return,
        None => None,
    };
    if let Some(text) = farewell {
        client.untagged(Status::Bye, None, text);
    }
    let _ = client.flush().await;
}
