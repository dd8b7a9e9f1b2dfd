//! Latency samples and their summary (percentiles by nearest rank over every sample: runs are
//! at most millions of operations, so keeping them all is cheap and exact).

use std::time::Duration;

/// Samples in microseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    micros: Vec<u32>,
}

/// What a report shows of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn record(&mut self, elapsed: Duration) {
        self.micros.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Self) {
        self.micros.extend(other.micros);
    }

    #[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)] // sample counts and microseconds are far below 2^52
    pub fn summary(&self) -> LatencySummary {
        if self.micros.is_empty() {
            return LatencySummary::default();
        }
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let rank = |quantile: f64| {
            let position = (quantile * sorted.len() as f64).ceil() as usize;
            f64::from(sorted[position.clamp(1, sorted.len()) - 1]) / 1000.0
        };
        let total: u64 = sorted.iter().map(|micros| u64::from(*micros)).sum();
        LatencySummary {
            count: sorted.len() as u64,
            mean_ms: total as f64 / sorted.len() as f64 / 1000.0,
            p50_ms: rank(0.5),
            p90_ms: rank(0.9),
            p99_ms: rank(0.99),
            p999_ms: rank(0.999),
            max_ms: rank(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut latencies = Latencies::default();
        for millis in 1..=1000 {
            latencies.record(Duration::from_millis(millis));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 500.0).abs() < 1e-9);
        assert!((summary.p99_ms - 990.0).abs() < 1e-9);
        assert!((summary.p999_ms - 999.0).abs() < 1e-9);
        assert!((summary.max_ms - 1000.0).abs() < 1e-9);
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }
}
