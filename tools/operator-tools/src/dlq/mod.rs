//! `chat dlq`: inspecting and draining `projector.dlq`.
//!
//! Browsing never consumes: messages are fetched with `basic.get` without
//! auto-ack on a private channel and handed back with one `basic.nack`
//! (requeue) at the end, so a classic queue puts them back in their places.
//! `retry` republishes a dead letter to `chat.exchange` with its original
//! routing key and properties on a confirm-mode channel, and acks (removes)
//! it from the dead letters only after RabbitMQ confirmed the copy.
//!
//! With projector partitions the letter still carries the `chat-partition`
//! header it was first published with, computed from the partition count of
//! that day. If the count changed since, that header names the wrong queue
//! (the stream's order would split across two) or none at all. So the retry
//! stamps the header afresh from the current count and the event's stream,
//! publishes mandatory, and counts a copy RabbitMQ returned (no queue took
//! it) as a failure: the letter stays in the dead letters, never lost.

mod letter;

pub use letter::{DEAD_LETTER_HEADERS, DeadLetter, detail, table_to_json};

use broker::Partitions;
use broker::lapin::message::Delivery;
use broker::lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use broker::lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use broker::lapin::{Channel, Confirmation, Connection};

/// Most messages one command browses (all are held unacked meanwhile).
pub const MAX_BROWSE: usize = 100_000;

/// Why a dead-letter command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] broker::lapin::Error),
    #[error("no dead letter with id {0} in {queue}", queue = broker::DEAD_LETTER_QUEUE)]
    NotFound(String),
    #[error("dead letter {0} has no routing key to retry with")]
    NoRoutingKey(String),
    #[error("RabbitMQ did not confirm the retry of {0}; it stays in the dead letters")]
    NotConfirmed(String),
    #[error("no queue took the retry of {0} (routing key {1}); it stays in the dead letters")]
    Unroutable(String, String),
    #[error(
        "dead letter {0} names no stream (its body has no stream_id), so its partition is unknown; it stays in the dead letters"
    )]
    NoStream(String),
}

/// A browsed message and its summary.
struct Browsed {
    letter: DeadLetter,
    delivery: Delivery,
}

/// An open session on the dead-letter queue.
pub struct Dlq {
    connection: Connection,
    browse: Channel,
    publish: Channel,
    partitions: Partitions,
}

