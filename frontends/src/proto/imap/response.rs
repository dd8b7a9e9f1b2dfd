//! IMAP server responses (RFC 3501 §7): status responses with codes, untagged data, FETCH
//! items and continuation requests, each appended to an output buffer.

use std::fmt;

use super::command::{StatusItem, Tag};
use super::date_time::DateTime;
use super::fetch::Section;
use super::flag::{Flag, write_flag_list};
use super::mailbox_name::encode_mailbox_name;
use super::sequence_set::SequenceSet;
use super::string::{write_astring, write_nstring, write_string};

/// The condition of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`: the command failed.
    No,
    /// `BAD`: the command was not understood.
    Bad,
    /// `PREAUTH` (greeting only).
    PreAuth,
    /// `BYE` (untagged only): the server is closing the connection.
    Bye,
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Ok => "OK",
            Self::No => "NO",
            Self::Bad => "BAD",
            Self::PreAuth => "PREAUTH",
            Self::Bye => "BYE",
        })
    }
}

/// A response code, in brackets after the status (RFC 3501 §7.1, RFC 4315, RFC 5530).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `ALERT`: show the text to the user.
    Alert,
    /// `BADCHARSET (UTF-8 US-ASCII)`.
    BadCharset,
    /// `CAPABILITY ...` (in the greeting or after login).
    Capability(Vec<String>),
    /// `PARSE`: a message's header could not be parsed.
    Parse,
    /// `PERMANENTFLAGS (...)`, with `\*` when new keywords may be created.
    PermanentFlags {
        /// The flags that can be changed for good.
        flags: Vec<Flag>,
        /// Whether clients may create keywords.
        keywords_allowed: bool,
    },
    /// `READ-ONLY`.
    ReadOnly,
    /// `READ-WRITE`.
    ReadWrite,
    /// `TRYCREATE`: the target mailbox does not exist yet.
    TryCreate,
    /// `UIDNEXT n`.
    UidNext(u32),
    /// `UIDVALIDITY n`.
    UidValidity(u32),
    /// `UNSEEN n`: the first unseen message's sequence number.
    Unseen(u32),
    /// `APPENDUID validity uid` (RFC 4315).
    AppendUid {
        /// The target mailbox's UIDVALIDITY.
        uid_validity: u32,
        /// The new message's UID(s).
        uids: SequenceSet,
    },
    /// `COPYUID validity source destination` (RFC 4315).
    CopyUid {
        /// The target mailbox's UIDVALIDITY.
        uid_validity: u32,
        /// UIDs of the copied messages.
        source: SequenceSet,
        /// Their UIDs in the target, in the same order.
        destination: SequenceSet,
    },
    /// `NONEXISTENT` (RFC 5530).
    Nonexistent,
    /// `ALREADYEXISTS` (RFC 5530).
    AlreadyExists,
    /// `AUTHENTICATIONFAILED` (RFC 5530).
    AuthenticationFailed,
    /// `LIMIT` (RFC 5530): a limit of ours was hit.
    Limit,
    /// `SERVERBUG` (RFC 5530).
    ServerBug,
    /// `UNAVAILABLE` (RFC 5530): a subsystem is down for now; the client may retry later.
    Unavailable,
}

