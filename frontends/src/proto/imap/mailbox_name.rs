//! Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3) to and from UTF-8, and the
//! case-insensitive INBOX.

use crate::proto::base64::{self, Variant};

/// Encodes a UTF-8 mailbox name in modified UTF-7: printable ASCII stands for itself ('&' as
/// "&-"), everything else is UTF-16BE in modified base64 between '&' and '-'.
pub fn encode_mailbox_name(name: &str) -> String {
    let mut out = Vec::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for character in name.chars() {
        if (' '..='~').contains(&character) {
            flush_shifted(&mut pending, &mut out);
            out.push(character as u8);
            if character == '&' {
                out.push(b'-');
            }
        } else {
            let mut units = [0_u16; 2];
            pending.extend_from_slice(character.encode_utf16(&mut units));
        }
    }
    flush_shifted(&mut pending, &mut out);
    // Only ASCII was pushed.
    String::from_utf8_lossy(&out).into_owned()
}

fn flush_shifted(pending: &mut Vec<u16>, out: &mut Vec<u8>) {
    if pending.is_empty() {
        return;
    }
    let bytes: Vec<u8> = pending.iter().flat_map(|unit| unit.to_be_bytes()).collect();
    out.push(b'&');
    base64::encode_into(&bytes, Variant::Mailbox, out);
    out.push(b'-');
    pending.clear();
}

/// Decodes a modified UTF-7 mailbox name. Refuses raw 8-bit or control bytes, unterminated or
/// empty shifts, bad base64, broken UTF-16, and shifts that encode printable ASCII (each name
/// then has one spelling, so two spellings cannot name one mailbox), and null shifts.
pub fn decode_mailbox_name(wire: &[u8]) -> Option<String> {
    let mut name = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some((&byte, after)) = rest.split_first() {
        match byte {
            b'&' => {
                let end = after.iter().position(|&candidate| candidate == b'-')?;
                let encoded = after.get(..end)?;
                rest = after.get(end + 1..)?;
                if encoded.is_empty() {
                    name.push('&');
                    continue;
                }
                // A shift right after a shift ("-&" then base64) is a null shift (RFC 3501
                // §5.1.3): the two would be one shift in the single canonical spelling.
                if rest.first() == Some(&b'&') && rest.get(1).is_some_and(|&next| next != b'-') {
                    return None;
                }
                let bytes = base64::decode(encoded, Variant::Mailbox)?;
                if bytes.len() % 2 != 0 {
                    return None;
                }
                let units = bytes.chunks_exact(2).map(|pair| match *pair {
                    [high, low] => u16::from_be_bytes([high, low]),
                    _ => 0xfffe,
                });
                for character in char::decode_utf16(units) {
                    let character = character.ok()?;
                    if (' '..='~').contains(&character) {
                        return None;
                    }
                    name.push(character);
                }
            }
            b' '..=b'~' => {
                name.push(char::from(byte));
                rest = after;
            }
            _ => return None,
        }
    }
    Some(name)
}

/// `INBOX` in any case is the one name that is case-insensitive (RFC 3501 §5.1).
pub(crate) fn normalize_inbox(name: String) -> String {
    if name.eq_ignore_ascii_case("INBOX") { "INBOX".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        let wire = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        let name = decode_mailbox_name(wire.as_bytes()).unwrap();
        assert_eq!(name, "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}");
        assert_eq!(encode_mailbox_name(&name), wire);
    }

    #[test]
    fn ampersand_and_astral_characters() {
        assert_eq!(encode_mailbox_name("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(decode_mailbox_name(b"Tom &- Jerry").unwrap(), "Tom & Jerry");
        let emoji = "mail \u{1f4e7}";
        assert_eq!(decode_mailbox_name(encode_mailbox_name(emoji).as_bytes()).unwrap(), emoji);
        assert_eq!(encode_mailbox_name("Entw\u{fc}rfe"), "Entw&APw-rfe");
    }

    #[test]
    fn rejects_invalid_encodings() {
        for wire in [&b"&U,BTFw"[..], b"\xc3\xa9t\xc3\xa9", b"&AGE-", b"&2D0-", b"&U,BTF-", b"a\tb", b"&U/BTFw-"] {
            assert_eq!(decode_mailbox_name(wire), None, "{:?}", String::from_utf8_lossy(wire));
        }
    }

    /// Fuzzing found `&AOk-&AOk-` accepted beside `&AOkA6Q-`: two spellings of "éé".
    #[test]
    fn null_shifts_are_refused_so_each_name_has_one_spelling() {
        assert_eq!(decode_mailbox_name(b"&AOk-&AOk-"), None);
        assert_eq!(decode_mailbox_name(b"&AOkA6Q-").unwrap(), "\u{e9}\u{e9}");
        assert_eq!(encode_mailbox_name("\u{e9}\u{e9}"), "&AOkA6Q-");
        // An ampersand right after a shift is not a null shift.
        assert_eq!(decode_mailbox_name(b"&AOk-&-").unwrap(), "\u{e9}&");
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(normalize_inbox("inBox".to_owned()), "INBOX");
        assert_eq!(normalize_inbox("inbox.sub".to_owned()), "inbox.sub");
    }
}
