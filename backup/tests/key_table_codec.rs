//! The key table decoder (bytes read from a backup target): round trips, every truncation is
//! an error, and no input panics or over-allocates. Fuzzed too:
//! `fuzz/fuzz_targets/backup_key_table.rs`.
#![allow(clippy::unwrap_used)]

use mailvault_backup::{KeyTable, KeyTableError};
use mailvault_hsm::{WRAPPED_BLOB_BYTES_MAX, WrappedDek};
use proptest::prelude::*;

fn table(accounts: &[u64]) -> KeyTable {
    let entries = accounts.iter().map(|id| (*id, WrappedDek::new(3, vec![*id as u8; 40]).unwrap())).collect();
    KeyTable { backup_key_version: 7, entries }
}

/// Any wrapped DEK the HSM crate accepts: KEK version ≥ 1, a blob of 16 to 512 bytes in
/// whole 8-byte blocks (AES key wrap).
fn wrapped_dek() -> impl Strategy<Value = WrappedDek> {
    (1..=u32::MAX, 2..=WRAPPED_BLOB_BYTES_MAX / 8, any::<u8>())
        .prop_map(|(version, blocks, fill)| WrappedDek::new(version, vec![fill; blocks * 8]).unwrap())
}

/// Any valid table: strictly ascending account ids, each with its own wrapped DEK.
fn any_table() -> impl Strategy<Value = KeyTable> {
    (any::<u32>(), proptest::collection::btree_map(any::<u64>(), wrapped_dek(), 0..12)).prop_map(
        |(backup_key_version, entries)| KeyTable { backup_key_version, entries: entries.into_iter().collect() },
    )
}

#[test]
fn a_table_round_trips_and_rejects_damage() {
    let encoded = table(&[1, 5, 9]).encode();
    assert_eq!(KeyTable::decode(&encoded).unwrap(), table(&[1, 5, 9]));
    assert_eq!(KeyTable::decode(&encoded[..encoded.len() - 1]), Err(KeyTableError::Truncated));
    let mut extra = encoded.clone();
    extra.push(0);
    assert!(matches!(KeyTable::decode(&extra), Err(KeyTableError::Malformed(_))));
    let mut bad_magic = encoded;
    bad_magic[0] ^= 1;
    assert_eq!(KeyTable::decode(&bad_magic), Err(KeyTableError::BadMagic));
    assert!(KeyTable::decode(&table(&[5, 1]).encode()).is_err(), "ids must ascend");
    assert!(KeyTable::decode(&table(&[5, 5]).encode()).is_err(), "ids must not repeat");
}

#[test]
fn an_empty_table_round_trips() {
    let empty = KeyTable { backup_key_version: 1, entries: Vec::new() };
    assert_eq!(empty.encode().len(), 16);
    assert_eq!(KeyTable::decode(&empty.encode()).unwrap(), empty);
}

#[test]
fn a_huge_entry_count_is_refused_before_reading_entries() {
    let mut encoded = table(&[]).encode();
    encoded[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(KeyTable::decode(&encoded), Err(KeyTableError::Malformed("entry count")));
    // At the limit the count is believed, but the bytes run out: no allocation of 2^28 entries.
    encoded[12..16].copy_from_slice(&(1u32 << 28).to_le_bytes());
    assert_eq!(KeyTable::decode(&encoded), Err(KeyTableError::Truncated));
}

#[test]
fn a_wrapped_key_length_beyond_the_hsm_limit_is_refused() {
    let mut encoded = table(&[1]).encode();
    encoded[24..26].copy_from_slice(&u16::MAX.to_le_bytes());
    assert_eq!(KeyTable::decode(&encoded), Err(KeyTableError::Malformed("wrapped key length")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = KeyTable::decode(&bytes);
    }

    #[test]
    fn any_table_round_trips(original in any_table()) {
        prop_assert_eq!(KeyTable::decode(&original.encode()).unwrap(), original);
    }

    /// The decoder's output is canonical: what decodes re-encodes to the same bytes.
    #[test]
    fn whatever_decodes_reencodes_to_its_bytes(original in any_table(), position in any::<usize>(), byte in any::<u8>()) {
        let mut encoded = original.encode();
        let position = position % encoded.len();
        encoded[position] = byte;
        if let Ok(decoded) = KeyTable::decode(&encoded) {
            prop_assert_eq!(decoded.encode(), encoded);
        }
    }

    #[test]
    fn every_truncation_is_an_error(original in any_table()) {
        let encoded = original.encode();
        for length in 0..encoded.len() {
            prop_assert_eq!(KeyTable::decode(&encoded[..length]), Err(KeyTableError::Truncated), "cut at {}", length);
        }
    }

    #[test]
    fn a_flipped_bit_never_panics(original in any_table(), position in any::<usize>(), bit in 0u8..8) {
        let mut encoded = original.encode();
        let position = position % encoded.len();
        encoded[position] ^= 1 << bit;
        let _ = KeyTable::decode(&encoded);
    }
}
