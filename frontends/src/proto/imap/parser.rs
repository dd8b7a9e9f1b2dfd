//! Parsing one tagged IMAP command from the front of a buffer (RFC 3501 §9 `command`).

use super::command::{Command, CommandKind, Parsed, StatusItem, StoreMode, Tag};
use super::date_time::DateTime;
use super::error::{ParseError, TaggedError};
use super::fetch::parse_fetch_attributes;
use super::flag::Flag;
use super::mailbox_name::{decode_mailbox_name, normalize_inbox};
use super::reader::{Read, Reader, Stop, is_astring_char};
use super::search::{parse_search_key, sequence_set};
use crate::proto::line::{Line, take_line};
use crate::proto::sasl;
use crate::proto::{Limits, Rejected, Secret};

/// Parses the first command in `input`. On success `consumed_bytes` covers the command and its
/// literals, and nothing of the next command. See [`Parsed`] for literals.
pub fn parse_command(input: &[u8], limits: &Limits) -> Result<Parsed<Command>, Rejected<TaggedError>> {
    let mut reader = match Reader::new(input, limits) {
        Ok(reader) => reader,
        Err(stop) => return stop_to_result(stop, None, 0),
    };
    let tag = match read_tag(&mut reader) {
        Ok(tag) => tag,
        Err(stop) => return stop_to_result(stop, None, reader.consumed_through_line()),
    };
    let parsed = parse_kind(&mut reader).and_then(|kind| Ok((kind, reader.finish()?)));
    match parsed {
        Ok((kind, consumed_bytes)) => Ok(Parsed::Complete { value: Command { tag, kind }, consumed_bytes }),
        Err(stop) => stop_to_result(stop, Some(tag), reader.consumed_through_line()),
    }
}

fn stop_to_result<T>(stop: Stop, tag: Option<Tag>, consumed_bytes: usize) -> Result<Parsed<T>, Rejected<TaggedError>> {
    match stop {
        Stop::NeedsMoreData => Ok(Parsed::NeedsMoreData),
        Stop::NeedsLiteral(request) => Ok(Parsed::NeedsLiteral(request)),
        Stop::Invalid(error) => {
            Err(Rejected { error: TaggedError { tag, error }, consumed_bytes, line_finished: true })
        }
        Stop::Rejected(rejected) => Err(Rejected {
            error: TaggedError { tag, error: rejected.error },
            consumed_bytes: rejected.consumed_bytes,
            line_finished: rejected.line_finished,
        }),
    }
}

/// Parses the line a client sends to end IDLE (RFC 2177): `DONE`, in any case.
pub fn parse_idle_done(input: &[u8], limits: &Limits) -> Result<crate::proto::Parsed<()>, Rejected<ParseError>> {
    match take_line(input, limits.line_bytes_max) {
        Line::Incomplete => Ok(crate::proto::Parsed::NeedsMoreData),
        Line::TooLong { consumed_bytes, line_finished } => {
            Err(Rejected { error: ParseError::LineTooLong, consumed_bytes, line_finished })
        }
        Line::Complete { content, consumed_bytes } if content.eq_ignore_ascii_case(b"DONE") => {
            Ok(crate::proto::Parsed::Complete { value: (), consumed_bytes })
        }
        Line::Complete { consumed_bytes, .. } => {
            Err(Rejected { error: ParseError::ExpectedDone, consumed_bytes, line_finished: true })
        }
    }
}

fn read_tag(reader: &mut Reader<'_>) -> Read<Tag> {
    let text = reader.take_while(|byte| is_astring_char(byte) && byte != b'+');
    let tag = std::str::from_utf8(text).ok().and_then(Tag::new).ok_or(ParseError::InvalidTag)?;
    reader.space()?;
    Ok(tag)
}

