//! argon2id password hashing, plain and peppered by the HSM.

use mailvault_hsm::HsmError;
use mailvault_hsm::password::{
    PasswordParams, hash_password, hash_password_peppered, verify_password, verify_password_peppered,
};
use mailvault_hsm::testing::TestToken;

/// Cheap parameters: the tests check behaviour, not cost.
const FAST: PasswordParams = PasswordParams { memory_kib: 256, iterations: 1, parallelism: 1 };

#[test]
fn a_hash_verifies_its_password_and_no_other() {
    let phc = hash_password(&FAST, "hunter2").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{phc}");
    assert!(verify_password("hunter2", &phc).unwrap());
    assert!(!verify_password("hunter3", &phc).unwrap());
    assert_ne!(hash_password(&FAST, "hunter2").unwrap(), phc, "a fresh salt every time");
}

#[test]
fn params_deserialize_with_defaults() {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        password: PasswordParams,
    }
    let defaults = PasswordParams::default();
    assert_eq!((defaults.memory_kib, defaults.iterations, defaults.parallelism), (19 * 1024, 2, 1));
    let parsed: Wrapper = serde_json::from_str(r#"{"password": {"iterations": 3}}"#).unwrap();
    assert_eq!(parsed.password, PasswordParams { iterations: 3, ..defaults });
    assert!(serde_json::from_str::<Wrapper>(r#"{"password": {"memory": 3}}"#).is_err());
}

#[test]
fn malformed_or_oversized_stored_hashes_are_errors_not_false() {
    assert!(matches!(verify_password("x", "not a hash"), Err(HsmError::Password { .. })));
    let huge = "$argon2id$v=19$m=4000000,t=1,p=1$c2FsdHNhbHRzYWx0$YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE";
    assert!(matches!(verify_password("x", huge), Err(HsmError::Password { .. })));
    let wrong_algorithm = hash_password(&FAST, "x").unwrap().replacen("argon2id", "argon2i", 1);
    assert!(matches!(verify_password("x", &wrong_algorithm), Err(HsmError::Password { .. })));
    let excessive = PasswordParams { memory_kib: 2 * 1024 * 1024, ..FAST };
    assert!(matches!(hash_password(&excessive, "x"), Err(HsmError::Password { .. })));
}

#[test]
fn peppered_hashes_need_the_hsm() {
    let token = TestToken::create_with_keys();
    let session = token.hsm.session().unwrap();
    let phc = hash_password_peppered(&session, &FAST, "hunter2").unwrap();
    assert!(phc.contains("keyid="), "{phc}");
    assert!(verify_password_peppered(&session, "hunter2", &phc).unwrap());
    assert!(!verify_password_peppered(&session, "hunter3", &phc).unwrap());
    assert!(matches!(verify_password("hunter2", &phc), Err(HsmError::Password { .. })));

    // Hashes made before the pepper keep working through the peppered verifier.
    let plain = hash_password(&FAST, "hunter2").unwrap();
    assert!(verify_password_peppered(&session, "hunter2", &plain).unwrap());

    // Another HSM (another pepper key) cannot verify it.
    let other = TestToken::create_with_keys();
    assert!(!verify_password_peppered(&other.hsm.session().unwrap(), "hunter2", &phc).unwrap());
}
