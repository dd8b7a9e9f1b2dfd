//! SEARCH criteria (RFC 3501 §6.4.4): the key tree, its parser (depth-limited, because OR, NOT
//! and parentheses nest), and writing it back.

use super::date_time::Date;
use super::error::ParseError;
use super::flag::Flag;
use super::reader::{Read, Reader};
use super::sequence_set::SequenceSet;
use super::string::write_astring;

/// One search key. Strings match as case-insensitive substrings (RFC 3501 §6.4.4); dates are
/// compared ignoring time and zone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchKey {
    /// `ALL`.
    All,
    /// `ANSWERED`.
    Answered,
    /// `BCC s`.
    Bcc(String),
    /// `BEFORE date`: internal date earlier than the date.
    Before(Date),
    /// `BODY s`.
    Body(String),
    /// `CC s`.
    Cc(String),
    /// `DELETED`.
    Deleted,
    /// `DRAFT`.
    Draft,
    /// `FLAGGED`.
    Flagged,
    /// `FROM s`.
    From(String),
    /// `HEADER field s`.
    Header(String, String),
    /// `KEYWORD flag`.
    Keyword(String),
    /// `LARGER n`: RFC822.SIZE above n.
    Larger(u32),
    /// `NEW`: RECENT and not SEEN.
    New,
    /// `NOT key`.
    Not(Box<SearchKey>),
    /// `OLD`: not RECENT.
    Old,
    /// `ON date`.
    On(Date),
    /// `OR key key`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `RECENT`.
    Recent,
    /// `SEEN`.
    Seen,
    /// `SENTBEFORE date`: Date header earlier than the date.
    SentBefore(Date),
    /// `SENTON date`.
    SentOn(Date),
    /// `SENTSINCE date`.
    SentSince(Date),
    /// `SINCE date`.
    Since(Date),
    /// `SMALLER n`.
    Smaller(u32),
    /// `SUBJECT s`.
    Subject(String),
    /// `TEXT s`: header or body.
    Text(String),
    /// `TO s`.
    To(String),
    /// `UID set`.
    Uid(SequenceSet),
    /// `UNANSWERED`.
    Unanswered,
    /// `UNDELETED`.
    Undeleted,
    /// `UNDRAFT`.
    Undraft,
    /// `UNFLAGGED`.
    Unflagged,
    /// `UNKEYWORD flag`.
    Unkeyword(String),
    /// `UNSEEN`.
    Unseen,
    /// A message sequence set.
    SequenceSet(SequenceSet),
    /// `(key key ...)`: all must match.
    And(Vec<SearchKey>),
}

