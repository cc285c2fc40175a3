//! The history checker of the fault run (`torture`, RELIABILITY.md): what the
//! run records, the facts read back from the system once it is quiet, and the
//! pure functions that judge the one against the other. Kept apart from the
//! binary so that each check is unit-tested with a history that breaks it.

pub mod check;
pub mod history;
pub mod report;

pub use check::{Violation, ViolationKind};
pub use history::{OpKind, OpRecord, Outcome, SocketEvent, SocketRecord};

#[cfg(test)]
mod check_tests;