impl Dlq {
    /// Connects and declares the topology with `partitions` (idempotent), so
    /// the queues exist; retries are routed by that count.
    pub async fn open(amqp_url: &str, partitions: Partitions) -> Result<Self, DlqError> {
        let connection = broker::connect(amqp_url, "chat-dlq").await?;
        let browse = connection.create_channel().await?;
        broker::declare_partitioned(&browse, partitions).await?;
        browse.basic_qos(256, BasicQosOptions::default()).await?;
        let publish = connection.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            browse,
            publish,
            partitions,
        })
    }

    /// Up to `limit` dead letters, oldest first; the queue is left as it was.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, DlqError> {
        let (found, last) = self.scan(limit, |_| true).await?;
        self.release(last).await?;
        Ok(found.into_iter().map(|b| b.letter).collect())
    }

    /// Every dead letter with this id: summary, properties, headers and body.
    pub async fn show(&self, id: &str) -> Result<Vec<serde_json::Value>, DlqError> {
        let (found, last) = self.scan(MAX_BROWSE, |l| l.id == id).await?;
        self.release(last).await?;
        if found.is_empty() {
            return Err(DlqError::NotFound(id.to_owned()));
        }
        Ok(found
            .iter()
            .map(|b| detail(&b.letter, &b.delivery.properties, &b.delivery.data))
            .collect())
    }

    /// Republishes the dead letters with this id (all: `None`) and removes
    /// each once its copy is confirmed. Returns what was retried and what failed.
    pub async fn retry(
        &self,
        id: Option<&str>,
    ) -> Result<(Vec<DeadLetter>, Vec<DlqError>), DlqError> {
        let (found, last) = self
            .scan(MAX_BROWSE, |l| id.is_none_or(|id| l.id == id))
            .await?;
        if let (Some(id), true) = (id, found.is_empty()) {
            self.release(last).await?;
            return Err(DlqError::NotFound(id.to_owned()));
        }
        let (mut retried, mut failed) = (Vec::new(), Vec::new());
        for b in found {
            match self.republish(&b).await {
                Ok(()) => {
                    self.browse
                        .basic_ack(b.delivery.delivery_tag, BasicAckOptions::default())
                        .await?;
                    retried.push(b.letter);
                }
                Err(
                    e @ (DlqError::NoRoutingKey(_)
                    | DlqError::NotConfirmed(_)
                    | DlqError::Unroutable(..)
                    | DlqError::NoStream(_)),
                ) => failed.push(e),
                Err(e) => return Err(e),
            }
        }
        self.release(last).await?;
        Ok((retried, failed))
    }

    /// Removes the dead letters with this id; returns how many.
    pub async fn drop_letter(&self, id: &str) -> Result<usize, DlqError> {
        let (found, last) = self.scan(MAX_BROWSE, |l| l.id == id).await?;
        for b in &found {
            self.browse
                .basic_ack(b.delivery.delivery_tag, BasicAckOptions::default())
                .await?;
        }
        self.release(last).await?;
        if found.is_empty() {
            return Err(DlqError::NotFound(id.to_owned()));
        }
        Ok(found.len())
    }

    /// Closes the session (unacked messages are requeued by RabbitMQ anyway).
    pub async fn close(self) {
        let _ = self.browse.close(200, "done".into()).await;
        let _ = self.publish.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }

    /// Fetches messages without consuming them, keeping those `wanted`;
    /// returns them and the last delivery tag seen (to hand every one back).
    async fn scan(
        &self,
        limit: usize,
        wanted: impl Fn(&DeadLetter) -> bool,
    ) -> Result<(Vec<Browsed>, Option<u64>), DlqError> {
        let (mut found, mut last, mut seen) = (Vec::new(), None, 0usize);
        while found.len() < limit && seen < MAX_BROWSE {
            let got = self
                .browse
                .basic_get(
                    broker::DEAD_LETTER_QUEUE.into(),
                    BasicGetOptions { no_ack: false },
                )
                .await?;
            let Some(got) = got else { break };
            seen += 1;
            let delivery = got.delivery;
            last = Some(delivery.delivery_tag);
            let letter = DeadLetter::read(
                &delivery.properties,
                delivery.routing_key.as_str(),
                &delivery.data,
            );
            if wanted(&letter) {
                found.push(Browsed { letter, delivery });
            }
        }
        Ok((found, last))
    }

    /// Hands back every browsed message not acked, in its place (tag 0 with
    /// `multiple`: every outstanding one, even when the last was acked).
    async fn release(&self, last: Option<u64>) -> Result<(), DlqError> {
        if last.is_some() {
            self.browse
                .basic_nack(
                    0,
                    BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Publishes a dead letter's copy to `chat.exchange`, its partition
    /// stamped afresh, and waits for the confirm; a returned copy fails.
    async fn republish(&self, b: &Browsed) -> Result<(), DlqError> {
        let routing_key = b
            .letter
            .routing_key
            .clone()
            .ok_or_else(|| DlqError::NoRoutingKey(b.letter.id.clone()))?;
        let headers = b.delivery.properties.headers().clone().unwrap_or_default();
        let mut kept: FieldTable = headers
            .inner()
            .iter()
            .filter(|(k, _)| {
                !DEAD_LETTER_HEADERS.contains(&k.as_str()) && k.as_str() != broker::PARTITION_HEADER
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into();
        if self.partitions.split() {
            let stream = stream_of(&b.delivery.data)
                .ok_or_else(|| DlqError::NoStream(b.letter.id.clone()))?;
            kept.insert(
                broker::PARTITION_HEADER.into(),
                AMQPValue::LongString(LongString::from(
                    self.partitions.of_stream(&stream).to_string(),
                )),
            );
        }
        let properties = b.delivery.properties.clone().with_headers(kept);
        let confirm = self
            .publish
            .basic_publish(
                broker::EVENTS_EXCHANGE.into(),
                ShortString::from(routing_key.clone()),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &b.delivery.data,
                properties,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => {
                Err(DlqError::Unroutable(b.letter.id.clone(), routing_key))
            }
            _ => Err(DlqError::NotConfirmed(b.letter.id.clone())),
        }
    }
}

/// The envelope's `stream_id`, which decides its partition.
fn stream_of(body: &[u8]) -> Option<String> {
    let envelope: serde_json::Value = serde_json::from_slice(body).ok()?;
    envelope.get("stream_id")?.as_str().map(str::to_owned)
}
