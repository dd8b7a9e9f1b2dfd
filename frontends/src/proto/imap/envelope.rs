//! ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) computed from a raw message with
//! `mail-parser`, rendered as the bytes that follow the item name in a FETCH response.

use std::borrow::Cow;

use mail_parser::{
    Addr, Address, ContentType, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use super::string::{write_nstring, write_string};
use crate::proto::base64;

/// How deep BODYSTRUCTURE follows multiparts and attached messages; deeper parts are
/// described as opaque (mail-parser bounds its own nesting as well).
const NESTING_DEPTH_MAX: usize = 32;
/// Most parts described for one message. mail-parser can hand back parts whose children form a
/// cycle (found by fuzzing: a 141-byte message expanded to billions of parts); a budget bounds
/// the walk whatever the shape, and real messages stay far below it.
const PARTS_MAX: usize = 1000;

/// The three structures of one message, each ready for [`FetchData`](super::FetchData).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStructure {
    /// `(date subject from sender reply-to to cc bcc in-reply-to message-id)`.
    pub envelope: Vec<u8>,
    /// BODY: the structure without extension data.
    pub body: Vec<u8>,
    /// BODYSTRUCTURE: the structure with extension data.
    pub body_structure: Vec<u8>,
}

/// Parses `raw_message` once and renders all three structures. Never fails: what cannot be
/// parsed is described as an empty text/plain message.
pub fn message_structure(raw_message: &[u8]) -> MessageStructure {
    let Some(message) = MessageParser::default().parse(raw_message) else {
        let mut envelope = Vec::new();
        write_empty_envelope(&mut envelope);
        let fallback =
            format!("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" {} 0)", raw_message.len());
        return MessageStructure {
            envelope,
            body: fallback.clone().into_bytes(),
            body_structure: fallback.into_bytes(),
        };
    };
    let mut envelope = Vec::new();
    write_envelope(&message, &mut envelope);
    let mut body = Vec::new();
    write_part(&message, 0, false, 0, &mut { PARTS_MAX }, &mut body);
    let mut body_structure = Vec::new();
    write_part(&message, 0, true, 0, &mut { PARTS_MAX }, &mut body_structure);
    MessageStructure { envelope, body, body_structure }
}

fn write_empty_envelope(out: &mut Vec<u8>) {
    out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
}

/// A header's raw value, unfolded and trimmed (ENVELOPE carries headers undecoded).
fn raw_header<'a>(message: &'a Message<'_>, name: HeaderName<'static>) -> Option<Cow<'a, str>> {
    let raw = message.header_raw(name)?;
    let trimmed = raw.trim();
    Some(if trimmed.contains(['\r', '\n']) {
        Cow::Owned(trimmed.replace("\r\n", "").replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(trimmed)
    })
}

fn write_envelope(message: &Message<'_>, out: &mut Vec<u8>) {
    out.push(b'(');
    let date = raw_header(message, HeaderName::Date);
    write_nstring(date.as_deref().map(str::as_bytes), out);
    out.push(b' ');
    let subject = raw_header(message, HeaderName::Subject);
    write_nstring(subject.as_deref().map(str::as_bytes), out);
    let from = message.from();
    // RFC 3501 §7.4.2: sender and reply-to default to from.
    for addresses in
        [from, message.sender().or(from), message.reply_to().or(from), message.to(), message.cc(), message.bcc()]
    {
        out.push(b' ');
        write_address_list(addresses, out);
    }
    for name in [HeaderName::InReplyTo, HeaderName::MessageId] {
        out.push(b' ');
        let value = raw_header(message, name);
        write_nstring(value.as_deref().map(str::as_bytes), out);
    }
    out.push(b')');
}

fn write_address_list(addresses: Option<&Address<'_>>, out: &mut Vec<u8>) {
    let mut items = Vec::new();
    match addresses {
        Some(Address::List(list)) => {
            for address in list {
                write_address(address, &mut items);
            }
        }
        Some(Address::Group(groups)) => {
            for group in groups {
                if let Some(name) = &group.name {
                    // Group start: (NIL NIL "name" NIL), members, then (NIL NIL NIL NIL).
                    items.extend_from_slice(b"(NIL NIL ");
                    write_string(name.as_bytes(), &mut items);
                    items.extend_from_slice(b" NIL)");
                    group.addresses.iter().for_each(|address| write_address(address, &mut items));
                    items.extend_from_slice(b"(NIL NIL NIL NIL)");
                } else {
                    group.addresses.iter().for_each(|address| write_address(address, &mut items));
                }
            }
        }
        None => {}
    }
    if items.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        out.extend_from_slice(&items);
        out.push(b')');
    }
}

