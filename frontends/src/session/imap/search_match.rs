//! Whether a message matches SEARCH keys (RFC 3501 §6.4.4), in three values: keys on flags,
//! sizes, dates and numbers are decided from the view alone; header and body keys answer
//! "unknown" until the message's content is given, so bodies are read only when needed.

use mail_parser::{Address, HeaderValue, Message, MessageParser, PartType};

use super::section::header_length;
use super::view::ViewMessage;
use crate::proto::imap::{Date, DateTime, Flag, SearchKey};

/// The message being tested and where it sits in the mailbox.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<'a> {
    pub(super) sequence: u32,
    pub(super) count: u32,
    pub(super) largest_uid: u32,
    pub(super) message: &'a ViewMessage,
}

/// A message's bytes, parsed once for all keys.
pub(super) struct Content<'a> {
    raw: &'a [u8],
    parsed: Option<Message<'a>>,
}

impl<'a> Content<'a> {
    pub(super) fn new(raw: &'a [u8]) -> Self {
        Self { raw, parsed: MessageParser::default().parse(raw) }
    }
}

/// All `keys` must match; `None` when that depends on content not given.
pub(super) fn matches_all(
    keys: &[SearchKey],
    candidate: &Candidate<'_>,
    content: Option<&Content<'_>>,
) -> Option<bool> {
    let mut unknown = false;
    for key in keys {
        match matches(key, candidate, content) {
            Some(false) => return Some(false),
            Some(true) => {}
            None => unknown = true,
        }
    }
    if unknown { None } else { Some(true) }
}

fn matches(key: &SearchKey, candidate: &Candidate<'_>, content: Option<&Content<'_>>) -> Option<bool> {
    let message = candidate.message;
    let internal_date = || {
        DateTime::from_unix_seconds(message.internal_date_unix_ms.div_euclid(1000), 0).map(|date_time| date_time.date)
    };
    Some(match key {
        SearchKey::All | SearchKey::Old => true,
        // \Recent is never set (each session sees every message as not recent).
        SearchKey::Recent | SearchKey::New => false,
        SearchKey::Not(inner) => !matches(inner, candidate, content)?,
        SearchKey::Or(left, right) => match (matches(left, candidate, content), matches(right, candidate, content)) {
            (Some(true), _) | (_, Some(true)) => true,
            (Some(false), Some(false)) => false,
            _ => return None,
        },
        SearchKey::And(keys) => matches_all(keys, candidate, content)?,
        SearchKey::SequenceSet(set) => set.contains(candidate.sequence, candidate.count),
        SearchKey::Uid(set) => set.contains(message.uid, candidate.largest_uid),
        SearchKey::Larger(size) => message.size > u64::from(*size),
        SearchKey::Smaller(size) => message.size < u64::from(*size),
        SearchKey::Before(date) => internal_date().is_some_and(|day| day < *date),
        SearchKey::On(date) => internal_date() == Some(*date),
        SearchKey::Since(date) => internal_date().is_some_and(|day| day >= *date),
        SearchKey::SentBefore(date) => sent_date(content?).is_some_and(|day| day < *date),
        SearchKey::SentOn(date) => sent_date(content?) == Some(*date),
        SearchKey::SentSince(date) => sent_date(content?).is_some_and(|day| day >= *date),
        SearchKey::From(text) => header_contains(content?, "From", text),
        SearchKey::To(text) => header_contains(content?, "To", text),
        SearchKey::Cc(text) => header_contains(content?, "Cc", text),
        SearchKey::Bcc(text) => header_contains(content?, "Bcc", text),
        SearchKey::Subject(text) => header_contains(content?, "Subject", text),
        SearchKey::Header(field, text) => header_contains(content?, field, text),
        SearchKey::Body(text) => body_contains(content?, text),
        SearchKey::Text(text) => {
            let content = content?;
            let header = &content.raw[..header_length(content.raw)];
            contains(&String::from_utf8_lossy(header), text) || body_contains(content, text)
        }
        flag_key => {
            let (flag, wanted) = flag_key.flag()?;
            has_flag(message, &flag) == wanted
        }
    })
}

fn has_flag(message: &ViewMessage, flag: &Flag) -> bool {
    match super::flags::from_imap(std::slice::from_ref(flag)) {
        Ok(flags) if !flags.keywords.is_empty() => message
            .flags
            .keywords
            .iter()
            .any(|keyword| flags.keywords.iter().any(|wanted| keyword.eq_ignore_ascii_case(wanted))),
        Ok(flags) => flags.system != 0 && message.flags.contains(flags.system),
        Err(_) => false,
    }
}

