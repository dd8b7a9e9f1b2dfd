//! A cursor over one IMAP command: line by line, with literals in between, and the lexical
//! tokens of RFC 3501 §9 (atoms, quoted strings, literals, astrings, numbers).

use super::command::LiteralRequest;
use super::error::ParseError;
use crate::proto::line::{Line, take_line};
use crate::proto::{Limits, Rejected};

/// Why reading stopped before the command was complete.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The current line has not ended yet.
    NeedsMoreData,
    /// A literal's bytes have not all arrived.
    NeedsLiteral(LiteralRequest),
    /// The command is invalid; drop it through the end of the current line.
    Invalid(ParseError),
    /// The command is invalid and its rejection is already fully described.
    Rejected(Rejected<ParseError>),
}

impl From<ParseError> for Stop {
    fn from(error: ParseError) -> Self {
        Self::Invalid(error)
    }
}

pub(crate) type Read<T> = Result<T, Stop>;

/// Reads tokens from the current line of `input`; [`Reader::literal`] moves to the next line.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    position: usize,
    /// Index of the CR that ends the current line.
    line_end: usize,
    limits: Limits,
}

/// ATOM-CHAR: any CHAR except atom-specials.
pub(crate) fn is_atom_char(byte: u8) -> bool {
    byte > b' ' && byte < 0x7f && !b"(){%*\"\\]".contains(&byte)
}

/// ASTRING-CHAR: ATOM-CHAR or ']'.
pub(crate) fn is_astring_char(byte: u8) -> bool {
    is_atom_char(byte) || byte == b']'
}