fn write_address(address: &Addr<'_>, out: &mut Vec<u8>) {
    let Some(email) = address.address.as_deref() else {
        return;
    };
    let (mailbox, host) = match email.rsplit_once('@') {
        Some((mailbox, host)) => (mailbox, host),
        None => (email, "MISSING_DOMAIN"),
    };
    out.push(b'(');
    match address.name.as_deref() {
        Some(name) if name.is_ascii() => write_string(name.as_bytes(), out),
        // mail-parser decodes RFC 2047; ENVELOPE is 7-bit, so encode the name again.
        Some(name) => write_string(format!("=?UTF-8?B?{}?=", base64::encode(name.as_bytes())).as_bytes(), out),
        None => out.extend_from_slice(b"NIL"),
    }
    out.extend_from_slice(b" NIL ");
    write_string(mailbox.as_bytes(), out);
    out.push(b' ');
    write_string(host.as_bytes(), out);
    out.push(b')');
}

/// Writes the part `part_id` of `message` (0 is the root).
fn write_part(
    message: &Message<'_>,
    part_id: u32,
    extensible: bool,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<u8>,
) {
    let part = message.parts.get(part_id as usize).filter(|_| *budget > 0);
    let Some(part) = part else {
        out.extend_from_slice(b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)");
        return;
    };
    *budget -= 1;
    match &part.body {
        PartType::Multipart(children) if depth < NESTING_DEPTH_MAX && !children.is_empty() => {
            out.push(b'(');
            for &child in children {
                write_part(message, child, extensible, depth + 1, budget, out);
            }
            out.push(b' ');
            let subtype = part.content_type().and_then(ContentType::subtype).unwrap_or("mixed");
            write_string(subtype.to_ascii_uppercase().as_bytes(), out);
            if extensible {
                out.push(b' ');
                write_parameters(part.content_type(), out);
                write_extension_tail(part, out);
            }
            out.push(b')');
        }
        _ => write_single_part(message, part, extensible, depth, budget, out),
    }
}

fn write_single_part(
    message: &Message<'_>,
    part: &MessagePart<'_>,
    extensible: bool,
    depth: usize,
    budget: &mut usize,
    out: &mut Vec<u8>,
) {
    let content_type = part.content_type();
    let (media_type, subtype) = match content_type {
        Some(content_type) => {
            (content_type.ctype().to_ascii_uppercase(), content_type.subtype().unwrap_or("").to_ascii_uppercase())
        }
        None => ("TEXT".to_owned(), "PLAIN".to_owned()),
    };
    let raw_body = message.raw_message.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default();
    out.push(b'(');
    write_string(media_type.as_bytes(), out);
    out.push(b' ');
    write_string(subtype.as_bytes(), out);
    out.push(b' ');
    if content_type.is_some() {
        write_parameters(content_type, out);
    } else {
        out.extend_from_slice(b"(\"CHARSET\" \"US-ASCII\")");
    }
    out.push(b' ');
    write_nstring(part.content_id().map(str::as_bytes), out);
    out.push(b' ');
    write_nstring(part.content_description().map(str::as_bytes), out);
    out.push(b' ');
    let encoding = part.content_transfer_encoding().unwrap_or("7BIT").to_ascii_uppercase();
    write_string(encoding.as_bytes(), out);
    out.extend_from_slice(format!(" {}", raw_body.len()).as_bytes());
    let lines = raw_body.split(|&byte| byte == b'\n').count() - 1;
    if let PartType::Message(nested) = &part.body
        && media_type == "MESSAGE"
        && subtype == "RFC822"
        && depth < NESTING_DEPTH_MAX
    {
        out.push(b' ');
        write_envelope(nested, out);
        out.push(b' ');
        write_part(nested, 0, extensible, depth + 1, budget, out);
        out.extend_from_slice(format!(" {lines}").as_bytes());
    } else if media_type == "TEXT" {
        out.extend_from_slice(format!(" {lines}").as_bytes());
    }
    if extensible {
        // body-fld-md5: we do not compute Content-MD5.
        out.extend_from_slice(b" NIL");
        write_extension_tail(part, out);
    }
    out.push(b')');
}

