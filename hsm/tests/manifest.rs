//! Backup manifest signing with the HSM's HMAC key.

use mailvault_hsm::testing::TestToken;
use mailvault_hsm::{HsmError, ManifestSignature};

#[test]
fn a_signature_verifies_and_one_changed_byte_does_not() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let manifest = b"segment 000017.seg blake3=... size=1048576\n".repeat(10);
    let signature = session.sign_manifest(&manifest).unwrap();
    session.verify_manifest(&manifest, &signature).unwrap();
    assert_eq!(session.sign_manifest(&manifest).unwrap(), signature, "HMAC is deterministic");

    for index in [0, manifest.len() / 2, manifest.len() - 1] {
        let mut changed = manifest.clone();
        changed[index] ^= 0x01;
        assert!(matches!(session.verify_manifest(&changed, &signature), Err(HsmError::SignatureMismatch)));
    }
    let mut bad = *signature.as_bytes();
    bad[31] ^= 0x01;
    let bad = ManifestSignature::from_bytes(bad);
    assert!(matches!(session.verify_manifest(&manifest, &bad), Err(HsmError::SignatureMismatch)));
}

#[test]
fn another_token_key_does_not_verify() {
    let first = TestToken::create_with_keys();
    let second = TestToken::create_with_keys();
    let signature = first.hsm.session().unwrap().sign_manifest(b"manifest").unwrap();
    let other = second.hsm.session().unwrap().verify_manifest(b"manifest", &signature);
    assert!(matches!(other, Err(HsmError::SignatureMismatch)));
}

#[test]
fn signature_bytes_must_be_exactly_32() {
    assert!(ManifestSignature::from_slice(&[0; 32]).is_ok());
    assert!(matches!(ManifestSignature::from_slice(&[0; 31]), Err(HsmError::Malformed { .. })));
    assert!(matches!(ManifestSignature::from_slice(&[0; 33]), Err(HsmError::Malformed { .. })));
}
