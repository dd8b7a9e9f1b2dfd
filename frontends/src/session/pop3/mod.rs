//! The POP3 session (RFC 1939 with CAPA, TOP, UIDL, RESP-CODES, PIPELINING from RFC 2449, STLS
//! from RFC 2595 and AUTH PLAIN from RFC 5034). The maildrop is the account's INBOX; DELE only
//! marks, and QUIT (the UPDATE state) expunges the marked messages through the engine, where
//! they stay restorable. Any other end of the session changes nothing.

mod authorization;
mod maildrop;

use crate::proto::pop3::{self, Capability, Reply, ResponseCode};
use crate::proto::{Parsed, Rejected};

use super::SessionIo;
use super::context::{Interrupted, SessionContext};
use super::exchange::Exchange;
use super::registry::EndReason;
use authorization::Authorization;
use maildrop::Maildrop;

/// Consecutive refused commands before the session is closed.
pub const POP3_ERRORS_MAX: u32 = 20;

/// The session's state; each consumes itself on a command and returns the next.
#[derive(Debug)]
enum State {
    Authorization(Authorization),
    Transaction(Maildrop),
    /// QUIT was answered (after UPDATE, in the transaction state).
    Closed,
}

/// Runs one POP3 session to its end.
pub async fn serve<Io: SessionIo>(io: &mut Io, context: &SessionContext) {
    let mut exchange = Exchange::new(io, context);
    Reply::ok(format!("{} POP3 server ready", context.host_name())).write_to(exchange.output());
    let ending = match run(&mut exchange).await {
        // RFC 1939 §3: an idle client is disconnected without a response.
        Ok(()) | Err(Interrupted::IdleTimeout | Interrupted::Closed) => None,
        Err(Interrupted::Ended(EndReason::ShuttingDown)) => {
            Some(Reply::error_with_code(ResponseCode::SystemTemporary, "server shutting down, nothing was changed"))
        }
        Err(Interrupted::Ended(EndReason::LoggedOut)) => {
            Some(Reply::error("session ended by a remote logout, nothing was changed"))
        }
        Err(Interrupted::Io(error)) => {
            tracing::debug!(%error, peer = %context.peer(), "POP3 connection failed");
            None
        }
    };
    if let Some(reply) = ending {
        reply.write_to(exchange.output());
        let _ = exchange.flush().await;
    }
}

async fn run<Io: SessionIo>(exchange: &mut Exchange<'_, Io>) -> Result<(), Interrupted> {
    let mut state = State::Authorization(Authorization::default());
    let mut errors = 0;
    loop {
        if !exchange.skip_discarded() {
            exchange.fill().await?;
            continue;
        }
        match pop3::parse_command(&exchange.input, exchange.context.limits()) {
            Ok(Parsed::Complete { value, consumed_bytes }) => {
                exchange.consume(consumed_bytes);
                let (next, ok) = match state {
                    State::Authorization(authorization) => authorization.on_command(value, exchange).await?,
                    State::Transaction(maildrop) => maildrop.on_command(value, exchange).await?,
                    State::Closed => (State::Closed, true),
                };
                state = next;
                errors = if ok { 0 } else { errors + 1 };
            }
            Ok(Parsed::NeedsMoreData) => {
                exchange.fill().await?;
                continue;
            }
            Err(Rejected { error, consumed_bytes, line_finished }) => {
                exchange.consume(consumed_bytes);
                if !line_finished {
                    exchange.discard_rest_of_line();
                }
                error.reply().write_to(exchange.output());
                errors += 1;
            }
        }
        if matches!(state, State::Closed) {
            return exchange.flush().await;
        }
        if errors >= POP3_ERRORS_MAX {
            Reply::error("too many errors, closing").write_to(exchange.output());
            return exchange.flush().await;
        }
    }
}

/// CAPA: what is possible now. USER and SASL appear only where a login is allowed (after TLS,
/// before login; RFC 2595 §4), STLS only where it can be used.
fn write_capabilities<Io: SessionIo>(exchange: &mut Exchange<'_, Io>, logged_in: bool) {
    let tls = exchange.io.is_tls();
    let mut capabilities = vec![
        Capability::Top,
        Capability::Uidl,
        Capability::ResponseCodes,
        Capability::AuthResponseCode,
        Capability::Pipelining,
    ];
    if !logged_in && tls {
        capabilities.push(Capability::User);
        capabilities.push(Capability::Sasl(vec!["PLAIN".to_owned()]));
    }
    if !logged_in && !tls && exchange.context.tls_available() {
        capabilities.push(Capability::Stls);
    }
    capabilities.push(Capability::Implementation("mailvault".to_owned()));
    pop3::write_capabilities(&capabilities, exchange.output());
}
