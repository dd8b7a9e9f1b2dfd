//! SMTP mail addresses and paths (RFC 5321 §4.1.2): `<local@domain>`, the null path `<>` and
//! `<Postmaster>`.

use std::fmt;

use crate::proto::limits::PATH_BYTES_MAX;

/// A mailbox address. The local part is kept decoded (without quotes); [`fmt::Display`] quotes
/// it again when it is not a plain dot-string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The part before '@', case preserved (RFC 5321 §2.4: only the receiving host may fold it).
    pub local_part: String,
    /// The domain, or an address literal with its brackets, e.g. `[192.0.2.1]`.
    pub domain: String,
}

/// The argument of MAIL FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`: bounces and other messages that must not be answered.
    Null,
    /// A sender address.
    Address(Address),
}

/// The argument of RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (RFC 5321 §4.5.1).
    Postmaster,
    /// A recipient address.
    Address(Address),
}

/// Why a path was refused; the session only needs to know that it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidPath;

/// Parses `<...>` (after the colon of `FROM:`/`TO:`) and returns the path text between the
/// brackets and the rest of the argument after '>'.
pub(crate) fn split_bracketed(argument: &[u8]) -> Result<(&[u8], &[u8]), InvalidPath> {
    let inner = argument.strip_prefix(b"<").ok_or(InvalidPath)?;
    let close = position_outside_quotes(inner, b'>').ok_or(InvalidPath)?;
    let path = inner.get(..close).ok_or(InvalidPath)?;
    if path.len() > PATH_BYTES_MAX {
        return Err(InvalidPath);
    }
    Ok((path, inner.get(close + 1..).unwrap_or_default()))
}

fn position_outside_quotes(bytes: &[u8], wanted: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, &byte) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if byte == wanted && !quoted {
            return Some(index);
        }
    }
    None
}

/// Parses the text between the brackets of a non-null path, dropping any source route
/// (`@relay1,@relay2:`), which RFC 5321 §4.1.2 says must be accepted and ignored.
pub(crate) fn parse_address(path: &[u8]) -> Result<Address, InvalidPath> {
    let mailbox = if path.first() == Some(&b'@') {
        let colon = path.iter().position(|&byte| byte == b':').ok_or(InvalidPath)?;
        path.get(colon + 1..).ok_or(InvalidPath)?
    } else {
        path
    };
    let at = mailbox.iter().rposition(|&byte| byte == b'@').ok_or(InvalidPath)?;
    let local = mailbox.get(..at).ok_or(InvalidPath)?;
    let domain = mailbox.get(at + 1..).ok_or(InvalidPath)?;
    let local_part = parse_local_part(local)?;
    if !is_domain(domain) && !is_address_literal(domain) {
        return Err(InvalidPath);
    }
    let domain = String::from_utf8(domain.to_vec()).map_err(|_| InvalidPath)?;
    Ok(Address { local_part, domain })
}

/// atext (RFC 5322 §3.2.3), plus the UTF-8 bytes RFC 6531 allows.
fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte) || byte >= 0x80
}

fn is_dot_string(text: &[u8]) -> bool {
    !text.is_empty()
        && text.split(|&byte| byte == b'.').all(|atom| !atom.is_empty() && atom.iter().all(|&byte| is_atext(byte)))
}

fn parse_local_part(local: &[u8]) -> Result<String, InvalidPath> {
    let decoded = if is_dot_string(local) {
        local.to_vec()
    } else {
        let content = local.strip_prefix(b"\"").and_then(|rest| rest.strip_suffix(b"\"")).ok_or(InvalidPath)?;
        let mut decoded = Vec::with_capacity(content.len());
        let mut bytes = content.iter();
        while let Some(&byte) = bytes.next() {
            match byte {
                b'\\' => match bytes.next() {
                    Some(&escaped @ 32..=126) => decoded.push(escaped),
                    _ => return Err(InvalidPath),
                },
                b'"' => return Err(InvalidPath),
                32..=126 | 0x80..=0xff => decoded.push(byte),
                _ => return Err(InvalidPath),
            }
        }
        decoded
    };
    String::from_utf8(decoded).map_err(|_| InvalidPath)
}

fn is_domain(domain: &[u8]) -> bool {
    !domain.is_empty()
        && domain.split(|&byte| byte == b'.').all(|label| {
            !label.is_empty()
                && label.first() != Some(&b'-')
                && label.last() != Some(&b'-')
                && label.iter().all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte >= 0x80)
        })
}

fn is_address_literal(domain: &[u8]) -> bool {
    domain.strip_prefix(b"[").and_then(|rest| rest.strip_suffix(b"]")).is_some_and(|inner| {
        !inner.is_empty() && inner.iter().all(|&byte| (33..=126).contains(&byte) && !b"[\\]".contains(&byte))
    })
}

impl fmt::Display for Address {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(self.local_part.as_bytes()) {
            formatter.write_str(&self.local_part)?;
        } else {
            formatter.write_str("\"")?;
            for character in self.local_part.chars() {
                if character == '"' || character == '\\' {
                    formatter.write_str("\\")?;
                }
                write!(formatter, "{character}")?;
            }
            formatter.write_str("\"")?;
        }
        write!(formatter, "@{}", self.domain)
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => formatter.write_str("<>"),
            Self::Address(address) => write!(formatter, "<{address}>"),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postmaster => formatter.write_str("<Postmaster>"),
            Self::Address(address) => write!(formatter, "<{address}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Result<Address, InvalidPath> {
        parse_address(text.as_bytes())
    }

    #[test]
    fn plain_and_quoted_local_parts() {
        assert_eq!(address("Smith@bar.com"), Ok(Address { local_part: "Smith".into(), domain: "bar.com".into() }));
        let quoted = address(r#""John \"Q\" Public"@example.com"#).unwrap();
        assert_eq!(quoted.local_part, r#"John "Q" Public"#);
        assert_eq!(quoted.to_string(), r#""John \"Q\" Public"@example.com"#);
    }

    #[test]
    fn source_route_is_ignored() {
        assert_eq!(address("@hosta.int,@jkl.org:userc@d.bar.org").unwrap().domain, "d.bar.org");
    }

    #[test]
    fn address_literal_domain() {
        assert_eq!(address("root@[192.0.2.1]").unwrap().domain, "[192.0.2.1]");
    }

    #[test]
    fn invalid_addresses() {
        for text in ["", "nobody", "a@", "@b", "a..b@c", "a@-b.c", "a@b..c", "a b@c", "\"a@b"] {
            assert_eq!(address(text), Err(InvalidPath), "{text}");
        }
    }

    #[test]
    fn bracketed_split() {
        assert_eq!(split_bracketed(b"<a@b> SIZE=1"), Ok((&b"a@b"[..], &b" SIZE=1"[..])));
        assert_eq!(split_bracketed(b"<\"a>\"@b>"), Ok((&b"\"a>\"@b"[..], &b""[..])));
        assert_eq!(split_bracketed(b"a@b"), Err(InvalidPath));
        assert_eq!(split_bracketed(b"<a@b"), Err(InvalidPath));
    }
}
