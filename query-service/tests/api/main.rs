//! The query API over HTTP against real Postgres: one event-log database and
//! one read database per test, the read model seeded with plain SQL.

mod helpers;
mod seed;

mod auth_and_input;
mod channel;
mod channels;
mod directory;
mod events;
mod export_abort;
mod messages;
