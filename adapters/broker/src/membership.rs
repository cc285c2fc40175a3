//! Which projector processes are alive, and which partitions each should
//! hold, decided with RabbitMQ alone (no coordination service).
//!
//! A process takes a member slot by declaring the exclusive, auto-delete
//! queue `projector.member.{k}` for the lowest free `k`: RabbitMQ refuses a
//! second connection the same exclusive queue (`RESOURCE_LOCKED`), and
//! deletes it when its connection ends, so a killed process frees its slot by
//! itself. The live members are the slots whose queues exist (a passive
//! declare answers `RESOURCE_LOCKED` for another's, `NOT_FOUND` for a free
//! one). Partition `p` is preferred by the member at index `p % members` of
//! the live slots in order: with two members, about half each. Single active
//! consumer does the rest: see `projector`'s `partitions` module.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ErrorKind};

/// The prefix of the member slot queues.
pub const MEMBER_QUEUE: &str = "projector.member";
/// Slots looked at: at most this many projector processes share partitions
/// (more would hold nothing anyway unless there are more partitions).
pub const MEMBER_SLOTS: u16 = 16;

/// Why membership could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("all {MEMBER_SLOTS} projector member slots are taken")]
    Full,
}

/// What a declare of a slot's queue said about it.
enum Slot {
    /// This connection holds it.
    Mine,
    /// Another connection holds it.
    Taken,
    /// Nobody holds it.
    Free,
}

/// The name of slot `k`'s queue.
pub fn member_queue(slot: u16) -> String {
    format!("{MEMBER_QUEUE}.{slot}")
}

/// Takes the lowest free slot for `connection`; it is held until the
/// connection closes.
pub async fn join(connection: &Connection) -> Result<u16, MembershipError> {
    for slot in 0..MEMBER_SLOTS {
        if let Slot::Mine = declare(connection, slot, false).await? {
            return Ok(slot);
        }
    }
    Err(MembershipError::Full)
}

/// The slots held by live members, in order (this connection's included).
pub async fn live(connection: &Connection) -> Result<Vec<u16>, MembershipError> {
    let mut live = Vec::new();
    for slot in 0..MEMBER_SLOTS {
        match declare(connection, slot, true).await? {
            Slot::Mine | Slot::Taken => live.push(slot),
            Slot::Free => {}
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

/// Declares slot `k`'s queue (passively: only asks), on a channel of its own
/// since a refusal closes the channel.
async fn declare(connection: &Connection, slot: u16, passive: bool) -> Result<Slot, lapin::Error> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive,
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let answer = channel
        .queue_declare(member_queue(slot).into(), options, FieldTable::default())
        .await;
    let slot = match answer {
        Ok(_) => Slot::Mine,
        Err(e) => match e.kind() {
            ErrorKind::ProtocolError(amqp) if amqp.get_id() == 405 => Slot::Taken,
            ErrorKind::ProtocolError(amqp) if passive && amqp.get_id() == 404 => Slot::Free,
            _ => return Err(e),
        },
    };
    if let Slot::Mine = slot {
        // The queue belongs to the connection, not to this channel.
        let _ = channel.close(200, "declared".into()).await;
    }
    Ok(slot)
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
