//! The analysts' tools on both backends — a real PostgreSQL, a fresh
//! database per test, and an embedded data directory in a temporary
//! directory — called in process (no subprocess): one test binary, linked
//! once. A case that holds on both is written once (`both!`).

#[macro_use]
mod helpers;

mod export_filters;
mod export_format;
mod export_large;
mod export_order;
mod export_resume;
mod replay;
mod state;
