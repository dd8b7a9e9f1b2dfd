//! Account lifecycle across the engine: closing and reopening, purging, and the
//! crypto-shredding that makes a purged account's data key unrecoverable everywhere.
//!
//! Crypto-shredding, in order (the KEK is global, so every shard takes part):
//!
//! 1. `shred-pending` is written (fsynced) in the data directory: from here on, an interrupted
//!    purge is finished by the next open (or the lifecycle timer) — every step is idempotent.
//! 2. Each purged account's shard commits a clear `AccountPurged` record and forgets the account
//!    and its key.
//! 3. The HSM gets a new KEK version.
//! 4. Every shard re-wraps every surviving data key under it, commits the new `KeyWrapped`
//!    records and writes a fresh checkpoint (replacing the older one), durably.
//! 5. Every older KEK version is destroyed in the HSM. From now on, no wrapped copy of the purged
//!    key — in a live or old segment, an old checkpoint, or any copy of those files — unwraps.
//! 6. The [`PurgeObserver`] runs (backups re-wrap their key tables there), then `shred-pending`
//!    is removed and the purge reports success.
//!
//! A crash anywhere leaves either the account still closed (step 2 not durable) or purged; in
//! both cases `shred-pending` makes the next open run steps 3–6 again.

use std::path::Path;
use std::sync::Weak;
use std::time::Duration;

use crate::api::{AccountState, PurgeReport};
use crate::engine::{Engine, Inner};
use crate::error::EngineError;
use crate::shard::request::{Mutation, Outcome, Query, Request};

/// Shortest and longest delay between closing an account and its purge.
pub const PURGE_DELAY_DAYS_MIN: u32 = 37;
pub const PURGE_DELAY_DAYS_MAX: u32 = 365;
pub const PURGE_DELAY_DAYS_DEFAULT: u32 = PURGE_DELAY_DAYS_MIN;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// In the data directory while a purge's crypto-shredding is not finished.
pub const SHRED_PENDING_FILE: &str = "shred-pending";

/// The seam for what must also forget a purged account's key outside the live store.
///
/// Called once per purge, after the live store's crypto-shredding is complete (steps 1–5 of the
/// module comment: every surviving key re-wrapped under the new KEK, fresh checkpoints durable,
/// the older KEK versions destroyed), and before the purge reports success. The backup
/// subsystem implements it: rotate the HSM backup key and rewrite every target's key table
/// without the purged accounts. An `Err` fails the purge; `shred-pending` then stays, and the
/// whole shredding (this call included) runs again at the next open or lifecycle tick, so the
/// observer must be idempotent. It runs on the purging thread and may block.
pub trait PurgeObserver: Send + Sync + std::fmt::Debug {
    fn after_shredding(&self, report: &PurgeReport) -> Result<(), String>;
}

/// Checks a purge delay against the allowed range.
pub fn check_purge_delay_days(days: u32) -> Result<(), EngineError> {
    if (PURGE_DELAY_DAYS_MIN..=PURGE_DELAY_DAYS_MAX).contains(&days) {
        Ok(())
    } else {
        Err(EngineError::InvalidInput {
            what: "purge delay",
            reason: format!("{days} days is outside the allowed {PURGE_DELAY_DAYS_MIN} to {PURGE_DELAY_DAYS_MAX} days"),
        })
    }
}

impl Engine {
    /// Closes an account: from now on nothing of it is reachable (logins fail, delivery is
    /// refused), and it is purged once `purge_delay_days` (default: the engine's configured
    /// delay) have passed, unless reopened first. Returns the purge time (Unix ms).
    pub async fn close_account(&self, account: &str, purge_delay_days: Option<u32>) -> Result<i64, EngineError> {
        let days = purge_delay_days.unwrap_or(self.inner.purge_delay_days);
        check_purge_delay_days(days)?;
        let mutation = Mutation::CloseAccount { account: account.to_owned(), purge_delay_ms: i64::from(days) * DAY_MS };
        match self.mutate(account, mutation).await? {
            Outcome::At(purge_after_unix_ms) => Ok(purge_after_unix_ms),
            other => Err(crate::engine::unexpected(&other)),
        }
    }