fn parse_kind(reader: &mut Reader<'_>) -> Read<CommandKind> {
    let name = reader.atom("command name")?.to_ascii_uppercase();
    let kind = match name.as_slice() {
        b"CAPABILITY" => CommandKind::Capability,
        b"NOOP" => CommandKind::Noop,
        b"LOGOUT" => CommandKind::Logout,
        b"STARTTLS" => CommandKind::StartTls,
        b"IDLE" => CommandKind::Idle,
        b"NAMESPACE" => CommandKind::Namespace,
        b"CHECK" => CommandKind::Check,
        b"CLOSE" => CommandKind::Close,
        b"UNSELECT" => CommandKind::Unselect,
        b"EXPUNGE" => CommandKind::Expunge { uids: None },
        b"AUTHENTICATE" => parse_authenticate(reader)?,
        b"LOGIN" => {
            reader.space()?;
            let username = String::from_utf8(reader.astring("user name")?).map_err(|_| ParseError::InvalidUtf8)?;
            reader.space()?;
            CommandKind::Login { username, password: Secret::new(reader.astring("password")?) }
        }
        b"SELECT" => CommandKind::Select { mailbox: mailbox_argument(reader)? },
        b"EXAMINE" => CommandKind::Examine { mailbox: mailbox_argument(reader)? },
        b"CREATE" => CommandKind::Create { mailbox: mailbox_argument(reader)? },
        b"DELETE" => CommandKind::Delete { mailbox: mailbox_argument(reader)? },
        b"SUBSCRIBE" => CommandKind::Subscribe { mailbox: mailbox_argument(reader)? },
        b"UNSUBSCRIBE" => CommandKind::Unsubscribe { mailbox: mailbox_argument(reader)? },
        b"RENAME" => {
            let from = mailbox_argument(reader)?;
            CommandKind::Rename { from, to: mailbox_argument(reader)? }
        }
        b"LIST" => {
            let (reference, pattern) = list_arguments(reader)?;
            CommandKind::List { reference, pattern }
        }
        b"LSUB" => {
            let (reference, pattern) = list_arguments(reader)?;
            CommandKind::Lsub { reference, pattern }
        }
        b"STATUS" => parse_status(reader)?,
        b"APPEND" => parse_append(reader)?,
        b"UID" => {
            reader.space()?;
            let name = reader.atom("UID command")?.to_ascii_uppercase();
            parse_selected(reader, &name, true)?
        }
        _ => parse_selected(reader, &name, false)?,
    };
    Ok(kind)
}

/// The commands that take a sequence set (and their UID forms).
fn parse_selected(reader: &mut Reader<'_>, name: &[u8], uid: bool) -> Read<CommandKind> {
    let kind = match name {
        b"SEARCH" => parse_search(reader, uid)?,
        b"EXPUNGE" if uid => {
            reader.space()?;
            CommandKind::Expunge { uids: Some(sequence_set(reader)?) }
        }
        b"FETCH" => {
            reader.space()?;
            let set = sequence_set(reader)?;
            reader.space()?;
            CommandKind::Fetch { uid, set, attributes: parse_fetch_attributes(reader)? }
        }
        b"STORE" => parse_store(reader, uid)?,
        b"COPY" | b"MOVE" => {
            reader.space()?;
            let set = sequence_set(reader)?;
            let mailbox = mailbox_argument(reader)?;
            if name == b"COPY" {
                CommandKind::Copy { uid, set, mailbox }
            } else {
                CommandKind::Move { uid, set, mailbox }
            }
        }
        _ => {
            let shown: String = name.iter().take(32).map(|&byte| char::from(byte)).collect();
            return Err(ParseError::UnknownCommand(if uid { format!("UID {shown}") } else { shown }).into());
        }
    };
    Ok(kind)
}

