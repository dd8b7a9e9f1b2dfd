//! IDLE (RFC 2177): wait for DONE while telling the client about changes to the selected
//! mailbox. The engine has no change notifications, so the mailbox is compared with the
//! engine every poll interval. The pending read is kept across polls that find nothing, so
//! no input can be lost by cancelling it; it is dropped only to write updates.

use std::pin::pin;
use std::time::Instant;

use super::client::Client;
use super::completion::Completion;
use super::selected::refresh;
use super::state::Selected;
use crate::proto::imap::{parse_idle_done, write_continuation};
use crate::proto::{self};
use crate::session::SessionIo;
use crate::session::context::{Either, Interrupted, first};

/// Idles until DONE. `selected` is the selected mailbox, if any. A vanished mailbox ends the
/// idle; the caller's own refresh then ends the session.
pub(super) async fn run<C: SessionIo>(
    mut selected: Option<&mut Selected>,
    client: &mut Client<'_, C>,
) -> Result<Completion, Interrupted> {
    write_continuation("idling", &mut client.output);
    client.flush().await?;
    let limits = client.limits();
    let poll_interval = client.options.idle_poll_interval;
    let deadline = Instant::now() + client.session.settings().idle_timeout;
    loop {
        match parse_idle_done(&client.input, &limits) {
            Ok(proto::Parsed::Complete { consumed_bytes, .. }) => {
                client.input.drain(..consumed_bytes);
                return Ok(Completion::ok("IDLE terminated"));
            }
            Ok(proto::Parsed::NeedsMoreData) => {}
            Err(rejected) => {
                client.input.drain(..rejected.consumed_bytes.min(client.input.len()));
                if !rejected.line_finished {
                    client.discard_line().await?;
                }
                return Ok(Completion::bad("Expected DONE"));
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Interrupted::IdleTimeout);
        }
        let mut updates = Vec::new();
        let mut vanished = false;
        let read = {
            let Client { io, session, input, .. } = &mut *client;
            let mut read = pin!(session.read_with_timeout(*io, input, remaining));
            loop {
                match first(read.as_mut(), compio::time::sleep(poll_interval)).await {
                    Either::Left(result) => break Some(result),
                    Either::Right(()) => {
                        if let Some(state) = selected.as_deref_mut() {
                            vanished = refresh(session.engine(), state, &mut updates).await.is_err();
                        }
                        if vanished || !updates.is_empty() {
                            break None;
                        }
                    }
                }
            }
        };
        if let Some(result) = read {
            result?;
        } else {
            client.output.extend_from_slice(&updates);
            client.flush().await?;
            if vanished {
                return Ok(Completion::no("The selected mailbox is gone"));
            }
        }
    }
}
