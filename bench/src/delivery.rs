//! Delivery latency while background work runs (the compaction and scrub benches): 4 KiB
//! appends one at a time to an account of their own, and the percentiles of two such windows,
//! idle and busy.

use std::time::{Duration, Instant};

use mailvault_engine::{Engine, Flags, INBOX, block_on};

/// The account the deliveries go to (the benches' stores create it empty).
pub(crate) const DELIVERY_ACCOUNT: &str = "delivery-bench@example.org";
const DELIVERY_BYTES: usize = 4 * 1024;

/// Percentiles of the deliveries of an idle window and of a busy one, in microseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeliveryLatency {
    pub idle_deliveries: usize,
    pub idle_p50_us: f64,
    pub idle_p99_us: f64,
    pub busy_deliveries: usize,
    pub busy_p50_us: f64,
    pub busy_p99_us: f64,
    /// The tail beyond the p99, so that a change trading it away shows.
    pub idle_p999_us: f64,
    pub busy_p999_us: f64,
    pub idle_max_us: f64,
    pub busy_max_us: f64,
    /// Busy p99 / idle p99.
    pub latency_ratio: f64,
}

impl DeliveryLatency {
    /// From each window's latencies (sorted in place).
    pub(crate) fn of(idle: &mut [f64], busy: &mut [f64]) -> Self {
        let idle_p99_us = percentile(idle, 0.99);
        let busy_p99_us = percentile(busy, 0.99);
        Self {
            idle_deliveries: idle.len(),
            idle_p50_us: percentile(idle, 0.50),
            idle_p99_us,
            busy_deliveries: busy.len(),
            busy_p50_us: percentile(busy, 0.50),
            busy_p99_us,
            idle_p999_us: percentile(idle, 0.999),
            busy_p999_us: percentile(busy, 0.999),
            idle_max_us: percentile(idle, 1.0),
            busy_max_us: percentile(busy, 1.0),
            latency_ratio: busy_p99_us / idle_p99_us.max(1e-9),
        }
    }
}

/// 4 KiB deliveries, one at a time, for `window`: each one's latency in microseconds.
pub(crate) fn deliver_for(engine: &Engine, window: Duration) -> anyhow::Result<Vec<f64>> {
    deliver_at_most(engine, window, usize::MAX)
}

/// As [`deliver_for`], stopping after `deliveries_max` if the window has not ended (the
/// recycle bench keeps them within the segment files it prepared).
pub(crate) fn deliver_at_most(engine: &Engine, window: Duration, deliveries_max: usize) -> anyhow::Result<Vec<f64>> {
    block_on(async {
        let mut latencies = Vec::new();
        let started = Instant::now();
        while started.elapsed() < window && latencies.len() < deliveries_max {
            let mut body = format!("Subject: delivery {}\r\n\r\n", latencies.len()).into_bytes();
            body.resize(DELIVERY_BYTES, b'd');
            let sent = Instant::now();
            engine.append(DELIVERY_ACCOUNT, INBOX, body, Flags::default(), None).await?;
            latencies.push(sent.elapsed().as_secs_f64() * 1e6);
        }
        Ok(latencies)
    })
}

#[allow(clippy::cast_sign_loss, clippy::cast_precision_loss)] // quantile in [0, 1]; counts far below 2^52
pub(crate) fn percentile(values: &mut [f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * quantile).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
