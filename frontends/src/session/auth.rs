//! Login for every protocol: account + password against the engine's argon2id hashes (login
//! password and per-device app passwords, HSM-peppered), a failed-login rate limit per
//! (account, IP), and every attempt recorded in the account's encrypted access log.
//!
//! Protocols decide *whether* a login may happen (never in plaintext before STARTTLS/STLS);
//! this module decides whether it succeeds.

mod rate_limit;
mod verifier;

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mailvault_engine::format::ACCESS_FIELD_BYTES_MAX;
use mailvault_engine::{AccessEvent, Engine, EngineError};
use mailvault_hsm::Hsm;

pub use rate_limit::{FAILED_LOGIN_WINDOW, FAILED_LOGINS_MAX, FailedLogins, RateLimit, TRACKED_PAIRS_MAX};
pub use verifier::{PasswordVerifier, VERIFICATION_QUEUE_MAX, VerifyError};

use super::registry::{LiveSession, Protocol};

/// One login attempt as a protocol session saw it.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    pub account: &'a str,
    pub password: &'a [u8],
    pub protocol: Protocol,
    /// How the client logged in, for the access log: "USER/PASS", "AUTH PLAIN", "LOGIN"...
    pub method: &'a str,
    pub peer: SocketAddr,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub account: String,
    /// The label of the app password used, if it was not the account password.
    pub app_password: Option<String>,
}

/// Why a login failed. Sessions map each to their protocol's reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Unknown account or wrong password: the client is not told which.
    #[error("authentication failed")]
    WrongCredentials,
    /// Too many failures for this account from this IP recently; the password was not checked.
    #[error("too many failed logins; try again later")]
    RateLimited,
    /// The account was logged out remotely while the password was being checked.
    #[error("the account was logged out")]
    LoggedOut,
    /// Our failure (engine, HSM, access log): the client may retry.
    #[error("authentication is temporarily unavailable")]
    Unavailable,
}

/// Checks logins; one per server, shared by every core.
#[derive(Debug)]
pub struct Authenticator {
    engine: Engine,
    verifier: PasswordVerifier,
    failed_logins: FailedLogins,
}

impl Authenticator {
    /// Starts the password verification threads.
    pub fn start(engine: Engine, hsm: &Hsm, verifier_threads: usize, rate_limit: RateLimit) -> std::io::Result<Self> {
        Ok(Self {
            engine,
            verifier: PasswordVerifier::start(hsm, verifier_threads)?,
            failed_logins: FailedLogins::new(rate_limit),
        })
    }

    /// Checks the attempt, records it, and on success attaches the account to `live` (so that
    /// a remote logout reaches this session).
    pub async fn login(&self, live: &LiveSession, attempt: LoginAttempt<'_>) -> Result<LoggedIn, LoginError> {
        let ip = attempt.peer.ip();
        if !self.failed_logins.allows(attempt.account, ip, Instant::now()) {
            tracing::warn!(account = attempt.account, %ip, "login refused by the failed-login rate limit");
            return Err(LoginError::RateLimited);
        }
        let epoch = live.registry().logout_epoch(attempt.account);
        let credentials = match self.engine.credentials(attempt.account).await {
            Ok(credentials) => Some(credentials),
            // A closed account fails like an unknown one: the password is still checked (same
            // cost), and nothing tells the client the account exists.
            Err(
                EngineError::NoSuchAccount(_) | EngineError::InvalidInput { .. } | EngineError::AccountClosed { .. },
            ) => None,
            Err(error) => {
                tracing::error!(%error, "reading credentials");
                return Err(LoginError::Unavailable);
            }
        };
        let (hashes, labels) = candidate_hashes(credentials.as_ref());
        let matched = self.verifier.verify(attempt.password, hashes).await.map_err(|error| {
            tracing::error!(%error, "password verification");
            LoginError::Unavailable
        })?;
        let Some(index) = matched else {
            self.failed_logins.record_failure(attempt.account, ip, Instant::now());
            if credentials.is_some() {
                self.record(&attempt, attempt.method.to_owned(), false).await?;
            }
            return Err(LoginError::WrongCredentials);
        };
        self.failed_logins.record_success(attempt.account, ip);
        let app_password = labels.get(index).cloned().flatten();
        let method = match &app_password {
            Some(label) => format!("{} app-password:{label}", attempt.method),
            None => attempt.method.to_owned(),
        };
        // Fail closed: a login that cannot be logged does not happen.
        self.record(&attempt, method, true).await?;
        live.attach_account(attempt.account, epoch).map_err(|_| LoginError::LoggedOut)?;
        Ok(LoggedIn { account: attempt.account.to_owned(), app_password })
    }

    async fn record(&self, attempt: &LoginAttempt<'_>, method: String, success: bool) -> Result<(), LoginError> {
        let event = AccessEvent {
            at_unix_ms: now_unix_ms(),
            remote_ip: attempt.peer.ip().to_string(),
            protocol: attempt.protocol.name().to_owned(),
            method: truncate(method, ACCESS_FIELD_BYTES_MAX),
            success,
        };
        self.engine.record_access(attempt.account, event).await.map_err(|error| {
            tracing::error!(%error, "recording a login in the access log");
            LoginError::Unavailable
        })
    }
}

/// The hashes to try, login password first, and for each the app password label (if any).
fn candidate_hashes(credentials: Option<&mailvault_engine::Credentials>) -> (Vec<String>, Vec<Option<String>>) {
    let mut hashes = Vec::new();
    let mut labels = Vec::new();
    if let Some(credentials) = credentials {
        if let Some(hash) = &credentials.password_hash {
            hashes.push(hash.clone());
            labels.push(None);
        }
        for app_password in &credentials.app_passwords {
            hashes.push(app_password.password_hash.clone());
            labels.push(Some(app_password.label.clone()));
        }
    }
    (hashes, labels)
}

fn truncate(mut text: String, bytes_max: usize) -> String {
    if text.len() > bytes_max {
        let mut end = bytes_max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("hello".to_owned(), 10), "hello");
    }
}
