//! KEK rotation, re-wrapping and destruction (crypto-shredding).

use mailvault_hsm::HsmError;
use mailvault_hsm::testing::TestToken;

#[test]
fn old_blobs_unwrap_after_rotation_and_rewrap_to_the_new_version() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let dek = session.generate_dek().unwrap();
    let under_v1 = session.wrap_dek(&dek).unwrap();

    assert_eq!(session.rotate_kek().unwrap(), 2);
    let status = session.status().unwrap();
    assert_eq!(status.kek_versions, vec![1, 2]);
    assert_eq!(status.current_kek, Some(2));

    assert_eq!(session.unwrap_dek(&under_v1).unwrap().as_bytes(), dek.as_bytes());
    let under_v2 = session.rewrap_dek(&under_v1).unwrap();
    assert_eq!(under_v2.kek_version(), 2);
    assert_eq!(session.unwrap_dek(&under_v2).unwrap().as_bytes(), dek.as_bytes());
    assert_eq!(session.wrap_dek(&dek).unwrap().kek_version(), 2, "new wraps use the new KEK");
    assert_eq!(session.rewrap_dek(&under_v2).unwrap(), under_v2, "already current: unchanged");
}

#[test]
fn a_destroyed_kek_makes_its_blobs_unrecoverable() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let dek = session.generate_dek().unwrap();
    let under_v1 = session.wrap_dek(&dek).unwrap();
    session.rotate_kek().unwrap();
    let rescued = session.rewrap_dek(&session.wrap_dek(&dek).unwrap()).unwrap();

    session.destroy_kek(1).unwrap();

    let error = session.unwrap_dek(&under_v1).unwrap_err();
    assert!(matches!(&error, HsmError::KeyMissing { label } if label == "mailvault-kek-v1"), "{error:?}");
    assert!(error.to_string().contains("mailvault-kek-v1"), "{error}");
    assert!(matches!(session.rewrap_dek(&under_v1), Err(HsmError::KeyMissing { .. })));
    assert_eq!(session.unwrap_dek(&rescued).unwrap().as_bytes(), dek.as_bytes());
    assert!(matches!(session.destroy_kek(1), Err(HsmError::KeyMissing { .. })));
}

#[test]
fn the_current_kek_cannot_be_destroyed() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    assert!(matches!(session.destroy_kek(1), Err(HsmError::KekInUse { version: 1 })));
    session.rotate_kek().unwrap();
    session.destroy_kek(1).unwrap();
    assert!(matches!(session.destroy_kek(2), Err(HsmError::KekInUse { version: 2 })));
}

#[test]
fn versions_are_never_reused_after_a_kek_is_deleted_outside_mailvault() {
    let Some(pkcs11_tool) = ["/usr/bin/pkcs11-tool", "/usr/local/bin/pkcs11-tool"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
    else {
        eprintln!("pkcs11-tool not installed: skipping");
        return;
    };
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    assert_eq!(session.rotate_kek().unwrap(), 2);

    // Another tool deletes the newest KEK behind mailvault's back (test PINs on argv are fine).
    let status = std::process::Command::new(pkcs11_tool)
        .args(["--module", &token.config.module_path.to_string_lossy()])
        .args(["--token-label", &token.config.token_label, "--login", "--pin"])
        .arg(token.config.pin.expose_secret())
        .args(["--delete-object", "--type", "secrkey", "--label", "mailvault-kek-v2"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(session.status().unwrap().kek_versions, vec![1]);

    assert_eq!(session.rotate_kek().unwrap(), 3, "version 2 was issued once; never again");
}
