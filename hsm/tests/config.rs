//! `HsmConfig::from_env` semantics, through `from_lookup` (no process environment mutation).

use std::collections::HashMap;

use mailvault_hsm::{HsmConfig, HsmError};

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> =
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn defaults_apply_and_the_pin_comes_from_the_environment() {
    let config = HsmConfig::from_lookup(lookup(&[("MAILVAULT_HSM_PIN", "1234")])).unwrap();
    assert_eq!(config.module_path, std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"));
    assert_eq!(config.token_label, "mailvault");
    assert_eq!(config.pin.expose_secret(), "1234");
}

#[test]
fn the_pin_file_has_its_trailing_newline_trimmed() {
    let directory = tempfile::tempdir().unwrap();
    for (contents, expected) in
        [("abcd\n", "abcd"), ("abcd\r\n", "abcd"), ("abcd", "abcd"), (" ab cd \n\n", " ab cd \n")]
    {
        let path = directory.path().join("pin");
        std::fs::write(&path, contents).unwrap();
        let config = HsmConfig::from_lookup(lookup(&[
            ("MAILVAULT_HSM_PIN_FILE", path.to_str().unwrap()),
            ("MAILVAULT_HSM_MODULE", "/opt/hsm/lib.so"),
            ("MAILVAULT_HSM_TOKEN", "prod"),
        ]))
        .unwrap();
        assert_eq!(config.pin.expose_secret(), expected, "{contents:?}");
        assert_eq!(config.token_label, "prod");
        assert_eq!(config.module_path, std::path::Path::new("/opt/hsm/lib.so"));
    }
}

#[test]
fn no_pin_is_pin_missing() {
    assert!(matches!(HsmConfig::from_lookup(lookup(&[])), Err(HsmError::PinMissing)));
    assert!(matches!(HsmConfig::from_lookup(lookup(&[("MAILVAULT_HSM_PIN", "")])), Err(HsmError::PinMissing)));
    let directory = tempfile::tempdir().unwrap();
    let empty = directory.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let result = HsmConfig::from_lookup(lookup(&[("MAILVAULT_HSM_PIN_FILE", empty.to_str().unwrap())]));
    assert!(matches!(result, Err(HsmError::PinMissing)));
    let absent = directory.path().join("absent");
    let result = HsmConfig::from_lookup(lookup(&[("MAILVAULT_HSM_PIN_FILE", absent.to_str().unwrap())]));
    assert!(matches!(result, Err(HsmError::Io { .. })));
}

#[test]
fn over_long_token_labels_are_refused() {
    let label = "x".repeat(33);
    let result = HsmConfig::from_lookup(lookup(&[("MAILVAULT_HSM_PIN", "1"), ("MAILVAULT_HSM_TOKEN", &label)]));
    assert!(matches!(result, Err(HsmError::Config { .. })));
}
