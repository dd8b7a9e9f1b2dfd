//! The admin socket's framing (`admin::wire`): a JSON line, then the payload it announces. Any
//! bytes decode to a frame, ask for more, or are refused; a frame never claims more bytes than
//! it was given; a decoded command or reply re-encodes to a frame that decodes to the same
//! value, whose every shorter prefix asks for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::admin::wire::{self, Decoded};

fn check<T: Clone + PartialEq + std::fmt::Debug>(
    input: &[u8],
    decode: impl Fn(&[u8]) -> Result<Decoded<T>, String>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    let Ok(Decoded::Complete { value, consumed_bytes }) = decode(input) else { return };
    assert!(consumed_bytes <= input.len());
    let frame = encode(&value);
    assert_eq!(decode(&frame), Ok(Decoded::Complete { value: value.clone(), consumed_bytes: frame.len() }));
    for cut in [frame.len() - 1, frame.len() / 2] {
        assert_eq!(decode(&frame[..cut]), Ok(Decoded::NeedsMore), "prefix of {cut} bytes");
    }
}

fuzz_target!(|input: &[u8]| {
    check(input, wire::decode_request, wire::encode_request);
    check(input, wire::decode_reply, wire::encode_reply);
});