    /// Reopens a closed account before its purge: everything is reachable again.
    pub async fn reopen_account(&self, account: &str) -> Result<(), EngineError> {
        self.mutate(account, Mutation::ReopenAccount { account: account.to_owned() }).await.map(drop)
    }

    /// Every account and its state, closed ones included, sorted by name.
    pub async fn account_states(&self) -> Result<Vec<AccountState>, EngineError> {
        let mut states: Vec<AccountState> = self.query_all(Query::AccountStates).await?.into_iter().flatten().collect();
        states.sort_by(|left, right| left.name.cmp(&right.name));
        Ok(states)
    }

    /// Purges a closed account now, whatever its scheduled time: its records become dead and
    /// its data key is crypto-shredded (module comment). Refused for an open account.
    pub async fn purge_account(&self, account: &str) -> Result<PurgeReport, EngineError> {
        let states = self.account_states().await?;
        match states.iter().find(|state| state.name == account) {
            None => Err(EngineError::NoSuchAccount(account.to_owned())),
            Some(state) if state.closed_unix_ms.is_none() => Err(EngineError::AccountNotClosed(account.to_owned())),
            Some(_) => self.purge(vec![account.to_owned()]).await,
        }
    }

    /// Purges every closed account whose purge time has passed (by the engine's clock), and
    /// finishes an interrupted shredding. What the lifecycle timer runs; tests call it after
    /// moving a `ManualClock`.
    pub async fn purge_due(&self) -> Result<PurgeReport, EngineError> {
        let due: Vec<String> = self.query_all(Query::DuePurges).await?.into_iter().flatten().collect();
        if due.is_empty() && !shred_pending(&self.inner.data_dir) {
            return Ok(PurgeReport::default());
        }
        self.purge(due).await
    }

    async fn purge(&self, accounts: Vec<String>) -> Result<PurgeReport, EngineError> {
        // One purge at a time: a second would rotate the KEK under the first's re-wrapping.
        let gate = &self.inner.purge_gate;
        gate.1.recv_async().await.map_err(|_| EngineError::ShutDown)?;
        // Given back however this future ends: dropped halfway (a cancelled admin command,
        // say), it would otherwise leave every later purge waiting forever.
        let _token = PurgeGateToken(&gate.0);
        self.purge_holding_gate(accounts).await
    }

