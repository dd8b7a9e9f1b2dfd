//! Listening sockets: for each configured port, one `SO_REUSEPORT` socket per core, all bound
//! before any runtime starts so that bind errors surface at startup and port 0 resolves to one
//! port shared by every core (the kernel then spreads connections across them).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

use crate::session::registry::Protocol;

/// Connections the kernel queues per socket before `accept`.
pub const LISTEN_BACKLOG: i32 = 1024;

/// What a port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// LMTP, plain with STARTTLS.
    Lmtp,
    /// POP3, plain with STLS.
    Pop3,
    /// POP3 in TLS from the first byte (RFC 8314).
    Pop3Tls,
    /// IMAP, plain with STARTTLS.
    Imap,
    /// IMAP in TLS from the first byte (RFC 8314).
    ImapTls,
}

impl ListenerKind {
    pub const ALL: [Self; 5] = [Self::Lmtp, Self::Pop3, Self::Pop3Tls, Self::Imap, Self::ImapTls];

    pub fn protocol(self) -> Protocol {
        match self {
            Self::Lmtp => Protocol::Lmtp,
            Self::Pop3 | Self::Pop3Tls => Protocol::Pop3,
            Self::Imap | Self::ImapTls => Protocol::Imap,
        }
    }

    pub fn implicit_tls(self) -> bool {
        matches!(self, Self::Pop3Tls | Self::ImapTls)
    }

    /// The URL scheme-like name printed at startup.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lmtp => "lmtp",
            Self::Pop3 => "pop3",
            Self::Pop3Tls => "pop3s",
            Self::Imap => "imap",
            Self::ImapTls => "imaps",
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

fn bind_one(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` sockets to `address`; returns the address actually bound (port 0 resolved)
/// and the sockets.
pub fn bind_group(address: SocketAddr, count: usize) -> io::Result<(SocketAddr, Vec<TcpListener>)> {
    let first = bind_one(address)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count.max(1) {
        listeners.push(bind_one(bound)?);
    }
    Ok((bound, listeners))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_port_is_shared_by_the_group() {
        let (bound, listeners) = bind_group(SocketAddr::from(([127, 0, 0, 1], 0)), 3).unwrap();
        assert_ne!(bound.port(), 0);
        for listener in &listeners {
            assert_eq!(listener.local_addr().unwrap(), bound);
        }
    }
}
