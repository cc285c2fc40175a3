//! The operators' tools against real Postgres, RabbitMQ and Redis (each test
//! has its own databases and vhost) and on embedded data directories (each
//! test its own temporary directory); `behaviour` runs each test on both.

mod backends;
mod compare;
mod files;
mod helpers;

mod behaviour;
mod cli;
mod dlq;
mod dlq_partitions;
mod embedded;
mod rebuild_fold;
mod rebuild_interrupt;
mod rebuild_live;
mod rebuild_xid;
mod status;
