//! The LMTP states and their transitions: each state consumes itself on a command and returns
//! the next one, queuing the replies.

use crate::proto::lmtp::{Capability, Command, EnhancedStatus, ForwardPath, MailParameters, Reply, ReversePath};

use super::delivery::{self, Recipient};
use crate::session::SessionIo;
use crate::session::context::Interrupted;
use crate::session::exchange::Exchange;

/// A mail transaction between MAIL and the end of DATA (or RSET).
#[derive(Debug)]
pub(super) struct Transaction {
    /// Kept for the log line; LMTP stores the message as sent, without a Return-Path.
    pub sender: ReversePath,
    pub recipients: Vec<Recipient>,
    /// RCPT commands seen, accepted or not (the limit counts attempts).
    pub recipient_commands: usize,
}

#[derive(Debug)]
pub(super) enum State {
    /// Connected (or just switched to TLS): LHLO comes first.
    Greeted,
    /// After LHLO, outside a transaction.
    Ready,
    /// After MAIL.
    Mail(Transaction),
    /// QUIT was answered.
    Closed,
}

impl State {
    pub(super) async fn on_command<Io: SessionIo>(
        self,
        command: Command,
        exchange: &mut Exchange<'_, Io>,
    ) -> Result<Self, Interrupted> {
        let next = match (self, command) {
            (_, Command::Lhlo { .. }) => {
                lhlo_reply(exchange).write_to(exchange.output());
                Self::Ready
            }
            (_, Command::Quit) => {
                Reply::closing(exchange.context.host_name()).write_to(exchange.output());
                Self::Closed
            }
            (state, Command::Noop) => {
                Reply::ok("OK").write_to(exchange.output());
                state
            }
            (state, Command::Vrfy { .. }) => {
                Reply::cannot_verify().write_to(exchange.output());
                state
            }
            (Self::Greeted, Command::Rset) => {
                Reply::ok("Reset").write_to(exchange.output());
                Self::Greeted
            }
            (_, Command::Rset) => {
                Reply::ok("Reset").write_to(exchange.output());
                Self::Ready
            }
            (state @ (Self::Greeted | Self::Ready), Command::StartTls) => return start_tls(state, exchange).await,
            (Self::Ready, Command::Mail { from, parameters }) => mail(from, &parameters, exchange),
            (Self::Mail(transaction), Command::Rcpt { to }) => {
                Self::Mail(delivery::recipient(transaction, to, exchange).await)
            }
            (Self::Mail(transaction), Command::Data) if transaction.recipients.is_empty() => {
                Reply::new(503, Some(EnhancedStatus::new(5, 5, 1)), "No valid recipients").write_to(exchange.output());
                Self::Mail(transaction)
            }
            (Self::Mail(transaction), Command::Data) => {
                delivery::data(transaction, exchange).await?;
                Self::Ready
            }
            (state, _) => {
                Reply::bad_sequence().write_to(exchange.output());
                state
            }
        };
        Ok(next)
    }
}

fn lhlo_reply<Io: SessionIo>(exchange: &Exchange<'_, Io>) -> Reply {
    let mut capabilities = vec![
        Capability::Pipelining,
        Capability::EightBitMime,
        Capability::Size(exchange.context.limits().message_bytes_max as u64),
        Capability::EnhancedStatusCodes,
    ];
    if exchange.context.tls_available() && !exchange.io.is_tls() {
        capabilities.push(Capability::StartTls);
    }
    Reply::lhlo(exchange.context.host_name(), &capabilities)
}

async fn start_tls<Io: SessionIo>(state: State, exchange: &mut Exchange<'_, Io>) -> Result<State, Interrupted> {
    if exchange.io.is_tls() || !exchange.context.tls_available() {
        Reply::bad_sequence().write_to(exchange.output());
        return Ok(state);
    }
    Reply::ready_to_start_tls().write_to(exchange.output());
    exchange.start_tls().await?;
    // RFC 3207 §4.2: everything learnt before the handshake is forgotten.
    Ok(State::Greeted)
}

fn mail<Io: SessionIo>(from: ReversePath, parameters: &MailParameters, exchange: &mut Exchange<'_, Io>) -> State {
    let limit = exchange.context.limits().message_bytes_max as u64;
    if parameters.size_bytes.is_some_and(|size| size > limit) {
        Reply::message_too_large().write_to(exchange.output());
        return State::Ready;
    }
    Reply::sender_ok().write_to(exchange.output());
    State::Mail(Transaction { sender: from, recipients: Vec::new(), recipient_commands: 0 })
}

/// The text a recipient is named by in replies (without brackets).
pub(super) fn recipient_text(path: &ForwardPath) -> String {
    match path {
        ForwardPath::Postmaster => "Postmaster".to_owned(),
        ForwardPath::Address(address) => address.to_string(),
    }
}
