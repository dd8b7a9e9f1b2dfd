//! Test support shared by the engine's integration tests: a real SoftHSM token and a store in
//! a temporary directory.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use mailvault_engine::{Engine, EngineConfig, ManualClock, init_store};
use mailvault_hsm::testing::TestToken;

#[derive(Debug)]
pub struct TestStore {
    pub token: TestToken,
    pub directory: tempfile::TempDir,
    pub config: EngineConfig,
    pub clock: ManualClock,
}

/// 2026-11-23T00:00:00Z: a fixed start so retention tests read plainly.
pub const START_UNIX_MS: i64 = 1_795_392_000_000;

impl TestStore {
    pub fn new(shards: usize) -> Self {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().expect("temporary directory");
        init_store(directory.path(), shards).expect("init store");
        let clock = ManualClock::new(START_UNIX_MS);
        let mut config = EngineConfig::new(directory.path());
        config.clock = Arc::new(clock.clone());
        config.segment_bytes_max = 1024 * 1024;
        Self {
            token,
            directory,
            config,
            clock,
        }
    }

    pub fn open(&self) -> Engine {
        Engine::open(&self.config, &self.token.hsm).expect("open engine")
    }
}
