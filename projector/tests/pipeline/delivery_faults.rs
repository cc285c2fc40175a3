//! Duplicates, redelivery after a crash between commit and ack, out-of-order
//! delivery and gaps: nothing is lost and nothing is applied twice.

use crate::fold_equivalence::decode;
use crate::helpers::Pipeline;
use domain::{ChannelCommand, UserId, channel_stream};
use event_store::RecordedEvent;
use projector::{Outcome, apply_event};

async fn message_rows(p: &Pipeline) -> Vec<(i64, Option<String>, bool)> {
    sqlx::query_as("SELECT seq, content, deleted FROM rm.messages ORDER BY channel_id, seq")
        .fetch_all(&p.read.pool)
        .await
        .expect("rows")
}

async fn apply(p: &Pipeline, recorded: &RecordedEvent) -> Outcome {
    let mut tx = p.read.pool.begin().await.expect("begin");
    let outcome = apply_event(
        &mut read_model::PgReadWrites::new(&mut tx, read_model::LIVE_SCHEMA),
        &p.store(),
        recorded,
        &decode(recorded),
    )
    .await
    .expect("apply");
    tx.commit().await.expect("commit");
    outcome
}

/// The projector committed but died before its ack: the broker redelivers,
/// and the second application changes nothing.
#[tokio::test]
async fn redelivery_after_commit_changes_nothing() {
    let p = Pipeline::new().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    p.send(owner, channel, "once").await;
    let events = p
        .store()
        .read_stream(&channel_stream(channel), 0)
        .await
        .expect("log");
    for e in &events {
        assert!(matches!(apply(&p, e).await, Outcome::Applied { .. }));
    }
    let before = message_rows(&p).await;
    for e in &events {
        assert!(
            matches!(apply(&p, e).await, Outcome::Duplicate),
            "a redelivered event must be a duplicate"
        );
    }
    assert_eq!(message_rows(&p).await, before);
}

/// An older event arriving after a newer one changes nothing; a newer one
/// arriving first pulls the missing ones from the log.
#[tokio::test]
async fn out_of_order_delivery_heals_from_the_log_and_skips_the_stale() {
    let p = Pipeline::new().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for n in 0..3 {
        p.send(owner, channel, &format!("m{n}")).await;
    }
    let events = p
        .store()
        .read_stream(&channel_stream(channel), 0)
        .await
        .expect("log");
    assert_eq!(events.len(), 4);

    // The newest arrives first: the three before it are healed from the log.
    match apply(&p, &events[3]).await {
        Outcome::Applied { changes, healed } => {
            assert_eq!(healed, 3);
            let versions: Vec<u64> = changes.iter().map(|c| c.event.stream_version).collect();
            assert_eq!(
                versions,
                vec![1, 2, 3, 4],
                "healed in stream order, the delivered event last"
            );
        }
        Outcome::Duplicate => panic!("the newest event was not applied"),
    }
    let healed_rows = message_rows(&p).await;
    assert_eq!(
        healed_rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // The stale ones arrive late and change nothing.
    for e in &events[..3] {
        assert!(matches!(apply(&p, e).await, Outcome::Duplicate));
    }
    assert_eq!(message_rows(&p).await, healed_rows);
}

/// Through the broker: the same envelope published twice (a relay that died
/// between publishing and checkpointing) and a gap (an event never published)
/// both end in the same rows as a clean delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_and_gaps_through_the_broker() {
    let mut p = Pipeline::new().await;
    p.start_projector();
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for n in 0..4 {
        p.send(owner, channel, &format!("m{n}")).await;
    }
    let events = p
        .store()
        .read_stream(&channel_stream(channel), 0)
        .await
        .expect("log");
    let key = broker::routing_key(&events[0].stream_id, &events[0].event_type);
    let body = |e: &RecordedEvent| serde_json::to_vec(e).expect("json");
    // Versions 1, 2, 2 (duplicate), then 5 (3 and 4 never published), then 1 again.
    for e in [&events[0], &events[1], &events[1], &events[4], &events[0]] {
        p.publish_raw(&key, &body(e)).await;
    }
    p.wait_projected().await;
    let rows = message_rows(&p).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM rm.members")
        .fetch_one(&p.read.pool)
        .await
        .expect("count");
    assert_eq!(count, 1, "the owner once");
    p.command(owner, channel, ChannelCommand::Archive).await;
}
