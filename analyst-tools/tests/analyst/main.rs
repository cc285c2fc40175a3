//! The analysts' tools against a real Postgres, a fresh database per test,
//! called in process (no subprocess): one test binary, linked once.

mod export_filters;
mod export_format;
mod export_large;
mod export_order;
mod helpers;
mod replay;
mod state;