impl ResponseCode {
    fn write_to(&self, out: &mut Vec<u8>) {
        let text = match self {
            Self::Alert => "ALERT".to_owned(),
            Self::BadCharset => "BADCHARSET (UTF-8 US-ASCII)".to_owned(),
            Self::Capability(capabilities) => format!("CAPABILITY {}", capabilities.join(" ")),
            Self::Parse => "PARSE".to_owned(),
            Self::PermanentFlags { flags, keywords_allowed } => {
                out.extend_from_slice(b"PERMANENTFLAGS ");
                let mut list = Vec::new();
                write_flag_list(flags, &mut list);
                if *keywords_allowed {
                    list.pop();
                    if !flags.is_empty() {
                        list.push(b' ');
                    }
                    list.extend_from_slice(b"\\*)");
                }
                out.extend_from_slice(&list);
                return;
            }
            Self::ReadOnly => "READ-ONLY".to_owned(),
            Self::ReadWrite => "READ-WRITE".to_owned(),
            Self::TryCreate => "TRYCREATE".to_owned(),
            Self::UidNext(uid) => format!("UIDNEXT {uid}"),
            Self::UidValidity(validity) => format!("UIDVALIDITY {validity}"),
            Self::Unseen(number) => format!("UNSEEN {number}"),
            Self::AppendUid { uid_validity, uids } => format!("APPENDUID {uid_validity} {uids}"),
            Self::CopyUid { uid_validity, source, destination } => {
                format!("COPYUID {uid_validity} {source} {destination}")
            }
            Self::Nonexistent => "NONEXISTENT".to_owned(),
            Self::AlreadyExists => "ALREADYEXISTS".to_owned(),
            Self::AuthenticationFailed => "AUTHENTICATIONFAILED".to_owned(),
            Self::Limit => "LIMIT".to_owned(),
            Self::ServerBug => "SERVERBUG".to_owned(),
            Self::Unavailable => "UNAVAILABLE".to_owned(),
        };
        out.extend_from_slice(text.as_bytes());
    }
}

/// Human-readable text: CR, LF and other controls become spaces, so no text can end a line.
fn write_text(text: &str, out: &mut Vec<u8>) {
    out.extend(text.bytes().map(|byte| if byte.is_ascii_control() { b' ' } else { byte }));
}

fn write_status_tail(status: Status, code: Option<&ResponseCode>, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    if let Some(code) = code {
        out.push(b'[');
        code.write_to(out);
        out.extend_from_slice(b"] ");
    }
    write_text(text, out);
    out.extend_from_slice(b"\r\n");
}

/// `tag OK [code] text`: the completion of a command.
pub fn write_tagged(tag: &Tag, status: Status, code: Option<&ResponseCode>, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(tag.as_str().as_bytes());
    out.push(b' ');
    write_status_tail(status, code, text, out);
}

/// `* OK [code] text` (also the greeting, `* BYE`, `* PREAUTH`).
pub fn write_untagged(status: Status, code: Option<&ResponseCode>, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"* ");
    write_status_tail(status, code, text, out);
}

/// `+ text`: a continuation request (literal go-ahead, IDLE, or an AUTHENTICATE challenge
/// already base64-encoded by the caller; PLAIN sends an empty one).
pub fn write_continuation(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"+ ");
    write_text(text, out);
    out.extend_from_slice(b"\r\n");
}

/// `* CAPABILITY IMAP4rev1 ...`.
pub fn write_capability(capabilities: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(b"* CAPABILITY");
    for capability in capabilities {
        out.push(b' ');
        write_text(capability, out);
    }
    out.extend_from_slice(b"\r\n");
}

/// `* n EXISTS`.
pub fn write_exists(count: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("* {count} EXISTS\r\n").as_bytes());
}

/// `* n RECENT`.
pub fn write_recent(count: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("* {count} RECENT\r\n").as_bytes());
}

/// `* n EXPUNGE`.
pub fn write_expunge(sequence_number: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("* {sequence_number} EXPUNGE\r\n").as_bytes());
}

/// `* FLAGS (...)`: the flags defined in the mailbox.
pub fn write_flags(flags: &[Flag], out: &mut Vec<u8>) {
    out.extend_from_slice(b"* FLAGS ");
    write_flag_list(flags, out);
    out.extend_from_slice(b"\r\n");
}

