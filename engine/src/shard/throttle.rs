//! Background compaction's share of the disk: a token bucket over the bytes compaction reads
//! and writes, so that a large rewrite cannot crowd out deliveries.
//!
//! Compaction spends first and pays after (a step's size is known only once it is done), so
//! the bucket may go into debt; the next step waits until the debt is repaid. The bucket holds
//! at most one second's worth of bytes, so an idle spell does not buy a long burst. Time here is
//! real time (`Instant`), not the engine's clock: it meters the disk, not the calendar.

use std::time::{Duration, Instant};

/// Refill rate and balance of the compaction IO bucket.
#[derive(Debug)]
pub(crate) struct IoBudget {
    /// Bytes per second; `None`: unthrottled.
    bytes_per_second: Option<u64>,
    /// May be negative (debt).
    balance_bytes: f64,
    refilled_at: Instant,
}

impl IoBudget {
    pub(crate) fn new(bytes_per_second: Option<u64>) -> Self {
        let balance_bytes = bytes_per_second.map_or(0.0, to_f64);
        Self { bytes_per_second: bytes_per_second.filter(|rate| *rate > 0), balance_bytes, refilled_at: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.bytes_per_second {
            let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
            self.balance_bytes = (self.balance_bytes + elapsed * to_f64(rate)).min(to_f64(rate));
        }
        self.refilled_at = now;
    }

    /// Records bytes compaction read or wrote.
    pub(crate) fn spend(&mut self, bytes: u64) {
        self.refill(Instant::now());
        if self.bytes_per_second.is_some() {
            self.balance_bytes -= to_f64(bytes);
        }
    }

    /// How long compaction must wait before its next step; `None`: it may go now.
    pub(crate) fn wait(&mut self) -> Option<Duration> {
        let rate = self.bytes_per_second?;
        self.refill(Instant::now());
        (self.balance_bytes < 0.0).then(|| Duration::from_secs_f64(-self.balance_bytes / to_f64(rate)))
    }
}

#[allow(clippy::cast_precision_loss)] // byte counts and rates far below 2^52: exact in an f64
fn to_f64(value: u64) -> f64 {
    value as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unthrottled_budget_never_waits() {
        let mut budget = IoBudget::new(None);
        budget.spend(u64::MAX / 2);
        assert_eq!(budget.wait(), None);
    }

    #[test]
    fn debt_is_repaid_at_the_configured_rate() {
        let mut budget = IoBudget::new(Some(1_000_000));
        assert_eq!(budget.wait(), None, "a fresh bucket holds one second's worth");
        budget.spend(3_000_000);
        let wait = budget.wait().expect("in debt");
        // 2 MB of debt at 1 MB/s: about two seconds (less the instants spent in between).
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(2), "{wait:?}");
    }
}