    async fn purge_holding_gate(&self, accounts: Vec<String>) -> Result<PurgeReport, EngineError> {
        mark_shred_pending(&self.inner.data_dir)?;
        let mut report = PurgeReport::default();
        let mut first_error = None;
        for account in accounts {
            match self.mutate(&account, Mutation::PurgeAccount { account: account.clone() }).await {
                Ok(_) => {
                    tracing::info!(account, "account purged; shredding its data key");
                    report.purged_accounts.push(account);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        // Shred even if a purge record failed: rotating with nothing purged is harmless, and
        // the accounts that were purged must not wait.
        let shredded = self.shred(report).await?;
        match first_error {
            Some(error) => Err(error),
            None => Ok(shredded),
        }
    }

    /// Steps 3–6 of the module comment. Idempotent; `shred-pending` stays until all succeeded.
    async fn shred(&self, mut report: PurgeReport) -> Result<PurgeReport, EngineError> {
        let session = self.inner.hsm.session()?;
        // A retry reuses the version an interrupted attempt created (named in `shred-pending`)
        // if it is still the current one: retries after failures do not pile up KEK versions.
        let current = session.status()?.current_kek;
        let kek_version = match pending_kek_version(&self.inner.data_dir) {
            Some(version) if Some(version) == current => version,
            _ => {
                let version = session.rotate_kek()?;
                mark_shred_pending_version(&self.inner.data_dir, version)?;
                version
            }
        };
        report.kek_version = kek_version;
        for rewrapped in self.query_all_requests(Request::RewrapKeys).await? {
            report.rewrapped_keys += rewrapped;
        }
        for version in session.status()?.kek_versions.into_iter().filter(|version| *version < kek_version) {
            session.destroy_kek(version)?;
            report.destroyed_kek_versions.push(version);
        }
        tracing::info!(kek_version, destroyed = ?report.destroyed_kek_versions, keys = report.rewrapped_keys, "crypto-shredding done in the live store");
        if let Some(observer) = &self.inner.purge_observer {
            observer.after_shredding(&report).map_err(EngineError::PurgeUnfinished)?;
        }
        clear_shred_pending(&self.inner.data_dir)?;
        Ok(report)
    }
}

pub(crate) fn shred_pending(data_dir: &Path) -> bool {
    data_dir.join(SHRED_PENDING_FILE).exists()
}

fn mark_shred_pending(data_dir: &Path) -> std::io::Result<()> {
    let path = data_dir.join(SHRED_PENDING_FILE);
    if path.exists() {
        return Ok(()); // an unfinished shredding: keep the version it names
    }
    let file = std::fs::File::create(&path)?;
    file.sync_all()?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// Records in `shred-pending` the KEK version the re-wrap targets (written, synced, renamed).
fn mark_shred_pending_version(data_dir: &Path, version: u32) -> std::io::Result<()> {
    let temporary = data_dir.join(format!("{SHRED_PENDING_FILE}.tmp"));
    std::fs::write(&temporary, format!("kek {version}\n"))?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, data_dir.join(SHRED_PENDING_FILE))?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// The KEK version an interrupted shredding created, if `shred-pending` names one.
fn pending_kek_version(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join(SHRED_PENDING_FILE)).ok()?;
    text.trim().strip_prefix("kek ")?.parse().ok()
}

fn clear_shred_pending(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(data_dir.join(SHRED_PENDING_FILE)) {
        Ok(()) => std::fs::File::open(data_dir)?.sync_all(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Finishes a shredding a crash interrupted, on a thread of its own (the caller may be inside
/// a runtime). A failure is logged: the lifecycle timer tries again.
pub(crate) fn finish_interrupted_shred(engine: &Engine) {
    if !shred_pending(&engine.inner.data_dir) {
        return;
    }
    tracing::warn!("a purge's crypto-shredding was interrupted; finishing it");
    let engine = engine.clone();
    let finished = std::thread::spawn(move || crate::engine::block_on(engine.purge_due())).join();
    match finished {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "finishing an interrupted purge failed; the lifecycle timer retries"),
        Err(_) => tracing::error!("finishing an interrupted purge panicked"),
    }
}

/// The lifecycle timer: every `interval`, purges the accounts whose time has come (by the
/// engine's clock) and finishes an interrupted shredding. Holds the engine only weakly, and
/// stops when the engine is dropped (`stop` disconnects).
pub(crate) fn spawn_lifecycle_timer(
    inner: Weak<Inner>,
    interval: Duration,
    stop: flume::Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("mailvault-lifecycle".into()).spawn(move || {
        while let Err(flume::RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
            let Some(inner) = inner.upgrade() else { break };
            let engine = Engine::internal(inner);
            if let Err(error) = crate::engine::block_on(engine.purge_due()) {
                tracing::error!(%error, "scheduled purge failed; retrying at the next tick");
            }
        }
    })
}

/// The purge gate's token while a purge holds it; dropping it gives it back.
struct PurgeGateToken<'a>(&'a flume::Sender<()>);

impl Drop for PurgeGateToken<'_> {
    fn drop(&mut self) {
        // The gate holds one token, so its one slot is free: this never waits.
        let _ = self.0.try_send(());
    }
}

/// A one-token channel: whoever holds the token runs the purge.
pub(crate) fn new_purge_gate() -> (flume::Sender<()>, flume::Receiver<()>) {
    let (sender, receiver) = flume::bounded(1);
    let _ = sender.send(());
    (sender, receiver)
}