/// list-char: ATOM-CHAR, list-wildcards or resp-specials.
fn is_list_char(byte: u8) -> bool {
    is_astring_char(byte) || byte == b'%' || byte == b'*'
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`, which must hold at least the first line.
    pub(crate) fn new(input: &'a [u8], limits: &Limits) -> Read<Self> {
        match take_line(input, limits.line_bytes_max) {
            Line::Complete { content, .. } => Ok(Self { input, position: 0, line_end: content.len(), limits: *limits }),
            Line::Incomplete => Err(Stop::NeedsMoreData),
            Line::TooLong { consumed_bytes, line_finished } => {
                Err(Stop::Rejected(Rejected { error: ParseError::LineTooLong, consumed_bytes, line_finished }))
            }
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes through the CRLF of the current line: what a complete or rejected command used.
    pub(crate) fn consumed_through_line(&self) -> usize {
        self.line_end + 2
    }

    fn rest(&self) -> &'a [u8] {
        self.input.get(self.position..self.line_end).unwrap_or_default()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    pub(crate) fn at_line_end(&self) -> bool {
        self.position >= self.line_end
    }

    /// Consumes `byte` if it is next.
    pub(crate) fn accept(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.position += 1;
        }
        found
    }

    pub(crate) fn expect(&mut self, byte: u8, what: &'static str) -> Read<()> {
        if self.accept(byte) { Ok(()) } else { Err(ParseError::Syntax(what).into()) }
    }

    pub(crate) fn space(&mut self) -> Read<()> {
        self.expect(b' ', "SP")
    }

    /// The end of the command: the current line must be used up.
    pub(crate) fn finish(&self) -> Read<usize> {
        if self.at_line_end() {
            Ok(self.consumed_through_line())
        } else {
            Err(ParseError::Syntax("end of line").into())
        }
    }

    /// Consumes the longest run of bytes satisfying `predicate`.
    pub(crate) fn take_while(&mut self, predicate: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let length = rest.iter().take_while(|&&byte| predicate(byte)).count();
        self.position += length;
        rest.get(..length).unwrap_or_default()
    }

    /// Consumes `keyword` case-insensitively if it is next.
    pub(crate) fn accept_keyword(&mut self, keyword: &str) -> bool {
        let found = self.rest().get(..keyword.len()).is_some_and(|head| head.eq_ignore_ascii_case(keyword.as_bytes()));
        if found {
            self.position += keyword.len();
        }
        found
    }

    /// Consumes `word` case-insensitively if it is next as a whole word (not followed by
    /// another atom character).
    pub(crate) fn accept_word(&mut self, word: &str) -> bool {
        let rest = self.rest();
        let found = rest.get(..word.len()).is_some_and(|head| head.eq_ignore_ascii_case(word.as_bytes()))
            && !rest.get(word.len()).is_some_and(|&byte| is_atom_char(byte));
        if found {
            self.position += word.len();
        }
        found
    }

    /// 1*ATOM-CHAR.
    pub(crate) fn atom(&mut self, what: &'static str) -> Read<&'a [u8]> {
        let atom = self.take_while(is_atom_char);
        if atom.is_empty() { Err(ParseError::Syntax(what).into()) } else { Ok(atom) }
    }

    /// number: 1*DIGIT that fits in 32 bits.
    pub(crate) fn number(&mut self, what: &'static str) -> Read<u32> {
        let digits = self.take_while(|byte| byte.is_ascii_digit());
        if digits.is_empty() || digits.len() > 10 {
            return Err(ParseError::Syntax(what).into());
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| ParseError::Syntax(what).into())
    }

    /// astring: 1*ASTRING-CHAR or string.
    pub(crate) fn astring(&mut self, what: &'static str) -> Read<Vec<u8>> {
        if let Some(b'"' | b'{') = self.peek() {
            self.string(what)
        } else {
            let text = self.take_while(is_astring_char);
            if text.is_empty() { Err(ParseError::Syntax(what).into()) } else { Ok(text.to_vec()) }
        }
    }

    /// list-mailbox: 1*list-char or string.
    pub(crate) fn list_mailbox(&mut self) -> Read<Vec<u8>> {
        if let Some(b'"' | b'{') = self.peek() {
            self.string("mailbox pattern")
        } else {
            let text = self.take_while(is_list_char);
            if text.is_empty() { Err(ParseError::Syntax("mailbox pattern").into()) } else { Ok(text.to_vec()) }
        }
    }

    /// string: quoted or literal (bounded by `literal_bytes_max`).
    pub(crate) fn string(&mut self, what: &'static str) -> Read<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal(self.limits.literal_bytes_max)?.to_vec()),
            _ => Err(ParseError::Syntax(what).into()),
        }
    }

    /// quoted: DQUOTE *QUOTED-CHAR DQUOTE. 8-bit bytes are accepted (clients send UTF-8).
    fn quoted(&mut self) -> Read<Vec<u8>> {
        self.expect(b'"', "quoted string")?;
        let mut text = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.position += 1;
                    return Ok(text);
                }
                Some(b'\\') => {
                    self.position += 1;
                    match self.peek() {
                        Some(escaped @ (b'"' | b'\\')) => text.push(escaped),
                        _ => {
                            return Err(ParseError::Syntax("quoted-special after backslash").into());
                        }
                    }
                }
                Some(byte) if byte != 0 && byte != b'\r' && byte != b'\n' => text.push(byte),
                _ => return Err(ParseError::Syntax("closing quote").into()),
            }
            self.position += 1;
        }
    }

    /// literal: `"{" number ["+"] "}" CRLF *OCTET`, up to `size_max` bytes. The announcement
    /// must end its line; afterwards the reader continues on the line after the data.
    pub(crate) fn literal(&mut self, size_max: usize) -> Read<&'a [u8]> {
        self.expect(b'{', "literal")?;
        let digits = self.take_while(|byte| byte.is_ascii_digit());
        let non_synchronizing = self.accept(b'+');
        self.expect(b'}', "literal")?;
        if !self.at_line_end() {
            return Err(ParseError::Syntax("end of line after literal size").into());
        }
        let size: u64 = match std::str::from_utf8(digits).ok().filter(|text| !text.is_empty() && text.len() <= 19) {
            Some(text) => text.parse().map_err(|_| ParseError::Syntax("literal size"))?,
            None => return Err(ParseError::Syntax("literal size").into()),
        };
        if size > size_max as u64 {
            return Err(ParseError::LiteralTooLarge { size, non_synchronizing }.into());
        }
        let data_offset = self.line_end + 2;
        let data_end = data_offset.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        let Some(data) = self.input.get(data_offset..data_end) else {
            return Err(Stop::NeedsLiteral(LiteralRequest { size, non_synchronizing, data_offset }));
        };
        let after = self.input.get(data_end..).unwrap_or_default();
        match take_line(after, self.limits.line_bytes_max) {
            Line::Complete { content, .. } => {
                self.position = data_end;
                self.line_end = data_end + content.len();
                Ok(data)
            }
            Line::Incomplete => Err(Stop::NeedsMoreData),
            Line::TooLong { consumed_bytes, line_finished } => Err(Stop::Rejected(Rejected {
                error: ParseError::LineTooLong,
                consumed_bytes: data_end + consumed_bytes,
                line_finished,
            })),
        }
    }
}