/// `* LIST (attributes) "delimiter" name` (or LSUB when `subscribed_only`). The name is
/// UTF-8 and is encoded to modified UTF-7 here.
pub fn write_list(
    subscribed_only: bool,
    attributes: &[&str],
    delimiter: Option<char>,
    mailbox: &str,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(if subscribed_only { b"* LSUB (" } else { b"* LIST (" });
    write_text(&attributes.join(" "), out);
    out.extend_from_slice(b") ");
    match delimiter {
        Some(delimiter) => write_string(delimiter.to_string().as_bytes(), out),
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    write_astring(encode_mailbox_name(mailbox).as_bytes(), out);
    out.extend_from_slice(b"\r\n");
}

/// `* STATUS name (ITEM n ...)`.
pub fn write_status(mailbox: &str, items: &[(StatusItem, u32)], out: &mut Vec<u8>) {
    out.extend_from_slice(b"* STATUS ");
    write_astring(encode_mailbox_name(mailbox).as_bytes(), out);
    let pairs: Vec<String> = items.iter().map(|(item, value)| format!("{} {value}", item.name())).collect();
    out.extend_from_slice(format!(" ({})\r\n", pairs.join(" ")).as_bytes());
}

/// `* SEARCH n n ...`.
pub fn write_search(numbers: &[u32], out: &mut Vec<u8>) {
    out.extend_from_slice(b"* SEARCH");
    for number in numbers {
        out.extend_from_slice(format!(" {number}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// `* NAMESPACE (("prefix" "delimiter")) NIL NIL`: one personal namespace (RFC 2342).
pub fn write_namespace(personal_prefix: &str, delimiter: char, out: &mut Vec<u8>) {
    out.extend_from_slice(b"* NAMESPACE ((");
    write_string(encode_mailbox_name(personal_prefix).as_bytes(), out);
    out.push(b' ');
    write_string(delimiter.to_string().as_bytes(), out);
    out.extend_from_slice(b")) NIL NIL\r\n");
}

/// One item of a FETCH response. ENVELOPE, BODY and BODYSTRUCTURE are passed pre-rendered
/// (see [`envelope::message_structure`](super::envelope::message_structure)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchData<'a> {
    /// `FLAGS (...)`.
    Flags(&'a [Flag]),
    /// `UID n`.
    Uid(u32),
    /// `INTERNALDATE "..."`.
    InternalDate(DateTime),
    /// `RFC822.SIZE n`.
    Rfc822Size(u64),
    /// `ENVELOPE (...)`, rendered.
    Envelope(&'a [u8]),
    /// `BODY (...)`, rendered.
    Body(&'a [u8]),
    /// `BODYSTRUCTURE (...)`, rendered.
    BodyStructure(&'a [u8]),
    /// `RFC822 {n}`.
    Rfc822(Option<&'a [u8]>),
    /// `RFC822.HEADER {n}`.
    Rfc822Header(Option<&'a [u8]>),
    /// `RFC822.TEXT {n}`.
    Rfc822Text(Option<&'a [u8]>),
    /// `BODY[section]<origin> {n}`: the response echoes the section and only the origin of a
    /// partial request (RFC 3501 §7.4.2). `None` data is NIL (e.g. no such part).
    BodySection {
        /// The section as requested.
        section: &'a Section,
        /// The partial origin, if the request had one.
        origin: Option<u32>,
        /// The bytes.
        data: Option<&'a [u8]>,
    },
}

/// `* n FETCH (item item ...)`.
pub fn write_fetch(sequence_number: u32, items: &[FetchData<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("* {sequence_number} FETCH (").as_bytes());
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        write_fetch_data(item, out);
    }
    out.extend_from_slice(b")\r\n");
}

fn write_fetch_data(item: &FetchData<'_>, out: &mut Vec<u8>) {
    match item {
        FetchData::Flags(flags) => {
            out.extend_from_slice(b"FLAGS ");
            write_flag_list(flags, out);
        }
        FetchData::Uid(uid) => out.extend_from_slice(format!("UID {uid}").as_bytes()),
        FetchData::InternalDate(date_time) => {
            out.extend_from_slice(format!("INTERNALDATE \"{date_time}\"").as_bytes());
        }
        FetchData::Rfc822Size(size) => {
            out.extend_from_slice(format!("RFC822.SIZE {size}").as_bytes());
        }
        FetchData::Envelope(rendered) => {
            out.extend_from_slice(b"ENVELOPE ");
            out.extend_from_slice(rendered);
        }
        FetchData::Body(rendered) => {
            out.extend_from_slice(b"BODY ");
            out.extend_from_slice(rendered);
        }
        FetchData::BodyStructure(rendered) => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            out.extend_from_slice(rendered);
        }
        FetchData::Rfc822(data) => {
            out.extend_from_slice(b"RFC822 ");
            write_nstring(*data, out);
        }
        FetchData::Rfc822Header(data) => {
            out.extend_from_slice(b"RFC822.HEADER ");
            write_nstring(*data, out);
        }
        FetchData::Rfc822Text(data) => {
            out.extend_from_slice(b"RFC822.TEXT ");
            write_nstring(*data, out);
        }
        FetchData::BodySection { section, origin, data } => {
            out.extend_from_slice(b"BODY");
            section.write_to(out);
            if let Some(origin) = origin {
                out.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            out.push(b' ');
            write_nstring(*data, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn status_responses() {
        let mut out = Vec::new();
        let tag = Tag::new("A142").unwrap();
        write_tagged(&tag, Status::Ok, Some(&ResponseCode::ReadWrite), "SELECT completed", &mut out);
        write_untagged(Status::Ok, Some(&ResponseCode::UidValidity(3_857_529_045)), "UIDs valid", &mut out);
        write_untagged(
            Status::Ok,
            Some(&ResponseCode::PermanentFlags { flags: vec![Flag::Deleted, Flag::Seen], keywords_allowed: true }),
            "Limited",
            &mut out,
        );
        write_untagged(Status::Bye, None, "bye\r\nA1 OK injected", &mut out);
        assert_eq!(
            text(&out),
            "A142 OK [READ-WRITE] SELECT completed\r\n* OK [UIDVALIDITY 3857529045] UIDs valid\r\n\
             * OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n* BYE bye  A1 OK injected\r\n"
        );
    }

    #[test]
    fn uidplus_codes() {
        let mut out = Vec::new();
        let tag = Tag::new("A003").unwrap();
        let uids = SequenceSet::parse(b"3955").unwrap();
        write_tagged(
            &tag,
            Status::Ok,
            Some(&ResponseCode::AppendUid { uid_validity: 38_505, uids }),
            "APPEND completed",
            &mut out,
        );
        assert_eq!(text(&out), "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n");
    }

    #[test]
    fn untagged_data() {
        let mut out = Vec::new();
        write_exists(172, &mut out);
        write_flags(&[Flag::Answered, Flag::Keyword("$Forwarded".into())], &mut out);
        write_list(false, &["\\Noselect"], Some('/'), "~/Mail/foo", &mut out);
        write_list(false, &[], Some('/'), "Entw\u{fc}rfe", &mut out);
        write_status("blurdybloop", &[(StatusItem::Messages, 231), (StatusItem::UidNext, 44292)], &mut out);
        write_search(&[2, 3, 6], &mut out);
        assert_eq!(
            text(&out),
            "* 172 EXISTS\r\n* FLAGS (\\Answered $Forwarded)\r\n* LIST (\\Noselect) \"/\" ~/Mail/foo\r\n\
             * LIST () \"/\" Entw&APw-rfe\r\n* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n* SEARCH 2 3 6\r\n"
        );
    }

    #[test]
    fn fetch_response_with_literal() {
        let mut out = Vec::new();
        let section = Section::default();
        let date = DateTime::parse(b"17-Jul-1996 02:44:25 -0700").unwrap();
        write_fetch(
            12,
            &[
                FetchData::Flags(&[Flag::Seen]),
                FetchData::InternalDate(date),
                FetchData::Rfc822Size(44),
                FetchData::BodySection {
                    section: &section,
                    origin: Some(0),
                    data: Some(b"Subject: hi\r\n\r\nbody\r\n"),
                },
            ],
            &mut out,
        );
        assert_eq!(
            text(&out),
            "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 44 \
             BODY[]<0> {21}\r\nSubject: hi\r\n\r\nbody\r\n)\r\n"
        );
    }
}
