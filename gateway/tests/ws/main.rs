//! The gateway over real sockets against real Postgres, RabbitMQ and Redis:
//! two instances, resume without gaps, slow consumers, kicks, bad input.

mod helpers;

mod cluster;
mod input;
mod limits;
mod membership;
mod presence;
mod resume;
