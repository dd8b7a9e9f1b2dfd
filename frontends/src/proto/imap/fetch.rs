//! FETCH attributes (RFC 3501 §6.4.5): the macros, the simple items, and `BODY[section]<partial>`
//! with its section grammar; parsing and writing back.

use std::num::NonZeroU32;

use super::error::ParseError;
use super::reader::{Read, Reader};
use super::string::write_astring;

/// The attributes argument of FETCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttributes {
    /// `ALL`: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE.
    All,
    /// `FAST`: FLAGS INTERNALDATE RFC822.SIZE.
    Fast,
    /// `FULL`: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.
    Full,
    /// One attribute or a parenthesised list.
    List(Vec<FetchAttribute>),
}

impl FetchAttributes {
    /// The attributes with macros expanded.
    pub fn expand(&self) -> Vec<FetchAttribute> {
        use FetchAttribute::{Body, Envelope, Flags, InternalDate, Rfc822Size};
        match self {
            Self::All => vec![Flags, InternalDate, Rfc822Size, Envelope],
            Self::Fast => vec![Flags, InternalDate, Rfc822Size],
            Self::Full => vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
            Self::List(attributes) => attributes.clone(),
        }
    }
}

/// One FETCH attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttribute {
    /// `ENVELOPE`.
    Envelope,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822` (like BODY[], sets \Seen).
    Rfc822,
    /// `RFC822.HEADER` (like BODY.PEEK[HEADER]).
    Rfc822Header,
    /// `RFC822.SIZE`.
    Rfc822Size,
    /// `RFC822.TEXT` (like BODY[TEXT], sets \Seen).
    Rfc822Text,
    /// `BODY` (the non-extensible BODYSTRUCTURE).
    Body,
    /// `BODYSTRUCTURE`.
    BodyStructure,
    /// `UID`.
    Uid,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]` (which does not set \Seen).
    BodySection {
        /// `BODY.PEEK`.
        peek: bool,
        /// Which part of the message.
        section: Section,
        /// A byte range of it.
        partial: Option<Partial>,
    },
}

/// A section specification: a MIME part path and what of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// Part numbers, e.g. `[1, 2]` for `1.2`; empty for the whole message.
    pub part: Vec<NonZeroU32>,
    /// What of that part; `None` for all of it.
    pub text: Option<SectionText>,
}

/// The text selector of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (names)`.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (names)`.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`.
    Text,
    /// `MIME`: the part's own MIME header (only after a part number).
    Mime,
}

/// `<origin.length>`: bytes `origin..origin+length` of the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// First byte.
    pub origin: u32,
    /// How many bytes at most.
    pub length: NonZeroU32,
}

/// Parses the FETCH attributes argument.
pub(crate) fn parse_fetch_attributes(reader: &mut Reader<'_>) -> Read<FetchAttributes> {
    if reader.accept(b'(') {
        let mut attributes = vec![parse_attribute(reader)?];
        while reader.accept(b' ') {
            attributes.push(parse_attribute(reader)?);
        }
        reader.expect(b')', "')' after fetch attributes")?;
        return Ok(FetchAttributes::List(attributes));
    }
    for (name, macro_attributes) in
        [("ALL", FetchAttributes::All), ("FAST", FetchAttributes::Fast), ("FULL", FetchAttributes::Full)]
    {
        if reader.accept_word(name) {
            return Ok(macro_attributes);
        }
    }
    Ok(FetchAttributes::List(vec![parse_attribute(reader)?]))
}

fn parse_attribute(reader: &mut Reader<'_>) -> Read<FetchAttribute> {
    let name = reader.take_while(|byte| byte.is_ascii_alphanumeric() || byte == b'.').to_ascii_uppercase();
    let simple = match name.as_slice() {
        b"ENVELOPE" => FetchAttribute::Envelope,
        b"FLAGS" => FetchAttribute::Flags,
        b"INTERNALDATE" => FetchAttribute::InternalDate,
        b"RFC822" => FetchAttribute::Rfc822,
        b"RFC822.HEADER" => FetchAttribute::Rfc822Header,
        b"RFC822.SIZE" => FetchAttribute::Rfc822Size,
        b"RFC822.TEXT" => FetchAttribute::Rfc822Text,
        b"BODYSTRUCTURE" => FetchAttribute::BodyStructure,
        b"UID" => FetchAttribute::Uid,
        b"BODY" if reader.peek() != Some(b'[') => FetchAttribute::Body,
        b"BODY" | b"BODY.PEEK" => {
            let section = parse_section(reader)?;
            let partial = if reader.peek() == Some(b'<') { Some(parse_partial(reader)?) } else { None };
            return Ok(FetchAttribute::BodySection { peek: name.len() > 4, section, partial });
        }
        _ => return Err(ParseError::Syntax("fetch attribute").into()),
    };
    Ok(simple)
}

