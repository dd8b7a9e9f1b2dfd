//! The key table decoder: round trips, and never panics or over-allocates on any input.
#![allow(clippy::unwrap_used)]

use mailvault_backup::{KeyTable, KeyTableError};
use mailvault_hsm::WrappedDek;
use proptest::prelude::*;

fn table(accounts: &[u64]) -> KeyTable {
    let entries = accounts.iter().map(|id| (*id, WrappedDek::new(3, vec![*id as u8; 40]).unwrap())).collect();
    KeyTable { backup_key_version: 7, entries }
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
}

proptest! {
    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = KeyTable::decode(&bytes);
    }

    #[test]
    fn any_table_round_trips(mut accounts in proptest::collection::btree_set(any::<u64>(), 0..40)) {
        let accounts: Vec<u64> = std::mem::take(&mut accounts).into_iter().collect();
        let original = table(&accounts);
        prop_assert_eq!(KeyTable::decode(&original.encode()).unwrap(), original);
    }

    #[test]
    fn a_flipped_bit_never_panics(position in 0usize..200, bit in 0u8..8) {
        let mut encoded = table(&[1, 2, 3]).encode();
        let position = position % encoded.len();
        encoded[position] ^= 1 << bit;
        let _ = KeyTable::decode(&encoded);
    }
}
