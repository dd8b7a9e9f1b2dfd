//! The POP3 TRANSACTION and UPDATE states: a snapshot of the INBOX taken at login, numbered
//! 1..n; DELE marks, RSET unmarks, QUIT expunges what is marked (restorable in the engine).

use mailvault_engine::{EngineError, INBOX, MessageInfo};

use crate::proto::pop3::{self, Command, Reply, ResponseCode};
use crate::session::SessionIo;
use crate::session::auth::LoggedIn;
use crate::session::context::Interrupted;
use crate::session::exchange::Exchange;
use crate::session::registry::MaildropLock;

use super::authorization::Authorization;
use super::{State, write_capabilities};

#[derive(Debug)]
pub(super) struct Maildrop {
    account: String,
    uid_validity: u32,
    /// The INBOX at login, in uid order; message n is `messages[n - 1]`.
    messages: Vec<MessageInfo>,
    /// Marked by DELE, parallel to `messages`.
    deleted: Vec<bool>,
    _lock: MaildropLock,
}

impl Maildrop {
    /// Enters the transaction state after a login: locks the maildrop and lists it.
    pub(super) async fn open<Io: SessionIo>(logged_in: LoggedIn, exchange: &mut Exchange<'_, Io>) -> (State, bool) {
        let refused = |exchange: &mut Exchange<'_, Io>, reply: Reply| {
            reply.write_to(exchange.output());
            (State::Authorization(Authorization::default()), false)
        };
        let Some(lock) = exchange.context.registry().lock_maildrop(&logged_in.account) else {
            return refused(
                exchange,
                Reply::error_with_code(ResponseCode::InUse, "maildrop is locked by another session"),
            );
        };
        let (info, messages) = match exchange.context.engine().list_messages(&logged_in.account, INBOX).await {
            Ok(listing) => listing,
            Err(error) => {
                tracing::error!(%error, account = logged_in.account, "opening a POP3 maildrop");
                return refused(
                    exchange,
                    Reply::error_with_code(ResponseCode::SystemTemporary, "cannot open the maildrop"),
                );
            }
        };
        let maildrop = Self {
            account: logged_in.account,
            uid_validity: info.uid_validity,
            deleted: vec![false; messages.len()],
            messages,
            _lock: lock,
        };
        let (count, bytes) = maildrop.totals();
        Reply::ok(format!("maildrop has {count} messages ({bytes} octets)")).write_to(exchange.output());
        (State::Transaction(maildrop), true)
    }

    /// Messages not marked deleted, and their total size.
    fn totals(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(count, bytes), (_, message)| (count + 1, bytes + message.size))
    }

    /// (message number, message) for every message not marked deleted.
    fn live(&self) -> impl Iterator<Item = (u32, &MessageInfo)> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .enumerate()
            .filter(|(_, (_, deleted))| !**deleted)
            .map(|(index, (message, _))| (index as u32 + 1, message))
    }

    /// The message numbered `number`, unless it does not exist or is marked deleted.
    fn message(&self, number: u32) -> Option<&MessageInfo> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        match self.deleted.get(index) {
            Some(false) => self.messages.get(index),
            _ => None,
        }
    }

    fn unique_id(&self, message: &MessageInfo) -> String {
        format!("{}-{}", self.uid_validity, message.uid)
    }

    /// Handles one command; the flag says whether it succeeded (for the error limit).
    pub(super) async fn on_command<Io: SessionIo>(
        mut self,
        command: Command,
        exchange: &mut Exchange<'_, Io>,
    ) -> Result<(State, bool), Interrupted> {
        let reply = match command {
            Command::Capa => {
                write_capabilities(exchange, true);
                None
            }
            Command::Stat => {
                let (count, bytes) = self.totals();
                Some(Reply::stat(count, bytes))
            }
            Command::List { message: None } => {
                let entries: Vec<String> =
                    self.live().map(|(number, message)| format!("{number} {}", message.size)).collect();
                let (count, bytes) = self.totals();
                pop3::write_listing(&format!("{count} messages ({bytes} octets)"), entries, exchange.output());
                None
            }
            Command::List { message: Some(number) } => Some(
                self.message(number).map_or_else(no_such_message, |message| Reply::scan_listing(number, message.size)),
            ),
            Command::Uidl { message: None } => {
                let entries: Vec<String> =
                    self.live().map(|(number, message)| format!("{number} {}", self.unique_id(message))).collect();
                pop3::write_listing("unique-id listing follows", entries, exchange.output());
                None
            }
            Command::Uidl { message: Some(number) } => Some(
                self.message(number)
                    .map_or_else(no_such_message, |message| Reply::unique_id_listing(number, &self.unique_id(message))),
            ),
            Command::Retr { message } => self.retrieve(message, None, exchange).await,
            Command::Top { message, lines } => self.retrieve(message, Some(lines), exchange).await,
            Command::Dele { message: number } => Some(self.mark_deleted(number)),
            Command::Noop => Some(Reply::ok("")),
            Command::Rset => {
                self.deleted.fill(false);
                let (count, bytes) = self.totals();
                Some(Reply::ok(format!("maildrop has {count} messages ({bytes} octets)")))
            }
            Command::Quit => {
                self.update(exchange).await.write_to(exchange.output());
                return Ok((State::Closed, true));
            }
            _ => Some(Reply::error("not valid after login")),
        };
        let ok = reply.as_ref().is_none_or(|reply| reply.ok);
        if let Some(reply) = reply {
            reply.write_to(exchange.output());
        }
        Ok((State::Transaction(self), ok))
    }

    fn mark_deleted(&mut self, number: u32) -> Reply {
        if self.message(number).is_none() {
            return no_such_message();
        }
        if let Some(deleted) = usize::try_from(number).ok().and_then(|number| self.deleted.get_mut(number - 1)) {
            *deleted = true;
        }
        Reply::ok(format!("message {number} deleted"))
    }

    /// RETR (all of the message) or TOP (the header and `lines` body lines). Writes the
    /// multi-line reply itself; returns a reply only on error.
    async fn retrieve<Io: SessionIo>(
        &self,
        number: u32,
        lines: Option<u32>,
        exchange: &mut Exchange<'_, Io>,
    ) -> Option<Reply> {
        let Some(info) = self.message(number) else {
            return Some(no_such_message());
        };
        let message = match exchange.context.engine().fetch(&self.account, INBOX, info.uid).await {
            Ok(message) => message,
            Err(EngineError::NoSuchMessage(_)) => return Some(Reply::error("message was removed by another session")),
            Err(error) => {
                tracing::error!(%error, account = self.account, "POP3 fetch");
                return Some(Reply::error_with_code(ResponseCode::SystemTemporary, "cannot read the message"));
            }
        };
        match lines {
            None => pop3::write_multiline(&format!("{} octets", message.body.len()), &message.body, exchange.output()),
            Some(lines) => {
                pop3::write_multiline(
                    "top of message follows",
                    pop3::message_top(&message.body, lines),
                    exchange.output(),
                );
            }
        }
        None
    }

    /// The UPDATE state: expunges the marked messages that still exist.
    async fn update<Io: SessionIo>(&self, exchange: &mut Exchange<'_, Io>) -> Reply {
        let marked: Vec<u32> = self
            .messages
            .iter()
            .zip(&self.deleted)
            .filter(|(_, deleted)| **deleted)
            .map(|(message, _)| message.uid)
            .collect();
        let signing_off = format!("{} POP3 server signing off", exchange.context.host_name());
        if marked.is_empty() {
            return Reply::ok(signing_off);
        }
        let engine = exchange.context.engine();
        // Another session (IMAP) may have removed some meanwhile; expunge what is left.
        let still_there = match engine.list_messages(&self.account, INBOX).await {
            Ok((_, current)) => {
                marked.iter().copied().filter(|uid| current.iter().any(|message| message.uid == *uid)).collect()
            }
            Err(error) => {
                tracing::error!(%error, account = self.account, "POP3 update");
                return Reply::error_with_code(ResponseCode::SystemTemporary, "deleted messages were not removed");
            }
        };
        let uids: Vec<u32> = still_there;
        if uids.is_empty() {
            return Reply::ok(signing_off);
        }
        match engine.expunge(&self.account, INBOX, &uids).await {
            Ok(()) => Reply::ok(format!("{signing_off} ({} messages deleted)", uids.len())),
            Err(error) => {
                tracing::error!(%error, account = self.account, "POP3 update");
                Reply::error_with_code(ResponseCode::SystemTemporary, "deleted messages were not removed")
            }
        }
    }
}

fn no_such_message() -> Reply {
    Reply::error("no such message")
}
