//! Comparing read models row by row, and the reference they are compared
//! with: the whole log folded event by event with the live projector's
//! `apply_event`.

use event_store::{Cursor, LogFilter, PgEventStore};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

/// The read-model tables compared row by row (checkpoints are positions, not model).
pub const MODEL_TABLES: [&str; 6] = [
    "users",
    "channels",
    "members",
    "bans",
    "messages",
    "stream_positions",
];

/// Every row of every model table in `schema`, as JSON text, sorted.
pub async fn dump(read: &PgPool, schema: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for table in MODEL_TABLES {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t)::text FROM {schema}.{table} t ORDER BY 1"
        )))
        .fetch_all(read)
        .await
        .expect("dump a table");
        out.insert(table, rows);
    }
    out
}

/// Asserts two dumps are equal, naming the first table that differs.
pub fn assert_same(
    left: &BTreeMap<&str, Vec<String>>,
    right: &BTreeMap<&str, Vec<String>>,
    what: &str,
) {
    for table in MODEL_TABLES {
        assert_eq!(
            left.get(table),
            right.get(table),
            "{what}: table {table} differs"
        );
    }
}

/// Waits until every committed event is readable in commit order (no
/// transaction anywhere in the cluster holds whole-log readers back).
pub async fn wait_visible(log: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(log)
        .await
        .expect("held back events");
        if held == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{held} events stayed held back for 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Folds the whole log into `schema` event by event with the live
/// projector's `apply_event`, one transaction per event; an event it refuses
/// (undecodable, unhealable) is skipped, as the live projector dead-letters it.
pub async fn reference_fold(log: &PgEventStore, read: &PgPool, schema: &str) {
    read_model::create_tables(read, schema)
        .await
        .expect("tables");
    wait_visible(log.pool()).await;
    let mut cursor = Cursor::START;
    loop {
        let page = log
            .read_all(cursor, 500, &LogFilter::default())
            .await
            .expect("log page");
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        for recorded in &page {
            let stored = domain::StoredEvent {
                event_type: recorded.event_type.clone(),
                schema_version: recorded.schema_version,
                data: recorded.data.clone(),
            };
            let Ok(event) = domain::Event::from_stored(&stored) else {
                continue;
            };
            let mut tx = read.begin().await.expect("begin");
            match projector::apply_event(
                &mut read_model::PgReadWrites::new(&mut tx, schema),
                log,
                recorded,
                &event,
            )
            .await
            {
                Ok(_) => tx.commit().await.expect("commit"),
                Err(_) => tx.rollback().await.expect("rollback"),
            }
        }
    }
}

/// The schemas of the read database whose names start with `prefix`.
pub async fn schemas_like(read: &PgPool, prefix: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY 1",
    )
    .bind(prefix)
    .fetch_all(read)
    .await
    .expect("schemas")
}
