//! The pure codecs of `WrappedDek` and `SealedCredential`: round trips, and rejection of any
//! truncated or extended input.

use mailvault_hsm::{HsmError, SealedCredential, WRAPPED_BLOB_BYTES_MAX, WrappedDek};
use proptest::prelude::*;

fn wrapped_dek() -> impl Strategy<Value = WrappedDek> {
    (1_u32.., 2_usize..=WRAPPED_BLOB_BYTES_MAX / 8)
        .prop_flat_map(|(version, words)| (Just(version), proptest::collection::vec(any::<u8>(), words * 8)))
        .prop_filter_map("valid by construction", |(version, blob)| WrappedDek::new(version, blob).ok())
}

fn sealed_credential_bytes() -> impl Strategy<Value = Vec<u8>> {
    (1_u32.., any::<[u8; 12]>(), proptest::collection::vec(any::<u8>(), 16..600)).prop_map(
        |(version, nonce, sealed)| {
            let mut bytes = version.to_le_bytes().to_vec();
            bytes.extend_from_slice(&nonce);
            bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&sealed);
            bytes
        },
    )
}

proptest! {
    #[test]
    fn wrapped_dek_round_trips(wrapped in wrapped_dek()) {
        let bytes = wrapped.to_bytes();
        prop_assert_eq!(bytes.len(), 6 + wrapped.blob().len());
        prop_assert_eq!(WrappedDek::from_bytes(&bytes).unwrap(), wrapped);
    }

    #[test]
    fn wrapped_dek_rejects_truncated_and_extended_input(wrapped in wrapped_dek(), cut in any::<prop::sample::Index>(), extra in 1_usize..9) {
        let bytes = wrapped.to_bytes();
        let truncated = &bytes[..cut.index(bytes.len())];
        let is_malformed = matches!(WrappedDek::from_bytes(truncated), Err(HsmError::Malformed { .. }));
        prop_assert!(is_malformed);
        let mut extended = bytes.clone();
        extended.extend(std::iter::repeat_n(0, extra));
        let is_malformed = matches!(WrappedDek::from_bytes(&extended), Err(HsmError::Malformed { .. }));
        prop_assert!(is_malformed);
    }

    #[test]
    fn wrapped_dek_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(wrapped) = WrappedDek::from_bytes(&bytes) {
            prop_assert_eq!(wrapped.to_bytes(), bytes);
        }
    }

    #[test]
    fn sealed_credential_round_trips(bytes in sealed_credential_bytes()) {
        let sealed = SealedCredential::from_bytes(&bytes).unwrap();
        prop_assert_eq!(sealed.to_bytes(), bytes);
    }

    #[test]
    fn sealed_credential_rejects_truncated_and_extended_input(bytes in sealed_credential_bytes(), cut in any::<prop::sample::Index>(), extra in 1_usize..9) {
        let truncated = &bytes[..cut.index(bytes.len())];
        let is_malformed = matches!(SealedCredential::from_bytes(truncated), Err(HsmError::Malformed { .. }));
        prop_assert!(is_malformed);
        let mut extended = bytes.clone();
        extended.extend(std::iter::repeat_n(0, extra));
        let is_malformed = matches!(SealedCredential::from_bytes(&extended), Err(HsmError::Malformed { .. }));
        prop_assert!(is_malformed);
    }

    #[test]
    fn sealed_credential_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(sealed) = SealedCredential::from_bytes(&bytes) {
            prop_assert_eq!(sealed.to_bytes(), bytes);
        }
    }
}

#[test]
fn wrapped_dek_rejects_bad_lengths_and_version_zero() {
    assert!(WrappedDek::new(1, vec![0; 40]).is_ok());
    for (version, length) in [(0, 40), (1, 0), (1, 8), (1, 41), (1, WRAPPED_BLOB_BYTES_MAX + 8)] {
        assert!(
            matches!(WrappedDek::new(version, vec![0; length]), Err(HsmError::Malformed { .. })),
            "{version} {length}"
        );
    }
    // A length field that disagrees with the bytes present.
    let mut bytes = WrappedDek::new(1, vec![0; 40]).unwrap().to_bytes();
    bytes[4] = 48;
    bytes.extend_from_slice(&[0; 8]);
    assert!(WrappedDek::from_bytes(&bytes).is_ok());
    bytes[4] = 40;
    assert!(WrappedDek::from_bytes(&bytes).is_err());
}

#[test]
fn sealed_credential_rejects_a_missing_tag() {
    let mut bytes = 1_u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 12]);
    bytes.extend_from_slice(&15_u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 15]);
    assert!(matches!(SealedCredential::from_bytes(&bytes), Err(HsmError::Malformed { .. })));
}
