//! Base64 (RFC 4648 §4) for SASL exchanges, and the padless variant with ',' for '/' that
//! modified UTF-7 mailbox names use (RFC 3501 §5.1.3). Small enough not to need a crate.

const STANDARD_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const MAILBOX_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Which of the two alphabets, and whether '=' padding is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// RFC 4648 with padding (SASL).
    Standard,
    /// RFC 3501 modified base64: ',' instead of '/', no padding.
    Mailbox,
}

impl Variant {
    fn alphabet(self) -> &'static [u8; 64] {
        match self {
            Self::Standard => STANDARD_ALPHABET,
            Self::Mailbox => MAILBOX_ALPHABET,
        }
    }

    fn value_of(self, byte: u8) -> Option<u8> {
        let position = self.alphabet().iter().position(|&candidate| candidate == byte)?;
        u8::try_from(position).ok()
    }
}

/// Encodes `input` and appends the text to `out`.
pub(crate) fn encode_into(input: &[u8], variant: Variant, out: &mut Vec<u8>) {
    let alphabet = variant.alphabet();
    let symbol = |value: u32| alphabet.get((value & 0x3f) as usize).copied().unwrap_or(b'=');
    for chunk in input.chunks(3) {
        let first = u32::from(chunk.first().copied().unwrap_or(0));
        let second = u32::from(chunk.get(1).copied().unwrap_or(0));
        let third = u32::from(chunk.get(2).copied().unwrap_or(0));
        let group = (first << 16) | (second << 8) | third;
        out.push(symbol(group >> 18));
        out.push(symbol(group >> 12));
        if chunk.len() > 1 {
            out.push(symbol(group >> 6));
        } else if variant == Variant::Standard {
            out.push(b'=');
        }
        if chunk.len() > 2 {
            out.push(symbol(group));
        } else if variant == Variant::Standard {
            out.push(b'=');
        }
    }
}

/// Encodes `input` as standard padded base64.
pub(crate) fn encode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    encode_into(input, Variant::Standard, &mut out);
    // Every byte pushed comes from the ASCII alphabet.
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes base64 text. Standard input must be padded to a multiple of four; both variants
/// reject stray characters and non-zero leftover bits, so each text has one decoding.
pub(crate) fn decode(input: &[u8], variant: Variant) -> Option<Vec<u8>> {
    let payload = match variant {
        Variant::Standard => {
            if !input.len().is_multiple_of(4) {
                return None;
            }
            let padding = input.iter().rev().take_while(|&&byte| byte == b'=').count();
            if padding > 2 {
                return None;
            }
            input.get(..input.len() - padding)?
        }
        Variant::Mailbox => input,
    };
    if payload.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len() / 4 * 3 + 2);
    let mut accumulator: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in payload {
        accumulator = (accumulator << 6) | u32::from(variant.value_of(byte)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero, or two texts would decode to the same bytes.
    (accumulator == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let vectors: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (plain, text) in vectors {
            assert_eq!(encode(plain), text);
            assert_eq!(decode(text.as_bytes(), Variant::Standard).as_deref(), Some(plain));
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in ["Zg", "Zg=", "Z===", "Zh==", "Zm9v!", "====", "Zm9vY"] {
            assert_eq!(decode(text.as_bytes(), Variant::Standard), None, "{text}");
        }
    }

    #[test]
    fn mailbox_variant_has_no_padding() {
        let mut out = Vec::new();
        encode_into(&[0xff, 0xfe], Variant::Mailbox, &mut out);
        assert_eq!(out, b"//4".map(|byte| if byte == b'/' { b',' } else { byte }));
        assert_eq!(decode(b",,4", Variant::Mailbox), Some(vec![0xff, 0xfe]));
    }
}
