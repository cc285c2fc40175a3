//! The projector: consumes events from `projector.events`, validates them
//! against their JSON Schemas, applies them to the read model in one
//! transaction per batch (idempotent, order-safe, gaps healed from the log),
//! acks after the commit, and announces each change on `chat.projections`.

mod apply;
mod batch;
mod checkpoint;
mod consume;
mod decode;
mod heal;
mod validate;

pub use apply::{AppliedChange, ApplyError, Outcome, apply_batch, apply_event};
pub use batch::{PendingBatch, apply_deliveries};
pub use checkpoint::load as load_checkpoint;
pub use consume::{ProjectorConfig, run};
pub use decode::{Poison, decode_delivery};
pub use validate::EventSchemas;

/// The checkpoint name of the live projection.
pub const LIVE_PROJECTION: &str = "live";
