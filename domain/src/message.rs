//! What edit and delete need to know about one message: who sent it, its `seq`,
//! whether it is deleted. Folded from that message's own events only, so
//! validating an edit never reads the channel's history.

use crate::event::Event;
use crate::ids::{ChannelId, MessageId, UserId};
use serde::{Deserialize, Serialize};

/// The current facts of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFacts {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub seq: u64,
    pub sender_id: UserId,
    pub deleted: bool,
}

impl MessageFacts {
    /// Folds one of the message's events in; events of other messages are ignored.
    pub fn evolve(state: Option<MessageFacts>, event: &Event) -> Option<MessageFacts> {
        match event {
            Event::MessageSent(e) if state.is_none() => Some(MessageFacts {
                channel_id: e.channel_id,
                message_id: e.message_id,
                seq: e.seq,
                sender_id: e.sender_id,
                deleted: false,
            }),
            Event::MessageDeleted(e) => state.map(|mut m| {
                if m.message_id == e.message_id {
                    m.deleted = true;
                }
                m
            }),
            _ => state,
        }
    }
}
