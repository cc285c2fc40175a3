//! Declaring the topology. Every declaration is idempotent, so every process
//! declares what it relies on at start and after every reconnect.

use crate::partition::{PARTITION_HEADER, Partitions};
use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// Where the relay publishes every event.
pub const EVENTS_EXCHANGE: &str = "chat.exchange";
/// Where the projector announces committed read-model changes.
pub const PROJECTIONS_EXCHANGE: &str = "chat.projections";
/// Where rejected and over-delivered projector messages go.
pub const DEAD_LETTER_EXCHANGE: &str = "chat.dlx";
/// The projector's queue of events (with partitions, the prefix of theirs:
/// `projector.events.{p}`).
pub const PROJECTOR_QUEUE: &str = "projector.events";
/// With partitions: the headers exchange between `chat.exchange` and the
/// partition queues, matching the `chat-partition` header.
pub const PARTITIONS_EXCHANGE: &str = "chat.partitions";
/// Dead letters, for operators to inspect and retry.
pub const DEAD_LETTER_QUEUE: &str = "projector.dlq";
/// Deliveries of one message before the queue dead-letters it: the last
/// resort against a message that kills the projector process every time (the
/// projector dead-letters what it cannot decode or apply itself). RabbitMQ
/// 3.x counts every hand-back, also those of a consumer that died with the
/// message unacked, so the limit must sit far above what outages and
/// restarts add up to (an outage never dead-letters an event, DESIGN §4):
/// with the projector's reconnect backoff, 100 deaths with the same message
/// in flight are minutes of a crash loop, not a restart or an outage.
/// Changing it on an existing queue needs the queue re-created (see
/// `operator-tools/README.md`, "Upgrading the projector queue").
pub const DELIVERY_LIMIT: i64 = 100;

/// The routing keys `projector.events` is bound with on `chat.exchange`.
pub const PROJECTOR_BINDINGS: [&str; 2] = ["chat.channel.#", "chat.user.*.account"];

/// Whether an event published with `routing_key` belongs in the projector's
/// queue (the topic match of `PROJECTOR_BINDINGS`): such an event coming back
/// unroutable means the queue is missing, not that nobody wants it.
pub fn projector_takes(routing_key: &str) -> bool {
    let words: Vec<&str> = routing_key.split('.').collect();
    match words.as_slice() {
        ["chat", "channel", _, ..] => true,
        ["chat", "user", _, "account"] => true,
        _ => false,
    }
}

/// Declares `chat.exchange`, the projector's queues with their bindings, and
/// the dead-letter path, so no event is ever published with no queue behind
/// it; as many partitions as `CHAT_PROJECTOR_PARTITIONS` says.
pub async fn declare_events(channel: &Channel) -> Result<(), lapin::Error> {
    declare_partitioned(channel, Partitions::configured()).await
}

/// `declare_events` with `partitions` queues. One: `projector.events` bound
/// to `chat.exchange`, as before partitions. More: `chat.exchange` bound to
/// the headers exchange `chat.partitions` with the projector's keys, and
/// each `projector.events.{p}` bound there to `chat-partition = p`.
pub async fn declare_partitioned(
    channel: &Channel,
    partitions: Partitions,
) -> Result<(), lapin::Error> {
    declare_exchange(channel, EVENTS_EXCHANGE, ExchangeKind::Topic).await?;
    declare_exchange(channel, DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout).await?;
    channel
        .queue_declare(
            DEAD_LETTER_QUEUE.into(),
            durable_queue(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            DEAD_LETTER_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    if !partitions.split() {
        declare_projector_queue(channel, PROJECTOR_QUEUE).await?;
        for key in PROJECTOR_BINDINGS {
            channel
                .queue_bind(
                    PROJECTOR_QUEUE.into(),
                    EVENTS_EXCHANGE.into(),
                    ShortString::from(key),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        return Ok(());
    }
    declare_exchange(channel, PARTITIONS_EXCHANGE, ExchangeKind::Headers).await?;
    for key in PROJECTOR_BINDINGS {
        channel
            .exchange_bind(
                PARTITIONS_EXCHANGE.into(),
                EVENTS_EXCHANGE.into(),
                ShortString::from(key),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    for partition in 0..partitions.count() {
        let queue = partitions.queue(partition);
        declare_projector_queue(channel, &queue).await?;
        let mut matching = FieldTable::default();
        matching.insert(
            "x-match".into(),
            AMQPValue::LongString(LongString::from("all")),
        );
        matching.insert(
            PARTITION_HEADER.into(),
            AMQPValue::LongString(LongString::from(partition.to_string())),
        );
        channel
            .queue_bind(
                ShortString::from(queue),
                PARTITIONS_EXCHANGE.into(),
                "".into(),
                QueueBindOptions::default(),
                matching,
            )
            .await?;
    }
    Ok(())
}

/// One projector queue: quorum, single active consumer, dead letters to
/// `chat.dlx`, the delivery limit.
async fn declare_projector_queue(channel: &Channel, queue: &str) -> Result<(), lapin::Error> {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(DEAD_LETTER_EXCHANGE)),
    );
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    channel
        .queue_declare(ShortString::from(queue), durable_queue(), arguments)
        .await
        .inspect_err(|e| {
            if e.to_string().contains("PRECONDITION_FAILED") {
                tracing::error!(
                    queue,
                    "{queue} exists with other arguments (an upgrade changed x-delivery-limit to {DELIVERY_LIMIT}): \
                     re-create it as operator-tools/README.md \"Upgrading the projector queue\" says"
                );
            }
        })?;
    Ok(())
}

/// Declares `chat.projections`.
pub async fn declare_projections(channel: &Channel) -> Result<(), lapin::Error> {
    declare_exchange(channel, PROJECTIONS_EXCHANGE, ExchangeKind::Topic).await
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            name.into(),
            kind,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::projector_takes;

    #[test]
    fn the_projector_takes_what_its_bindings_match() {
        assert!(projector_takes("chat.channel.abc.message"));
        assert!(projector_takes("chat.channel.abc"));
        assert!(projector_takes("chat.user.abc.account"));
        assert!(!projector_takes("chat.user.abc.notification"));
        assert!(!projector_takes("chat.user.abc.other"));
        assert!(!projector_takes("chat.channel"));
        assert!(!projector_takes("chat.s-1.other"));
    }
}
