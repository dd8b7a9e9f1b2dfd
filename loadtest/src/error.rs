//! What can go wrong talking to a server; one enum for every protocol client.

use std::io;

/// A failed connection, command or reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("connecting to {address}: {source}")]
    Connect { address: String, source: io::Error },
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("{protocol} {command}: the server replied {reply:?}")]
    Refused { protocol: &'static str, command: &'static str, reply: String },
    #[error("{protocol}: malformed reply {reply:?}")]
    Malformed { protocol: &'static str, reply: String },
    #[error("a reply line or literal is longer than {0} bytes")]
    TooLong(usize),
    #[error("{0} does not offer STARTTLS")]
    NoStartTls(&'static str),
}

impl ClientError {
    /// A short kind for error tallies (the message may hold per-message details).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Io(error) if error.kind() == io::ErrorKind::WouldBlock || error.kind() == io::ErrorKind::TimedOut => {
                "timeout"
            }
            Self::Io(_) => "io",
            Self::Tls(_) => "tls",
            Self::Closed => "closed",
            Self::Refused { .. } => "refused",
            Self::Malformed { .. } | Self::TooLong(_) => "malformed",
            Self::NoStartTls(_) => "no-starttls",
        }
    }

    pub(crate) fn refused(protocol: &'static str, command: &'static str, reply: &[u8]) -> Self {
        Self::Refused { protocol, command, reply: printable(reply) }
    }

    pub(crate) fn malformed(protocol: &'static str, reply: &[u8]) -> Self {
        Self::Malformed { protocol, reply: printable(reply) }
    }
}

/// A reply line for an error message: lossy UTF-8, line end dropped, at most 200 characters.
fn printable(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.trim_end_matches(['\r', '\n']).chars().take(200).collect()
}
