//! The embedded backend's bus for announcements: what the projector tells
//! the gateways over `chat.projections` on RabbitMQ, fanned out in process.
//!
//! Like the broker's exclusive, auto-delete gateway queues it is not the
//! record: an announcement is a hint that a committed change can be pushed.
//! A subscriber that falls more than the channel's capacity behind loses the
//! oldest ones and is told so ([`Received::Lagged`]), exactly as a gateway
//! whose broker queue was dropped: it brings its subscriptions up to the
//! read model's head (the seq gap repair), and the log watch catches what is
//! not a message. The durable half of the bus, from the log to the
//! projector, is the projector's own checkpoint in the read model.

use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Announcements held for a slow subscriber before it starts losing them.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The in-process `chat.projections`: cheap to clone, one per process.
#[derive(Debug, Clone)]
pub struct Announcements {
    sender: broadcast::Sender<Arc<Value>>,
}

/// What a subscriber gets next.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// An announcement body, as the projector would publish it on RabbitMQ.
    Announcement(Arc<Value>),
    /// This many were lost because the subscriber fell behind.
    Lagged(u64),
    /// The bus is gone (the process is stopping).
    Closed,
}

impl Default for Announcements {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Announcements {
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Hands `body` to every current subscriber (none: nobody is listening,
    /// as with a fanout exchange without queues).
    pub fn publish(&self, body: Value) {
        metrics::counter!("local_bus_announcements_total").increment(1);
        let _ = self.sender.send(Arc::new(body));
    }

    /// A new subscriber, which sees what is published from now on.
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            receiver: self.sender.subscribe(),
        }
    }
}

/// One gateway's view of the bus.
#[derive(Debug)]
pub struct Subscriber {
    receiver: broadcast::Receiver<Arc<Value>>,
}

impl Subscriber {
    /// Waits for the next announcement.
    pub async fn next(&mut self) -> Received {
        match self.receiver.recv().await {
            Ok(body) => Received::Announcement(body),
            Err(broadcast::error::RecvError::Lagged(lost)) => Received::Lagged(lost),
            Err(broadcast::error::RecvError::Closed) => Received::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn every_subscriber_gets_every_announcement_in_order() {
        let bus = Announcements::with_capacity(16);
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        for seq in 1..=10 {
            bus.publish(json!({ "seq": seq }));
        }
        for subscriber in [&mut a, &mut b] {
            for seq in 1..=10 {
                assert_eq!(
                    subscriber.next().await,
                    Received::Announcement(Arc::new(json!({ "seq": seq })))
                );
            }
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_many_it_lost_then_goes_on() {
        let bus = Announcements::with_capacity(4);
        let mut slow = bus.subscribe();
        for seq in 1..=10 {
            bus.publish(json!({ "seq": seq }));
        }
        assert_eq!(slow.next().await, Received::Lagged(6));
        assert_eq!(
            slow.next().await,
            Received::Announcement(Arc::new(json!({ "seq": 7 })))
        );
    }

    #[tokio::test]
    async fn a_subscriber_sees_only_what_comes_after_it_subscribed_and_the_end() {
        let bus = Announcements::with_capacity(4);
        bus.publish(json!({ "seq": 1 }));
        let mut late = bus.subscribe();
        bus.publish(json!({ "seq": 2 }));
        assert_eq!(
            late.next().await,
            Received::Announcement(Arc::new(json!({ "seq": 2 })))
        );
        drop(bus);
        assert_eq!(late.next().await, Received::Closed);
    }
}
