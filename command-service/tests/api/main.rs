//! The command API over HTTP against a real Postgres, one database per test.

mod helpers;

mod auth_and_input;
mod auth_limits;
mod channels;
mod concurrency;
mod group_commit;
mod idempotency;
mod messages;
mod text_input;
