//! Test support for backups: a store on a real SoftHSM token filled through the engine, and a
//! real `SeaweedFS` S3 server on loopback.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)]

pub mod seaweedfs;

use std::path::{Path, PathBuf};

use mailvault_backup::{RunReport, TargetSpec};
use mailvault_engine::offline::StoreContents;
use mailvault_engine::{Engine, EngineConfig, Flags, block_on, init_store};
use mailvault_hsm::testing::TestToken;

/// A two-shard store in a temporary directory, with small segments so that there are several.
pub struct Fixture {
    pub token: TestToken,
    pub directory: tempfile::TempDir,
    pub config: EngineConfig,
}

pub const SEGMENT_BYTES_MAX: u64 = 64 * 1024;

impl Fixture {
    pub fn new() -> Self {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().unwrap();
        let data_dir = directory.path().join("data");
        init_store(&data_dir, 2).unwrap();
        let mut config = EngineConfig::new(&data_dir);
        config.segment_bytes_max = SEGMENT_BYTES_MAX;
        Self { token, directory, config }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// A path in the fixture's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    pub fn open(&self) -> Engine {
        Engine::open(&self.config, &self.token.hsm).unwrap()
    }

    /// Accounts, mailboxes, messages of several sizes (some spanning segments), flags, a copy,
    /// a move and an expunge: every kind of state a backup must carry.
    pub fn populate(&self) {
        let engine = self.open();
        block_on(async {
            for account in ["alice", "bob", "carol"] {
                engine.create_account(account).await.unwrap();
                engine.create_mailbox(account, "Archive").await.unwrap();
                for number in 0..12u32 {
                    let body = message(account, number);
                    let mailbox = if number % 3 == 0 { "Archive" } else { "INBOX" };
                    engine.append(account, mailbox, body, Flags::default(), None).await.unwrap();
                }
                engine.change_flags(account, "INBOX", &[1, 2], seen()).await.unwrap();
                engine.copy(account, "INBOX", &[3], "Archive").await.unwrap();
                engine.move_messages(account, "INBOX", &[4], "Archive").await.unwrap();
                engine.expunge(account, "INBOX", &[5]).await.unwrap();
            }
        });
    }

    /// Seals (as `backup run` does) and backs up to `spec`.
    pub fn backup(&self, spec: &TargetSpec) -> RunReport {
        let engine = self.open();
        let mut seal = || Ok(block_on(engine.seal_active()).unwrap());
        let report = mailvault_backup::run_backup(self.data_dir(), &mut seal, &self.token.hsm, spec).unwrap();
        block_on(engine.release_backup_hold()).unwrap();
        report
    }
}

pub fn seen() -> mailvault_engine::FlagChange {
    mailvault_engine::FlagChange::Add(Flags { system: 1, keywords: Vec::new() })
}

/// A message body: a few KiB, every tenth one larger than a segment.
pub fn message(account: &str, number: u32) -> Vec<u8> {
    let size = if number % 10 == 9 { 80 * 1024 } else { 2000 + number as usize * 300 };
    let mut body = format!("From: {account}@example.org\r\nSubject: message {number}\r\n\r\n").into_bytes();
    body.extend((0..size).map(|index| b'a' + ((index + number as usize) % 26) as u8));
    body
}

/// Every file under `root`, relative paths, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// `after` (a restore of `before`) holds exactly what `before` did, every mailbox with a newer
/// UIDVALIDITY.
pub fn assert_restored(before: &StoreContents, mut after: StoreContents) {
    let mut before = before.clone();
    for (account, restored) in &mut after.accounts {
        for (mailbox, restored) in &mut restored.mailboxes {
            let old = &mut before.accounts.get_mut(account).unwrap().mailboxes.get_mut(mailbox).unwrap().uid_validity;
            assert!(restored.uid_validity > *old, "{account}/{mailbox}: {} after {old}", restored.uid_validity);
            restored.uid_validity = 0;
            *old = 0;
        }
    }
    assert_eq!(after, before, "the restored store holds exactly what the lost one did");
}
