//! Secrets never show in Debug output or error messages.

use mailvault_hsm::testing::TestToken;
use mailvault_hsm::{Dek, HsmConfig, Pin};

#[test]
fn debug_output_shows_no_secret_bytes() {
    let dek = Dek::from_bytes([0xab; 32]);
    assert_eq!(format!("{dek:?}"), "Dek(<redacted>)");
    assert_eq!(format!("{dek:#?}"), "Dek(<redacted>)");

    let pin = Pin::new("s3cret-pin-value".to_owned());
    assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");

    let config =
        HsmConfig { module_path: "/usr/lib/softhsm/libsofthsm2.so".into(), token_label: "mailvault".to_owned(), pin };
    let rendered = format!("{config:?} {config:#?}");
    assert!(!rendered.contains("s3cret"), "{rendered}");
    assert!(rendered.contains("mailvault"));
}

#[test]
fn live_objects_render_without_the_pin() {
    let token = TestToken::create_with_keys();
    let pin = token.config.pin.expose_secret().to_owned();
    let session = token.hsm.session().unwrap();
    let dek = session.generate_dek().unwrap();
    let hex = dek.as_bytes().iter().fold(String::new(), |mut hex, byte| {
        use std::fmt::Write;
        write!(hex, "{byte:02x}").unwrap();
        hex
    });
    let rendered = format!("{token:?} {:?} {session:?} {dek:?} {:?}", token.hsm, session.wrap_dek(&dek).unwrap());
    assert!(!rendered.contains(&pin), "{rendered}");
    assert!(!rendered.contains(&hex), "{rendered}");
}
