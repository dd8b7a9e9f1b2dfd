//! The network edge: TLS policy and certificates, the [`Connection`] sessions read and write
//! through, `SO_REUSEPORT` listeners with one runtime per core, and the [`RunningServer`] that
//! ties them to the engine.
//!
//! Ports (see [`Ports::DEVELOPMENT`]), on 127.0.0.1 unless configured otherwise:
//! LMTP 2424 (STARTTLS), POP3 1110 (STLS), POP3S 1995, IMAP 1143 (STARTTLS), IMAPS 1993.

mod certificate;
mod connection;
mod dispatch;
mod listener;
mod server;
pub mod tls;
mod worker;

pub use certificate::{CERTIFICATE_FILE, KEY_FILE, ensure_self_signed};
pub use connection::{Connection, READ_CHUNK_BYTES, TLS_HANDSHAKE_TIMEOUT};
pub use listener::{LISTEN_BACKLOG, ListenerKind, bind_group};
pub use server::{
    CONNECTIONS_MAX_ON_SHARDS, Ports, RunningServer, SHUTDOWN_GRACE, ServerConfig, StartError, default_tls_directory,
};
