//! Fuzz target 3: `event_store::Cursor::from_str`, the parser of the
//! `after` cursor of `GET /api/events` (opaque to clients, `{tx}-{pos}`).
//!
//! Properties: it never panics; it accepts exactly `digits-digits` whose
//! numbers fit (transaction id ≤ u64::MAX, position ≤ i64::MAX), which is
//! what the OpenAPI pattern `^[0-9]+-[0-9]+$` describes: leading zeros are
//! accepted, signs (`+1`, `-0`) and anything else are not; `Display` then
//! `FromStr` is the identity on every cursor; an accepted string re-displays
//! canonically (leading zeros dropped), and the canonical form parses to the
//! same cursor; a refusal quotes at most 64 characters of the input.

use event_store::{Cursor, CursorParseError};
use fuzz::{Corpus, fuzz, property};
use proptest::prelude::*;
use std::sync::LazyLock;

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| Corpus::load("cursor"));

/// `digits` (ASCII, non-empty) as a number, if it is at most `max`; written
/// without `str::parse`, which is what is under test.
fn number_at_most(digits: &str, max: u64) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    let max_text = max.to_string();
    let fits = significant.len() < max_text.len()
        || (significant.len() == max_text.len() && significant <= max_text.as_str());
    fits.then(|| {
        significant
            .bytes()
            .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'))
    })
}

/// What the parser must answer, derived from the grammar alone.
fn expected(text: &str) -> Option<Cursor> {
    let (tx, pos) = text.split_once('-')?;
    Some(Cursor {
        transaction_id: number_at_most(tx, u64::MAX)?,
        global_position: i64::try_from(number_at_most(pos, i64::MAX as u64)?).ok()?,
    })
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let parsed = text.parse::<Cursor>();
    prop_assert_eq!(parsed.clone().ok(), expected(&text), "parse of {:?}", text);
    match parsed {
        Ok(cursor) => {
            let canonical = cursor.to_string();
            prop_assert_eq!(canonical.parse::<Cursor>(), Ok(cursor));
            let stripped = |part: &str| {
                let s = part.trim_start_matches('0');
                if s.is_empty() {
                    "0".to_owned()
                } else {
                    s.to_owned()
                }
            };
            let (tx, pos) = text.split_once('-').unwrap_or_default();
            prop_assert_eq!(canonical, format!("{}-{}", stripped(tx), stripped(pos)));
        }
        Err(CursorParseError(quoted)) => {
            prop_assert!(quoted.chars().count() <= 64);
            prop_assert!(text.starts_with(&quoted));
            prop_assert!(!CursorParseError(quoted).to_string().is_empty());
        }
    }
    Ok(())
}

#[test]
fn corpus_replays() {
    CORPUS.replay(check);
    for (name, bytes) in &CORPUS.seeds {
        if name.starts_with("valid-") {
            let text = String::from_utf8_lossy(bytes);
            assert!(text.parse::<Cursor>().is_ok(), "{name} is refused");
        }
    }
}

#[test]
fn fuzz_cursor_strings() {
    fuzz(&CORPUS, "cursor", check);
}

/// Strings near the grammar: digits, signs, separators, whitespace.
#[test]
fn fuzz_cursor_like_strings() {
    property(
        "cursor_like",
        "[0-9+ -]{0,4}[0-9]{0,22}[-+ ]{0,3}[0-9]{0,22}[ 0-9+-]{0,3}",
        |text| check(text.as_bytes()),
    );
}

#[test]
fn every_cursor_round_trips() {
    property(
        "cursor_round_trip",
        (any::<u64>(), 0..=i64::MAX),
        |(transaction_id, global_position)| {
            let cursor = Cursor {
                transaction_id,
                global_position,
            };
            prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
            prop_assert_eq!(format!("000{cursor}").parse::<Cursor>(), Ok(cursor));
            Ok(())
        },
    );
}
