//! Parsing the flags clap leaves as text, so a bad cursor or time is one clear
//! line and exit code 1 (clap's own usage errors exit with 2).

use crate::AnalystError;
use chrono::{DateTime, Utc};
use event_store::Cursor;

/// Where a read stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Up to and including this cursor.
    Cursor(Cursor),
    /// Up to this moment.
    Time(DateTime<Utc>),
    /// Up to and including this global position.
    Position(i64),
}

const CURSOR_EXPECTED: &str = "expected the `cursor` of an event line, like 812-77";
const TIME_EXPECTED: &str = "expected an RFC 3339 time, like 2026-03-01T12:00:00Z";
const UNTIL_EXPECTED: &str =
    "expected a cursor like 812-77 or an RFC 3339 time like 2026-03-01T12:00:00Z";
const UNTIL_POS_EXPECTED: &str = "expected an RFC 3339 time like 2026-03-01T12:00:00Z, a global position like 1500, or a cursor like 812-77";

fn invalid(flag: &'static str, value: &str, expected: &'static str) -> AnalystError {
    AnalystError::InvalidArgument {
        flag,
        value: value.chars().take(80).collect(),
        expected,
    }
}

/// A cursor handed out by `chat events` or `GET /api/events`.
pub fn cursor(flag: &'static str, value: &str) -> Result<Cursor, AnalystError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(flag, value, CURSOR_EXPECTED))
}

/// An RFC 3339 time (`T` or a space between date and time).
pub fn time(flag: &'static str, value: &str) -> Result<DateTime<Utc>, AnalystError> {
    parse_time(value).ok_or_else(|| invalid(flag, value, TIME_EXPECTED))
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_rfc3339(&value.replacen(' ', "T", 1)))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A cursor or a time; with `allow_position`, also a bare global position.
pub fn until(flag: &'static str, value: &str, allow_position: bool) -> Result<Until, AnalystError> {
    let trimmed = value.trim();
    if allow_position && let Ok(position) = trimmed.parse::<i64>() {
        return if position >= 0 {
            Ok(Until::Position(position))
        } else {
            Err(invalid(flag, value, UNTIL_POS_EXPECTED))
        };
    }
    if let Ok(c) = trimmed.parse::<Cursor>() {
        return Ok(Until::Cursor(c));
    }
    parse_time(trimmed).map(Until::Time).ok_or_else(|| {
        invalid(
            flag,
            value,
            if allow_position {
                UNTIL_POS_EXPECTED
            } else {
                UNTIL_EXPECTED
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_times_and_positions() {
        let c = Cursor {
            transaction_id: 812,
            global_position: 77,
        };
        assert_eq!(
            until("--until", "812-77", false).ok(),
            Some(Until::Cursor(c))
        );
        let t = until("--until", "2026-03-01T12:00:00+01:00", false).ok();
        assert_eq!(
            t,
            Some(Until::Time("2026-03-01T11:00:00Z".parse().expect("time")))
        );
        assert_eq!(
            until("--until", "2026-03-01 12:00:00.5Z", false).ok(),
            Some(Until::Time("2026-03-01T12:00:00.5Z".parse().expect("time")))
        );
        assert_eq!(
            until("--until", "1500", true).ok(),
            Some(Until::Position(1500))
        );
        assert!(until("--until", "1500", false).is_err());
    }

    #[test]
    fn garbage_names_the_flag_and_the_expected_shape() {
        for bad in ["", "yesterday", "12-", "2026-13-01T00:00:00Z", "-5"] {
            let err = until("--until", bad, true).expect_err(bad);
            let text = err.to_string();
            assert!(text.starts_with("invalid --until"), "{text}");
            assert!(!text.contains('\n'));
        }
        let err = cursor("--after", "abc").expect_err("garbage");
        assert_eq!(
            err.to_string(),
            "invalid --after \"abc\": expected the `cursor` of an event line, like 812-77"
        );
    }
}
