//! The LMTP session (RFC 2033): LHLO, MAIL, RCPT, DATA with one reply per recipient, RSET,
//! NOOP, VRFY, QUIT, STARTTLS; PIPELINING, 8BITMIME, SIZE and ENHANCEDSTATUSCODES. A message
//! is stored unchanged (byte for byte) in the INBOX of each accepted recipient, and each
//! recipient's 250 is sent only once its copy is durable.

mod delivery;
mod state;

use crate::proto::lmtp::{self, EnhancedStatus, Reply};
use crate::proto::{Parsed, Rejected};

use super::SessionIo;
use super::context::{Interrupted, SessionContext};
use super::exchange::Exchange;
use super::registry::EndReason;
use state::State;

/// Consecutive refused commands before the session is closed (a client that is not speaking
/// LMTP, or probing).
pub const LMTP_ERRORS_MAX: u32 = 20;

/// Runs one LMTP session to its end.
pub async fn serve<Io: SessionIo>(io: &mut Io, context: &SessionContext) {
    let mut exchange = Exchange::new(io, context);
    Reply::service_ready(context.host_name()).write_to(exchange.output());
    let ending = match run(&mut exchange).await {
        // LMTP has no login, so no remote logout.
        Ok(()) | Err(Interrupted::Closed | Interrupted::Ended(EndReason::LoggedOut)) => None,
        Err(Interrupted::Ended(EndReason::ShuttingDown)) => Some(shutting_down()),
        Err(Interrupted::IdleTimeout) => Some(Reply::new(421, Some(EnhancedStatus::new(4, 4, 2)), "Idle timeout")),
        Err(Interrupted::Io(error)) => {
            tracing::debug!(%error, peer = %context.peer(), "LMTP connection failed");
            None
        }
    };
    if let Some(reply) = ending {
        reply.write_to(exchange.output());
        let _ = exchange.flush().await;
    }
}

fn shutting_down() -> Reply {
    Reply::new(421, Some(EnhancedStatus::new(4, 3, 2)), "Service shutting down, try again later")
}

async fn run<Io: SessionIo>(exchange: &mut Exchange<'_, Io>) -> Result<(), Interrupted> {
    let mut state = State::Greeted;
    let mut errors = 0;
    loop {
        if !exchange.skip_discarded() {
            exchange.fill().await?;
            continue;
        }
        match lmtp::parse_command(&exchange.input, exchange.context.limits()) {
            Ok(Parsed::Complete { value, consumed_bytes }) => {
                exchange.consume(consumed_bytes);
                errors = 0;
                state = state.on_command(value, exchange).await?;
                if matches!(state, State::Closed) {
                    return exchange.flush().await;
                }
            }
            Ok(Parsed::NeedsMoreData) => exchange.fill().await?,
            Err(Rejected { error, consumed_bytes, line_finished }) => {
                exchange.consume(consumed_bytes);
                if !line_finished {
                    exchange.discard_rest_of_line();
                }
                error.reply().write_to(exchange.output());
                errors += 1;
                if errors >= LMTP_ERRORS_MAX {
                    Reply::new(421, Some(EnhancedStatus::new(4, 7, 0)), "Too many errors, closing")
                        .write_to(exchange.output());
                    return exchange.flush().await;
                }
            }
        }
    }
}
