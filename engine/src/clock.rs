//! Time, behind a seam so tests can move it (retention windows, purge delays).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_unix_ms(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_unix_ms: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(now_unix_ms: i64) -> Self {
        Self { now_unix_ms: Arc::new(AtomicI64::new(now_unix_ms)) }
    }

    pub fn advance_ms(&self, milliseconds: i64) {
        self.now_unix_ms.fetch_add(milliseconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.now_unix_ms.load(Ordering::SeqCst)
    }
}
