//! The seam between a session and its connection: bytes in, bytes out, and the STARTTLS
//! upgrade. `net::Connection` implements it over TCP and rustls.

use std::io;
use std::net::SocketAddr;

/// A client connection as a session sees it. Futures are `!Send`: each listener runs on its
/// own core's runtime.
#[allow(async_fn_in_trait)]
pub trait SessionIo {
    /// Reads what is available (at least one byte) and appends it to `buffer`; `Ok(0)` means
    /// the peer closed the connection. Implementations bound the bytes read per call.
    async fn read_into(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize>;
    /// Writes all of `bytes` (and flushes them to the peer).
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Upgrades the connection to TLS in place (STARTTLS, STLS). Fails if it already is TLS.
    /// Callers must discard any bytes they had buffered before the upgrade (RFC 3207 §4.2).
    async fn start_tls(&mut self) -> io::Result<()>;
    fn is_tls(&self) -> bool;
    fn peer_address(&self) -> SocketAddr;
}
