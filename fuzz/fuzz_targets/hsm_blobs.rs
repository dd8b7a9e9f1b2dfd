//! The HSM blob decoders: `WrappedDek::from_bytes`, `SealedCredential::from_bytes` and
//! `ManifestSignature::from_slice`, each on the same bytes; whatever decodes re-encodes to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_hsm::{ManifestSignature, SealedCredential, WrappedDek};

fuzz_target!(|input: &[u8]| {
    if let Ok(wrapped) = WrappedDek::from_bytes(input) {
        assert_eq!(wrapped.to_bytes(), input);
        assert_ne!(wrapped.kek_version(), 0);
        assert_eq!(WrappedDek::new(wrapped.kek_version(), wrapped.blob().to_vec()).ok(), Some(wrapped.clone()));
    }
    if let Ok(sealed) = SealedCredential::from_bytes(input) {
        assert_eq!(sealed.to_bytes(), input);
        assert_ne!(sealed.key_version(), 0);
    }
    if let Ok(signature) = ManifestSignature::from_slice(input) {
        assert_eq!(signature.as_bytes(), input);
    }
});
