//! The framing of the shards' small state files (`scrub-state`, `compaction-forced`): lines of
//! text, then `crc <8 hex digits>` (CRC32C of every byte before that line), then zero padding
//! to a whole block.

use std::fmt::Write as _;

/// Appends the crc line to `text` (its lines so far).
pub(super) fn append_crc_line(text: &mut String) {
    let crc = crc32c::crc32c(text.as_bytes());
    let _ = writeln!(text, "crc {crc:08x}");
}

/// The text before the crc line, once the bytes are UTF-8 up to the padding and the crc
/// matches. `allowed` says which characters the text may hold at all (checked first).
pub(super) fn checked_body(bytes: &[u8], allowed: impl Fn(char) -> Result<(), String>) -> Result<&str, String> {
    let end = bytes.iter().position(|byte| *byte == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| "not UTF-8")?;
    text.chars().try_for_each(allowed)?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |newline| newline + 1);
    let (body, crc_line) = text.split_at(body_end);
    let stored = crc_line.strip_prefix("crc ").and_then(|rest| rest.strip_suffix('\n')).ok_or("no crc line")?;
    if stored != format!("{:08x}", crc32c::crc32c(body.as_bytes())) {
        return Err("its crc does not match".into());
    }
    Ok(body)
}
