//! IMAP dates: `date-time` ("17-Jul-1996 02:44:25 -0700", APPEND and INTERNALDATE) and `date`
//! ("1-Feb-1994", SEARCH), with conversion to and from Unix time.

use std::fmt;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Four-digit year.
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to the length of the month.
    pub day: u8,
}

/// A date and time with the zone it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The local date.
    pub date: Date,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
    /// 0 to 60 (a leap second).
    pub second: u8,
    /// Offset from UTC in minutes, -1439 to 1439.
    pub zone_minutes: i16,
}

impl Date {
    /// A validated date.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let date = Self { year, month, day };
        (year <= 9999 && (1..=12).contains(&month) && day >= 1 && day <= date.days_in_month()).then_some(date)
    }

    fn days_in_month(self) -> u8 {
        match self.month {
            2 if self.is_leap_year() => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    fn is_leap_year(self) -> bool {
        (self.year.is_multiple_of(4) && !self.year.is_multiple_of(100)) || self.year.is_multiple_of(400)
    }

    /// Days since 1970-01-01 (negative before it); Howard Hinnant's `days_from_civil`.
    pub fn days_since_epoch(self) -> i64 {
        let month = i64::from(self.month);
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    /// The date `days` after 1970-01-01, if its year has four digits.
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        let shifted = days + 719_468;
        let era = shifted.div_euclid(146_097);
        let day_of_era = shifted - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self::new(u16::try_from(year).ok()?, u8::try_from(month).ok()?, u8::try_from(day).ok()?)
    }

    /// Parses `d-Mon-yyyy` or `dd-Mon-yyyy`.
    pub(crate) fn parse(text: &[u8]) -> Option<Self> {
        let mut parts = text.split(|&byte| byte == b'-');
        let (Some(day), Some(month), Some(year), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if day.is_empty() || day.len() > 2 || year.len() != 4 {
            return None;
        }
        Self::new(u16::try_from(digits(year)?).ok()?, parse_month(month)?, u8::try_from(digits(day)?).ok()?)
    }
}

impl DateTime {
    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.date.days_since_epoch() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.zone_minutes) * 60
    }

    /// The local time in zone `zone_minutes` of the instant `unix_seconds`.
    pub fn from_unix_seconds(unix_seconds: i64, zone_minutes: i16) -> Option<Self> {
        let local = unix_seconds.checked_add(i64::from(zone_minutes) * 60)?;
        let seconds_of_day = local.rem_euclid(86_400);
        Some(Self {
            date: Date::from_days_since_epoch(local.div_euclid(86_400))?,
            hour: u8::try_from(seconds_of_day / 3600).ok()?,
            minute: u8::try_from(seconds_of_day % 3600 / 60).ok()?,
            second: u8::try_from(seconds_of_day % 60).ok()?,
            zone_minutes,
        })
    }

    /// Parses the text inside the quotes: `dd-Mon-yyyy hh:mm:ss +zzzz`, where the day may be
    /// a space and one digit (RFC 3501 date-day-fixed).
    pub(crate) fn parse(text: &[u8]) -> Option<Self> {
        let text = text.strip_prefix(b" ").unwrap_or(text);
        let mut fields = text.split(|&byte| byte == b' ');
        let (Some(date), Some(time), Some(zone), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let mut clock = time.split(|&byte| byte == b':');
        let (Some(hour), Some(minute), Some(second), None) = (clock.next(), clock.next(), clock.next(), clock.next())
        else {
            return None;
        };
        let two_digits = |field: &[u8]| {
            if field.len() == 2 { u8::try_from(digits(field)?).ok() } else { None }
        };
        let (hour, minute, second) = (two_digits(hour)?, two_digits(minute)?, two_digits(second)?);
        let (sign, zone_digits) = match zone.split_first()? {
            (b'+', rest) => (1, rest),
            (b'-', rest) => (-1, rest),
            _ => return None,
        };
        if zone_digits.len() != 4 {
            return None;
        }
        let zone = digits(zone_digits)?;
        let (zone_hours, zone_minutes) = (zone / 100, zone % 100);
        if hour > 23 || minute > 59 || second > 60 || zone_hours > 23 || zone_minutes > 59 {
            return None;
        }
        Some(Self {
            date: Date::parse(date)?,
            hour,
            minute,
            second,
            zone_minutes: sign * i16::try_from(zone_hours * 60 + zone_minutes).ok()?,
        })
    }
}

fn digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_month(text: &[u8]) -> Option<u8> {
    let index = MONTHS.iter().position(|month| month.as_bytes().eq_ignore_ascii_case(text))?;
    u8::try_from(index + 1).ok()
}

fn month_name(month: u8) -> &'static str {
    MONTHS.get(usize::from(month).wrapping_sub(1)).copied().unwrap_or("Jan")
}

impl fmt::Display for Date {
    /// `d-Mon-yyyy`, the form SEARCH takes.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}-{:04}", self.day, month_name(self.month), self.year)
    }
}

impl fmt::Display for DateTime {
    /// `dd-Mon-yyyy hh:mm:ss +zzzz` without the quotes (the form INTERNALDATE uses, with a
    /// two-digit day).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.zone_minutes < 0 { '-' } else { '+' };
        let zone = self.zone_minutes.unsigned_abs();
        write!(
            formatter,
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
            self.date.day,
            month_name(self.date.month),
            self.date.year,
            self.hour,
            self.minute,
            self.second,
            zone / 60,
            zone % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_example() {
        let parsed = DateTime::parse(b"17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(parsed.date, Date { year: 1996, month: 7, day: 17 });
        assert_eq!(parsed.zone_minutes, -420);
        assert_eq!(parsed.unix_seconds(), 837_596_665);
        assert_eq!(parsed.to_string(), "17-Jul-1996 02:44:25 -0700");
        assert_eq!(DateTime::from_unix_seconds(837_596_665, -420), Some(parsed));
    }

    #[test]
    fn space_padded_day() {
        let parsed = DateTime::parse(b" 1-Feb-1994 00:00:00 +0000").unwrap();
        assert_eq!(parsed.date.day, 1);
        assert_eq!(parsed.to_string(), "01-Feb-1994 00:00:00 +0000");
    }

    #[test]
    fn search_dates() {
        assert_eq!(Date::parse(b"1-Feb-1994"), Some(Date { year: 1994, month: 2, day: 1 }));
        assert_eq!(Date::parse(b"29-feb-2000"), Some(Date { year: 2000, month: 2, day: 29 }));
        for bad in [&b"29-Feb-1900"[..], b"32-Jan-2000", b"1-Foo-2000", b"1-Jan-99", b"001-Jan-2000", b"1-Jan-2000-"] {
            assert_eq!(Date::parse(bad), None);
        }
    }

    #[test]
    fn epoch_days_round_trip() {
        for days in [-719_162, -1, 0, 1, 11_016, 2_932_896] {
            assert_eq!(Date::from_days_since_epoch(days).unwrap().days_since_epoch(), days);
        }
        assert_eq!(Date::new(1970, 1, 1).unwrap().days_since_epoch(), 0);
    }
}
