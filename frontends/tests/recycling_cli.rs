//! Spare segment files (compacted files kept for new segments to be written over,
//! docs/format.md §2.5) through the built binary: `mailvault stats` tells them, and
//! `mailvault serve --recycled-segments 0` removes them as it opens the store.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::path::Path;
use std::time::Duration;

use mailvault_engine::{Engine, EngineConfig, Flags, INBOX, block_on, init_store};
use mailvault_hsm::testing::TestToken;
use serve_support::{ServerProcess, mailvault_command, run_bounded};

const SHARDS: usize = 2; // as `ServerProcess` serves
const ACCOUNT: &str = "sam@example.org";

/// Spare files in every shard directory.
fn spare_files(data_dir: &Path) -> Vec<String> {
    let mut spares = Vec::new();
    for shard in 0..SHARDS {
        for entry in std::fs::read_dir(data_dir.join(format!("shard-{shard:03}"))).expect("shard directory") {
            let name = entry.expect("entry").file_name().into_string().expect("a UTF-8 name");
            if mailvault_engine::segment::parse_spare_name(&name).is_some() {
                spares.push(format!("shard {shard}: {name}"));
            }
        }
    }
    spares
}

/// A store whose compaction kept two spare files: 1 MiB segments of 100 KiB messages, most of
/// them expunged (with no retention window) and compacted, through the library.
fn store_with_spares(token: &TestToken, data_dir: &Path) {
    init_store(data_dir, SHARDS).expect("init");
    let mut config = EngineConfig::new(data_dir);
    config.segment_bytes_max = 1024 * 1024;
    config.retention_days = 0;
    let engine = Engine::open(&config, &token.hsm).expect("open");
    block_on(async {
        engine.create_account(ACCOUNT).await.expect("account");
        for index in 0..40_u8 {
            let mut body = format!("Subject: spare {index}\r\n\r\n").into_bytes();
            body.resize(100 * 1024, b'a' + index % 26);
            engine.append(ACCOUNT, INBOX, body, Flags::default(), None).await.expect("append");
        }
        let expunged: Vec<u32> = (1..=40).filter(|uid| uid % 4 != 0).collect();
        engine.expunge(ACCOUNT, INBOX, &expunged).await.expect("expunge");
        engine.compact().await.expect("compact");
    });
}

#[test]
fn stats_tells_the_spare_files_and_serve_with_none_kept_removes_them() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    store_with_spares(&token, &data_dir);
    assert_eq!(spare_files(&data_dir).len(), 2, "compaction kept no spare files");

    let stats = run_bounded(mailvault_command(&token, &data_dir).arg("stats"), b"");
    let stdout = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{stdout}{}", String::from_utf8_lossy(&stats.stderr));
    assert!(
        stdout.lines().any(|line| line.contains(": 2 compacted segment files (")
            && line.ends_with("bytes) kept for new segments to be written over")),
        "{stdout}"
    );

    let mut server = ServerProcess::start_serving(&token, &data_dir, &[], &["--recycled-segments", "0"]);
    assert!(spare_files(&data_dir).is_empty(), "still there: {:?}", spare_files(&data_dir));
    server.terminate();
    assert!(server.wait(Duration::from_secs(60)).0.success());
}
