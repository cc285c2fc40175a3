//! Building the messages primary key holds no transaction id: transaction ids
//! are cluster-wide, so a build that held one would keep every whole-log
//! reader in the cluster (the relay, `/api/events`) from moving on until it
//! ends.

use event_store::PgEventStore;
use operator_tools::progress::Progress;
use operator_tools::rebuild::{self, RebuildOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use test_support::TestDb;

/// Messages in the seeded log: enough for the key's build to take a while.
const MESSAGES: i64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_primary_key_build_holds_no_transaction_id() {
    let log_db = TestDb::new_event_log().await;
    let read_db = TestDb::new_read_model().await;
    // One channel's creation, then its messages, inserted straight into the log.
    let channel = uuid::Uuid::now_v7();
    let owner = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data) \
         SELECT 'channel-' || $1::text, 1, gen_random_uuid(), 'ChannelCreated', 2, \
                jsonb_build_object('channel_id', $1::uuid, 'name', 'big', 'kind', 'public', 'max_members', null, 'owner_id', $2::uuid) \
         UNION ALL \
         SELECT 'channel-' || $1::text, n + 1, gen_random_uuid(), 'MessageSent', 1, \
                jsonb_build_object('channel_id', $1::uuid, 'message_id', gen_random_uuid(), 'seq', n, \
                                   'sender_id', $2::uuid, 'content', 'm' || n, 'message_type', 'text') \
         FROM generate_series(1, $3::bigint) AS n",
    )
    .bind(channel)
    .bind(owner)
    .bind(MESSAGES)
    .execute(&log_db.pool)
    .await
    .expect("seed");

    // Watch the read database's sessions while the rebuild runs: the one
    // building the key must never hold a transaction id.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (read, done) = (read_db.pool.clone(), done.clone());
        let database = read_db.name.clone();
        tokio::spawn(async move {
            let (mut seen, mut with_xid) = (0u64, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let rows: Vec<(Option<String>, String)> = sqlx::query_as(
                    "SELECT backend_xid::text, query FROM pg_stat_activity \
                     WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid() \
                       AND query ILIKE '%messages%' \
                       AND (query ILIKE '%CREATE UNIQUE INDEX%' OR query ILIKE '%PRIMARY KEY (%')",
                )
                .bind(&database)
                .fetch_all(&read)
                .await
                .expect("activity");
                for (xid, query) in rows {
                    seen += 1;
                    if let Some(xid) = xid {
                        with_xid.push((xid, query));
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (seen, with_xid)
        })
    };
    let report = rebuild::rebuild(
        &read_db.pool,
        &PgEventStore::new(log_db.pool.clone()),
        rebuild::projection("read-model").expect("known"),
        &RebuildOptions::default(),
        &Progress::hidden(),
    )
    .await
    .expect("rebuild");
    done.store(true, Ordering::Relaxed);
    let (seen, with_xid) = watcher.await.expect("watcher");
    assert_eq!(report.events, MESSAGES as u64 + 1);
    // `CREATE INDEX CONCURRENTLY` registers the index in a short catalog
    // transaction of its own (an xid for a moment); the build itself, nearly
    // every sample, holds none. A plain `ADD CONSTRAINT` holds one throughout.
    let mut per_xid: std::collections::HashMap<&str, u64> = Default::default();
    for (xid, _) in &with_xid {
        *per_xid.entry(xid.as_str()).or_default() += 1;
    }
    let longest = per_xid.values().copied().max().unwrap_or(0);
    assert!(
        seen >= 4,
        "the key build was never seen running ({seen} samples): the test proves nothing"
    );
    assert!(
        longest <= 2 || longest * 4 <= seen,
        "the key build held one transaction id in {longest} of {seen} samples: {:?}",
        with_xid.first()
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rm.messages")
        .fetch_one(&read_db.pool)
        .await
        .expect("count");
    assert_eq!(rows, MESSAGES);
    let key: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'rm.messages'::regclass AND contype = 'p'",
    )
    .fetch_one(&read_db.pool)
    .await
    .expect("the primary key is back");
    assert_eq!(key, "PRIMARY KEY (channel_id, seq)");
    println!("key build seen in {seen} samples, the longest-held xid in {longest}");
}
