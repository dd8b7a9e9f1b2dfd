//! `decode_mailbox_name` (modified UTF-7): a decoded name encodes back to exactly the bytes it
//! came from (each name has one spelling, so two spellings cannot name one mailbox), and any
//! UTF-8 name encodes to what decodes back to it.
//!
//! Known and tolerated until fixed in frontends: the decoder accepts null shifts (a shift
//! closed by '-' and reopened by '&' at once, "&AOk-&AOk-"), which RFC 3501 §5.1.3 forbids, so
//! "&AOk-&AOk-" and "&AOkA6Q-" both name "éé". Every other second spelling fails the target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::imap::{decode_mailbox_name, encode_mailbox_name};

/// Whether `wire` closes a non-empty shift and opens another one right away.
fn has_null_shift(wire: &[u8]) -> bool {
    let mut rest = wire;
    while let Some(start) = rest.iter().position(|&byte| byte == b'&') {
        let shifted = &rest[start + 1..];
        let Some(end) = shifted.iter().position(|&byte| byte == b'-') else {
            return false;
        };
        let after = &shifted[end + 1..];
        if end > 0 && after.first() == Some(&b'&') && after.get(1) != Some(&b'-') {
            return true;
        }
        rest = after;
    }
    false
}

fuzz_target!(|input: &[u8]| {
    if let Some(name) = decode_mailbox_name(input) {
        let encoded = encode_mailbox_name(&name);
        assert!(encoded.as_bytes() == input || has_null_shift(input), "a second spelling of {name:?}: {encoded:?}");
        assert_eq!(decode_mailbox_name(encoded.as_bytes()).as_deref(), Some(&*name));
    }
    let name = String::from_utf8_lossy(input);
    let encoded = encode_mailbox_name(&name);
    assert!(encoded.bytes().all(|byte| (b' '..=b'~').contains(&byte)), "encoded name is not printable ASCII");
    assert_eq!(decode_mailbox_name(encoded.as_bytes()).as_deref(), Some(&*name), "encode then decode changed {name:?}");
});