/// Parses one search key at nesting `depth`.
pub(crate) fn parse_search_key(reader: &mut Reader<'_>, depth: usize) -> Read<SearchKey> {
    if depth > reader.limits().nesting_depth_max {
        return Err(ParseError::NestingTooDeep.into());
    }
    match reader.peek() {
        Some(b'(') => {
            reader.accept(b'(');
            let mut keys = vec![parse_search_key(reader, depth + 1)?];
            while reader.accept(b' ') {
                keys.push(parse_search_key(reader, depth + 1)?);
            }
            reader.expect(b')', "')' after search keys")?;
            return Ok(SearchKey::And(keys));
        }
        Some(byte) if byte.is_ascii_digit() || byte == b'*' => {
            return Ok(SearchKey::SequenceSet(sequence_set(reader)?));
        }
        _ => {}
    }
    let keyword = reader.atom("search key")?.to_ascii_uppercase();
    let key = match keyword.as_slice() {
        b"ALL" => SearchKey::All,
        b"ANSWERED" => SearchKey::Answered,
        b"DELETED" => SearchKey::Deleted,
        b"DRAFT" => SearchKey::Draft,
        b"FLAGGED" => SearchKey::Flagged,
        b"NEW" => SearchKey::New,
        b"OLD" => SearchKey::Old,
        b"RECENT" => SearchKey::Recent,
        b"SEEN" => SearchKey::Seen,
        b"UNANSWERED" => SearchKey::Unanswered,
        b"UNDELETED" => SearchKey::Undeleted,
        b"UNDRAFT" => SearchKey::Undraft,
        b"UNFLAGGED" => SearchKey::Unflagged,
        b"UNSEEN" => SearchKey::Unseen,
        b"BCC" => SearchKey::Bcc(text_argument(reader)?),
        b"BODY" => SearchKey::Body(text_argument(reader)?),
        b"CC" => SearchKey::Cc(text_argument(reader)?),
        b"FROM" => SearchKey::From(text_argument(reader)?),
        b"SUBJECT" => SearchKey::Subject(text_argument(reader)?),
        b"TEXT" => SearchKey::Text(text_argument(reader)?),
        b"TO" => SearchKey::To(text_argument(reader)?),
        b"HEADER" => {
            let field = text_argument(reader)?;
            SearchKey::Header(field, text_argument(reader)?)
        }
        b"KEYWORD" => SearchKey::Keyword(keyword_argument(reader)?),
        b"UNKEYWORD" => SearchKey::Unkeyword(keyword_argument(reader)?),
        b"BEFORE" => SearchKey::Before(date_argument(reader)?),
        b"ON" => SearchKey::On(date_argument(reader)?),
        b"SINCE" => SearchKey::Since(date_argument(reader)?),
        b"SENTBEFORE" => SearchKey::SentBefore(date_argument(reader)?),
        b"SENTON" => SearchKey::SentOn(date_argument(reader)?),
        b"SENTSINCE" => SearchKey::SentSince(date_argument(reader)?),
        b"LARGER" => {
            reader.space()?;
            SearchKey::Larger(reader.number("size")?)
        }
        b"SMALLER" => {
            reader.space()?;
            SearchKey::Smaller(reader.number("size")?)
        }
        b"UID" => {
            reader.space()?;
            SearchKey::Uid(sequence_set(reader)?)
        }
        b"NOT" => {
            reader.space()?;
            SearchKey::Not(Box::new(parse_search_key(reader, depth + 1)?))
        }
        b"OR" => {
            reader.space()?;
            let left = parse_search_key(reader, depth + 1)?;
            reader.space()?;
            SearchKey::Or(Box::new(left), Box::new(parse_search_key(reader, depth + 1)?))
        }
        _ => return Err(ParseError::Syntax("search key").into()),
    };
    Ok(key)
}

/// Reads a sequence-set token.
pub(crate) fn sequence_set(reader: &mut Reader<'_>) -> Read<SequenceSet> {
    let text = reader.take_while(|byte| byte.is_ascii_digit() || matches!(byte, b':' | b',' | b'*'));
    SequenceSet::parse(text).ok_or_else(|| ParseError::InvalidSequenceSet.into())
}

fn text_argument(reader: &mut Reader<'_>) -> Read<String> {
    reader.space()?;
    let bytes = reader.astring("search string")?;
    String::from_utf8(bytes).map_err(|_| ParseError::InvalidUtf8.into())
}

fn keyword_argument(reader: &mut Reader<'_>) -> Read<String> {
    reader.space()?;
    let atom = reader.atom("keyword")?;
    Ok(String::from_utf8_lossy(atom).into_owned())
}

