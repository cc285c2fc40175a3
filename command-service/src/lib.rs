//! The command side: HTTP endpoints that turn requests into domain commands,
//! decide them against current aggregate state and append the resulting
//! events to the log with an expected version.

mod auth_gate;
mod channels;
mod error;
mod executor;
mod group;
mod idempotency;
pub mod relay;
mod routes;

pub use auth_gate::AuthGate;
pub use channels::ChannelRepository;
pub use error::CommandError;
pub use executor::{CommandContext, CommandService, Executed, Intent};
pub use idempotency::client_msg_key;
pub use routes::{ROUTES, bodies, configure, idempotency_header, if_match};
