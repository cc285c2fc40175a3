//! Which projector processes are alive, and which partitions each should
//! hold, decided with RabbitMQ alone (no coordination service).
//!
//! A process takes a member slot by consuming the queue
//! `projector.member.{k}` for the lowest free `k` as its exclusive consumer:
//! RabbitMQ refuses a second exclusive consumer, and the consumer ends with
//! its connection (the queue is auto-delete), so a killed process frees its
//! slot by itself. The live members are the slots whose queues have a
//! consumer: a declare with the same arguments answers the count without
//! an error (a passive declare of a missing queue, or of another
//! connection's exclusive queue, would close the channel, and the client
//! logs an error for each). Slot queues nobody uses expire (`x-expires`).
//! Partition `p` is preferred by the member at index `p % members` of the
//! live slots in order: with two members, about half each. Single active
//! consumer does the rest: see `projector`'s `partitions` module.

use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, Consumer, ErrorKind};

/// The prefix of the member slot queues.
pub const MEMBER_QUEUE: &str = "projector.member";
/// Slots looked at: at most this many projector processes share partitions
/// (more would hold nothing anyway unless there are more partitions).
pub const MEMBER_SLOTS: u16 = 16;
/// How long a slot queue with no consumer and no declare lives (ms).
const SLOT_EXPIRY_MS: i64 = 60_000;

/// Why membership could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("all {MEMBER_SLOTS} projector member slots are taken")]
    Full,
}

/// A member slot held by this process: dropping it frees the slot.
pub struct Member {
    /// The slot number.
    pub slot: u16,
    _channel: Channel,
    _consumer: Consumer,
}

/// The name of slot `k`'s queue.
pub fn member_queue(slot: u16) -> String {
    format!("{MEMBER_QUEUE}.{slot}")
}

/// Takes the lowest free slot on `connection`; held until the connection
/// closes or the `Member` is dropped.
pub async fn join(connection: &Connection) -> Result<Member, MembershipError> {
    let probe = connection.create_channel().await?;
    for slot in 0..MEMBER_SLOTS {
        if consumers(&probe, slot).await? > 0 {
            continue;
        }
        // Its own channel: a refusal (another process took the slot
        // meanwhile) closes it.
        let channel = connection.create_channel().await?;
        let options = BasicConsumeOptions {
            exclusive: true,
            no_ack: true,
            ..Default::default()
        };
        let tag = format!("projector-member-{slot}");
        match channel
            .basic_consume(
                member_queue(slot).into(),
                tag.into(),
                options,
                FieldTable::default(),
            )
            .await
        {
            Ok(consumer) => {
                let _ = probe.close(200, "joined".into()).await;
                return Ok(Member {
                    slot,
                    _channel: channel,
                    _consumer: consumer,
                });
            }
            Err(e) => match e.kind() {
                ErrorKind::ProtocolError(amqp) if amqp.get_id() == 403 => continue,
                _ => return Err(e.into()),
            },
        }
    }
    Err(MembershipError::Full)
}

/// The slots held by live members, in order (this process's included),
/// asked on `probe` (a channel kept for it).
pub async fn live(probe: &Channel) -> Result<Vec<u16>, MembershipError> {
    let mut live = Vec::new();
    for slot in 0..MEMBER_SLOTS {
        if consumers(probe, slot).await? > 0 {
            live.push(slot);
        }
    }
    Ok(live)
}

/// The slot that should hold `partition` among `live` (sorted); None with no members.
pub fn preferred(partition: u16, live: &[u16]) -> Option<u16> {
    if live.is_empty() {
        return None;
    }
    live.get(usize::from(partition) % live.len()).copied()
}

/// Declares slot `k`'s queue (always with the same arguments, so never an
/// error) and answers how many consumers it has.
async fn consumers(probe: &Channel, slot: u16) -> Result<u32, lapin::Error> {
    let mut arguments = FieldTable::default();
    arguments.insert("x-expires".into(), AMQPValue::LongLongInt(SLOT_EXPIRY_MS));
    let options = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    let queue = probe
        .queue_declare(member_queue(slot).into(), options, arguments)
        .await?;
    Ok(queue.consumer_count())
}

#[cfg(test)]
mod tests {
    use super::preferred;

    #[test]
    fn partitions_spread_over_live_members_in_slot_order() {
        let two = [0, 3];
        let owners: Vec<_> = (0..4).filter_map(|p| preferred(p, &two)).collect();
        assert_eq!(owners, [0, 3, 0, 3]);
        let three = [1, 2, 5];
        let owners: Vec<_> = (0..8).filter_map(|p| preferred(p, &three)).collect();
        assert_eq!(owners, [1, 2, 5, 1, 2, 5, 1, 2]);
        assert_eq!(preferred(2, &[]), None);
    }
}
