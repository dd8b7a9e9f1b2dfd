//! DEK generation, wrapping and unwrapping against a real `SoftHSM2` token.

use mailvault_hsm::testing::TestToken;
use mailvault_hsm::{HsmError, WrappedDek};

#[test]
fn wrap_then_unwrap_returns_the_same_key() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let dek = session.generate_dek().unwrap();
    let wrapped = session.wrap_dek(&dek).unwrap();
    assert_eq!(wrapped.kek_version(), 1);
    assert_eq!(wrapped.blob().len(), 40, "AES-KWP of 32 bytes");
    assert_ne!(&wrapped.blob()[..32], dek.as_bytes(), "the blob is not the key");

    let stored = wrapped.to_bytes();
    let unwrapped = session.unwrap_dek(&WrappedDek::from_bytes(&stored).unwrap()).unwrap();
    assert_eq!(unwrapped.as_bytes(), dek.as_bytes());
}

#[test]
fn generated_keys_differ() {
    let token = TestToken::create();
    let session = token.hsm.session().unwrap();
    let first = session.generate_dek().unwrap();
    let second = session.generate_dek().unwrap();
    assert_ne!(first.as_bytes(), second.as_bytes());
    assert_ne!(first.as_bytes(), &[0; 32]);
}

#[test]
fn a_flipped_bit_in_a_wrapped_key_is_tampering() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let wrapped = session.wrap_dek(&session.generate_dek().unwrap()).unwrap();
    for index in [0, 20, 39] {
        let mut blob = wrapped.blob().to_vec();
        blob[index] ^= 0x01;
        let tampered = WrappedDek::new(wrapped.kek_version(), blob).unwrap();
        let error = session.unwrap_dek(&tampered).unwrap_err();
        assert!(matches!(error, HsmError::Tampered), "byte {index}: {error:?}");
    }
    // The session is still usable after the failed unwraps.
    session.unwrap_dek(&wrapped).unwrap();
}