/// Case-insensitive substring test (RFC 3501: "case-insensitive substring").
fn contains(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// The Date header's calendar date as written (SENT* keys ignore time and zone).
fn sent_date(content: &Content<'_>) -> Option<Date> {
    let date = content.parsed.as_ref()?.date()?;
    Date::new(date.year, date.month, date.day)
}

/// Whether any `field` header contains `text`, raw or decoded (RFC 2047 words, addresses).
/// An empty `text` matches any message that has the field.
fn header_contains(content: &Content<'_>, field: &str, text: &str) -> bool {
    let Some(parsed) = &content.parsed else { return false };
    parsed.headers().iter().filter(|header| header.name.as_str().eq_ignore_ascii_case(field)).any(|header| {
        let raw = content.raw.get(header.offset_start as usize..header.offset_end as usize).unwrap_or_default();
        contains(&String::from_utf8_lossy(raw), text)
            || decoded_value(&header.value).is_some_and(|value| contains(&value, text))
    })
}

fn decoded_value(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(text) => Some(text.to_string()),
        HeaderValue::TextList(list) => Some(list.join(" ")),
        HeaderValue::Address(address) => {
            let addresses: Vec<String> = match address {
                Address::List(list) => list.iter().map(address_text).collect(),
                Address::Group(groups) => {
                    groups.iter().flat_map(|group| group.addresses.iter().map(address_text)).collect()
                }
            };
            Some(addresses.join(", "))
        }
        _ => None,
    }
}

fn address_text(address: &mail_parser::Addr<'_>) -> String {
    match (&address.name, &address.address) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        (None, Some(email)) => email.to_string(),
        (Some(name), None) => name.to_string(),
        (None, None) => String::new(),
    }
}

/// The body, raw (after the header) or as decoded text parts (base64, quoted-printable).
fn body_contains(content: &Content<'_>, text: &str) -> bool {
    let body = &content.raw[header_length(content.raw)..];
    if contains(&String::from_utf8_lossy(body), text) {
        return true;
    }
    let Some(parsed) = &content.parsed else { return false };
    parsed.parts.iter().any(|part| match &part.body {
        PartType::Text(decoded) | PartType::Html(decoded) => contains(decoded, text),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use mailvault_engine::Flags;

    use super::*;
    use crate::proto::Limits;
    use crate::proto::imap::{CommandKind, Parsed, parse_command};

    fn keys(text: &str) -> Vec<SearchKey> {
        let command = format!("a SEARCH {text}\r\n");
        let Ok(Parsed::Complete { value, .. }) = parse_command(command.as_bytes(), &Limits::imap()) else {
            panic!("{text}")
        };
        let CommandKind::Search { criteria, .. } = value.kind else { panic!() };
        criteria
    }

    const RAW: &[u8] = b"Date: Tue, 3 Mar 2026 10:00:00 +0100\r\nFrom: =?UTF-8?Q?Ren=C3=A9?= <rene@example.com>\r\n\
        To: bob@example.org\r\nSubject: Quarterly report\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        SGVsbG8gcGluZWFwcGxl\r\n";

    fn check(text: &str, flags: u8) -> Option<bool> {
        let message = ViewMessage {
            uid: 7,
            flags: Flags { system: flags, keywords: vec!["$Work".into()] },
            size: 300,
            internal_date_unix_ms: 1_772_528_400_000,
        };
        let candidate = Candidate { sequence: 2, count: 5, largest_uid: 9, message: &message };
        let content = Content::new(RAW);
        let without = matches_all(&keys(text), &candidate, None);
        let with = matches_all(&keys(text), &candidate, Some(&content));
        if let Some(decided) = without {
            assert_eq!(Some(decided), with, "{text}: decided without content, differently with it");
        }
        with
    }

    #[test]
    fn flags_numbers_and_sizes_need_no_content() {
        let message = ViewMessage { uid: 7, flags: Flags::default(), size: 300, internal_date_unix_ms: 0 };
        let candidate = Candidate { sequence: 2, count: 5, largest_uid: 9, message: &message };
        for (text, expected) in [("UNSEEN LARGER 100", true), ("SEEN", false), ("2 UID 7", true), ("OR SEEN 3", false)]
        {
            assert_eq!(matches_all(&keys(text), &candidate, None), Some(expected), "{text}");
        }
        assert_eq!(matches_all(&keys("SUBJECT x"), &candidate, None), None);
        assert_eq!(matches_all(&keys("SEEN SUBJECT x"), &candidate, None), Some(false), "decided by the flag");
    }

    #[test]
    fn headers_bodies_and_dates() {
        assert_eq!(check("SUBJECT quarterly", 0), Some(true));
        assert_eq!(check("CHARSET UTF-8 FROM \"rené\"", 0), Some(true), "decoded RFC 2047 name");
        assert_eq!(check("FROM rene@example", 0), Some(true));
        assert_eq!(check("TO alice", 0), Some(false));
        assert_eq!(check("HEADER Content-Transfer-Encoding base64", 0), Some(true));
        assert_eq!(check("HEADER X-Missing \"\"", 0), Some(false));
        assert_eq!(check("BODY PINEAPPLE", 0), Some(true), "decoded base64 body");
        assert_eq!(check("TEXT bob@", 0), Some(true));
        assert_eq!(check("SENTON 3-Mar-2026", 0), Some(true));
        assert_eq!(check("SENTBEFORE 3-Mar-2026", 0), Some(false));
        assert_eq!(check("ON 3-Mar-2026 SINCE 1-Mar-2026 BEFORE 4-Mar-2026", 0), Some(true));
        assert_eq!(check("KEYWORD $work FLAGGED", Flags::FLAGGED), Some(true));
        assert_eq!(check("NOT (SUBJECT report) OR NEW DELETED", 0), Some(false));
    }
}
