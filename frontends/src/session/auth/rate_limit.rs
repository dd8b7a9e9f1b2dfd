//! Failed-login rate limit per (account, remote IP): after `FAILED_LOGINS_MAX` failures within
//! `FAILED_LOGIN_WINDOW`, further attempts from that IP for that account are refused without
//! checking the password until the window has passed since the last failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures allowed per (account, IP) within the window.
pub const FAILED_LOGINS_MAX: u32 = 5;
/// How long failures are remembered, counted from the latest one.
pub const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Most (account, IP) pairs tracked at once. A flood of distinct pairs evicts the stalest, so
/// memory stays bounded; an evicted attacker only gets a fresh budget of `FAILED_LOGINS_MAX`.
pub const TRACKED_PAIRS_MAX: usize = 100_000;

/// The limiter's settings (tests shorten the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub failures_max: u32,
    pub window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { failures_max: FAILED_LOGINS_MAX, window: FAILED_LOGIN_WINDOW }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    latest: Instant,
}

/// The failure counts.
#[derive(Debug, Default)]
pub struct FailedLogins {
    limit: RateLimit,
    pairs: Mutex<HashMap<(String, IpAddr), Failures>>,
}

impl FailedLogins {
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, pairs: Mutex::default() }
    }

    /// Whether an attempt may be checked now.
    pub fn allows(&self, account: &str, ip: IpAddr, now: Instant) -> bool {
        let pairs = self.pairs.lock().unwrap_or_else(PoisonError::into_inner);
        pairs.get(&(account.to_owned(), ip)).is_none_or(|failures| {
            failures.count < self.limit.failures_max || now.duration_since(failures.latest) >= self.limit.window
        })
    }

    /// Counts a failed attempt.
    pub fn record_failure(&self, account: &str, ip: IpAddr, now: Instant) {
        let mut pairs = self.pairs.lock().unwrap_or_else(PoisonError::into_inner);
        if pairs.len() >= TRACKED_PAIRS_MAX {
            let window = self.limit.window;
            pairs.retain(|_, failures| now.duration_since(failures.latest) < window);
            if pairs.len() >= TRACKED_PAIRS_MAX
                && let Some(stalest) =
                    pairs.iter().min_by_key(|(_, failures)| failures.latest).map(|(key, _)| key.clone())
            {
                pairs.remove(&stalest);
            }
        }
        let entry = pairs.entry((account.to_owned(), ip)).or_insert(Failures { count: 0, latest: now });
        if now.duration_since(entry.latest) >= self.limit.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.latest = now;
    }

    /// A successful login clears the pair's failures.
    pub fn record_success(&self, account: &str, ip: IpAddr) {
        self.pairs.lock().unwrap_or_else(PoisonError::into_inner).remove(&(account.to_owned(), ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_passes() {
        let limit = RateLimit { failures_max: 3, window: Duration::from_secs(60) };
        let logins = FailedLogins::new(limit);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(logins.allows("alice", ip, start));
            logins.record_failure("alice", ip, start);
        }
        assert!(!logins.allows("alice", ip, start));
        assert!(logins.allows("bob", ip, start), "other accounts are not affected");
        assert!(logins.allows("alice", IpAddr::from([127, 0, 0, 2]), start), "other IPs are not affected");
        assert!(logins.allows("alice", ip, start + Duration::from_secs(60)));
    }

    #[test]
    fn success_clears_failures() {
        let logins = FailedLogins::new(RateLimit { failures_max: 2, window: Duration::from_secs(60) });
        let ip = IpAddr::from([127, 0, 0, 1]);
        let now = Instant::now();
        logins.record_failure("alice", ip, now);
        logins.record_success("alice", ip);
        logins.record_failure("alice", ip, now);
        assert!(logins.allows("alice", ip, now));
    }
}
