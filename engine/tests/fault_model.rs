//! The fault-injecting storage's model of a power loss, where files are renamed, replaced and
//! removed: a power loss undoes only the unsynced writes of the file that took them, never
//! those of an earlier or a later file of the same name (session 18: a file created under a
//! name that was renamed away was taken for the renamed one, and a file renamed over another
//! inherited that one's unsynced writes).
#![allow(clippy::unwrap_used)]

use mailvault_engine::block_on;
use mailvault_engine::io::{BlockBuffer, FaultController, FaultyStorage, Storage, StorageFile};

const SEEDS: u64 = 16;

fn block(byte: u8) -> BlockBuffer {
    let mut buffer = BlockBuffer::with_capacity(4096);
    buffer.extend_from_slice(&[byte; 4096]);
    buffer
}

async fn write(storage: &FaultyStorage, name: &str, byte: u8, sync: bool) {
    let file = match storage.open(name, true).await {
        Ok(file) => file,
        Err(_) => storage.create(name).await.unwrap(),
    };
    file.write_blocks(block(byte), 0).await.0.unwrap();
    if sync {
        file.sync_data().await.unwrap();
    }
}

/// Runs `steps` on a fresh directory for each seed, then a power loss; returns, per seed, the
/// first byte of each of `names` afterwards (`None`: empty or missing).
fn after_power_loss(steps: &impl AsyncFn(&FaultyStorage), names: &[&str]) -> Vec<Vec<Option<u8>>> {
    (0..SEEDS)
        .map(|seed| {
            let directory = tempfile::tempdir().unwrap();
            let controller = FaultController::new(seed);
            let storage = FaultyStorage::new(directory.path(), controller.clone());
            block_on(steps(&storage));
            controller.power_loss().unwrap();
            names
                .iter()
                .map(|name| std::fs::read(directory.path().join(name)).ok().and_then(|bytes| bytes.first().copied()))
                .collect()
        })
        .collect()
}

#[test]
fn a_file_created_under_a_name_renamed_away_takes_its_own_writes() {
    let outcomes = after_power_loss(
        &async |storage| {
            write(storage, "x.tmp", 1, true).await;
            storage.rename("x.tmp", "x").await.unwrap();
            write(storage, "x.tmp", 2, false).await;
        },
        &["x", "x.tmp"],
    );
    assert!(outcomes.iter().all(|outcome| outcome[0] == Some(1)), "the renamed file is durable: {outcomes:?}");
    assert!(
        outcomes.iter().any(|outcome| outcome[1] != Some(2)),
        "the new file's unsynced write is never undone: {outcomes:?}"
    );
}

#[test]
fn a_file_renamed_over_another_does_not_inherit_its_unsynced_writes() {
    let outcomes = after_power_loss(
        &async |storage| {
            write(storage, "y", 1, false).await;
            write(storage, "y.tmp", 2, true).await;
            storage.rename("y.tmp", "y").await.unwrap();
        },
        &["y"],
    );
    assert!(outcomes.iter().all(|outcome| outcome[0] == Some(2)), "{outcomes:?}");
}

#[test]
fn a_removed_files_unsynced_writes_do_not_land_on_a_later_file_of_its_name() {
    let outcomes = after_power_loss(
        &async |storage| {
            write(storage, "z", 1, true).await;
            write(storage, "z", 3, false).await; // undone, it would bring back the 1s
            storage.remove("z").await.unwrap();
            write(storage, "z", 2, false).await;
        },
        &["z"],
    );
    // The new file's write is kept, lost (zeros) or torn (its first sector 2 or 0): never the
    // old file's bytes.
    assert!(outcomes.iter().all(|outcome| matches!(outcome[0], Some(0 | 2))), "{outcomes:?}");
}
