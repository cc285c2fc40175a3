//! The projector's subscriptions to its partition queues, and how processes
//! split them.
//!
//! Every process subscribes to every partition (single active consumer makes
//! it the active one or a standby in line), so a process that dies hands each
//! of its partitions to the next in line at once. Which process *should* be
//! active on partition `p` is the member at index `p % members` of the live
//! member slots (`broker::membership`). Every `MEMBER_CHECK` each process
//! reads the live slots; when they changed, it gives up each partition it
//! does not prefer: it cancels its consumer there (single active consumer
//! then activates the next in line) and subscribes again, so it stands at
//! the end of the line. Once every process that does not prefer `p` has done
//! so, the one that does is first in line, and active. A process also hands
//! over a partition it does not prefer when it finds itself active there
//! (deliveries came) though the set did not change (the preferred one was
//! re-subscribing at the time), at most once per `HANDOVER_COOLDOWN`.
//!
//! A handover cancels rather than closes the channel: deliveries already
//! sent to this process are still applied and acked, none go back to the
//! queue, so a handover never counts towards the delivery limit. The next
//! consumer may then apply later events of a stream before those commit here;
//! the read model heals the gap from the log and skips the duplicates
//! (positions never move back), so nothing is lost or applied twice.

use broker::Partitions;
use broker::lapin::message::Delivery;
use broker::lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use broker::lapin::types::FieldTable;
use broker::lapin::{Channel, Connection};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod view;

pub use view::PartitionView;

/// How often the live members are read.
pub(crate) const MEMBER_CHECK: Duration = Duration::from_millis(1000);
/// The least time between two handovers of one partition when the members
/// did not change.
const HANDOVER_COOLDOWN: Duration = Duration::from_secs(5);
/// How long a cancelled consumer may take to hand over what it buffered.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Why a rebalance failed (the term ends and reconnects).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RebalanceError {
    #[error(transparent)]
    Membership(#[from] broker::membership::MembershipError),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] broker::lapin::Error),
    #[error("the cancelled consumer of partition {0} did not finish in time")]
    CancelStuck(u16),
}

/// What one partition's consumer said.
pub(crate) enum Feed {
    Delivery(u16, u64, Delivery),
    Failed(broker::lapin::Error),
    /// The consumer of this generation ended (cancelled by us or by the broker).
    Ended(u16, u64),
}

/// One partition's subscription.
struct Sub {
    channel: Channel,
    tag: String,
    generation: u64,
    forwarder: JoinHandle<()>,
    /// Deliveries came on this generation since the last member check.
    active_since_check: bool,
    handed_over_at: Option<Instant>,
}

/// This process's consumers of every partition, merged into one feed.
pub(crate) struct Subscriptions {
    partitions: Partitions,
    subs: Vec<Sub>,
    feed_in: mpsc::UnboundedSender<Feed>,
    feed: mpsc::UnboundedReceiver<Feed>,
    view: Arc<PartitionView>,
    /// This process's member slot and the channel its checks go on.
    member: Option<(broker::membership::Member, Channel)>,
    live: Vec<u16>,
}

impl Subscriptions {
    /// Subscribes to every partition, each on a channel of its own with
    /// `prefetch` (acks are per channel).
    pub(crate) async fn open(
        connection: &Connection,
        partitions: Partitions,
        prefetch: u16,
        view: Arc<PartitionView>,
    ) -> Result<Self, broker::lapin::Error> {
        view.reset(partitions);
        // Unbounded, yet bounded by the prefetch of each channel; a bounded
        // one could block a forwarder that a handover waits for.
        let (feed_in, feed) = mpsc::unbounded_channel();
        let mut subs = Vec::with_capacity(usize::from(partitions.count()));
        for partition in 0..partitions.count() {
            let channel = connection.create_channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let (tag, forwarder) =
                subscribe(&channel, partitions, partition, 0, feed_in.clone()).await?;
            subs.push(Sub {
                channel,
                tag,
                generation: 0,
                forwarder,
                active_since_check: false,
                handed_over_at: None,
            });
        }
        tracing::info!(
            partitions = partitions.count(),
            "projector consuming {}",
            partitions.queue(0)
        );
        Ok(Self {
            partitions,
            subs,
            feed_in,
            feed,
            view,
            member: None,
            live: Vec::new(),
        })
    }

    /// Takes a member slot, once subscribed everywhere (so the others hand
    /// over to a member that is in line on every partition).
    pub(crate) async fn join(&mut self, connection: &Connection) -> Result<(), RebalanceError> {
        let member = broker::membership::join(connection).await?;
        let probe = connection.create_channel().await?;
        self.view.lock().slot = Some(member.slot);
        self.member = Some((member, probe));
        Ok(())
    }

