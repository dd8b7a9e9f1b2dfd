//! One accepted connection: registered (or refused past the connection limit), TLS first on
//! the implicit-TLS ports, then handed to its protocol's session, then closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compio::io::AsyncWriteExt;
use compio::net::TcpStream;
use rustls::ServerConfig;

use super::connection::Connection;
use super::listener::ListenerKind;
use crate::session::SessionIo;
use crate::session::context::{Services, SessionContext};
use crate::session::registry::{Protocol, RegisterError};
use crate::session::{imap, lmtp, pop3};

/// How long the "try later" reply to a refused connection may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    services: Arc<Services>,
    tls: Arc<ServerConfig>,
) {
    let live = match services.registry.connect(kind.protocol(), peer) {
        Ok(live) => live,
        Err(error) => {
            tracing::warn!(%peer, %kind, %error, "connection refused");
            refuse(stream, kind, error).await;
            return;
        }
    };
    let mut connection = Connection::new(stream, peer, Some(tls));
    if kind.implicit_tls()
        && let Err(error) = connection.start_tls().await
    {
        tracing::debug!(%peer, %kind, %error, "TLS handshake failed");
        return;
    }
    let context = SessionContext::new(services, live, kind.protocol(), peer);
    match kind.protocol() {
        Protocol::Lmtp => lmtp::serve(&mut connection, &context).await,
        Protocol::Pop3 => pop3::serve(&mut connection, &context).await,
        Protocol::Imap => imap::serve(&mut connection, &context).await,
    }
    drop(context);
    connection.close().await;
}

/// Tells a client on a plaintext port why it is turned away; implicit-TLS ports just close
/// (a reply would need a handshake first).
async fn refuse(mut stream: TcpStream, kind: ListenerKind, error: RegisterError) {
    if kind.implicit_tls() {
        return;
    }
    let reply: &[u8] = match (kind.protocol(), error) {
        (Protocol::Lmtp, RegisterError::ShuttingDown) => b"421 4.3.2 Service shutting down, try again later\r\n",
        (Protocol::Lmtp, _) => b"421 4.3.2 Too many connections, try again later\r\n",
        (Protocol::Pop3, RegisterError::ShuttingDown) => b"-ERR [SYS/TEMP] server shutting down\r\n",
        (Protocol::Pop3, _) => b"-ERR [SYS/TEMP] too many connections, try again later\r\n",
        (Protocol::Imap, RegisterError::ShuttingDown) => b"* BYE server shutting down\r\n",
        (Protocol::Imap, _) => b"* BYE too many connections, try again later\r\n",
    };
    let _ = compio::time::timeout(REFUSAL_WRITE_TIMEOUT, stream.write_all(reply)).await;
}
