//! Writing IMAP strings: an atom when it can be, a quoted string when it must, a literal when
//! nothing else can carry the bytes (RFC 3501 §4.3).

use super::reader::is_astring_char;

/// Longest string sent quoted; longer ones go as literals so that lines stay short.
const QUOTED_BYTES_MAX: usize = 1024;

/// Whether `bytes` can be sent inside double quotes: no NUL, CR, LF, no 8-bit bytes (RFC 3501
/// TEXT-CHAR is 7-bit), and not too long.
fn can_quote(bytes: &[u8]) -> bool {
    bytes.len() <= QUOTED_BYTES_MAX
        && bytes.iter().all(|&byte| byte != 0 && byte != b'\r' && byte != b'\n' && byte < 0x80)
}

/// Appends a string as quoted or literal.
pub(crate) fn write_string(bytes: &[u8], out: &mut Vec<u8>) {
    if can_quote(bytes) {
        out.push(b'"');
        for &byte in bytes {
            if byte == b'"' || byte == b'\\' {
                out.push(b'\\');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        write_literal(bytes, out);
    }
}

/// Appends `{n}` CRLF and the bytes.
pub(crate) fn write_literal(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// Appends an astring: bare when every byte is an ASTRING-CHAR, otherwise a string.
pub(crate) fn write_astring(bytes: &[u8], out: &mut Vec<u8>) {
    if !bytes.is_empty() && bytes.iter().all(|&byte| is_astring_char(byte)) && !bytes.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(bytes);
    } else {
        write_string(bytes, out);
    }
}

/// Appends an nstring: NIL or a string.
pub(crate) fn write_nstring(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        Some(bytes) => write_string(bytes, out),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn astring(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_astring(bytes, &mut out);
        out
    }

    #[test]
    fn chooses_the_lightest_form() {
        assert_eq!(astring(b"INBOX"), b"INBOX");
        assert_eq!(astring(b"a]b"), b"a]b");
        assert_eq!(astring(b""), b"\"\"");
        assert_eq!(astring(b"two words"), b"\"two words\"");
        assert_eq!(astring(b"say \"hi\"\\"), b"\"say \\\"hi\\\"\\\\\"");
        assert_eq!(astring(b"line\r\nbreak"), b"{11}\r\nline\r\nbreak");
        assert_eq!(astring("caf\u{e9}".as_bytes()), b"{5}\r\ncaf\xc3\xa9");
        assert_eq!(astring(b"nil"), b"\"nil\"");
    }
}
