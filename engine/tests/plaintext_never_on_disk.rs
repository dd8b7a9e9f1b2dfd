//! No plaintext reaches the disk: after mail, account, mailbox and keyword names carrying unique
//! markers went through every kind of record and a restart, no byte sequence of any file under
//! the store (nor any file name) contains a marker.
#![allow(clippy::unwrap_used)] // helpers fail the test the way the tests themselves do

mod common;

use std::path::{Path, PathBuf};

use common::TestStore;
use mailvault_engine::{FlagChange, Flags, INBOX, block_on};

/// A marker no file can contain by chance: a label and 128 random bits in hex.
fn marker(label: &str) -> String {
    let mut random = [0_u8; 16];
    getrandom::fill(&mut random).unwrap();
    format!("{label}-{:032x}", u128::from_le_bytes(random))
}

/// Every file under `root` (recursively) whose name or bytes contain `needle`.
fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
            continue;
        }
        let name_matches = path.file_name().unwrap().as_encoded_bytes().windows(needle.len()).any(|w| w == needle);
        let bytes = std::fs::read(&path).unwrap();
        if name_matches || bytes.windows(needle.len()).any(|window| window == needle) {
            found.push(path);
        }
    }
    found
}

fn total_file_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| if path.is_dir() { total_file_bytes(&path) } else { std::fs::metadata(&path).unwrap().len() })
        .sum()
}

#[test]
fn no_marker_from_mail_or_names_appears_in_any_file_of_the_store() {
    let body_marker = marker("body");
    let account = format!("{}@example.org", marker("account"));
    let mailbox = marker("mailbox");
    let renamed = marker("renamed");
    let keyword = marker("keyword");
    let small_body = format!("Subject: {body_marker}\r\n\r\nHello {body_marker}\r\n").into_bytes();
    // Markers every 100 bytes over several 4 KiB blocks: some straddle block boundaries.
    let large_body = format!("{body_marker} lorem ipsum {:>50}\r\n", "").repeat(300).into_bytes();
    let flags = Flags { system: Flags::SEEN, keywords: vec![keyword.clone()] };

    let store = TestStore::new(2);
    let engine = store.open();
    block_on(async {
        engine.create_account(&account).await.unwrap();
        engine.create_mailbox(&account, &mailbox).await.unwrap();
        engine.append(&account, INBOX, small_body.clone(), flags.clone(), None).await.unwrap();
        engine.append(&account, &mailbox, large_body.clone(), Flags::default(), None).await.unwrap();
        engine.change_flags(&account, &mailbox, &[1], FlagChange::Add(flags.clone())).await.unwrap();
        engine.copy(&account, INBOX, &[1], &mailbox).await.unwrap();
        engine.move_messages(&account, &mailbox, &[1], INBOX).await.unwrap();
        engine.expunge(&account, INBOX, &[1]).await.unwrap();
        let deleted = engine.list_deleted(&account).await.unwrap();
        engine.restore(&account, deleted[0].id).await.unwrap();
        engine.rename_mailbox(&account, &mailbox, &renamed).await.unwrap();
    });
    drop(engine);
    let engine = store.open();
    block_on(async {
        engine.append(&account, &renamed, small_body.clone(), flags.clone(), None).await.unwrap();
        engine.delete_mailbox(&account, &renamed).await.unwrap();
        assert_eq!(engine.fetch(&account, INBOX, 2).await.unwrap().body, large_body);
    });
    drop(engine);

    let data_dir = store.config.data_dir.as_path();
    assert!(total_file_bytes(data_dir) > (2 * small_body.len() + large_body.len()) as u64, "the mail was written");
    for needle in [&body_marker, &account, &mailbox, &renamed, &keyword] {
        assert_eq!(files_containing(data_dir, needle.as_bytes()), Vec::<PathBuf>::new(), "{needle} is on disk");
    }
}

/// The search above can fail: it finds a marker in a file that holds it, at any position,
/// including in a file name and in a nested directory.
#[test]
fn the_marker_search_finds_plaintext_where_it_is() {
    let body_marker = marker("body");
    let directory = tempfile::tempdir().unwrap();
    let nested = directory.path().join("shard-000");
    std::fs::create_dir(&nested).unwrap();
    std::fs::write(nested.join("clean.seg"), vec![0x5a; 10_000]).unwrap();
    assert!(files_containing(directory.path(), body_marker.as_bytes()).is_empty());

    let mut bytes = vec![0x5a; 10_000];
    bytes[4090..4090 + body_marker.len()].copy_from_slice(body_marker.as_bytes());
    std::fs::write(nested.join("leaky.seg"), &bytes).unwrap();
    std::fs::write(directory.path().join(&body_marker), b"").unwrap();
    let mut found = files_containing(directory.path(), body_marker.as_bytes());
    found.sort();
    assert_eq!(found, vec![directory.path().join(&body_marker), nested.join("leaky.seg")]);
}
