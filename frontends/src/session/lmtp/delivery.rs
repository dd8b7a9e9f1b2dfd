//! RCPT (which account a recipient is) and DATA (reading the body, storing one copy per
//! recipient, one reply each).

use mailvault_engine::{EngineError, Flags, INBOX};

use super::state::{Transaction, recipient_text};
use crate::proto::lmtp::{DataDecoder, DataError, DataStatus, EnhancedStatus, ForwardPath, Reply};
use crate::session::SessionIo;
use crate::session::context::{Interrupted, SessionContext};
use crate::session::exchange::Exchange;

/// An accepted recipient.
#[derive(Debug)]
pub(crate) struct Recipient {
    /// As the client wrote it (without brackets), for the per-recipient reply.
    pub text: String,
    pub account: String,
}

/// RCPT TO: accepted if the address names an account (the full address first, then its local
/// part, each as given and lower-cased).
pub(super) async fn recipient<Io: SessionIo>(
    mut transaction: Transaction,
    to: ForwardPath,
    exchange: &mut Exchange<'_, Io>,
) -> Transaction {
    transaction.recipient_commands += 1;
    if transaction.recipient_commands > exchange.context.limits().recipients_max {
        Reply::too_many_recipients().write_to(exchange.output());
        return transaction;
    }
    let reply = match find_account(exchange.context, &to).await {
        Ok(Some(account)) => {
            transaction.recipients.push(Recipient { text: recipient_text(&to), account });
            Reply::recipient_ok()
        }
        Ok(None) => Reply::no_such_user(),
        Err(EngineError::AccountClosed { .. }) => Reply::mailbox_disabled(),
        Err(error) => {
            tracing::error!(%error, "looking up an LMTP recipient");
            Reply::local_error()
        }
    };
    reply.write_to(exchange.output());
    transaction
}

fn account_candidates(to: &ForwardPath) -> Vec<String> {
    let mut candidates = Vec::new();
    let mut add = |name: String| {
        if !candidates.contains(&name) {
            candidates.push(name);
        }
    };
    match to {
        ForwardPath::Postmaster => add("postmaster".to_owned()),
        ForwardPath::Address(address) => {
            let full = format!("{}@{}", address.local_part, address.domain);
            add(full.clone());
            add(full.to_lowercase());
            add(address.local_part.clone());
            add(address.local_part.to_lowercase());
        }
    }
    candidates
}

async fn find_account(context: &SessionContext, to: &ForwardPath) -> Result<Option<String>, EngineError> {
    for candidate in account_candidates(to) {
        match context.engine().list_mailboxes(&candidate).await {
            Ok(_) => return Ok(Some(candidate)),
            Err(EngineError::NoSuchAccount(_) | EngineError::InvalidInput { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// DATA with at least one recipient: 354, the body, then one reply per recipient in RCPT order
/// (RFC 2033 §4.2), each sent only once that copy is durable.
pub(super) async fn data<Io: SessionIo>(
    transaction: Transaction,
    exchange: &mut Exchange<'_, Io>,
) -> Result<(), Interrupted> {
    Reply::start_data().write_to(exchange.output());
    exchange.flush().await?;
    let body = match read_body(exchange).await? {
        Ok(body) => body,
        Err(error) => {
            for _ in &transaction.recipients {
                error.reply().write_to(exchange.output());
            }
            return Ok(());
        }
    };
    for recipient in &transaction.recipients {
        let stored =
            exchange.context.engine().append(&recipient.account, INBOX, body.clone(), Flags::default(), None).await;
        let reply = match stored {
            Ok(uid) => {
                tracing::debug!(account = recipient.account, uid, bytes = body.len(), "delivered");
                Reply::delivered(&recipient.text)
            }
            Err(EngineError::MessageTooLarge { .. }) => Reply::message_too_large(),
            Err(EngineError::NoSuchAccount(_) | EngineError::NoSuchMailbox(_)) => Reply::no_such_user(),
            Err(EngineError::AccountClosed { .. }) => Reply::mailbox_disabled(),
            // The engine logs the full disk once, not once per refused copy.
            Err(EngineError::StorageFull { .. }) => Reply::insufficient_storage(),
            Err(EngineError::InvalidInput { what, reason }) => {
                Reply::new(554, Some(EnhancedStatus::new(5, 6, 0)), format!("Message refused: {what}: {reason}"))
            }
            Err(error) => {
                tracing::error!(%error, account = recipient.account, "LMTP delivery failed");
                Reply::local_error()
            }
        };
        reply.write_to(exchange.output());
    }
    tracing::debug!(sender = %transaction.sender, recipients = transaction.recipients.len(), "LMTP transaction");
    Ok(())
}

/// Reads the dot-stuffed body up to its terminator; what follows it stays in the input (the
/// next pipelined command). An oversized body is read to its end and reported.
async fn read_body<Io: SessionIo>(exchange: &mut Exchange<'_, Io>) -> Result<Result<Vec<u8>, DataError>, Interrupted> {
    let mut decoder = DataDecoder::new(exchange.context.limits());
    let mut body = Vec::new();
    loop {
        if !exchange.input.is_empty() {
            let input = std::mem::take(&mut exchange.input);
            let result = decoder.decode(&input, &mut body);
            let consumed_bytes = match &result {
                Ok(DataStatus::NeedsMoreData) => input.len(),
                Ok(DataStatus::Complete { consumed_bytes }) | Err(DataError::TooLarge { consumed_bytes, .. }) => {
                    *consumed_bytes
                }
            };
            exchange.input = input.get(consumed_bytes..).unwrap_or_default().to_vec();
            match result {
                Ok(DataStatus::NeedsMoreData) => {}
                Ok(DataStatus::Complete { .. }) => return Ok(Ok(body)),
                Err(error) => return Ok(Err(error)),
            }
        }
        exchange.fill().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::lmtp::Address;

    #[test]
    fn candidates_try_the_full_address_first() {
        let to = ForwardPath::Address(Address { local_part: "Alice".into(), domain: "Example.org".into() });
        assert_eq!(account_candidates(&to), ["Alice@Example.org", "alice@example.org", "Alice", "alice"]);
        assert_eq!(account_candidates(&ForwardPath::Postmaster), ["postmaster"]);
    }
}
