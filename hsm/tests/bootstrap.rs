//! Bootstrap: the `SoftHSM2` config file and in-process token initialization.

use mailvault_hsm::bootstrap::{ensure_softhsm_conf, init_token, token_dir_from_conf};
use mailvault_hsm::testing::TestToken;
use mailvault_hsm::{Hsm, HsmConfig, HsmError, Pin};

#[test]
fn the_config_file_is_written_once_and_then_left_alone() {
    let directory = tempfile::tempdir().unwrap();
    let conf = directory.path().join("softhsm/softhsm2.conf");
    let tokens = directory.path().join("softhsm/tokens");
    ensure_softhsm_conf(&conf, &tokens).unwrap();
    assert!(tokens.is_dir());
    assert_eq!(token_dir_from_conf(&conf).unwrap(), Some(tokens.clone()));
    let written = std::fs::metadata(&conf).unwrap().modified().unwrap();
    ensure_softhsm_conf(&conf, &tokens).unwrap();
    assert_eq!(std::fs::metadata(&conf).unwrap().modified().unwrap(), written);
    let leftovers: Vec<_> =
        std::fs::read_dir(conf.parent().unwrap()).unwrap().flatten().map(|entry| entry.file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");

    let error = ensure_softhsm_conf(&conf, &directory.path().join("elsewhere")).unwrap_err();
    assert!(matches!(error, HsmError::Config { .. }), "{error:?}");
}

#[test]
fn init_token_is_idempotent() {
    // A TestToken makes sure the process's SoftHSM2 config exists and the module is loaded.
    let token = TestToken::create();
    let so_pin = Pin::new("so-pin-for-this-test".to_owned());
    // The token exists already: nothing happens, the SO PIN is not even checked.
    init_token(&token.config.module_path, &token.config.token_label, &so_pin, &token.config.pin).unwrap();
    Hsm::open(&token.config).unwrap();
}

#[test]
fn init_token_creates_a_token_the_user_pin_opens() {
    let token = TestToken::create();
    let label = format!("mvtest-{}-bootstrap", std::process::id());
    let config =
        HsmConfig { token_label: label.clone(), pin: Pin::new("user-pin-1".to_owned()), ..token.config.clone() };
    let so_pin = Pin::new("so-pin-1".to_owned());
    init_token(&config.module_path, &label, &so_pin, &config.pin).unwrap();
    init_token(&config.module_path, &label, &so_pin, &config.pin).unwrap();
    let created = TestToken::adopt(config.clone()).unwrap();
    let status = created.hsm.session().unwrap().ensure_keys().unwrap();
    assert_eq!(status.current_kek, Some(1));
    let wrong = HsmConfig { pin: Pin::new("user-pin-2".to_owned()), ..config };
    assert!(matches!(Hsm::open(&wrong), Err(HsmError::WrongPin)));
}
