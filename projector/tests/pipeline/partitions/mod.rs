//! Projector partitions (DESIGN §10): the relay routes each stream to one
//! partition queue in its order, two projector processes split the
//! partitions about half each, and when one is killed mid-flood the other
//! takes them all with nothing lost or applied twice.

mod takeover;

use crate::fold_equivalence::assert_channel_matches_log;
use crate::helpers::Pipeline;
use broker::Partitions;
use broker::lapin::options::BasicConsumeOptions;
use broker::lapin::types::FieldTable;
use domain::{ChannelCommand, ChannelId, UserId, channel_stream};
use futures_util::StreamExt;
use projector::{PartitionView, ProjectorConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

pub(super) const N: u16 = 4;

pub(super) fn four() -> Partitions {
    Partitions::new(N).expect("4 partitions")
}

/// Channels until every partition has at least `per` of them.
pub(super) async fn channels_on_every_partition(
    p: &Pipeline,
    owner: UserId,
    per: usize,
) -> Vec<ChannelId> {
    let mut by_partition: BTreeMap<u16, usize> = BTreeMap::new();
    let mut channels = Vec::new();
    while (0..N).any(|q| by_partition.get(&q).copied().unwrap_or(0) < per) {
        let channel = p.create_channel(owner).await;
        *by_partition
            .entry(four().of_stream(&channel_stream(channel)))
            .or_default() += 1;
        channels.push(channel);
    }
    channels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_routes_each_stream_to_one_partition_in_order() {
    let mut p = Pipeline::new().await;
    p.start_relay_with(four());
    let owner = UserId::new();
    let channels = channels_on_every_partition(&p, owner, 2).await;
    for n in 0..5 {
        for channel in &channels {
            p.send(owner, *channel, &format!("m{n}")).await;
        }
    }
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id LIKE 'channel-%'")
            .fetch_one(&p.log.pool)
            .await
            .expect("count");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let queued: u64 = (0..N)
            .map(|q| p.vhost.queue_depth(&four().queue(q)).unwrap_or(0))
            .sum();
        if queued >= total as u64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay published {queued} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        p.vhost.queue_depth(broker::PROJECTOR_QUEUE),
        None,
        "no unsplit queue"
    );

    let connection = broker::connect(&p.vhost.amqp_url, "test-reader")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    // stream -> (partition it was found in, versions in queue order)
    let mut seen: BTreeMap<String, (BTreeSet<u16>, Vec<i64>)> = BTreeMap::new();
    for q in 0..N {
        // basic.get is refused on single-active-consumer queues: consume
        // exactly what the queue holds.
        let depth = p.vhost.queue_depth(&four().queue(q)).unwrap_or(0);
        let mut consumer = channel
            .basic_consume(
                four().queue(q).into(),
                format!("reader-{q}").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        for _ in 0..depth {
            let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
                .await
                .expect("a delivery in time")
                .expect("the consumer is open")
                .expect("a delivery");
            let envelope: serde_json::Value =
                serde_json::from_slice(&delivery.data).expect("an envelope");
            let stream = envelope["stream_id"]
                .as_str()
                .expect("stream_id")
                .to_owned();
            let version = envelope["stream_version"].as_i64().expect("stream_version");
            let entry = seen.entry(stream).or_default();
            entry.0.insert(q);
            entry.1.push(version);
        }
    }
    assert_eq!(seen.len(), channels.len(), "every channel stream arrived");
    let mut used: BTreeSet<u16> = BTreeSet::new();
    for (stream, (found_in, versions)) in &seen {
        assert_eq!(
            found_in.iter().copied().collect::<Vec<_>>(),
            [four().of_stream(stream)],
            "{stream} lands in exactly its own partition"
        );
        used.extend(found_in.iter().copied());
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(
            versions, &expected,
            "{stream} in its order, each event once"
        );
    }
    assert_eq!(used.len(), usize::from(N), "every partition is used");
    let _ = connection.close(0, "done".into()).await;
}

/// A projector on the four partitions whose view the test reads.
pub(super) fn member(p: &Pipeline) -> (Arc<PartitionView>, tokio::task::JoinHandle<()>) {
    let view = Arc::new(PartitionView::default());
    let mut config = ProjectorConfig::new(p.vhost.amqp_url.clone());
    config.partitions = four();
    config.view = view.clone();
    (view, p.spawn_projector(config))
}

/// Waits until the views hold the given numbers of partitions, disjoint.
pub(super) async fn settle(views: &[&PartitionView], shares: &[usize]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let active: Vec<Vec<u16>> = views.iter().map(|v| v.active()).collect();
        let all: BTreeSet<u16> = active.iter().flatten().copied().collect();
        let sizes: Vec<usize> = active.iter().map(Vec::len).collect();
        if sizes == shares && all.len() == shares.iter().sum::<usize>() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the partitions did not settle to {shares:?}: {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deliveries per partition since `before`.
pub(super) fn since(view: &PartitionView, before: &[u64]) -> Vec<u64> {
    view.delivered()
        .iter()
        .enumerate()
        .map(|(i, n)| n - before.get(i).copied().unwrap_or(0))
        .collect()
}

/// Members join every channel, then each sends 25 messages into every
/// channel while `kill` runs beside the flood; returns what `kill` did.
pub(super) async fn flood_while<T>(
    p: &Pipeline,
    channels: &[ChannelId],
    kill: impl std::future::Future<Output = T>,
) -> T {
    let members: Vec<UserId> = (0..4).map(|_| UserId::new()).collect();
    for channel in channels {
        for m in &members {
            p.command(*m, *channel, ChannelCommand::Join).await;
        }
    }
    let senders = members.iter().enumerate().map(|(i, member)| async move {
        for n in 0..25 {
            for channel in channels {
                p.send(*member, *channel, &format!("flood {n} from {i}"))
                    .await;
            }
        }
    });
    futures_util::future::join(futures_util::future::join_all(senders), kill)
        .await
        .1
}

/// Everything applied once: each channel's rows equal the fold of its log
/// (seqs 1..n, no duplicates), every partition drained, no dead letters.
pub(super) async fn assert_all_applied_once(p: &Pipeline, channels: &[ChannelId]) {
    p.wait_projected().await;
    for channel in channels {
        assert_channel_matches_log(p, *channel).await;
    }
    // Acks follow commits, and a killed process's unacked deliveries come
    // back as duplicates to skip: the queues empty shortly after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let depths: Vec<Option<u64>> = (0..N)
            .map(|q| p.vhost.queue_depth(&four().queue(q)))
            .collect();
        if depths.iter().all(|d| *d == Some(0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the partitions did not drain: {depths:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        p.vhost.queue_depth(broker::DEAD_LETTER_QUEUE),
        Some(0),
        "a killed projector dead-letters nothing"
    );
}
