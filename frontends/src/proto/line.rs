//! Finding the CRLF that ends a command line, under a length limit, and skipping the rest of a
//! line that was too long.

/// What the front of a buffer holds, line-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A whole line: its content without the CRLF, and its length with the CRLF.
    Complete { content: &'a [u8], consumed_bytes: usize },
    /// No CRLF yet, and the line may still end within the limit.
    Incomplete,
    /// The line is, or will be, longer than the limit. `consumed_bytes` is what can be dropped
    /// now (never a trailing CR, because the LF that completes it may be next); the rest of the
    /// line is then skipped with [`discard_line`] unless `line_finished`.
    TooLong { consumed_bytes: usize, line_finished: bool },
}

/// Takes the first CRLF-terminated line of `input`; only CRLF ends a line (a bare LF is content,
/// which is what keeps the codecs safe from SMTP-smuggling style ambiguities). Looks at no more
/// than `line_bytes_max` bytes, so a flood without line ends costs nothing more to reject.
pub(crate) fn take_line(input: &[u8], line_bytes_max: usize) -> Line<'_> {
    let window = input.get(..line_bytes_max).unwrap_or(input);
    if let Some(position) = find_crlf(window) {
        return Line::Complete { content: window.get(..position).unwrap_or_default(), consumed_bytes: position + 2 };
    }
    let ends_with_cr = window.last() == Some(&b'\r');
    // The shortest line this prefix can still become: the CRLF, or its LF, is missing.
    let shortest_bytes = window.len() + if ends_with_cr { 1 } else { 2 };
    if window.len() < input.len() || shortest_bytes > line_bytes_max {
        Line::TooLong { consumed_bytes: window.len() - usize::from(ends_with_cr), line_finished: false }
    } else {
        Line::Incomplete
    }
}

/// The index of the first CRLF in `input`.
pub(crate) fn find_crlf(input: &[u8]) -> Option<usize> {
    input.windows(2).position(|pair| pair == b"\r\n")
}

/// Progress of dropping the remainder of an over-long line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum LineDiscard {
    /// The line ended: drop `consumed_bytes` (CRLF included) and parse commands again.
    Finished {
        /// Bytes to drop.
        consumed_bytes: usize,
    },
    /// The line goes on: drop `consumed_bytes`, read more, and call again.
    Unfinished {
        /// Bytes to drop.
        consumed_bytes: usize,
    },
}

/// Skips input through the end of the current line; used after a `line_finished: false` rejection.
pub fn discard_line(input: &[u8]) -> LineDiscard {
    match find_crlf(input) {
        Some(position) => LineDiscard::Finished { consumed_bytes: position + 2 },
        None => LineDiscard::Unfinished { consumed_bytes: input.len() - usize::from(input.last() == Some(&b'\r')) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_line_excludes_crlf() {
        assert_eq!(take_line(b"NOOP\r\nQUIT\r\n", 100), Line::Complete { content: b"NOOP", consumed_bytes: 6 });
    }

    #[test]
    fn limit_counts_the_crlf() {
        assert!(matches!(take_line(b"NOOP\r\n", 6), Line::Complete { .. }));
        assert_eq!(take_line(b"NOOP\r\n", 5), Line::TooLong { consumed_bytes: 4, line_finished: false });
        assert_eq!(take_line(b"NOOP", 6), Line::Incomplete);
        assert_eq!(take_line(b"NOOP\r", 6), Line::Incomplete);
        let unfinished = Line::TooLong { consumed_bytes: 5, line_finished: false };
        assert_eq!(take_line(b"NOOPS", 6), unfinished);
        assert_eq!(take_line(b"NOOPS\r", 6), unfinished);
    }

    #[test]
    fn bare_lf_does_not_end_a_line() {
        assert_eq!(take_line(b"NOOP\nQUIT", 100), Line::Incomplete);
    }

    #[test]
    fn discard_keeps_a_trailing_cr() {
        assert_eq!(discard_line(b"xxx\r"), LineDiscard::Unfinished { consumed_bytes: 3 });
        assert_eq!(discard_line(b"\nNOOP"), LineDiscard::Unfinished { consumed_bytes: 5 });
        assert_eq!(discard_line(b"x\r\nNOOP\r\n"), LineDiscard::Finished { consumed_bytes: 3 });
    }
}
