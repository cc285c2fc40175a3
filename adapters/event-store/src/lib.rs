//! The append-only event log (DESIGN.md §3): the port [`EventLog`] and its
//! two adapters, [`PgEventStore`] (PostgreSQL, the `services` backend) and
//! [`SqliteEventStore`] (a SQLite file, the `embedded` backend).
//!
//! Appends check an expected stream version; whole-log readers page in commit
//! order by `(transaction_id, global_position)`. On PostgreSQL they read below
//! the oldest running transaction, so a late-committing event with a low
//! position is never skipped; SQLite's single writer commits in position order.

mod accounts;
mod connect;
mod cursor;
mod error;
mod model;
mod port;
mod sqlite;
mod store;
mod wakeup;

pub use accounts::{Accounts, Credentials, RegisterError};
pub use connect::{ConnectError, check_stamps, connect, create_database_if_missing, migrate};
pub use cursor::{Cursor, CursorParseError};
pub use error::AppendError;
pub use model::{ExpectedVersion, NewEvent, RecordedEvent, Snapshot};
pub use port::EventLog;
pub use sqlite::{SqliteEventStore, SqliteOpenError};
pub use store::{LogFilter, PgEventStore};
pub use wakeup::CHANNEL as NOTIFY_CHANNEL;
