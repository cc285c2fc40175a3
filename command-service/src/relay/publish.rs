//! Publishing a batch with publisher confirms: every event of the batch is
//! sent, then every confirm awaited; one nack fails the batch (it is resent).
//! Publishes are mandatory: an event meant for the projector that no queue
//! took (its queue was deleted under a running relay) comes back with its ack
//! and fails the batch too, so the checkpoint never moves past it; the next
//! term declares the topology again and resends. A key no binding matches
//! (no consumer wants that event) is not held against the batch. With
//! projector partitions, each message carries its stream's partition in the
//! `chat-partition` header, which routes it to that partition's queue.

use super::RelayError;
use broker::Partitions;
use broker::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use broker::lapin::types::{AMQPValue, FieldTable, LongString};
use broker::lapin::{BasicProperties, Channel, Confirmation, Connection};
use event_store::RecordedEvent;

/// What the relay publishes through: RabbitMQ in production, a simulated
/// broker in the relay's model test.
pub(super) trait Publish {
    /// Sends every event of `batch`, then awaits every confirm: Ok only if
    /// the broker confirmed them all.
    async fn publish_confirmed(&mut self, batch: &[RecordedEvent]) -> Result<(), RelayError>;
}

/// A confirm-mode channel with the topology declared.
pub(super) struct Publisher {
    channel: Channel,
    partitions: Partitions,
}

impl Publisher {
    pub(super) async fn open(
        connection: &Connection,
        partitions: Partitions,
    ) -> Result<Self, RelayError> {
        let channel = connection.create_channel().await?;
        broker::declare_partitioned(&channel, partitions).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            partitions,
        })
    }
}

impl Publish for Publisher {
    async fn publish_confirmed(&mut self, batch: &[RecordedEvent]) -> Result<(), RelayError> {
        let mut confirms = Vec::with_capacity(batch.len());
        for event in batch {
            let body = serde_json::to_vec(event)?;
            let routing_key = broker::routing_key(&event.stream_id, &event.event_type);
            let wanted = broker::projector_takes(&routing_key);
            let confirm = self
                .channel
                .basic_publish(
                    broker::EVENTS_EXCHANGE.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    properties(event, self.partitions),
                )
                .await?;
            confirms.push((event.event_id, wanted, confirm));
        }
        for (event_id, wanted, confirm) in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                // Returned: no queue took it. The projector's missing queue
                // fails the batch; a key no binding ever matched is nobody's.
                Confirmation::Ack(Some(_)) if wanted => {
                    return Err(RelayError::Unroutable(event_id));
                }
                Confirmation::Ack(Some(_)) => {}
                _ => return Err(RelayError::Nacked(event_id)),
            }
        }
        Ok(())
    }
}

fn properties(event: &RecordedEvent, partitions: Partitions) -> BasicProperties {
    let mut headers = FieldTable::default();
    if partitions.split() {
        headers.insert(
            broker::PARTITION_HEADER.into(),
            AMQPValue::LongString(LongString::from(
                partitions.of_stream(&event.stream_id).to_string(),
            )),
        );
    }
    if let Some(correlation) = event
        .metadata
        .get("correlation_id")
        .and_then(|c| c.as_str())
    {
        headers.insert(
            "correlation_id".into(),
            AMQPValue::LongString(LongString::from(correlation)),
        );
    }
    BasicProperties::default()
        .with_message_id(event.event_id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_type(event.event_type.clone().into())
        .with_timestamp(event.recorded_at.timestamp().max(0) as u64)
        .with_headers(headers)
}
