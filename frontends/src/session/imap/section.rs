//! The bytes a `BODY[section]<partial>` names (RFC 3501 §6.4.5): the whole message, its
//! header or text, selected header fields, or a MIME part by number (descending into attached
//! messages), each cut to the requested byte range.

use std::borrow::Cow;
use std::num::NonZeroU32;

use mail_parser::{Message, MessageParser, MessagePart, PartType};

use crate::proto::imap::{Partial, Section, SectionText};

/// The part or text `section` names, cut to `partial`; `None` when there is no such part.
pub(super) fn extract<'a>(message: &'a [u8], section: &Section, partial: Option<Partial>) -> Option<Cow<'a, [u8]>> {
    let whole = if section.part.is_empty() {
        top_level(message, section.text.as_ref())?
    } else {
        let parsed = MessageParser::default().parse(message)?;
        Cow::Owned(nested(&parsed, &section.part, section.text.as_ref())?)
    };
    Some(match partial {
        None => whole,
        Some(partial) => cut(whole, partial),
    })
}

/// Bytes `origin .. origin + length`, empty when the origin is past the end.
fn cut(data: Cow<'_, [u8]>, partial: Partial) -> Cow<'_, [u8]> {
    let start = (partial.origin as usize).min(data.len());
    let end = start.saturating_add(partial.length.get() as usize).min(data.len());
    match data {
        Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[start..end]),
        Cow::Owned(bytes) => Cow::Owned(bytes[start..end].to_vec()),
    }
}

/// The section of the message itself; no MIME parsing needed.
fn top_level<'a>(message: &'a [u8], text: Option<&SectionText>) -> Option<Cow<'a, [u8]>> {
    let header_end = header_length(message);
    Some(match text {
        None => Cow::Borrowed(message),
        Some(SectionText::Header) => Cow::Borrowed(&message[..header_end]),
        Some(SectionText::Text) => Cow::Borrowed(&message[header_end..]),
        Some(SectionText::HeaderFields(names)) => Cow::Owned(header_fields(&message[..header_end], names, true)),
        Some(SectionText::HeaderFieldsNot(names)) => Cow::Owned(header_fields(&message[..header_end], names, false)),
        Some(SectionText::Mime) => return None,
    })
}

/// Length of the header block including the empty line that ends it (the whole message if
/// there is no empty line): the first `\r\n\r\n` or `\n\n`, so a bare-LF message ends its
/// header at the first empty LF line.
///
/// One pass from line end to line end, stopping at the header's end: a search of the whole
/// message for each pattern (as before) read every byte of a CRLF message twice looking for
/// `\n\n`, on every FETCH of a body; that was a quarter of the server's CPU in the load test
/// (bench/README.md, session 20).
pub(super) fn header_length(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 2;
    }
    if message.starts_with(b"\n") {
        return 1;
    }
    let mut from = 0;
    while let Some(offset) = memchr::memchr(b'\n', &message[from..]) {
        let line_end = from + offset;
        let after = &message[line_end + 1..];
        if after.starts_with(b"\n") {
            return line_end + 2;
        }
        if after.starts_with(b"\r\n") && line_end > 0 && message[line_end - 1] == b'\r' {
            return line_end + 3;
        }
        from = line_end + 1;
    }
    message.len()
}

