//! The read path end to end against real Postgres and RabbitMQ: relay,
//! projector, read model. Each test has its own databases and vhost.

#[path = "../common/commands.rs"]
mod commands;
mod helpers;

mod delivery_faults;
mod fold_equivalence;
mod healing;
mod lag;
mod model;
mod notifications;
mod outages;
mod partitions;
mod poison;
mod positions;
mod relay;
