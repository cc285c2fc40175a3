//! A position in the whole log's commit order: the pair (transaction id, global
//! position). Opaque to clients; stable and gap-free under concurrent writers.

use std::fmt;
use std::str::FromStr;

/// Where a reader of the whole log stands. `Cursor::START` precedes every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    pub transaction_id: u64,
    pub global_position: i64,
}

impl Cursor {
    /// Before the first event.
    pub const START: Cursor = Cursor {
        transaction_id: 0,
        global_position: 0,
    };
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.transaction_id, self.global_position)
    }
}

/// A cursor string that is not one this log handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor {0:?}: expected the `cursor` of an event line")]
pub struct CursorParseError(pub String);

impl FromStr for Cursor {
    type Err = CursorParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || CursorParseError(s.chars().take(64).collect());
        let (tx, pos) = s.split_once('-').ok_or_else(invalid)?;
        // Digits only: `str::parse` also takes a sign (`+1`, `-0`), which no
        // cursor has and the OpenAPI pattern refuses.
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(tx) || !digits(pos) {
            return Err(invalid());
        }
        let transaction_id = tx.parse().map_err(|_| invalid())?;
        let global_position: i64 = pos.parse().map_err(|_| invalid())?;
        Ok(Cursor {
            transaction_id,
            global_position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let c = Cursor {
            transaction_id: 812,
            global_position: 77,
        };
        assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
        for bad in [
            "", "12", "a-1", "1-b", "1--2", "-1-2", "1-2-3", "+1-2", "1-+2", "1--0", "0-+0",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn orders_by_transaction_then_position() {
        let early_tx_late_pos = Cursor {
            transaction_id: 5,
            global_position: 100,
        };
        let late_tx_early_pos = Cursor {
            transaction_id: 6,
            global_position: 3,
        };
        assert!(early_tx_late_pos < late_tx_early_pos);
    }
}