fn parse_authenticate(reader: &mut Reader<'_>) -> Read<CommandKind> {
    reader.space()?;
    let mechanism = String::from_utf8_lossy(reader.atom("mechanism")?).to_ascii_uppercase();
    let initial_response = if reader.accept(b' ') {
        let text = reader.take_while(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='));
        Some(sasl::decode_response(text).map_err(ParseError::from)?)
    } else {
        None
    };
    Ok(CommandKind::Authenticate { mechanism, initial_response })
}

/// SP mailbox, decoded and with INBOX normalised.
fn mailbox_argument(reader: &mut Reader<'_>) -> Read<String> {
    reader.space()?;
    let wire = reader.astring("mailbox")?;
    Ok(normalize_inbox(decode_mailbox_name(&wire).ok_or(ParseError::InvalidMailboxName)?))
}

fn list_arguments(reader: &mut Reader<'_>) -> Read<(String, String)> {
    reader.space()?;
    let reference = decode_mailbox_name(&reader.astring("reference")?).ok_or(ParseError::InvalidMailboxName)?;
    reader.space()?;
    let pattern = decode_mailbox_name(&reader.list_mailbox()?).ok_or(ParseError::InvalidMailboxName)?;
    Ok((reference, pattern))
}

fn parse_status(reader: &mut Reader<'_>) -> Read<CommandKind> {
    let mailbox = mailbox_argument(reader)?;
    reader.space()?;
    reader.expect(b'(', "'(' of status items")?;
    let mut items = Vec::new();
    loop {
        let item = match reader.atom("status item")?.to_ascii_uppercase().as_slice() {
            b"MESSAGES" => StatusItem::Messages,
            b"RECENT" => StatusItem::Recent,
            b"UIDNEXT" => StatusItem::UidNext,
            b"UIDVALIDITY" => StatusItem::UidValidity,
            b"UNSEEN" => StatusItem::Unseen,
            _ => return Err(ParseError::Syntax("status item").into()),
        };
        items.push(item);
        if !reader.accept(b' ') {
            break;
        }
    }
    reader.expect(b')', "')' of status items")?;
    Ok(CommandKind::Status { mailbox, items })
}

fn parse_append(reader: &mut Reader<'_>) -> Read<CommandKind> {
    let mailbox = mailbox_argument(reader)?;
    reader.space()?;
    let flags = if reader.peek() == Some(b'(') {
        let flags = flag_list(reader)?;
        reader.space()?;
        flags
    } else {
        Vec::new()
    };
    let date_time = if reader.accept(b'"') {
        let text = reader.take_while(|byte| byte != b'"');
        reader.expect(b'"', "closing quote of date-time")?;
        reader.space()?;
        Some(DateTime::parse(text).ok_or(ParseError::InvalidDate)?)
    } else {
        None
    };
    let message = reader.literal(reader.limits().message_bytes_max)?.to_vec();
    Ok(CommandKind::Append { mailbox, flags, date_time, message })
}

fn parse_search(reader: &mut Reader<'_>, uid: bool) -> Read<CommandKind> {
    reader.space()?;
    let charset = if reader.accept_word("CHARSET") {
        reader.space()?;
        let charset = String::from_utf8_lossy(&reader.astring("charset")?).into_owned();
        if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
            return Err(ParseError::UnsupportedCharset(charset.chars().take(32).collect()).into());
        }
        reader.space()?;
        Some(charset)
    } else {
        None
    };
    let mut criteria = vec![parse_search_key(reader, 1)?];
    while reader.accept(b' ') {
        criteria.push(parse_search_key(reader, 1)?);
    }
    Ok(CommandKind::Search { uid, charset, criteria })
}

fn parse_store(reader: &mut Reader<'_>, uid: bool) -> Read<CommandKind> {
    reader.space()?;
    let set = sequence_set(reader)?;
    reader.space()?;
    let mode = if reader.accept(b'+') {
        StoreMode::Add
    } else if reader.accept(b'-') {
        StoreMode::Remove
    } else {
        StoreMode::Replace
    };
    if !reader.accept_keyword("FLAGS") {
        return Err(ParseError::Syntax("FLAGS").into());
    }
    let silent = reader.accept_keyword(".SILENT");
    reader.space()?;
    let flags = if reader.peek() == Some(b'(') {
        flag_list(reader)?
    } else {
        let mut flags = vec![flag(reader)?];
        while reader.accept(b' ') {
            flags.push(flag(reader)?);
        }
        flags
    };
    Ok(CommandKind::Store { uid, set, mode, silent, flags })
}

/// flag-list: "(" [flag *(SP flag)] ")".
fn flag_list(reader: &mut Reader<'_>) -> Read<Vec<Flag>> {
    reader.expect(b'(', "'(' of flag list")?;
    let mut flags = Vec::new();
    if !reader.accept(b')') {
        loop {
            flags.push(flag(reader)?);
            if !reader.accept(b' ') {
                break;
            }
        }
        reader.expect(b')', "')' of flag list")?;
    }
    Ok(flags)
}

fn flag(reader: &mut Reader<'_>) -> Read<Flag> {
    let system = reader.accept(b'\\');
    let name = String::from_utf8_lossy(reader.atom("flag")?).into_owned();
    Ok(if system { Flag::system(&name) } else { Flag::Keyword(name) })
}
