//! LMTP commands (RFC 2033, syntax from RFC 5321 §4.1.1): parsing one command line from the
//! front of a buffer, and formatting a command back to its wire form.

use super::error::ParseError;
use super::path::{self, ForwardPath, ReversePath};
use crate::proto::line::{Line, take_line};
use crate::proto::{Limits, Parsed, Rejected};

/// The body type announced by `BODY=` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// The MAIL FROM parameters we implement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParameters {
    /// `SIZE=n` (RFC 1870): the client's estimate of the message size in bytes.
    pub size_bytes: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<BodyType>,
}

/// One LMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `LHLO domain`.
    Lhlo {
        /// The client's name for itself.
        domain: String,
    },
    /// `MAIL FROM:<path> [SIZE=n] [BODY=...]`.
    Mail {
        /// The sender, or the null path.
        from: ReversePath,
        /// The parameters after the path.
        parameters: MailParameters,
    },
    /// `RCPT TO:<path>`.
    Rcpt {
        /// The recipient.
        to: ForwardPath,
    },
    /// `DATA`: the body follows; decode it with [`DataDecoder`](super::DataDecoder).
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [string]` (the argument is ignored).
    Noop,
    /// `QUIT`.
    Quit,
    /// `STARTTLS`.
    StartTls,
    /// `VRFY string` (answered with 252 whatever it names).
    Vrfy {
        /// What the client asked about.
        argument: String,
    },
}

/// Parses the first command line of `input`. Pipelined commands after it are left alone:
/// `consumed_bytes` covers exactly one line.
pub fn parse_command(input: &[u8], limits: &Limits) -> Result<Parsed<Command>, Rejected<ParseError>> {
    let (content, consumed_bytes) = match take_line(input, limits.line_bytes_max) {
        Line::Complete { content, consumed_bytes } => (content, consumed_bytes),
        Line::Incomplete => return Ok(Parsed::NeedsMoreData),
        Line::TooLong { consumed_bytes, line_finished } => {
            return Err(Rejected { error: ParseError::LineTooLong, consumed_bytes, line_finished });
        }
    };
    match parse_line(content) {
        Ok(value) => Ok(Parsed::Complete { value, consumed_bytes }),
        Err(error) => Err(Rejected { error, consumed_bytes, line_finished: true }),
    }
}

fn parse_line(line: &[u8]) -> Result<Command, ParseError> {
    let (verb, argument) = match line.iter().position(|&byte| byte == b' ') {
        Some(space) => (line.get(..space).unwrap_or_default(), line.get(space + 1..)),
        None => (line, None),
    };
    let verb_is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
    let no_argument = |command: Command, name: &'static str| match argument {
        None => Ok(command),
        Some(_) => Err(ParseError::Syntax { command: name }),
    };
    if verb_is("LHLO") {
        let domain = argument.filter(|text| is_word(text)).ok_or(ParseError::Syntax { command: "LHLO" })?;
        Ok(Command::Lhlo { domain: String::from_utf8_lossy(domain).into_owned() })
    } else if verb_is("MAIL") {
        parse_mail(argument.unwrap_or_default())
    } else if verb_is("RCPT") {
        parse_rcpt(argument.unwrap_or_default())
    } else if verb_is("DATA") {
        no_argument(Command::Data, "DATA")
    } else if verb_is("RSET") {
        no_argument(Command::Rset, "RSET")
    } else if verb_is("NOOP") {
        Ok(Command::Noop)
    } else if verb_is("QUIT") {
        no_argument(Command::Quit, "QUIT")
    } else if verb_is("STARTTLS") {
        no_argument(Command::StartTls, "STARTTLS")
    } else if verb_is("VRFY") {
        let argument = argument
            .filter(|text| !text.is_empty() && text.iter().all(|&byte| byte >= b' ' && byte != 0x7f))
            .and_then(|text| std::str::from_utf8(text).ok())
            .ok_or(ParseError::Syntax { command: "VRFY" })?;
        Ok(Command::Vrfy { argument: argument.to_owned() })
    } else {
        Err(ParseError::UnknownCommand(printable_prefix(verb)))
    }
}

/// A non-empty run of visible characters (no spaces, no controls).
fn is_word(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&byte| byte > b' ' && byte != 0x7f)
}

/// The verb as it can safely appear in a reply: at most 32 characters, controls replaced.
fn printable_prefix(verb: &[u8]) -> String {
    verb.iter().take(32).map(|&byte| if byte.is_ascii_graphic() { char::from(byte) } else { '?' }).collect()
}

/// Strips a case-insensitive `FROM:` / `TO:` and the spaces some clients put after the colon.
fn strip_keyword<'a>(argument: &'a [u8], keyword: &str) -> Option<&'a [u8]> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword.as_bytes()) {
        return None;
    }
    let rest = argument.get(keyword.len()..)?;
    let spaces = rest.iter().take_while(|&&byte| byte == b' ').count();
    rest.get(spaces..)
}

fn parse_mail(argument: &[u8]) -> Result<Command, ParseError> {
    let path_text = strip_keyword(argument, "FROM:").ok_or(ParseError::Syntax { command: "MAIL" })?;
    let (path, rest) = path::split_bracketed(path_text).map_err(|_| ParseError::InvalidSender)?;
    let from = if path.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Address(path::parse_address(path).map_err(|_| ParseError::InvalidSender)?)
    };
    let mut parameters = MailParameters::default();
    for (keyword, value) in split_parameters(rest, "MAIL")? {
        if keyword.eq_ignore_ascii_case(b"SIZE") {
            let size = value
                .filter(|digits| !digits.is_empty() && digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit))
                .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok())
                .ok_or(ParseError::InvalidParameterValue("SIZE"))?;
            parameters.size_bytes = Some(size);
        } else if keyword.eq_ignore_ascii_case(b"BODY") {
            let body = match value {
                Some(value) if value.eq_ignore_ascii_case(b"7BIT") => BodyType::SevenBit,
                Some(value) if value.eq_ignore_ascii_case(b"8BITMIME") => BodyType::EightBitMime,
                _ => return Err(ParseError::InvalidParameterValue("BODY")),
            };
            parameters.body = Some(body);
        } else {
            return Err(ParseError::UnrecognizedParameter(printable_prefix(keyword)));
        }
    }
    Ok(Command::Mail { from, parameters })
}

fn parse_rcpt(argument: &[u8]) -> Result<Command, ParseError> {
    let path_text = strip_keyword(argument, "TO:").ok_or(ParseError::Syntax { command: "RCPT" })?;
    let (path, rest) = path::split_bracketed(path_text).map_err(|_| ParseError::InvalidRecipient)?;
    let to = if path.eq_ignore_ascii_case(b"Postmaster") {
        ForwardPath::Postmaster
    } else {
        ForwardPath::Address(path::parse_address(path).map_err(|_| ParseError::InvalidRecipient)?)
    };
    // We implement no RCPT parameters (DSN's NOTIFY/ORCPT would go here).
    if let Some((keyword, _)) = split_parameters(rest, "RCPT")?.first() {
        return Err(ParseError::UnrecognizedParameter(printable_prefix(keyword)));
    }
    Ok(Command::Rcpt { to })
}

/// One `KEY[=value]` parameter.
type Parameter<'a> = (&'a [u8], Option<&'a [u8]>);

/// Splits ` KEY=value KEY2` into keywords and optional values (RFC 5321 esmtp-param).
fn split_parameters<'a>(rest: &'a [u8], command: &'static str) -> Result<Vec<Parameter<'a>>, ParseError> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_prefix(b" ").ok_or(ParseError::Syntax { command })?;
    rest.split(|&byte| byte == b' ')
        .filter(|parameter| !parameter.is_empty())
        .map(|parameter| {
            let (keyword, value) = match parameter.iter().position(|&byte| byte == b'=') {
                Some(equals) => (parameter.get(..equals).unwrap_or_default(), parameter.get(equals + 1..)),
                None => (parameter, None),
            };
            let keyword_ok = keyword.first().is_some_and(u8::is_ascii_alphanumeric)
                && keyword.iter().all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-');
            let value_ok = value.is_none_or(|value| {
                !value.is_empty() && value.iter().all(|&byte| (33..=126).contains(&byte) && byte != b'=')
            });
            if keyword_ok && value_ok { Ok((keyword, value)) } else { Err(ParseError::Syntax { command }) }
        })
        .collect()
}

impl Command {
    /// Appends the wire form of the command, CRLF included.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let text = match self {
            Self::Lhlo { domain } => format!("LHLO {domain}"),
            Self::Mail { from, parameters } => {
                let mut text = format!("MAIL FROM:{from}");
                if let Some(size) = parameters.size_bytes {
                    text.push_str(" SIZE=");
                    text.push_str(&size.to_string());
                }
                match parameters.body {
                    Some(BodyType::SevenBit) => text.push_str(" BODY=7BIT"),
                    Some(BodyType::EightBitMime) => text.push_str(" BODY=8BITMIME"),
                    None => {}
                }
                text
            }
            Self::Rcpt { to } => format!("RCPT TO:{to}"),
            Self::Data => "DATA".to_owned(),
            Self::Rset => "RSET".to_owned(),
            Self::Noop => "NOOP".to_owned(),
            Self::Quit => "QUIT".to_owned(),
            Self::StartTls => "STARTTLS".to_owned(),
            Self::Vrfy { argument } => format!("VRFY {argument}"),
        };
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}
