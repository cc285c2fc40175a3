//! Query-string parameters parsed by hand, so a bad one names itself in a 400
//! `invalid_query`, an empty one counts as absent, and an out-of-range integer
//! saturates instead of failing.

use crate::QueryError;
use std::num::IntErrorKind;

/// `value` as an integer: `None` when absent or empty; an integer too large for
/// `i64` saturates; anything else is a 400 naming `name`.
pub fn integer(name: &str, value: Option<&str>) -> Result<Option<i64>, QueryError> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let not_an_integer = || QueryError::InvalidQuery(format!("`{name}` must be an integer"));
    // The grammar first: `str::parse` reports an overflow as soon as the
    // digits overflow, before it sees that `99999999999999999999x` is not a
    // number at all, and that must not saturate.
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_an_integer());
    }
    match text.parse::<i64>() {
        Ok(n) => Ok(Some(n)),
        Err(e) => match e.kind() {
            IntErrorKind::PosOverflow => Ok(Some(i64::MAX)),
            IntErrorKind::NegOverflow => Ok(Some(i64::MIN)),
            _ => Err(not_an_integer()),
        },
    }
}

/// A comma-separated list, trimmed, without empty entries.
pub fn list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_saturate_and_refuse_garbage() {
        assert_eq!(integer("limit", None).ok(), Some(None));
        assert_eq!(integer("limit", Some("")).ok(), Some(None));
        assert_eq!(integer("limit", Some(" 7 ")).ok(), Some(Some(7)));
        assert_eq!(integer("limit", Some("-3")).ok(), Some(Some(-3)));
        assert_eq!(
            integer("before", Some("99999999999999999999999")).ok(),
            Some(Some(i64::MAX))
        );
        assert_eq!(
            integer("after", Some("-99999999999999999999999")).ok(),
            Some(Some(i64::MIN))
        );
        for bad in [
            "abc",
            "1.5",
            "x1",
            "1e3",
            "99999999999999999999x",
            "-9999999999999999999;999",
            "+",
            "--1",
        ] {
            assert!(
                matches!(
                    integer("limit", Some(bad)),
                    Err(QueryError::InvalidQuery(_))
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn lists_drop_blanks() {
        assert_eq!(list(Some(" A, ,B,")), vec!["A", "B"]);
        assert!(list(None).is_empty());
    }
}