/// The fields of `header` whose names are (or, with `keep` false, are not) in `names`,
/// followed by the empty line (RFC 3501: the subset includes the blank line).
pub(super) fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields(header) {
        let name = field.split(|&byte| byte == b':').next().unwrap_or_default().trim_ascii();
        let listed = names.iter().any(|wanted| wanted.as_bytes().eq_ignore_ascii_case(name));
        if listed == keep {
            out.extend_from_slice(field);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Each header field with its continuation lines and line end, up to the empty line.
fn fields(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = header;
    std::iter::from_fn(move || {
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        let mut end = 0;
        loop {
            let line_end =
                rest[end..].iter().position(|&byte| byte == b'\n').map_or(rest.len(), |position| end + position + 1);
            end = line_end;
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        let (field, remaining) = rest.split_at(end);
        rest = remaining;
        Some(field)
    })
}

/// A numbered part, then the text the section asks of it.
fn nested(message: &Message<'_>, path: &[NonZeroU32], text: Option<&SectionText>) -> Option<Vec<u8>> {
    let (owner, part) = find_part(message, path)?;
    let raw = owner.raw_message.as_ref();
    let span = |start: u32, end: u32| raw.get(start as usize..end as usize).map(<[u8]>::to_vec);
    match text {
        None => span(part.offset_body, part.offset_end),
        Some(SectionText::Mime) => span(part.offset_header, part.offset_body),
        Some(text) => {
            // HEADER, TEXT and HEADER.FIELDS after a part number apply to an attached message.
            let PartType::Message(attached) = &part.body else { return None };
            let root = attached.parts.first()?;
            let attached_raw = attached.raw_message.as_ref();
            let header = attached_raw.get(root.offset_header as usize..root.offset_body as usize)?;
            Some(match text {
                SectionText::Header => header.to_vec(),
                SectionText::Text => attached_raw.get(root.offset_body as usize..root.offset_end as usize)?.to_vec(),
                SectionText::HeaderFields(names) => header_fields(header, names, true),
                SectionText::HeaderFieldsNot(names) => header_fields(header, names, false),
                SectionText::Mime => return None,
            })
        }
    }
}

/// Follows part numbers: into multipart children, and through attached messages
/// (`2.1` is the first part of the message attached as part 2). Part 1 of a message that is
/// not multipart is its body.
fn find_part<'m>(message: &'m Message<'m>, path: &[NonZeroU32]) -> Option<(&'m Message<'m>, &'m MessagePart<'m>)> {
    let mut owner = message;
    let mut part = owner.parts.first()?;
    let mut at_message_root = true;
    for number in path {
        let index = number.get() as usize - 1;
        if !at_message_root && let PartType::Message(attached) = &part.body {
            owner = attached;
            part = owner.parts.first()?;
        }
        match &part.body {
            PartType::Multipart(children) => {
                part = owner.parts.get(*children.get(index)? as usize)?;
                at_message_root = false;
            }
            _ if index == 0 && std::ptr::eq(part, owner.parts.first()?) => at_message_root = false,
            _ => return None,
        }
    }
    Some((owner, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &[u8] = b"From: a@b.c\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
        preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n\
        --XX\r\nContent-Type: message/rfc822\r\n\r\n\
        Subject: inner\r\nContent-Type: multipart/alternative; boundary=\"YY\"\r\n\r\n\
        --YY\r\nContent-Type: text/plain\r\n\r\ninner plain\r\n--YY\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n--YY--\r\n\
        \r\n--XX--\r\n";

    fn section(text: &str) -> Section {
        let parsed = crate::proto::imap::parse_command(
            format!("a FETCH 1 BODY[{text}]\r\n").as_bytes(),
            &crate::proto::Limits::imap(),
        );
        let Ok(crate::proto::imap::Parsed::Complete { value, .. }) = parsed else { panic!("{text}") };
        let crate::proto::imap::CommandKind::Fetch { attributes, .. } = value.kind else { panic!() };
        let crate::proto::imap::FetchAttribute::BodySection { section, .. } = attributes.expand().remove(0) else {
            panic!()
        };
        section
    }

    fn get(message: &[u8], text: &str) -> Option<String> {
        extract(message, &section(text), None).map(|bytes| String::from_utf8(bytes.into_owned()).unwrap())
    }

    #[test]
    fn whole_header_and_text() {
        let message = b"Subject: hi\r\nTo: x@y.z\r\n\r\nbody\r\n";
        assert_eq!(get(message, "").unwrap().as_bytes(), message);
        assert_eq!(get(message, "HEADER").unwrap(), "Subject: hi\r\nTo: x@y.z\r\n\r\n");
        assert_eq!(get(message, "TEXT").unwrap(), "body\r\n");
        assert_eq!(get(message, "HEADER.FIELDS (to)").unwrap(), "To: x@y.z\r\n\r\n");
        assert_eq!(get(message, "HEADER.FIELDS.NOT (TO)").unwrap(), "Subject: hi\r\n\r\n");
        assert_eq!(get(message, "1").unwrap(), "body\r\n");
        assert_eq!(get(message, "2"), None);
        let partial = Partial { origin: 2, length: NonZeroU32::new(3).unwrap() };
        assert_eq!(extract(message, &section("TEXT"), Some(partial)).unwrap().as_ref(), b"dy\r");
        let beyond = Partial { origin: 900, length: NonZeroU32::new(3).unwrap() };
        assert_eq!(extract(message, &section(""), Some(beyond)).unwrap().as_ref(), b"");
    }

    /// The definition, as a search of the whole message for each pattern: the oracle for the
    /// one-pass scan.
    fn header_length_by_search(message: &[u8]) -> usize {
        if message.starts_with(b"\r\n") {
            return 2;
        }
        if message.starts_with(b"\n") {
            return 1;
        }
        let crlf = message.windows(4).position(|window| window == b"\r\n\r\n").map(|position| position + 4);
        let lf = message.windows(2).position(|window| window == b"\n\n").map(|position| position + 2);
        match (crlf, lf) {
            (Some(crlf), Some(lf)) => crlf.min(lf),
            (Some(end), None) | (None, Some(end)) => end,
            (None, None) => message.len(),
        }
    }

    proptest::proptest! {
        /// Messages drawn from line-ending bytes and a letter, so empty lines of every kind,
        /// mixed endings and stray carriage returns come up often.
        #[test]
        fn the_header_ends_where_the_first_empty_line_does(
            message in proptest::collection::vec(proptest::sample::select(vec![b'\r', b'\n', b'a', b':']), 0..64)
        ) {
            proptest::prop_assert_eq!(header_length(&message), header_length_by_search(&message));
        }
    }

    #[test]
    fn header_ends_at_the_first_empty_line_of_either_kind() {
        for (message, end) in [
            (&b"A: b\r\n\r\nbody\n\nmore"[..], 8),
            (b"A: b\n\nbody\r\n\r\n", 6),
            (b"A: b\n\r\nbody", 11), // an LF line end then a CRLF one is no empty line: all header
            (b"\r\nbody", 2),
            (b"\nbody", 1),
            (b"A: b\r\nno empty line", 19),
            (b"", 0),
        ] {
            assert_eq!(header_length(message), end, "{:?}", String::from_utf8_lossy(message));
        }
    }

    #[test]
    fn folded_fields_stay_whole() {
        let message = b"Subject: one\r\n two\r\nX-A: b\r\n\r\n";
        assert_eq!(get(message, "HEADER.FIELDS (SUBJECT)").unwrap(), "Subject: one\r\n two\r\n\r\n");
    }

    #[test]
    fn parts_and_attached_messages() {
        assert_eq!(get(MULTIPART, "1").unwrap(), "first part");
        assert_eq!(get(MULTIPART, "1.MIME").unwrap(), "Content-Type: text/plain\r\n\r\n");
        assert_eq!(get(MULTIPART, "2.HEADER").unwrap().lines().next().unwrap(), "Subject: inner");
        assert_eq!(get(MULTIPART, "2.HEADER.FIELDS (SUBJECT)").unwrap(), "Subject: inner\r\n\r\n");
        assert_eq!(get(MULTIPART, "2.1").unwrap(), "inner plain");
        assert_eq!(get(MULTIPART, "2.2").unwrap(), "<p>inner</p>");
        assert!(get(MULTIPART, "2").unwrap().starts_with("Subject: inner\r\n"));
        assert_eq!(get(MULTIPART, "3"), None);
        assert_eq!(get(MULTIPART, "1.1"), None);
        assert_eq!(get(MULTIPART, "1.HEADER"), None);
    }
}
