//! Filtered whole-log reads on PostgreSQL read only the rows they return
//! (what they return is in `behaviour.rs`, for both backends): each filter
//! shape walks an index in commit order and stops at its limit.

use event_store::PgEventStore;
use test_support::TestDb;

/// Rows fetched from `events` so far in this database (statistics flushed
/// by the reading session on request).
async fn events_rows_fetched(pool: &sqlx::PgPool) -> i64 {
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await;
    sqlx::query_scalar(
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .fetch_one(pool)
    .await
    .expect("table statistics")
}

/// Waits until the statistics stop moving, then returns them.
async fn settled_rows_fetched(pool: &sqlx::PgPool) -> i64 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = events_rows_fetched(pool).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = events_rows_fetched(pool).await;
        if now == last || tokio::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn filtered_whole_log_reads_read_only_what_they_return() {
    use event_store::{Cursor, LogFilter};
    let db = TestDb::new_event_log().await;
    // Counted rows are this test's reads only: no autovacuum pass over the
    // table (and no re-sampled statistics flipping the plan) mid-count, which
    // a busy machine made likely enough to fail a run (6 whole-table passes).
    sqlx::query("ALTER TABLE events SET (autovacuum_enabled = false)")
        .execute(&db.pool)
        .await
        .expect("no autovacuum on this test's table");
    // A short stream first, then a long log of other streams after it.
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data) \
         SELECT 'target', n, gen_random_uuid(), CASE WHEN n % 5 = 0 THEN 'MemberJoined' ELSE 'MessageSent' END, 1, '{}' \
         FROM generate_series(1, 50) AS n",
    )
    .execute(&db.pool)
    .await
    .expect("seed the stream");
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data) \
         SELECT 'other-' || (n % 100), n / 100 + 1, gen_random_uuid(), 'MessageSent', 1, '{}' \
         FROM generate_series(0, 19999) AS n",
    )
    .execute(&db.pool)
    .await
    .expect("seed the rest");
    sqlx::query("ANALYZE events")
        .execute(&db.pool)
        .await
        .expect("analyze");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(&db.pool)
        .await
        .expect("held back");
        if held == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events stayed held back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // One session reads, so its statistics can be flushed on request.
    let reader_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .expect("reader");
    let reader = PgEventStore::new(reader_pool.clone());
    let filters = [
        LogFilter {
            stream_id: Some("target".into()),
            event_types: vec![],
        },
        LogFilter {
            stream_id: None,
            event_types: vec!["MemberJoined".into()],
        },
        LogFilter {
            stream_id: Some("target".into()),
            event_types: vec!["MemberJoined".into(), "MemberJoined".into()],
        },
    ];
    for (filter, expected) in filters.iter().zip([50usize, 10, 10]) {
        let before = settled_rows_fetched(&db.pool).await;
        // Enough executions for PostgreSQL to settle on a generic plan.
        const RUNS: i64 = 10;
        for _ in 0..RUNS {
            let page = reader
                .read_all(Cursor::START, 1000, filter)
                .await
                .expect("filtered read");
            assert_eq!(page.len(), expected, "{filter:?}");
            assert!(page.windows(2).all(|w| w[0].cursor() < w[1].cursor()));
        }
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&reader_pool)
            .await
            .expect("flush");
        let read = settled_rows_fetched(&db.pool).await - before;
        assert!(
            read <= RUNS * 60,
            "{filter:?}: {RUNS} reads of {expected} events read {read} rows of a 20,050-event log"
        );
    }
}
