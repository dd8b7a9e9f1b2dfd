//! `mailvault_backup::KeyTable::decode`: a backup's key table, read from the target (an
//! untrusted place). Whatever decodes re-encodes to exactly the input (one spelling per table),
//! its account ids strictly ascend, every wrapped key is one the HSM crate accepts, and the
//! input cut by one byte does not decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_backup::KeyTable;
use mailvault_hsm::WrappedDek;

fuzz_target!(|input: &[u8]| {
    let Ok(table) = KeyTable::decode(input) else {
        return;
    };
    assert_eq!(table.encode(), input, "decode then encode changed the key table");
    assert!(table.entries.windows(2).all(|pair| pair[0].0 < pair[1].0), "account ids do not ascend");
    for (_, wrapped) in &table.entries {
        assert_eq!(WrappedDek::from_bytes(&wrapped.to_bytes()).ok().as_ref(), Some(wrapped));
    }
    assert!(KeyTable::decode(&input[..input.len() - 1]).is_err(), "a cut table decoded");
});