    /// The next delivery of any partition and its partition; Err when a
    /// consumer failed or the broker ended one.
    pub(crate) async fn next(&mut self) -> Result<(u16, Delivery), broker::BrokerError> {
        loop {
            let feed = self.feed.recv().await;
            if let Some(found) = self.take(feed)? {
                return Ok(found);
            }
        }
    }

    /// A delivery ready now, if any.
    pub(crate) fn ready(&mut self) -> Result<Option<(u16, Delivery)>, broker::BrokerError> {
        loop {
            match self.feed.try_recv() {
                Ok(feed) => {
                    if let Some(found) = self.take(Some(feed))? {
                        return Ok(Some(found));
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }

    fn take(&mut self, feed: Option<Feed>) -> Result<Option<(u16, Delivery)>, broker::BrokerError> {
        match feed {
            // Unreachable while `feed_in` is held; treated as an ended consumer.
            None => Err(broker::BrokerError::ConsumerEnded),
            Some(Feed::Failed(e)) => Err(e.into()),
            Some(Feed::Ended(p, generation)) => {
                if self.subs[usize::from(p)].generation == generation {
                    return Err(broker::BrokerError::ConsumerEnded);
                }
                Ok(None)
            }
            Some(Feed::Delivery(p, generation, delivery)) => {
                let sub = &mut self.subs[usize::from(p)];
                if sub.generation == generation {
                    sub.active_since_check = true;
                    self.view.set_active(p, true);
                }
                if let Some(count) = self.view.lock().delivered.get_mut(usize::from(p)) {
                    *count += 1;
                }
                Ok(Some((p, delivery)))
            }
        }
    }

    /// Reads the live members and hands over the partitions this process
    /// should not hold (see the module doc).
    pub(crate) async fn rebalance(&mut self) -> Result<(), RebalanceError> {
        let Some((member, probe)) = &self.member else {
            return Ok(());
        };
        let slot = member.slot;
        let live = broker::membership::live(probe).await?;
        let changed = live != self.live;
        if changed {
            metrics::counter!("projector_rebalances_total").increment(1);
            metrics::gauge!("projector_members").set(live.len() as f64);
            tracing::info!(?live, slot, "projector members changed");
            self.live = live;
        }
        for p in 0..self.partitions.count() {
            let sub = &mut self.subs[usize::from(p)];
            let active_here = std::mem::take(&mut sub.active_since_check);
            if broker::membership::preferred(p, &self.live) == Some(slot) {
                self.view.set_active(p, true);
                continue;
            }
            let cooled = sub
                .handed_over_at
                .is_none_or(|at| at.elapsed() >= HANDOVER_COOLDOWN);
            if changed || (active_here && cooled) {
                self.hand_over(p).await?;
            }
        }
        Ok(())
    }

    /// Cancels partition `p`'s consumer, waits until what it buffered is in
    /// the feed, and subscribes again at the end of the line.
    async fn hand_over(&mut self, p: u16) -> Result<(), RebalanceError> {
        metrics::counter!("projector_handovers_total").increment(1);
        self.view.set_active(p, false);
        let sub = &mut self.subs[usize::from(p)];
        sub.channel
            .basic_cancel(sub.tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        // Its last deliveries must be in the feed before the next
        // consumer's: a batch acks "up to here" on the channel.
        if tokio::time::timeout(CANCEL_WAIT, &mut sub.forwarder)
            .await
            .is_err()
        {
            return Err(RebalanceError::CancelStuck(p));
        }
        sub.generation += 1;
        sub.handed_over_at = Some(Instant::now());
        let (tag, forwarder) = subscribe(
            &sub.channel,
            self.partitions,
            p,
            sub.generation,
            self.feed_in.clone(),
        )
        .await?;
        sub.tag = tag;
        sub.forwarder = forwarder;
        Ok(())
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        for sub in &self.subs {
            sub.forwarder.abort();
        }
        for p in 0..self.partitions.count() {
            self.view.set_active(p, false);
        }
    }
}

/// Consumes partition `p` on `channel` and forwards into `feed` until the
/// consumer ends.
async fn subscribe(
    channel: &Channel,
    partitions: Partitions,
    p: u16,
    generation: u64,
    feed: mpsc::UnboundedSender<Feed>,
) -> Result<(String, JoinHandle<()>), broker::lapin::Error> {
    let tag = format!("projector-{}", uuid::Uuid::now_v7());
    let mut consumer = channel
        .basic_consume(
            partitions.queue(p).into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let forwarder = tokio::spawn(async move {
        while let Some(next) = consumer.next().await {
            let item = match next {
                Ok(delivery) => Feed::Delivery(p, generation, delivery),
                Err(e) => Feed::Failed(e),
            };
            if feed.send(item).is_err() {
                return;
            }
        }
        let _ = feed.send(Feed::Ended(p, generation));
    });
    Ok((tag, forwarder))
}
