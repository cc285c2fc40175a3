//! Healing a gap reads the gap from the log, not the rest of the stream.

use domain::{ChannelCreated, ChannelId, ChannelKind, Event, MessageId, MessageSent, UserId};
use event_store::{ExpectedVersion, NewEvent, PgEventStore};
use sqlx::postgres::PgPoolOptions;
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

/// Rows fetched from `events` in the log database so far, as the statistics
/// collector counts them (flushed by the reading session on request).
async fn events_rows_fetched(log: &sqlx::PgPool) -> i64 {
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(log)
        .await;
    sqlx::query_scalar(
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .fetch_one(log)
    .await
    .expect("table statistics")
}

#[tokio::test]
async fn healing_a_gap_reads_only_the_gap_from_a_long_stream() {
    let log_db = TestDb::new_event_log().await;
    let read_db = TestDb::new_read_model().await;
    let (channel, owner) = (ChannelId::new(), UserId::new());
    let stream = domain::channel_stream(channel);
    let created = Event::ChannelCreated(ChannelCreated {
        channel_id: channel,
        name: "long".into(),
        kind: ChannelKind::Public,
        max_members: None,
        owner_id: owner,
    });
    let writer = PgEventStore::new(log_db.pool.clone());
    writer
        .append(&stream, ExpectedVersion::NoStream, &[new_event(&created)])
        .await
        .expect("append");
    for chunk in 0..20u64 {
        let page: Vec<NewEvent> = (1..=100)
            .map(|n| {
                new_event(&Event::MessageSent(MessageSent {
                    channel_id: channel,
                    message_id: MessageId::new(),
                    seq: chunk * 100 + n,
                    sender_id: owner,
                    content: format!("message {}", chunk * 100 + n),
                    message_type: "text".into(),
                    client_msg_id: None,
                }))
            })
            .collect();
        writer
            .append(&stream, ExpectedVersion::Any, &page)
            .await
            .expect("append");
    }
    // The read model stands at version 1 (the creation); version 3 arrives.
    let head = writer
        .read_stream_range(&stream, 0, 4, 10)
        .await
        .expect("log");
    let decode = |r: &event_store::RecordedEvent| {
        Event::from_stored(&domain::StoredEvent {
            event_type: r.event_type.clone(),
            schema_version: r.schema_version,
            data: r.data.clone(),
        })
        .expect("decodes")
    };
    let mut tx = read_db.pool.begin().await.expect("begin");
    projector::apply_event(
        &mut read_model::PgReadWrites::new(&mut tx, "rm"),
        &writer,
        &head[0],
        &decode(&head[0]),
    )
    .await
    .expect("creation applies");
    tx.commit().await.expect("commit");

    // One session reads the log for the projector, so its statistics can be flushed.
    let reader_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&log_db.url)
        .await
        .expect("log pool");
    let reader = PgEventStore::new(reader_pool.clone());
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&reader_pool)
        .await
        .expect("flush");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let before = loop {
        // Wait for the setup's reads to be counted, so the difference is the heal's.
        let a = events_rows_fetched(&log_db.pool).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if a == events_rows_fetched(&log_db.pool).await || tokio::time::Instant::now() > deadline {
            break a;
        }
    };

    let mut tx = read_db.pool.begin().await.expect("begin");
    let outcome = projector::apply_event(
        &mut read_model::PgReadWrites::new(&mut tx, "rm"),
        &reader,
        &head[2],
        &decode(&head[2]),
    )
    .await
    .expect("version 3 applies after healing version 2");
    tx.commit().await.expect("commit");
    assert!(
        matches!(outcome, projector::Outcome::Applied { healed: 1, .. }),
        "{outcome:?}"
    );
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM rm.messages WHERE channel_id = $1 ORDER BY seq")
            .bind(channel.0)
            .fetch_all(&read_db.pool)
            .await
            .expect("messages");
    assert_eq!(seqs, vec![1, 2]);

    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&reader_pool)
        .await
        .expect("flush");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let read = loop {
        let read = events_rows_fetched(&log_db.pool).await - before;
        if read > 0 {
            break read;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the heal's log read was never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The setup's own few reads may be counted late; the stream's rest is 1,998 rows.
    assert!(
        read < 100,
        "healing one missing version read {read} rows of a 2001-event stream"
    );
}
