//! The operators' tools against real Postgres, RabbitMQ and Redis. Each test
//! has its own databases and vhost.

mod compare;
mod helpers;

mod cli;
mod dlq;
mod rebuild_fold;
mod rebuild_interrupt;
mod rebuild_live;
mod rebuild_xid;
mod status;
