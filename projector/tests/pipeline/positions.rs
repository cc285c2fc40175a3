//! Two projector transactions that overlap on a stream (a single-active-
//! consumer hand-over while the old consumer's transaction still runs) apply
//! each event once, and a stream's position never moves back.

use domain::{ChannelCreated, ChannelId, ChannelKind, Event, MemberJoined, StoredEvent, UserId};
use event_store::{ExpectedVersion, NewEvent, PgEventStore, RecordedEvent};
use projector::{Outcome, apply_batch};
use read_model::PgReadWrites;
use std::time::Duration;
use test_support::TestDb;

fn new_event(event: &Event) -> NewEvent {
    let stored = event.to_stored();
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: stored.event_type,
        schema_version: stored.schema_version,
        data: stored.data,
        metadata: serde_json::json!({}),
    }
}

fn decode(r: &RecordedEvent) -> Event {
    Event::from_stored(&StoredEvent {
        event_type: r.event_type.clone(),
        schema_version: r.schema_version,
        data: r.data.clone(),
    })
    .expect("decodes")
}

/// Waits until a session of the read database waits on a lock.
async fn wait_until_blocked(read: &sqlx::PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(read)
        .await
        .expect("activity");
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second transaction never waited for the first"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_transactions_on_a_new_stream_apply_once_and_never_regress() {
    let log_db = TestDb::new_event_log().await;
    let read_db = TestDb::new_read_model().await;
    let log = PgEventStore::new(log_db.pool.clone());
    let (channel, owner) = (ChannelId::new(), UserId::new());
    let stream = domain::channel_stream(channel);
    let events: Vec<NewEvent> = [
        Event::ChannelCreated(ChannelCreated {
            channel_id: channel,
            name: "race".into(),
            kind: ChannelKind::Public,
            max_members: None,
            owner_id: owner,
        }),
        Event::MemberJoined(MemberJoined {
            channel_id: channel,
            user_id: UserId::new(),
        }),
        Event::MemberJoined(MemberJoined {
            channel_id: channel,
            user_id: UserId::new(),
        }),
    ]
    .iter()
    .map(new_event)
    .collect();
    let recorded = log
        .append(&stream, ExpectedVersion::NoStream, &events)
        .await
        .expect("append");
    let decoded: Vec<Event> = recorded.iter().map(decode).collect();
    let items: Vec<(&RecordedEvent, &Event)> = recorded.iter().zip(decoded.iter()).collect();

    // The first consumer applies versions 1..=3 and has not committed yet.
    let mut first = read_db.pool.begin().await.expect("begin");
    apply_batch(&mut PgReadWrites::new(&mut first, "rm"), &log, &items)
        .await
        .expect("first applies");

    // The next consumer gets versions 1..=2 redelivered meanwhile.
    let second = {
        let (read, log) = (read_db.pool.clone(), log.clone());
        let recorded = recorded[..2].to_vec();
        tokio::spawn(async move {
            let decoded: Vec<Event> = recorded.iter().map(decode).collect();
            let items: Vec<(&RecordedEvent, &Event)> =
                recorded.iter().zip(decoded.iter()).collect();
            let mut tx = read.begin().await.expect("begin");
            let outcomes = apply_batch(&mut PgReadWrites::new(&mut tx, "rm"), &log, &items)
                .await
                .expect("second applies");
            tx.commit().await.expect("commit");
            outcomes
        })
    };
    wait_until_blocked(&read_db.pool).await;
    first.commit().await.expect("commit");
    let outcomes = second.await.expect("second task");

    let version: i64 =
        sqlx::query_scalar("SELECT version FROM rm.stream_positions WHERE stream_id = $1")
            .bind(&stream)
            .fetch_one(&read_db.pool)
            .await
            .expect("position");
    assert_eq!(version, 3, "the stream's position moved back");
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Duplicate)),
        "the redelivered events were applied a second time: {outcomes:?}"
    );
}