fn parse_section(reader: &mut Reader<'_>) -> Read<Section> {
    reader.expect(b'[', "'[' of section")?;
    let mut section = Section::default();
    while reader.peek().is_some_and(|byte| byte.is_ascii_digit()) {
        let number = reader.number("section part")?;
        section.part.push(NonZeroU32::new(number).ok_or(ParseError::Syntax("non-zero section part"))?);
        if !reader.accept(b'.') {
            break;
        }
        if !reader.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            section.text = Some(parse_section_text(reader, true)?);
            break;
        }
    }
    if section.part.is_empty() && reader.peek() != Some(b']') {
        section.text = Some(parse_section_text(reader, false)?);
    }
    reader.expect(b']', "']' of section")?;
    Ok(section)
}

fn parse_section_text(reader: &mut Reader<'_>, after_part: bool) -> Read<SectionText> {
    let keyword = reader.take_while(|byte| byte.is_ascii_alphabetic() || byte == b'.').to_ascii_uppercase();
    match keyword.as_slice() {
        b"HEADER" => Ok(SectionText::Header),
        b"TEXT" => Ok(SectionText::Text),
        b"MIME" if after_part => Ok(SectionText::Mime),
        b"HEADER.FIELDS" => Ok(SectionText::HeaderFields(parse_header_list(reader)?)),
        b"HEADER.FIELDS.NOT" => Ok(SectionText::HeaderFieldsNot(parse_header_list(reader)?)),
        _ => Err(ParseError::Syntax("section text").into()),
    }
}

fn parse_header_list(reader: &mut Reader<'_>) -> Read<Vec<String>> {
    reader.space()?;
    reader.expect(b'(', "'(' of header list")?;
    let mut names = Vec::new();
    loop {
        let name = reader.astring("header field name")?;
        names.push(String::from_utf8(name).map_err(|_| ParseError::InvalidUtf8)?);
        if !reader.accept(b' ') {
            break;
        }
    }
    reader.expect(b')', "')' of header list")?;
    Ok(names)
}

fn parse_partial(reader: &mut Reader<'_>) -> Read<Partial> {
    reader.expect(b'<', "'<' of partial")?;
    let origin = reader.number("partial origin")?;
    reader.expect(b'.', "'.' in partial")?;
    let length =
        NonZeroU32::new(reader.number("partial length")?).ok_or(ParseError::Syntax("non-zero partial length"))?;
    reader.expect(b'>', "'>' of partial")?;
    Ok(Partial { origin, length })
}

impl FetchAttributes {
    /// Appends the wire form.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::All => out.extend_from_slice(b"ALL"),
            Self::Fast => out.extend_from_slice(b"FAST"),
            Self::Full => out.extend_from_slice(b"FULL"),
            Self::List(attributes) => {
                out.push(b'(');
                for (index, attribute) in attributes.iter().enumerate() {
                    if index > 0 {
                        out.push(b' ');
                    }
                    attribute.write_to(out);
                }
                out.push(b')');
            }
        }
    }
}

impl FetchAttribute {
    /// Appends the wire form, as in a command.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let name: &[u8] = match self {
            Self::Envelope => b"ENVELOPE",
            Self::Flags => b"FLAGS",
            Self::InternalDate => b"INTERNALDATE",
            Self::Rfc822 => b"RFC822",
            Self::Rfc822Header => b"RFC822.HEADER",
            Self::Rfc822Size => b"RFC822.SIZE",
            Self::Rfc822Text => b"RFC822.TEXT",
            Self::Body => b"BODY",
            Self::BodyStructure => b"BODYSTRUCTURE",
            Self::Uid => b"UID",
            Self::BodySection { peek, section, partial } => {
                out.extend_from_slice(if *peek { b"BODY.PEEK" } else { b"BODY" });
                section.write_to(out);
                if let Some(partial) = partial {
                    out.extend_from_slice(format!("<{}.{}>", partial.origin, partial.length).as_bytes());
                }
                return;
            }
        };
        out.extend_from_slice(name);
    }
}

impl Section {
    /// Appends `[1.2.HEADER.FIELDS (A B)]`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        let part: Vec<String> = self.part.iter().map(ToString::to_string).collect();
        out.extend_from_slice(part.join(".").as_bytes());
        if let Some(text) = &self.text {
            if !self.part.is_empty() {
                out.push(b'.');
            }
            let (keyword, names): (&[u8], Option<&Vec<String>>) = match text {
                SectionText::Header => (b"HEADER", None),
                SectionText::HeaderFields(names) => (b"HEADER.FIELDS", Some(names)),
                SectionText::HeaderFieldsNot(names) => (b"HEADER.FIELDS.NOT", Some(names)),
                SectionText::Text => (b"TEXT", None),
                SectionText::Mime => (b"MIME", None),
            };
            out.extend_from_slice(keyword);
            if let Some(names) = names {
                out.extend_from_slice(b" (");
                for (index, name) in names.iter().enumerate() {
                    if index > 0 {
                        out.push(b' ');
                    }
                    write_astring(name.as_bytes(), out);
                }
                out.push(b')');
            }
        }
        out.push(b']');
    }
}
