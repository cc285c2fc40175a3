//! The append-only event log on Postgres (DESIGN.md §3).
//!
//! Appends check an expected stream version; whole-log readers page in commit
//! order by `(transaction_id, global_position)` below the oldest running
//! transaction, so a late-committing event with a low position is never skipped.

mod connect;
mod cursor;
mod error;
mod model;
mod store;
mod wakeup;

pub use connect::{ConnectError, check_stamps, connect, create_database_if_missing, migrate};
pub use cursor::{Cursor, CursorParseError};
pub use error::AppendError;
pub use model::{ExpectedVersion, NewEvent, RecordedEvent, Snapshot};
pub use store::{LogFilter, PgEventStore};
pub use wakeup::CHANNEL as NOTIFY_CHANNEL;
