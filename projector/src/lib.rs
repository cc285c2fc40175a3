//! The projector: takes events in commit order, validates them against
//! their JSON Schemas, applies them to the read model in one transaction per
//! batch (idempotent, order-safe, gaps healed from the log), moves its
//! checkpoint with the commit, and announces each change to the gateways.
//!
//! Two feeds, one logic: on the services backend it consumes
//! `projector.events` (or its partitions `projector.events.{p}`, shared
//! between projector processes: `partitions`) from RabbitMQ, acks after the
//! commit and announces on `chat.projections` (`consume`); on the embedded
//! one it reads the log itself from its checkpoint and announces on the
//! in-process bus (`tail`).

mod announcement;
mod apply;
mod batch;
mod checkpoint;
mod consume;
mod decode;
mod heal;
mod outbound;
mod partitions;
mod tail;
mod validate;

pub use apply::{AppliedChange, ApplyError, Outcome, apply_batch, apply_event};
pub use batch::{PendingBatch, apply_deliveries};
pub use checkpoint::load as load_checkpoint;
pub use consume::{ProjectorConfig, run};
pub use decode::{Poison, decode_delivery, decode_logged};
pub use partitions::PartitionView;
pub use read_model::LIVE_PROJECTION;
pub use tail::{DeadLetterTable, LogTailConfig, run_from_log};
pub use validate::EventSchemas;
