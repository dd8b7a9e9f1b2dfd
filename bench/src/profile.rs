//! What a closed loop's requests looked like over the run, for the report's plots: a latency
//! histogram (log-spaced buckets, four per octave) and completions per 100 ms slot.
//!
//! Recording costs one clock read and a few arithmetic operations per request, far below an
//! engine request (tens of microseconds at least), so every load records.

use std::time::Duration;

/// Width of one throughput-over-time slot.
pub const TIMELINE_INTERVAL: Duration = Duration::from_millis(100);
/// Latency buckets per doubling: each bucket is 2^(1/4) ≈ 1.19 times wider than the previous,
/// so a percentile read from the histogram is within 19% of the exact one.
pub const BUCKETS_PER_OCTAVE: u32 = 4;
/// Bucket 0 holds everything up to 1 µs; the last holds everything from 2^27 µs (134 s) up.
pub const LATENCY_BUCKETS: usize = 1 + 27 * BUCKETS_PER_OCTAVE as usize;

/// Request latencies, bucketed; bucket `i ≥ 1` holds `[2^((i-1)/4), 2^(i/4))` µs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LatencyHistogram {
    /// Counts per bucket, trailing empty buckets left out.
    pub counts: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: vec![0; LATENCY_BUCKETS] }
    }
}

/// Percentiles read from a histogram, in microseconds (the upper bound of their bucket).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl LatencyHistogram {
    pub fn bucket_of(latency: Duration) -> usize {
        let micros = latency.as_secs_f64() * 1e6;
        if micros < 1.0 {
            return 0;
        }
        // The float is finite and at least 0 here (micros ≥ 1), so the cast loses no sign.
        #[allow(clippy::cast_sign_loss)]
        let index = (micros.log2() * f64::from(BUCKETS_PER_OCTAVE)).floor() as usize + 1;
        index.min(LATENCY_BUCKETS - 1)
    }

    /// The upper bound of bucket `index`, in microseconds (1 µs for bucket 0).
    pub fn bucket_upper_us(index: usize) -> f64 {
        (f64::from(index as u32) / f64::from(BUCKETS_PER_OCTAVE)).exp2()
    }

    /// The lower bound of bucket `index`, in microseconds (bucket 0 starts at 0).
    pub fn bucket_lower_us(index: usize) -> f64 {
        index.checked_sub(1).map_or(0.0, Self::bucket_upper_us)
    }

    pub fn record(&mut self, latency: Duration) {
        let bucket = Self::bucket_of(latency);
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
    }

    pub fn merge(&mut self, other: &Self) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding the `quantile` (0..=1) request; `None` if empty.
    pub fn percentile_us(&self, quantile: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (crate::workload::count_f64(total) * quantile.clamp(0.0, 1.0)).ceil().max(1.0);
        let mut seen = 0_u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if crate::workload::count_f64(seen) >= rank {
                return Some(Self::bucket_upper_us(index));
            }
        }
        self.counts.len().checked_sub(1).map(Self::bucket_upper_us)
    }

    pub fn summary(&self) -> Option<LatencySummary> {
        Some(LatencySummary {
            p50_us: self.percentile_us(0.50)?,
            p99_us: self.percentile_us(0.99)?,
            p999_us: self.percentile_us(0.999)?,
        })
    }

    /// Drops trailing empty buckets (for a compact JSON).
    fn trimmed(mut self) -> Self {
        let used = self.counts.iter().rposition(|&count| count > 0).map_or(0, |last| last + 1);
        self.counts.truncate(used);
        self
    }
}

/// A value per [`TIMELINE_INTERVAL`] slot from the start of a measurement, in the unit of its
/// comparison (ops/s or MB/s).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Timeline {
    pub interval_ms: u64,
    pub values: Vec<f64>,
}

/// One closed loop's latencies and completions over time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadProfile {
    pub latency: LatencyHistogram,
    /// Requests completed in each [`TIMELINE_INTERVAL`] since the loop started.
    pub completions: Vec<u64>,
}