fn date_argument(reader: &mut Reader<'_>) -> Read<Date> {
    reader.space()?;
    let quoted = reader.accept(b'"');
    let text = reader.take_while(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if quoted {
        reader.expect(b'"', "closing quote of date")?;
    }
    Date::parse(text).ok_or_else(|| ParseError::InvalidDate.into())
}

impl SearchKey {
    /// Appends the wire form.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let (keyword, argument): (&str, Option<Argument<'_>>) = match self {
            Self::All => ("ALL", None),
            Self::Answered => ("ANSWERED", None),
            Self::Deleted => ("DELETED", None),
            Self::Draft => ("DRAFT", None),
            Self::Flagged => ("FLAGGED", None),
            Self::New => ("NEW", None),
            Self::Old => ("OLD", None),
            Self::Recent => ("RECENT", None),
            Self::Seen => ("SEEN", None),
            Self::Unanswered => ("UNANSWERED", None),
            Self::Undeleted => ("UNDELETED", None),
            Self::Undraft => ("UNDRAFT", None),
            Self::Unflagged => ("UNFLAGGED", None),
            Self::Unseen => ("UNSEEN", None),
            Self::Bcc(text) => ("BCC", Some(Argument::Text(text))),
            Self::Body(text) => ("BODY", Some(Argument::Text(text))),
            Self::Cc(text) => ("CC", Some(Argument::Text(text))),
            Self::From(text) => ("FROM", Some(Argument::Text(text))),
            Self::Subject(text) => ("SUBJECT", Some(Argument::Text(text))),
            Self::Text(text) => ("TEXT", Some(Argument::Text(text))),
            Self::To(text) => ("TO", Some(Argument::Text(text))),
            Self::Keyword(keyword) => ("KEYWORD", Some(Argument::Raw(keyword.clone()))),
            Self::Unkeyword(keyword) => ("UNKEYWORD", Some(Argument::Raw(keyword.clone()))),
            Self::Before(date) => ("BEFORE", Some(Argument::Raw(date.to_string()))),
            Self::On(date) => ("ON", Some(Argument::Raw(date.to_string()))),
            Self::Since(date) => ("SINCE", Some(Argument::Raw(date.to_string()))),
            Self::SentBefore(date) => ("SENTBEFORE", Some(Argument::Raw(date.to_string()))),
            Self::SentOn(date) => ("SENTON", Some(Argument::Raw(date.to_string()))),
            Self::SentSince(date) => ("SENTSINCE", Some(Argument::Raw(date.to_string()))),
            Self::Larger(size) => ("LARGER", Some(Argument::Raw(size.to_string()))),
            Self::Smaller(size) => ("SMALLER", Some(Argument::Raw(size.to_string()))),
            Self::Uid(set) => ("UID", Some(Argument::Raw(set.to_string()))),
            Self::Header(field, text) => {
                out.extend_from_slice(b"HEADER ");
                write_astring(field.as_bytes(), out);
                out.push(b' ');
                write_astring(text.as_bytes(), out);
                return;
            }
            Self::Not(key) => {
                out.extend_from_slice(b"NOT ");
                key.write_to(out);
                return;
            }
            Self::Or(left, right) => {
                out.extend_from_slice(b"OR ");
                left.write_to(out);
                out.push(b' ');
                right.write_to(out);
                return;
            }
            Self::SequenceSet(set) => {
                out.extend_from_slice(set.to_string().as_bytes());
                return;
            }
            Self::And(keys) => {
                out.push(b'(');
                write_keys(keys, out);
                out.push(b')');
                return;
            }
        };
        out.extend_from_slice(keyword.as_bytes());
        match argument {
            Some(Argument::Text(text)) => {
                out.push(b' ');
                write_astring(text.as_bytes(), out);
            }
            Some(Argument::Raw(raw)) => {
                out.push(b' ');
                out.extend_from_slice(raw.as_bytes());
            }
            None => {}
        }
    }

    /// The flag a flag key tests, with whether the flag must be set.
    pub fn flag(&self) -> Option<(Flag, bool)> {
        Some(match self {
            Self::Answered => (Flag::Answered, true),
            Self::Deleted => (Flag::Deleted, true),
            Self::Draft => (Flag::Draft, true),
            Self::Flagged => (Flag::Flagged, true),
            Self::Recent => (Flag::Recent, true),
            Self::Seen => (Flag::Seen, true),
            Self::Unanswered => (Flag::Answered, false),
            Self::Undeleted => (Flag::Deleted, false),
            Self::Undraft => (Flag::Draft, false),
            Self::Unflagged => (Flag::Flagged, false),
            Self::Unseen => (Flag::Seen, false),
            Self::Keyword(keyword) => (Flag::Keyword(keyword.clone()), true),
            Self::Unkeyword(keyword) => (Flag::Keyword(keyword.clone()), false),
            _ => return None,
        })
    }
}

/// How a key's argument is written.
enum Argument<'a> {
    /// An astring.
    Text(&'a str),
    /// Written as is (dates, numbers, sets, keywords).
    Raw(String),
}

/// Appends keys separated by spaces.
pub(crate) fn write_keys(keys: &[SearchKey], out: &mut Vec<u8>) {
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        key.write_to(out);
    }
}