/// `("NAME" "value" ...)` or NIL.
fn write_parameters(content_type: Option<&ContentType<'_>>, out: &mut Vec<u8>) {
    match content_type.and_then(ContentType::attributes).filter(|attributes| !attributes.is_empty()) {
        Some(attributes) => {
            out.push(b'(');
            for (index, attribute) in attributes.iter().enumerate() {
                if index > 0 {
                    out.push(b' ');
                }
                write_string(attribute.name.to_ascii_uppercase().as_bytes(), out);
                out.push(b' ');
                write_string(attribute.value.as_bytes(), out);
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

/// ` disposition language location`.
fn write_extension_tail(part: &MessagePart<'_>, out: &mut Vec<u8>) {
    out.push(b' ');
    match part.content_disposition() {
        Some(disposition) => {
            out.push(b'(');
            write_string(disposition.ctype().to_ascii_uppercase().as_bytes(), out);
            out.push(b' ');
            write_parameters(Some(disposition), out);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match part.content_language() {
        HeaderValue::Text(language) => write_string(language.as_bytes(), out),
        HeaderValue::TextList(languages) if !languages.is_empty() => {
            out.push(b'(');
            for (index, language) in languages.iter().enumerate() {
                if index > 0 {
                    out.push(b' ');
                }
                write_string(language.as_bytes(), out);
            }
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    write_nstring(part.content_location().map(str::as_bytes), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn simple_message_envelope_and_structure() {
        let raw = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
            From: Terry Gray <gray@cac.washington.edu>\r\n\
            Subject: IMAP4rev1 WG mtg summary\r\n\
            To: imap@cac.washington.edu\r\n\
            Cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n\
            Message-Id: <B27397-0100000@cac.washington.edu>\r\n\
            \r\n\
            Hello\r\nWorld\r\n";
        let structure = message_structure(raw);
        assert_eq!(
            text(&structure.envelope),
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary\" \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
             ((NIL NIL \"imap\" \"cac.washington.edu\")) \
             ((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
             NIL NIL \"<B27397-0100000@cac.washington.edu>\")"
        );
        assert_eq!(text(&structure.body), "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 14 2)");
        assert_eq!(
            text(&structure.body_structure),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 14 2 NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn multipart_with_attachment() {
        let raw = b"From: a@b.c\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
            --XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n\
            --XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
            Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nAAAA\r\n--XX--\r\n";
        let structure = message_structure(raw);
        let body = text(&structure.body);
        assert!(body.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" "), "{body}");
        assert!(body.contains("(\"APPLICATION\" \"PDF\" (\"NAME\" \"a.pdf\") NIL NIL \"BASE64\" "), "{body}");
        assert!(body.ends_with(" \"MIXED\")"), "{body}");
        let extended = text(&structure.body_structure);
        assert!(extended.contains("(\"ATTACHMENT\" (\"FILENAME\" \"a.pdf\"))"), "{extended}");
        assert!(extended.contains("\"MIXED\" (\"BOUNDARY\" \"XX\") NIL NIL NIL)"), "{extended}");
    }

    #[test]
    fn encoded_names_stay_seven_bit() {
        let raw = "From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.com>\r\n\r\nx\r\n".as_bytes();
        let envelope = message_structure(raw).envelope;
        assert!(envelope.is_ascii());
        assert!(text(&envelope).contains("((\"=?UTF-8?B?UmVuw6k=?=\" NIL \"rene\" \"example.com\"))"));
    }

    /// Found by fuzzing (`fuzz/corpus/message_structure/regression-cyclic-parts`): mail-parser
    /// returns a multipart that lists itself among its children; describing it once took
    /// gigabytes and minutes. Now the walk stops at the part budget.
    #[test]
    fn cyclic_parts_are_described_within_the_budget() {
        let message = hex::decode(concat!(
            "436f6e74656e742d747970653a6d756c7469706172743b626f756e646172793d42310a0a2d2d4231436f6e74656e742d",
            "547970653a6d6573736167652f7266633832320a0a6e0a436f6e74656e742d547970653a6d6573736167652f72666338",
            "32320a0a0a2d2d4231436f6e74656e742d547970653a6d6573736167652f7266633832320a0a0a2d2d42312d2d",
        ))
        .expect("hex");
        let structure = message_structure(&message);
        assert!(structure.body_structure.len() < 1 << 20, "{} bytes", structure.body_structure.len());
    }

    #[test]
    fn garbage_does_not_panic() {
        for raw in [&b""[..], b"\r\n", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", b"\xff\xfe:\r\n"] {
            let structure = message_structure(raw);
            assert!(structure.envelope.starts_with(b"("));
            assert!(structure.body_structure.starts_with(b"("));
        }
    }
}
