//! Every live connection, by protocol and account: the connection limit, ending all of one
//! account's sessions at once (remote logout), ending everything (shutdown), and the POP3
//! maildrop lock. Shared by every core's listeners.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Most connections open at once by default, over all protocols and cores. Each holds buffers
/// bounded by the protocol limits; past this, new connections are refused with a "try later"
/// reply.
pub const CONNECTIONS_MAX: usize = 4096;

/// Which protocol a connection speaks; also what the access log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Lmtp,
    Pop3,
    Imap,
}

impl Protocol {
    /// The lower-case name used in logs and the access log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lmtp => "lmtp",
            Self::Pop3 => "pop3",
            Self::Imap => "imap",
        }
    }
}

/// Why the server ended a session before the client did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `mailvault account logout`: every session of the account ends now.
    LoggedOut,
    /// The server is shutting down.
    ShuttingDown,
}

/// A connection that could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    #[error("too many connections")]
    TooManyConnections,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Login was accepted, but the account was logged out remotely while it was being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the account was logged out during login")]
pub struct LoggedOutDuringLogin;

/// What one live connection looks like from the outside (admin listings, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub protocol: Protocol,
    pub peer: SocketAddr,
    pub account: Option<String>,
}

#[derive(Debug)]
struct Entry {
    summary: SessionSummary,
    /// Capacity one: the first reason wins, later ones are dropped.
    end: flume::Sender<EndReason>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    sessions: HashMap<u64, Entry>,
    shutting_down: bool,
    /// Bumped by every remote logout of an account, so that a login whose password check
    /// started before the logout cannot attach to the account after it.
    logout_epochs: HashMap<String, u64>,
    /// Accounts whose POP3 maildrop is held by a session (RFC 1939 §8: exclusive access).
    locked_maildrops: HashSet<String>,
}

/// The registry; one per server, behind an `Arc`.
#[derive(Debug)]
pub struct SessionRegistry {
    state: Mutex<State>,
    connections_max: usize,
}

impl SessionRegistry {
    /// A registry allowing [`CONNECTIONS_MAX`] connections.
    pub fn new() -> Arc<Self> {
        Self::with_connections_max(CONNECTIONS_MAX)
    }

    pub fn with_connections_max(connections_max: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::default(), connections_max })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters (each operation is one insert or remove), so keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection; refused past the connection limit or during shutdown.
    pub fn connect(self: &Arc<Self>, protocol: Protocol, peer: SocketAddr) -> Result<LiveSession, RegisterError> {
        let mut state = self.lock();
        if state.shutting_down {
            return Err(RegisterError::ShuttingDown);
        }
        if state.sessions.len() >= self.connections_max {
            return Err(RegisterError::TooManyConnections);
        }
        let id = state.next_id;
        state.next_id += 1;
        let (end, ended) = flume::bounded(1);
        state.sessions.insert(id, Entry { summary: SessionSummary { protocol, peer, account: None }, end });
        Ok(LiveSession { id, registry: self.clone(), ended })
    }

    /// Ends every live session of `account` (remote logout); returns how many there were.
    pub fn end_account(&self, account: &str) -> usize {
        let mut state = self.lock();
        *state.logout_epochs.entry(account.to_owned()).or_default() += 1;
        let mut ended = 0;
        for entry in state.sessions.values() {
            if entry.summary.account.as_deref() == Some(account) {
                let _ = entry.end.try_send(EndReason::LoggedOut);
                ended += 1;
            }
        }
        ended
    }

    /// Refuses new connections and asks every live session to end.
    pub fn shut_down(&self) {
        let mut state = self.lock();
        state.shutting_down = true;
        for entry in state.sessions.values() {
            let _ = entry.end.try_send(EndReason::ShuttingDown);
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    /// How many connections are open.
    pub fn connection_count(&self) -> usize {
        self.lock().sessions.len()
    }

    /// The live sessions, in no particular order.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        self.lock().sessions.values().map(|entry| entry.summary.clone()).collect()
    }

    /// The logout epoch of an account: read it before checking a password, hand it to
    /// [`LiveSession::attach_account`] after.
    pub fn logout_epoch(&self, account: &str) -> u64 {
        self.lock().logout_epochs.get(account).copied().unwrap_or(0)
    }

    fn attach(&self, id: u64, account: &str, epoch: u64) -> Result<(), LoggedOutDuringLogin> {
        let mut state = self.lock();
        if state.logout_epochs.get(account).copied().unwrap_or(0) != epoch {
            return Err(LoggedOutDuringLogin);
        }
        if let Some(entry) = state.sessions.get_mut(&id) {
            entry.summary.account = Some(account.to_owned());
        }
        Ok(())
    }

    fn disconnect(&self, id: u64) {
        self.lock().sessions.remove(&id);
    }

    /// Takes the account's POP3 maildrop lock; `None` if another session holds it.
    pub fn lock_maildrop(self: &Arc<Self>, account: &str) -> Option<MaildropLock> {
        let mut state = self.lock();
        state
            .locked_maildrops
            .insert(account.to_owned())
            .then(|| MaildropLock { account: account.to_owned(), registry: self.clone() })
    }
}

