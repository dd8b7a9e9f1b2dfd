//! `decode_mailbox_name` (modified UTF-7): a decoded name encodes back to exactly the bytes it
//! came from (each name has one spelling, so two spellings cannot name one mailbox), and any
//! UTF-8 name encodes to what decodes back to it.
//!
//! Fuzzing found null shifts ("&AOk-&AOk-" beside "&AOkA6Q-"); the decoder now refuses them
//! (regression test `null_shifts_are_refused_so_each_name_has_one_spelling`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::imap::{decode_mailbox_name, encode_mailbox_name};

fuzz_target!(|input: &[u8]| {
    if let Some(name) = decode_mailbox_name(input) {
        let encoded = encode_mailbox_name(&name);
        assert!(encoded.as_bytes() == input, "a second spelling of {name:?}: {encoded:?}");
        assert_eq!(decode_mailbox_name(encoded.as_bytes()).as_deref(), Some(&*name));
    }
    let name = String::from_utf8_lossy(input);
    let encoded = encode_mailbox_name(&name);
    assert!(encoded.bytes().all(|byte| (b' '..=b'~').contains(&byte)), "encoded name is not printable ASCII");
    assert_eq!(decode_mailbox_name(encoded.as_bytes()).as_deref(), Some(&*name), "encode then decode changed {name:?}");
});
