//! The manifest decoders that need no HSM: `mailvault_backup::split_signed` (the signed
//! envelope) and `Manifest::parse_body` (the JSON the signature covers), on the input as a
//! whole signed manifest and, where it is UTF-8, as a bare body. An envelope that splits joins
//! back to exactly the input (one spelling); a body that parses is a fixed point of print and
//! parse, prints as one line, and its signed form splits back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_backup::{Manifest, join_signed, split_signed};

fn check_body(body: &str, signature: &mailvault_hsm::ManifestSignature) {
    let Ok(manifest) = Manifest::parse_body(body) else {
        return;
    };
    let printed = manifest.to_body().expect("a parsed manifest prints");
    assert!(!printed.contains('\n'), "the printed body is not one line");
    assert_eq!(Manifest::parse_body(&printed).ok().as_ref(), Some(&manifest), "print then parse changed the manifest");
    let signed = join_signed(&printed, signature);
    let split = split_signed(&signed).expect("a joined manifest splits");
    assert_eq!(split.body, printed);
    assert_eq!(&split.signature, signature);
}

fuzz_target!(|input: &[u8]| {
    let any_signature = mailvault_hsm::ManifestSignature::from_bytes([0xa5; mailvault_hsm::MANIFEST_SIGNATURE_BYTES]);
    if let Ok(split) = split_signed(input) {
        assert_eq!(join_signed(split.body, &split.signature), input, "split then join changed the manifest");
        assert!(!split.body.contains('\n'));
        check_body(split.body, &split.signature);
    }
    if let Ok(text) = std::str::from_utf8(input) {
        check_body(text, &any_signature);
    }
});