/// One registered connection; unregisters itself when dropped.
#[derive(Debug)]
pub struct LiveSession {
    id: u64,
    registry: Arc<SessionRegistry>,
    ended: flume::Receiver<EndReason>,
}

impl LiveSession {
    /// Marks the connection as logged in to `account`, unless the account was logged out
    /// since `epoch` was read (see [`SessionRegistry::logout_epoch`]).
    pub fn attach_account(&self, account: &str, epoch: u64) -> Result<(), LoggedOutDuringLogin> {
        self.registry.attach(self.id, account, epoch)
    }

    /// Resolves when the server ends this session (remote logout or shutdown); pending
    /// forever otherwise. Race it against reads.
    pub async fn ended(&self) -> EndReason {
        // The sender lives in the registry entry, which outlives this handle.
        self.ended.recv_async().await.unwrap_or(EndReason::ShuttingDown)
    }

    /// The reason, if the session has already been asked to end.
    pub fn end_requested(&self) -> Option<EndReason> {
        self.ended.try_recv().ok().inspect(|reason| {
            // Put it back so that a later `ended()` sees it too.
            let _ = self.registry.lock().sessions.get(&self.id).map(|entry| entry.end.try_send(*reason));
        })
    }

    pub fn registry(&self) -> &Arc<SessionRegistry> {
        &self.registry
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.registry.disconnect(self.id);
    }
}

/// Exclusive access to one account's POP3 maildrop; released when dropped.
#[derive(Debug)]
pub struct MaildropLock {
    account: String,
    registry: Arc<SessionRegistry>,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.registry.lock().locked_maildrops.remove(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4000))
    }

    #[test]
    fn logout_ends_only_that_account() {
        let registry = SessionRegistry::new();
        let alice = registry.connect(Protocol::Pop3, peer()).unwrap();
        let bob = registry.connect(Protocol::Imap, peer()).unwrap();
        alice.attach_account("alice", registry.logout_epoch("alice")).unwrap();
        bob.attach_account("bob", registry.logout_epoch("bob")).unwrap();
        assert_eq!(registry.end_account("alice"), 1);
        assert_eq!(alice.end_requested(), Some(EndReason::LoggedOut));
        assert_eq!(alice.end_requested(), Some(EndReason::LoggedOut), "the reason stays");
        assert_eq!(bob.end_requested(), None);
        drop(alice);
        assert_eq!(registry.connection_count(), 1);
    }

    #[test]
    fn login_racing_a_logout_is_refused() {
        let registry = SessionRegistry::new();
        let session = registry.connect(Protocol::Pop3, peer()).unwrap();
        let epoch = registry.logout_epoch("alice");
        registry.end_account("alice");
        assert_eq!(session.attach_account("alice", epoch), Err(LoggedOutDuringLogin));
    }

    #[test]
    fn shutdown_refuses_new_connections() {
        let registry = SessionRegistry::new();
        let session = registry.connect(Protocol::Lmtp, peer()).unwrap();
        registry.shut_down();
        assert_eq!(session.end_requested(), Some(EndReason::ShuttingDown));
        assert_eq!(registry.connect(Protocol::Lmtp, peer()).unwrap_err(), RegisterError::ShuttingDown);
    }

    #[test]
    fn connections_past_the_limit_are_refused() {
        let registry = SessionRegistry::with_connections_max(1);
        let first = registry.connect(Protocol::Pop3, peer()).unwrap();
        assert_eq!(registry.connect(Protocol::Pop3, peer()).unwrap_err(), RegisterError::TooManyConnections);
        drop(first);
        assert!(registry.connect(Protocol::Pop3, peer()).is_ok());
    }

    #[test]
    fn maildrop_lock_is_exclusive() {
        let registry = SessionRegistry::new();
        let lock = registry.lock_maildrop("alice").unwrap();
        assert!(registry.lock_maildrop("alice").is_none());
        drop(lock);
        assert!(registry.lock_maildrop("alice").is_some());
    }
}
