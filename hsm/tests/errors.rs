//! The errors an operator meets first: wrong PIN, no module, no token, missing keys.

use std::path::PathBuf;

use mailvault_hsm::testing::TestToken;
use mailvault_hsm::{Hsm, HsmConfig, HsmError, Pin, WrappedDek};

#[test]
fn a_wrong_pin_is_wrong_pin() {
    let token = TestToken::create();
    let config = HsmConfig { pin: Pin::new("not-the-pin".to_owned()), ..token.config.clone() };
    let error = Hsm::open(&config).unwrap_err();
    assert!(matches!(error, HsmError::WrongPin), "{error:?}");
    assert!(!error.to_string().contains("not-the-pin"));
    // The right PIN still works afterwards.
    Hsm::open(&token.config).unwrap().session().unwrap();
}

#[test]
fn a_wrong_pin_is_wrong_even_while_the_token_is_logged_in() {
    let token = TestToken::create();
    // This session keeps the token logged in for the whole process, so `C_Login` will answer
    // "already logged in" without looking at the PIN.
    let _logged_in = token.hsm.session().unwrap();
    let config = HsmConfig { pin: Pin::new("not-the-pin".to_owned()), ..token.config.clone() };
    assert!(matches!(Hsm::open(&config), Err(HsmError::WrongPin)));
    Hsm::open(&token.config).unwrap().session().unwrap();
}

#[test]
fn a_missing_module_is_module_not_found() {
    let config = HsmConfig {
        module_path: PathBuf::from("/nonexistent/libpkcs11-nothing.so"),
        token_label: "mailvault".to_owned(),
        pin: Pin::new("1234".to_owned()),
    };
    let error = Hsm::open(&config).unwrap_err();
    assert!(matches!(&error, HsmError::ModuleNotFound { path } if path == &config.module_path), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/libpkcs11-nothing.so"));
}

#[test]
fn an_unknown_label_is_token_not_found() {
    let token = TestToken::create();
    let config = HsmConfig { token_label: "no-such-token-here".to_owned(), ..token.config.clone() };
    let error = Hsm::open(&config).unwrap_err();
    assert!(matches!(&error, HsmError::TokenNotFound { label } if label == "no-such-token-here"), "{error:?}");
}

#[test]
fn operations_without_their_key_are_key_missing() {
    let token = TestToken::create();
    let session = token.hsm.session().unwrap();
    let status = session.status().unwrap();
    assert!(status.kek_versions.is_empty() && status.current_kek.is_none());
    assert!(!status.credential_key && !status.manifest_key && !status.password_pepper_key);

    let dek = session.generate_dek().unwrap();
    let missing = |result: Result<(), HsmError>, expected: &str| match result {
        Err(HsmError::KeyMissing { label }) => assert_eq!(label, expected),
        other => panic!("expected KeyMissing {expected}, got {other:?}"),
    };
    missing(session.wrap_dek(&dek).map(drop), "mailvault-kek-v1");
    missing(session.unwrap_dek(&WrappedDek::new(3, vec![0; 40]).unwrap()).map(drop), "mailvault-kek-v3");
    missing(session.seal_credential("a", "b", b"c").map(drop), "mailvault-credential-v1");
    missing(session.sign_manifest(b"m").map(drop), "mailvault-manifest-hmac-v1");
}

#[test]
fn ensure_keys_is_idempotent() {
    let token = TestToken::create();
    let session = token.hsm.session().unwrap();
    let first = session.ensure_keys().unwrap();
    assert_eq!(first.kek_versions, vec![1]);
    assert_eq!(first.current_kek, Some(1));
    assert!(first.credential_key && first.manifest_key && first.password_pepper_key);
    assert_eq!(session.ensure_keys().unwrap(), first);
    assert_eq!(token.hsm.session().unwrap().status().unwrap(), first);
}

#[test]
fn a_dropped_test_token_is_gone() {
    let token = TestToken::create();
    let config = token.config.clone();
    drop(token);
    let error = Hsm::open(&config).unwrap_err();
    assert!(matches!(error, HsmError::TokenNotFound { .. }), "{error:?}");
}