impl LoadProfile {
    /// Records one request that took `latency` and completed `since_start` after the start.
    pub fn record(&mut self, latency: Duration, since_start: Duration) {
        self.latency.record(latency);
        let slot = (since_start.as_nanos() / TIMELINE_INTERVAL.as_nanos()) as usize;
        if self.completions.len() <= slot {
            self.completions.resize(slot + 1, 0);
        }
        self.completions[slot] += 1;
    }

    /// Adds `other`'s requests, slot by slot (two loops that started together).
    pub fn merge(&mut self, other: &Self) {
        self.latency.merge(&other.latency);
        if self.completions.len() < other.completions.len() {
            self.completions.resize(other.completions.len(), 0);
        }
        for (mine, theirs) in self.completions.iter_mut().zip(&other.completions) {
            *mine += theirs;
        }
    }

    /// What a report keeps of it: the histogram, and the completions as a rate in the
    /// comparison's unit (`units_per_request`: 1 for ops/s, bytes/1e6 for MB/s). The last slot
    /// is only partly covered by the measurement, so it is left out.
    pub fn to_round(&self, units_per_request: f64) -> RoundProfile {
        let slots_per_second = 1.0 / TIMELINE_INTERVAL.as_secs_f64();
        let full_slots = self.completions.len().saturating_sub(1);
        let values = self.completions[..full_slots]
            .iter()
            .map(|&count| crate::workload::count_f64(count) * slots_per_second * units_per_request)
            .collect();
        RoundProfile {
            latency_summary: self.latency.summary(),
            latency: self.latency.clone().trimmed(),
            timeline: Timeline { interval_ms: TIMELINE_INTERVAL.as_millis() as u64, values },
        }
    }
}

/// One engine round as the report keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoundProfile {
    pub latency_summary: Option<LatencySummary>,
    pub latency: LatencyHistogram,
    pub timeline: Timeline,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_profiles_add_up_slot_by_slot_and_keep_the_longer_timeline() {
        let mut first = LoadProfile::default();
        first.record(Duration::from_micros(100), Duration::ZERO);
        let mut second = LoadProfile::default();
        second.record(Duration::from_micros(100), Duration::ZERO);
        second.record(Duration::from_millis(5), TIMELINE_INTERVAL * 2);
        first.merge(&second);
        assert_eq!(first.completions, [2, 0, 1]);
        assert_eq!(first.latency.total(), 3);
    }

    #[test]
    fn buckets_are_log_spaced_and_bound_their_latencies() {
        assert_eq!(LatencyHistogram::bucket_of(Duration::from_nanos(500)), 0);
        for micros in [1_u64, 3, 10, 250, 4_000, 1_000_000] {
            let bucket = LatencyHistogram::bucket_of(Duration::from_micros(micros));
            let value = crate::workload::count_f64(micros);
            assert!(LatencyHistogram::bucket_lower_us(bucket) <= value, "{micros} µs in bucket {bucket}");
            assert!(value < LatencyHistogram::bucket_upper_us(bucket), "{micros} µs in bucket {bucket}");
        }
        assert_eq!(LatencyHistogram::bucket_of(Duration::from_secs(100_000)), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn percentiles_come_from_the_right_buckets() {
        let mut histogram = LatencyHistogram::default();
        for _ in 0..990 {
            histogram.record(Duration::from_micros(100));
        }
        for _ in 0..10 {
            histogram.record(Duration::from_millis(10));
        }
        let summary = histogram.summary().unwrap();
        assert!((100.0..120.0).contains(&summary.p50_us), "{summary:?}");
        assert!((100.0..120.0).contains(&summary.p99_us), "{summary:?}");
        assert!((10_000.0..12_000.0).contains(&summary.p999_us), "{summary:?}");
        assert_eq!(LatencyHistogram::default().summary(), None);
    }

    #[test]
    fn timeline_is_a_rate_per_slot_without_the_partial_last_one() {
        let mut profile = LoadProfile::default();
        for slot in 0..3_u64 {
            for _ in 0..(slot + 1) * 10 {
                profile.record(Duration::from_micros(50), TIMELINE_INTERVAL * slot as u32);
            }
        }
        let round = profile.to_round(1.0);
        assert_eq!(round.timeline.values, vec![100.0, 200.0]);
        assert_eq!(round.latency.total(), 60);
    }
}
