//! Credential sealing with AES-GCM inside the HSM: round trip, tampering, and binding to the
//! account and credential id.

use mailvault_hsm::testing::TestToken;
use mailvault_hsm::{HsmError, SealedCredential};

const SECRET: &[u8] = b"pop3 password: correct horse battery staple";

#[test]
fn sealed_credentials_open_for_their_own_account_and_id() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let sealed = session.seal_credential("alice@example.org", "pop:mail.example.net", SECRET).unwrap();
    assert_eq!(sealed.ciphertext().len(), SECRET.len() + 16);
    assert!(!sealed.to_bytes().windows(8).any(|window| SECRET.windows(8).any(|part| part == window)));

    let decoded = SealedCredential::from_bytes(&sealed.to_bytes()).unwrap();
    let opened = session.open_credential("alice@example.org", "pop:mail.example.net", &decoded).unwrap();
    assert_eq!(opened.as_slice(), SECRET);

    let again = session.seal_credential("alice@example.org", "pop:mail.example.net", SECRET).unwrap();
    assert_ne!(again.nonce(), sealed.nonce(), "a fresh nonce per seal");
}

#[test]
fn any_flipped_byte_is_tampering() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let bytes = session.seal_credential("alice", "feed", SECRET).unwrap().to_bytes();
    // Every byte after the key version: nonce, ciphertext and tag (the length field cannot
    // change without the decoder rejecting it).
    let header = 4 + 12 + 4;
    for index in (4..16).chain(header..bytes.len()) {
        let mut changed = bytes.clone();
        changed[index] ^= 0x80;
        let sealed = SealedCredential::from_bytes(&changed).unwrap();
        let error = session.open_credential("alice", "feed", &sealed).unwrap_err();
        assert!(matches!(error, HsmError::Tampered), "byte {index}: {error:?}");
    }
    let sealed = SealedCredential::from_bytes(&bytes).unwrap();
    assert_eq!(session.open_credential("alice", "feed", &sealed).unwrap().as_slice(), SECRET);
}

#[test]
fn a_credential_moved_to_another_account_or_id_does_not_open() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let sealed = session.seal_credential("alice", "feed", SECRET).unwrap();
    for (account, credential_id) in [("bob", "feed"), ("alice", "feed2"), ("alicef", "eed"), ("", "alicefeed")] {
        let error = session.open_credential(account, credential_id, &sealed).unwrap_err();
        assert!(matches!(error, HsmError::Tampered), "{account}/{credential_id}: {error:?}");
    }
}

#[test]
fn empty_and_maximal_secrets_round_trip_and_oversized_ones_are_refused() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    for secret in [Vec::new(), vec![7_u8; mailvault_hsm::CREDENTIAL_SECRET_BYTES_MAX]] {
        let sealed = session.seal_credential("a", "b", &secret).unwrap();
        let decoded = SealedCredential::from_bytes(&sealed.to_bytes()).unwrap();
        assert_eq!(session.open_credential("a", "b", &decoded).unwrap().as_slice(), secret.as_slice());
    }
    let too_long = vec![0_u8; mailvault_hsm::CREDENTIAL_SECRET_BYTES_MAX + 1];
    assert!(matches!(session.seal_credential("a", "b", &too_long), Err(HsmError::Malformed { .. })));
}
