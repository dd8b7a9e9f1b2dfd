//! What a protocol session gets besides its connection: the engine, login, the session's entry
//! in the live-session registry, its limits, and reads and writes that end on idle timeout,
//! remote logout or shutdown.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use mailvault_engine::Engine;

use super::SessionIo;
use super::auth::{Authenticator, LoggedIn, LoginAttempt, LoginError};
use super::registry::{EndReason, LiveSession, Protocol, SessionRegistry};
use crate::proto::Limits;

/// How long an LMTP client may stay silent (RFC 5321 §4.5.3.2.7: 5 minutes).
pub const LMTP_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long a POP3 client may stay silent (RFC 1939 §3: at least 10 minutes).
pub const POP3_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long an IMAP client may stay silent (RFC 3501 §5.4: at least 30 minutes).
pub const IMAP_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long one reply may take to leave (a client that stops reading must not pin a session).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Per-protocol settings; defaults are the named constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolSettings {
    pub limits: Limits,
    pub idle_timeout: Duration,
}

impl ProtocolSettings {
    /// The defaults for `protocol`.
    pub const fn default_for(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Lmtp => Self { limits: Limits::lmtp(), idle_timeout: LMTP_IDLE_TIMEOUT },
            Protocol::Pop3 => Self { limits: Limits::pop3(), idle_timeout: POP3_IDLE_TIMEOUT },
            Protocol::Imap => Self { limits: Limits::imap(), idle_timeout: IMAP_IDLE_TIMEOUT },
        }
    }
}

/// Everything sessions share, one per server.
#[derive(Debug)]
pub struct Services {
    pub engine: Engine,
    pub registry: Arc<SessionRegistry>,
    pub authenticator: Authenticator,
    /// The name the server gives itself in greetings.
    pub host_name: String,
    /// Whether STARTTLS/STLS can be offered (a certificate is loaded).
    pub tls_available: bool,
    pub lmtp: ProtocolSettings,
    pub pop3: ProtocolSettings,
    pub imap: ProtocolSettings,
}

/// Why a read or write ended the session instead of moving bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Interrupted {
    #[error("the client closed the connection")]
    Closed,
    #[error("the client was idle too long")]
    IdleTimeout,
    #[error("the server ended the session: {0:?}")]
    Ended(EndReason),
    #[error("connection: {0}")]
    Io(#[from] io::Error),
}

/// One connection's view of the server.
#[derive(Debug)]
pub struct SessionContext {
    services: Arc<Services>,
    live: LiveSession,
    protocol: Protocol,
    peer: SocketAddr,
}

impl SessionContext {
    pub fn new(services: Arc<Services>, live: LiveSession, protocol: Protocol, peer: SocketAddr) -> Self {
        Self { services, live, protocol, peer }
    }

    pub fn engine(&self) -> &Engine {
        &self.services.engine
    }

    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.services.registry
    }

    pub fn host_name(&self) -> &str {
        &self.services.host_name
    }

    pub fn tls_available(&self) -> bool {
        self.services.tls_available
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn settings(&self) -> &ProtocolSettings {
        match self.protocol {
            Protocol::Lmtp => &self.services.lmtp,
            Protocol::Pop3 => &self.services.pop3,
            Protocol::Imap => &self.services.imap,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.settings().limits
    }

    /// Checks a password and records the attempt; on success, remote logout of the account
    /// ends this session. `method` names the command for the access log ("USER/PASS", "LOGIN").
    pub async fn login(&self, account: &str, password: &[u8], method: &str) -> Result<LoggedIn, LoginError> {
        let attempt = LoginAttempt { account, password, protocol: self.protocol, method, peer: self.peer };
        self.services.authenticator.login(&self.live, attempt).await
    }

    /// Resolves when the server ends this session (remote logout or shutdown).
    pub async fn ended(&self) -> EndReason {
        self.live.ended().await
    }

    /// The reason, if the server has already asked this session to end.
    pub fn end_requested(&self) -> Option<EndReason> {
        self.live.end_requested()
    }

    /// Reads more input into `buffer`, or says why the session should end instead.
    pub async fn read(&self, io: &mut impl SessionIo, buffer: &mut Vec<u8>) -> Result<usize, Interrupted> {
        self.read_with_timeout(io, buffer, self.settings().idle_timeout).await
    }

    /// [`read`](Self::read) with another idle timeout (IMAP IDLE may wait longer).
    pub async fn read_with_timeout(
        &self,
        io: &mut impl SessionIo,
        buffer: &mut Vec<u8>,
        idle_timeout: Duration,
    ) -> Result<usize, Interrupted> {
        if let Some(reason) = self.end_requested() {
            return Err(Interrupted::Ended(reason));
        }
        let read = compio::time::timeout(idle_timeout, io.read_into(buffer));
        // The end wins a tie: once a logout has been answered, no later command may be served,
        // even when its bytes arrived before this task ran again (reads are cancel-safe).
        match first(self.live.ended(), read).await {
            Either::Left(reason) => Err(Interrupted::Ended(reason)),
            Either::Right(Ok(Ok(0))) => Err(Interrupted::Closed),
            Either::Right(Ok(Ok(count))) => Ok(count),
            Either::Right(Ok(Err(error))) => Err(Interrupted::Io(error)),
            Either::Right(Err(_elapsed)) => Err(Interrupted::IdleTimeout),
        }
    }

    /// Writes `bytes`, bounded by [`WRITE_TIMEOUT`]. Not interrupted by logout or shutdown:
    /// a reply that has started goes out whole.
    pub async fn write(&self, io: &mut impl SessionIo, bytes: &[u8]) -> Result<(), Interrupted> {
        match compio::time::timeout(WRITE_TIMEOUT, io.write_all(bytes)).await {
            Ok(result) => Ok(result?),
            Err(_elapsed) => Err(Interrupted::IdleTimeout),
        }
    }
}

/// Which of two futures finished first.
#[derive(Debug)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures; returns the first output (`a` wins a tie) and drops the other future.
pub async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|context| {
        if let Poll::Ready(output) = a.as_mut().poll(context) {
            return Poll::Ready(Either::Left(output));
        }
        if let Poll::Ready(output) = b.as_mut().poll(context) {
            return Poll::Ready(Either::Right(output));
        }
        Poll::Pending
    })
    .await
}
