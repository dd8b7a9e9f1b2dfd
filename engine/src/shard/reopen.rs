//! A shard whose write or sync failed is reopened from its files, as a restart of the process
//! would reopen it, instead of refusing everything until one.
//!
//! After a failed write or fdatasync, what the disk holds past the last acknowledged commit is
//! unknown (fsyncgate), and the shard's index may be ahead of it, so the shard neither retries
//! the sync as if the data might be durable nor serves on from that index. Recovery decides what
//! the disk holds: it reads the files back (O_DIRECT: the device's bytes, not a page cache's)
//! and cuts a torn tail, and its first commit (a record-id floor) must be durable before the
//! shard serves, so a disk that still fails keeps it closed. That is the restart an operator
//! would do, for this shard alone: the other shards' connections stay up.
//!
//! A disk that keeps failing must not make it loop: a failure (of a run, or of a reopen) after
//! [`WAITS`]`.len()` reopens in a row, none followed by [`STEADY`] of service, leaves the shard
//! refusing every request until the process restarts. Before each reopen it waits (see
//! [`WAITS`]), refusing what arrives meanwhile: a client is told to retry rather than left
//! waiting.

use std::time::{Duration, Instant};

use mailvault_hsm::Hsm;

use crate::error::EngineError;
use crate::io::Storage;

use super::recovery::open_named;
use super::request::Request;
use super::{RunEnd, Shard, ShardConfig};

/// The wait before the first, second and third reopen in a row; a failure after the third
/// gives up.
pub(crate) const WAITS: [Duration; 3] = [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(5)];
/// Service after a reopen that counts as recovered: a failure after it starts the count again.
pub(crate) const STEADY: Duration = Duration::from_secs(600);

/// Serves with `shard` until shutdown, reopening it from `storage` whenever a write or sync
/// fails; once reopening gives up, refuses every request until shutdown.
pub(crate) async fn serve_reopening<S: Storage>(
    shard: Shard<S>,
    storage: &S,
    config: &ShardConfig,
    hsm: &Hsm,
    receiver: &flume::Receiver<Request>,
) {
    let shard_id = config.shard_id;
    let mut policy = ReopenPolicy::default();
    let RunEnd::Failed(mut failure) = shard.run(receiver.clone()).await else { return };
    loop {
        let refusal = || EngineError::ShardFailed { shard_id, reason: failure.clone() };
        let Some(wait) = policy.after_failure(Instant::now()) else {
            tracing::error!(shard = shard_id, reason = %failure, "the shard failed again: it refuses every request until the server restarts");
            refuse_for(receiver, None, refusal).await;
            return;
        };
        tracing::error!(shard = shard_id, reason = %failure, wait_ms = wait.as_millis(), "the shard failed: reopening it from its files");
        if !refuse_for(receiver, Some(wait), refusal).await {
            return;
        }
        match open_named(storage.clone(), config.clone(), hsm).await {
            Ok(reopened) => {
                policy.reopened(Instant::now());
                tracing::warn!(shard = shard_id, "the shard reopened from its files and serves again");
                match reopened.run(receiver.clone()).await {
                    RunEnd::Stopped => return,
                    RunEnd::Failed(reason) => failure = reason,
                }
            }
            Err(error) => failure = format!("reopening: {error}"),
        }
    }
}

/// Counts a shard's failures in a row.
#[derive(Debug, Default)]
pub(crate) struct ReopenPolicy {
    failures: usize,
    /// When the shard last came back (reopened and serving).
    serving_since: Option<Instant>,
}

impl ReopenPolicy {
    /// The shard failed at `now` (its run, or a reopen): the wait before the next reopen, or
    /// `None` to give up.
    pub(crate) fn after_failure(&mut self, now: Instant) -> Option<Duration> {
        if self.serving_since.take().is_some_and(|since| now.saturating_duration_since(since) >= STEADY) {
            self.failures = 0;
        }
        self.failures += 1;
        WAITS.get(self.failures - 1).copied()
    }

    /// The shard reopened at `now` and serves again.
    pub(crate) fn reopened(&mut self, now: Instant) {
        self.serving_since = Some(now);
    }
}

/// Refuses every request with `error()` for `wait`; `false` if shutdown came (or the queue
/// closed) meanwhile, `None` waits forever.
pub(crate) async fn refuse_for(
    receiver: &flume::Receiver<Request>,
    wait: Option<Duration>,
    error: impl Fn() -> EngineError,
) -> bool {
    let deadline = wait.map(|wait| Instant::now() + wait);
    loop {
        let request = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return true;
                }
                match compio::time::timeout(left, receiver.recv_async()).await {
                    Ok(request) => request,
                    Err(_) => return true,
                }
            }
            None => receiver.recv_async().await,
        };
        match request {
            Ok(Request::Shutdown) | Err(_) => return false,
            Ok(request) => request.refuse(error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_reopens_in_a_row_then_it_gives_up() {
        let mut policy = ReopenPolicy::default();
        let start = Instant::now();
        assert_eq!(policy.after_failure(start), Some(Duration::ZERO), "the first reopen is at once");
        assert_eq!(policy.after_failure(start), Some(WAITS[1]), "the reopen itself failed");
        policy.reopened(start);
        assert_eq!(policy.after_failure(start + Duration::from_secs(1)), Some(WAITS[2]), "it failed again soon");
        assert_eq!(policy.after_failure(start + Duration::from_secs(2)), None, "a disk that keeps failing");
    }

    #[test]
    fn a_failure_after_steady_service_counts_from_one_again() {
        let mut policy = ReopenPolicy::default();
        let start = Instant::now();
        for wait in WAITS {
            assert_eq!(policy.after_failure(start), Some(wait));
        }
        policy.reopened(start);
        assert_eq!(policy.after_failure(start + STEADY), Some(Duration::ZERO));
        assert_eq!(policy.after_failure(start + STEADY), Some(WAITS[1]), "no service since the last failure");
    }
}
