//! The RabbitMQ adapter (DESIGN.md §4): connecting, declaring the topology
//! every process relies on, routing keys, message properties, and the
//! projector's partitions and member slots (DESIGN.md §10).

mod backoff;
pub mod membership;
mod partition;
mod routing;
mod topology;

pub use backoff::Backoff;
pub use lapin;
pub use partition::{
    MAX_PARTITIONS, PARTITION_HEADER, PARTITIONS_VAR, Partitions, PartitionsError,
};
pub use routing::{event_category, routing_key};
pub use topology::{
    DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, DELIVERY_LIMIT, EVENTS_EXCHANGE, PARTITIONS_EXCHANGE,
    PROJECTIONS_EXCHANGE, PROJECTOR_BINDINGS, PROJECTOR_QUEUE, declare_events, declare_partitioned,
    declare_projections, projector_takes,
};

use lapin::{Connection, ConnectionProperties};
use std::time::Duration;

/// Why the broker could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach RabbitMQ at {url} ({source}); start it with: rabbitmq-server -detached")]
    Unreachable { url: String, source: lapin::Error },
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ ended the consumer (channel or connection closed)")]
    ConsumerEnded,
}

/// Connects to RabbitMQ, naming the process in the management UI.
pub async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(url, properties),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(BrokerError::Unreachable {
            url: redact(url),
            source,
        }),
        Err(_) => Err(BrokerError::Unreachable {
            url: redact(url),
            source: lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed).into(),
        }),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_credentials() {
        assert_eq!(
            super::redact("amqp://guest:guest@localhost:5672/%2f"),
            "amqp://***@localhost:5672/%2f"
        );
        assert_eq!(super::redact("amqp://localhost"), "amqp://localhost");
    }
}
