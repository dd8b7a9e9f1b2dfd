//! POP3 commands (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH): parsing one command
//! line from the front of a buffer, and formatting a command back to its wire form.

use super::error::ParseError;
use crate::proto::line::{Line, take_line};
use crate::proto::sasl::{self, SaslResponse};
use crate::proto::{Limits, Parsed, Rejected, Secret};

/// One POP3 command. Message numbers are 1-based and never zero.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `USER name`.
    User {
        /// The mailbox name.
        name: String,
    },
    /// `PASS string`: the rest of the line, spaces included (RFC 1939 §7).
    Pass {
        /// The password.
        password: Secret,
    },
    /// `AUTH mechanism [initial-response]` (RFC 5034).
    Auth {
        /// The SASL mechanism, upper-cased.
        mechanism: String,
        /// The response sent with the command, if any.
        initial_response: Option<SaslResponse>,
    },
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List {
        /// One message, or all when absent.
        message: Option<u32>,
    },
    /// `RETR msg`.
    Retr {
        /// The message.
        message: u32,
    },
    /// `DELE msg`.
    Dele {
        /// The message.
        message: u32,
    },
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
    /// `UIDL [msg]`.
    Uidl {
        /// One message, or all when absent.
        message: Option<u32>,
    },
    /// `TOP msg n`: the header and the first `lines` lines of the body.
    Top {
        /// The message.
        message: u32,
        /// How many body lines.
        lines: u32,
    },
    /// `CAPA`.
    Capa,
    /// `STLS`.
    Stls,
}

/// Parses the first command line of `input`; `consumed_bytes` covers exactly that line
/// (RFC 2449 PIPELINING).
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
    let (keyword, rest) = match line.iter().position(|&byte| byte == b' ') {
        Some(space) => (line.get(..space).unwrap_or_default(), line.get(space + 1..).unwrap_or_default()),
        None => (line, &b""[..]),
    };
    let mut upper = [0_u8; 4];
    if keyword.len() > upper.len() {
        return Err(ParseError::UnknownCommand(printable_prefix(keyword)));
    }
    for (slot, byte) in upper.iter_mut().zip(keyword) {
        *slot = byte.to_ascii_uppercase();
    }
    let arguments: Vec<&[u8]> = rest.split(|&byte| byte == b' ').filter(|word| !word.is_empty()).collect();
    match upper.get(..keyword.len()).unwrap_or_default() {
        b"USER" => Ok(Command::User { name: single_word(&arguments, "USER")? }),
        b"PASS" if !rest.is_empty() => Ok(Command::Pass { password: Secret::new(rest.to_vec()) }),
        b"PASS" => Err(ParseError::Syntax { command: "PASS" }),
        b"AUTH" => parse_auth(&arguments),
        b"STAT" => no_arguments(&arguments, Command::Stat, "STAT"),
        b"LIST" => Ok(Command::List { message: optional_number(&arguments, "LIST")? }),
        b"RETR" => Ok(Command::Retr { message: required_number(&arguments, "RETR")? }),
        b"DELE" => Ok(Command::Dele { message: required_number(&arguments, "DELE")? }),
        b"NOOP" => no_arguments(&arguments, Command::Noop, "NOOP"),
        b"RSET" => no_arguments(&arguments, Command::Rset, "RSET"),
        b"QUIT" => no_arguments(&arguments, Command::Quit, "QUIT"),
        b"UIDL" => Ok(Command::Uidl { message: optional_number(&arguments, "UIDL")? }),
        b"TOP" => match arguments.as_slice() {
            [message, lines] => Ok(Command::Top {
                message: message_number(message).ok_or(ParseError::Syntax { command: "TOP" })?,
                lines: number(lines).ok_or(ParseError::Syntax { command: "TOP" })?,
            }),
            _ => Err(ParseError::Syntax { command: "TOP" }),
        },
        b"CAPA" => no_arguments(&arguments, Command::Capa, "CAPA"),
        b"STLS" => no_arguments(&arguments, Command::Stls, "STLS"),
        _ => Err(ParseError::UnknownCommand(printable_prefix(keyword))),
    }
}

fn parse_auth(arguments: &[&[u8]]) -> Result<Command, ParseError> {
    let syntax = ParseError::Syntax { command: "AUTH" };
    let (mechanism, initial) = match arguments {
        [mechanism] => (mechanism, None),
        [mechanism, initial] => (mechanism, Some(initial)),
        _ => return Err(syntax),
    };
    // RFC 4422 §3.1: mechanism names are upper-case letters, digits, '-' and '_'.
    if mechanism.len() > 20
        || !mechanism.iter().all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    {
        return Err(syntax);
    }
    let initial_response = initial.map(|text| sasl::decode_response(text)).transpose()?;
    Ok(Command::Auth { mechanism: String::from_utf8_lossy(mechanism).to_ascii_uppercase(), initial_response })
}

fn no_arguments(arguments: &[&[u8]], command: Command, name: &'static str) -> Result<Command, ParseError> {
    if arguments.is_empty() { Ok(command) } else { Err(ParseError::Syntax { command: name }) }
}

fn single_word(arguments: &[&[u8]], name: &'static str) -> Result<String, ParseError> {
    match arguments {
        [word] if word.iter().all(|&byte| byte > b' ' && byte != 0x7f) => {
            std::str::from_utf8(word).map(str::to_owned).map_err(|_| ParseError::Syntax { command: name })
        }
        _ => Err(ParseError::Syntax { command: name }),
    }
}

fn optional_number(arguments: &[&[u8]], name: &'static str) -> Result<Option<u32>, ParseError> {
    match arguments {
        [] => Ok(None),
        [text] => message_number(text).map(Some).ok_or(ParseError::Syntax { command: name }),
        _ => Err(ParseError::Syntax { command: name }),
    }
}

