//! The backup key: DEKs re-wrapped for backups inside the HSM, back to the live KEK for a
//! restore, and crypto-shredded by rotating and destroying the old version.

use mailvault_hsm::HsmError;
use mailvault_hsm::testing::TestToken;

#[test]
fn the_backup_key_is_created_on_first_use_and_round_trips_a_dek() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    assert!(session.backup_key_versions().unwrap().is_empty());
    assert_eq!(session.ensure_backup_key().unwrap(), 1);
    assert_eq!(session.ensure_backup_key().unwrap(), 1, "idempotent");
    assert_eq!(session.status().unwrap().kek_versions, vec![1], "a backup key is not a KEK");

    let dek = session.generate_dek().unwrap();
    let live = session.wrap_dek(&dek).unwrap();
    let backup = session.wrap_dek_for_backup(&live, 1).unwrap();
    assert_eq!(backup.kek_version(), 1);
    assert_ne!(backup.blob(), live.blob(), "another wrapping key, another blob");
    assert_eq!(session.unwrap_backup_dek(&backup).unwrap().as_bytes(), dek.as_bytes());
    assert!(session.unwrap_dek(&backup).is_err(), "the live KEK cannot open a backup-wrapped key");

    session.rotate_kek().unwrap();
    let restored = session.wrap_backup_dek_for_store(&backup).unwrap();
    assert_eq!(restored.kek_version(), 2, "a restore wraps under the current KEK");
    assert_eq!(session.unwrap_dek(&restored).unwrap().as_bytes(), dek.as_bytes());
}

#[test]
fn destroying_an_old_backup_key_shreds_its_key_tables() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let dek = session.generate_dek().unwrap();
    let live = session.wrap_dek(&dek).unwrap();
    let version = session.ensure_backup_key().unwrap();
    let old = session.wrap_dek_for_backup(&live, version).unwrap();

    assert!(matches!(session.destroy_backup_key(version), Err(HsmError::KekInUse { .. })), "current: refused");
    let next = session.rotate_backup_key().unwrap();
    assert_eq!(next, 2);
    let new = session.wrap_dek_for_backup(&live, next).unwrap();
    session.destroy_backup_key(version).unwrap();

    assert!(matches!(session.unwrap_backup_dek(&old), Err(HsmError::KeyMissing { .. })));
    assert!(matches!(session.wrap_backup_dek_for_store(&old), Err(HsmError::KeyMissing { .. })));
    assert_eq!(session.unwrap_backup_dek(&new).unwrap().as_bytes(), dek.as_bytes());
    assert_eq!(session.backup_key_versions().unwrap(), vec![2]);
}

#[test]
fn a_tampered_backup_blob_is_refused() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let live = session.wrap_dek(&session.generate_dek().unwrap()).unwrap();
    let version = session.ensure_backup_key().unwrap();
    let backup = session.wrap_dek_for_backup(&live, version).unwrap();
    let mut blob = backup.blob().to_vec();
    blob[5] ^= 1;
    let tampered = mailvault_hsm::WrappedDek::new(version, blob).unwrap();
    assert!(session.unwrap_backup_dek(&tampered).is_err());
    assert!(session.wrap_backup_dek_for_store(&tampered).is_err());
}
