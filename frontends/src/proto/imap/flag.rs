//! IMAP message flags (RFC 3501 §2.3.2): the system flags and keywords.

use std::fmt;

/// A message flag. System flags compare case-insensitively on the wire and are normalised
/// here; keywords keep the case the client used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `\Answered`.
    Answered,
    /// `\Flagged`.
    Flagged,
    /// `\Deleted`.
    Deleted,
    /// `\Seen`.
    Seen,
    /// `\Draft`.
    Draft,
    /// `\Recent` (session-only; clients cannot set it).
    Recent,
    /// A keyword such as `$Forwarded` or `NonJunk`.
    Keyword(String),
    /// Another `\`-flag we do not know (flag-extension); kept so the session can refuse it.
    Extension(String),
}

impl Flag {
    /// The flag for a `\name` system flag, or an extension.
    pub(crate) fn system(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "answered" => Self::Answered,
            "flagged" => Self::Flagged,
            "deleted" => Self::Deleted,
            "seen" => Self::Seen,
            "draft" => Self::Draft,
            "recent" => Self::Recent,
            _ => Self::Extension(name.to_owned()),
        }
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answered => formatter.write_str("\\Answered"),
            Self::Flagged => formatter.write_str("\\Flagged"),
            Self::Deleted => formatter.write_str("\\Deleted"),
            Self::Seen => formatter.write_str("\\Seen"),
            Self::Draft => formatter.write_str("\\Draft"),
            Self::Recent => formatter.write_str("\\Recent"),
            Self::Keyword(keyword) => formatter.write_str(keyword),
            Self::Extension(name) => write!(formatter, "\\{name}"),
        }
    }
}

/// Appends `(flag flag ...)`.
pub(crate) fn write_flag_list(flags: &[Flag], out: &mut Vec<u8>) {
    out.push(b'(');
    for (index, flag) in flags.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(flag.to_string().as_bytes());
    }
    out.push(b')');
}