fn required_number(arguments: &[&[u8]], name: &'static str) -> Result<u32, ParseError> {
    optional_number(arguments, name)?.ok_or(ParseError::Syntax { command: name })
}

fn number(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn message_number(text: &[u8]) -> Option<u32> {
    number(text).filter(|&message| message != 0)
}

fn printable_prefix(keyword: &[u8]) -> String {
    keyword.iter().take(32).map(|&byte| if byte.is_ascii_graphic() { char::from(byte) } else { '?' }).collect()
}

impl Command {
    /// Appends the wire form of the command, CRLF included.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let optional = |keyword: &str, message: &Option<u32>| match message {
            Some(message) => format!("{keyword} {message}"),
            None => keyword.to_owned(),
        };
        let text = match self {
            Self::User { name } => format!("USER {name}"),
            Self::Pass { password } => {
                out.extend_from_slice(b"PASS ");
                out.extend_from_slice(password.expose());
                String::new()
            }
            Self::Auth { mechanism, initial_response: None } => format!("AUTH {mechanism}"),
            Self::Auth { mechanism, initial_response: Some(response) } => {
                format!("AUTH {mechanism} {}", sasl::encode_response(response))
            }
            Self::Stat => "STAT".to_owned(),
            Self::List { message } => optional("LIST", message),
            Self::Retr { message } => format!("RETR {message}"),
            Self::Dele { message } => format!("DELE {message}"),
            Self::Noop => "NOOP".to_owned(),
            Self::Rset => "RSET".to_owned(),
            Self::Quit => "QUIT".to_owned(),
            Self::Uidl { message } => optional("UIDL", message),
            Self::Top { message, lines } => format!("TOP {message} {lines}"),
            Self::Capa => "CAPA".to_owned(),
            Self::Stls => "STLS".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Command, ParseError> {
        match parse_command(text.as_bytes(), &Limits::pop3()) {
            Ok(Parsed::Complete { value, consumed_bytes }) => {
                assert_eq!(consumed_bytes, text.len());
                Ok(value)
            }
            Ok(Parsed::NeedsMoreData) => panic!("incomplete: {text:?}"),
            Err(rejected) => Err(rejected.error),
        }
    }

    #[test]
    fn rfc1939_examples() {
        assert_eq!(parse("USER mrose\r\n"), Ok(Command::User { name: "mrose".into() }));
        assert_eq!(parse("PASS secret pass\r\n"), Ok(Command::Pass { password: Secret::new(b"secret pass".to_vec()) }));
        assert_eq!(parse("STAT\r\n"), Ok(Command::Stat));
        assert_eq!(parse("LIST\r\n"), Ok(Command::List { message: None }));
        assert_eq!(parse("LIST 2\r\n"), Ok(Command::List { message: Some(2) }));
        assert_eq!(parse("RETR 1\r\n"), Ok(Command::Retr { message: 1 }));
        assert_eq!(parse("DELE 1\r\n"), Ok(Command::Dele { message: 1 }));
        assert_eq!(parse("NOOP\r\n"), Ok(Command::Noop));
        assert_eq!(parse("RSET\r\n"), Ok(Command::Rset));
        assert_eq!(parse("QUIT\r\n"), Ok(Command::Quit));
        assert_eq!(parse("TOP 1 10\r\n"), Ok(Command::Top { message: 1, lines: 10 }));
        assert_eq!(parse("TOP 1 0\r\n"), Ok(Command::Top { message: 1, lines: 0 }));
        assert_eq!(parse("UIDL\r\n"), Ok(Command::Uidl { message: None }));
        assert_eq!(parse("uidl 2\r\n"), Ok(Command::Uidl { message: Some(2) }));
        assert_eq!(parse("CAPA\r\n"), Ok(Command::Capa));
        assert_eq!(parse("STLS\r\n"), Ok(Command::Stls));
    }

    #[test]
    fn auth_plain_with_and_without_initial_response() {
        assert_eq!(parse("AUTH plain\r\n"), Ok(Command::Auth { mechanism: "PLAIN".into(), initial_response: None }));
        let Ok(Command::Auth { initial_response: Some(SaslResponse::Data(message)), .. }) =
            parse("AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n")
        else {
            panic!("expected an initial response");
        };
        assert_eq!(message.expose(), b"\0tim\0tanstaaftanstaaf");
        assert_eq!(parse("AUTH PLAIN ***\r\n"), Err(ParseError::Sasl(sasl::SaslError::InvalidBase64)));
    }

    #[test]
    fn bad_arguments() {
        for text in [
            "RETR\r\n",
            "RETR 0\r\n",
            "RETR x\r\n",
            "LIST 1 2\r\n",
            "TOP 1\r\n",
            "STAT 1\r\n",
            "PASS\r\n",
            "USER\r\n",
            "RETR 99999999999\r\n",
        ] {
            assert!(matches!(parse(text), Err(ParseError::Syntax { .. })), "{text:?}");
        }
        assert_eq!(parse("APOP a b\r\n"), Err(ParseError::UnknownCommand("APOP".into())));
        assert_eq!(parse("EXTRALONG\r\n"), Err(ParseError::UnknownCommand("EXTRALONG".into())));
    }

    #[test]
    fn pipelined_commands_are_taken_one_at_a_time() {
        let input = b"STAT\r\nLIST\r\nQUIT";
        assert_eq!(
            parse_command(input, &Limits::pop3()),
            Ok(Parsed::Complete { value: Command::Stat, consumed_bytes: 6 })
        );
        assert_eq!(parse_command(&input[12..], &Limits::pop3()), Ok(Parsed::NeedsMoreData));
    }
}
