//! Unix milliseconds as UTC text for the access log (no time-zone database needed).

use crate::proto::imap::Date;

/// `2026-05-01 12:34:56 UTC` (years outside 0..=9999 print as the raw milliseconds).
pub fn format_unix_ms(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let of_day = seconds.rem_euclid(86_400);
    match Date::from_days_since_epoch(seconds.div_euclid(86_400)) {
        Some(Date { year, month, day }) => format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            of_day / 3600,
            (of_day % 3600) / 60,
            of_day % 60
        ),
        None => format!("{unix_ms} ms since 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_unix_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_ms(1_777_638_896_789), "2026-05-01 12:34:56 UTC");
    }
}
