//! The same backup, verify, restore and damage checks against a real S3 server: `SeaweedFS` on
//! loopback, started for each test and stopped after. In CI, a missing `weed` fails the test.
#![allow(clippy::unwrap_used)]

mod support;

use mailvault_backup::{Finding, VerifyLevel, VerifyVerdict, verify};
use mailvault_engine::block_on;
use object_store::{ObjectStore, ObjectStoreExt};
use support::seaweedfs::SeaweedFs;
use support::{Fixture, assert_restored, message};

#[test]
fn backup_verify_and_restore_through_s3() {
    let Some(server) = SeaweedFs::start() else { return };
    let fixture = Fixture::new();
    fixture.populate();
    let spec = server.bucket("mailvault-backup");

    let first = fixture.backup(&spec);
    assert!(first.segments_copied >= 4 && first.manifest.is_some(), "{first:?}");
    for level in [VerifyLevel::Files, VerifyLevel::Frames, VerifyLevel::Contents] {
        let report =
            verify(&spec, level, &fixture.token.hsm, Some(fixture.data_dir()), fixture.directory.path()).unwrap();
        assert_eq!(report.verdict(), VerifyVerdict::Equal, "level {level:?}: {:?}", report.findings);
    }
    let second = fixture.backup(&spec);
    assert_eq!((second.segments_copied, second.manifest.clone()), (0, None), "{second:?}");

    let before = mailvault_backup::live_contents(fixture.data_dir(), &fixture.token.hsm).unwrap();
    std::fs::remove_dir_all(fixture.data_dir()).unwrap();
    let restored = fixture.path("restored");
    let report = mailvault_backup::restore(&spec, &restored, &fixture.token.hsm).unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert_restored(&before, mailvault_backup::live_contents(&restored, &fixture.token.hsm).unwrap());
    let mut config = fixture.config.clone();
    config.data_dir = restored;
    let engine = mailvault_engine::Engine::open(&config, &fixture.token.hsm).unwrap();
    let fetched = block_on(engine.fetch("carol", "Archive", 4)).unwrap();
    assert_eq!(fetched.body, message("carol", 9), "a message larger than a segment, through S3 and back");
}

#[test]
fn damage_on_s3_is_named_exactly() {
    let Some(server) = SeaweedFs::start() else { return };
    let fixture = Fixture::new();
    fixture.populate();
    let spec = server.bucket("mailvault-damage");
    fixture.backup(&spec);
    let target = spec.open(false).unwrap();
    let store = target_store(&target);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let names: Vec<String> = runtime.block_on(async {
        use futures::StreamExt;
        let prefix = object_store::path::Path::from("backups/segments");
        store.list(Some(&prefix)).map(|meta| meta.unwrap().location.to_string()).collect().await
    });
    let (altered, deleted) = (names[0].clone(), names[1].clone());
    runtime.block_on(async {
        let path = object_store::path::Path::from(altered.as_str());
        let mut bytes = store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        store.put(&path, bytes.into()).await.unwrap();
        store.delete(&object_store::path::Path::from(deleted.as_str())).await.unwrap();
    });
    let report =
        verify(&spec, VerifyLevel::Frames, &fixture.token.hsm, Some(fixture.data_dir()), fixture.directory.path())
            .unwrap();
    let damage: Vec<String> = report
        .findings
        .iter()
        .map(|finding| match finding {
            Finding::Damaged(what) => what.clone(),
            Finding::Different(difference) => panic!("unexpected difference {difference}"),
        })
        .collect();
    let relative = |name: &str| name.trim_start_matches("backups/").to_owned();
    assert_eq!(
        damage,
        vec![
            format!("segment {}: its BLAKE3 digest does not match the manifest", relative(&altered)),
            format!("segment {} is missing from the target", relative(&deleted)),
        ]
    );
    assert_eq!(report.exit_code(), mailvault_backup::exit_code::DAMAGED);
}

/// An upload's frames are checked before it leaves (regression, as for a directory target): a
/// segment damaged in the store stops the run, and nothing names it on the target.
#[test]
fn a_segment_damaged_in_the_store_is_not_uploaded_and_no_manifest_is_written() {
    let Some(server) = SeaweedFs::start() else { return };
    let fixture = Fixture::new();
    fixture.populate();
    // The shutdown's checkpoint covers every sealed segment: the store still opens.
    let shard = fixture.data_dir().join("shard-000");
    let first = support::files_under(&shard)
        .iter()
        .filter_map(|name| mailvault_engine::segment::parse_segment_name(name))
        .min()
        .unwrap();
    let path = shard.join(mailvault_engine::segment::segment_name(first));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[mailvault_engine::format::BLOCK_BYTES + 60] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let spec = server.bucket("mailvault-store-damage");
    let engine = fixture.open();
    let mut seal = || Ok(block_on(engine.seal_active()).unwrap());
    let run = mailvault_backup::run_backup(fixture.data_dir(), &mut seal, &fixture.token.hsm, &spec);
    block_on(engine.release_backup_hold()).unwrap();
    let Err(mailvault_backup::BackupError::StoreDamaged(damaged)) = run else { panic!("the run went on: {run:?}") };
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    let expected = format!("shard 0 segment {}: segment {first} is corrupt at offset ", path.display());
    assert!(damaged[0].starts_with(&expected), "{damaged:?}");

    let target = spec.open(false).unwrap();
    let store = target_store(&target);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let names: Vec<String> = runtime.block_on(async {
        use futures::StreamExt;
        store.list(None).map(|meta| meta.unwrap().location.to_string()).collect().await
    });
    let damaged_name = format!("shard-000/{}", mailvault_engine::segment::segment_name(first));
    assert!(!names.iter().any(|name| name.ends_with(&damaged_name)), "the damaged segment was uploaded: {names:?}");
    assert!(!names.iter().any(|name| name.contains("manifests/")), "a manifest was written: {names:?}");
    assert!(names.iter().any(|name| name.contains("segments/")), "the intact segments were uploaded: {names:?}");
}

/// A second client of the same bucket, to damage objects behind the backup's back.
fn target_store(target: &mailvault_backup::Target) -> object_store::aws::AmazonS3 {
    let spec = target.spec();
    let bucket = spec.location.trim_start_matches("s3://").split('/').next().unwrap();
    let (key, secret) = spec.s3.credentials.clone().unwrap();
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(spec.s3.endpoint.clone().unwrap())
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .build()
        .unwrap()
}
