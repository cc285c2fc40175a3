//! The event log against a real Postgres: expected versions, concurrent
//! appends, idempotency keys, snapshots, and whole-log reads in commit order.

use event_store::{
    AppendError, Cursor, ExpectedVersion, LogFilter, NewEvent, PgEventStore, Snapshot,
};
use rand::Rng;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use test_support::TestDb;
use uuid::Uuid;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: json!({ "n": n }),
        metadata: json!({}),
    }
}

#[tokio::test]
async fn expected_versions_are_enforced() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());

    let first = store
        .append("s-1", ExpectedVersion::NoStream, &[event(1), event(2)])
        .await
        .expect("new stream");
    assert_eq!(
        first.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2]
    );

    let again = store
        .append("s-1", ExpectedVersion::NoStream, &[event(3)])
        .await;
    assert!(
        matches!(again, Err(AppendError::Conflict { .. })),
        "{again:?}"
    );
    let stale = store
        .append("s-1", ExpectedVersion::Exact(1), &[event(3)])
        .await;
    assert!(
        matches!(stale, Err(AppendError::Conflict { .. })),
        "{stale:?}"
    );
    let ahead = store
        .append("s-1", ExpectedVersion::Exact(7), &[event(3)])
        .await;
    assert!(
        matches!(ahead, Err(AppendError::Conflict { .. })),
        "a version ahead must not leave a gap: {ahead:?}"
    );

    let exact = store
        .append("s-1", ExpectedVersion::Exact(2), &[event(3)])
        .await
        .expect("exact");
    assert_eq!(exact[0].stream_version, 3);
    let any = store
        .append("s-1", ExpectedVersion::Any, &[event(4)])
        .await
        .expect("any");
    assert_eq!(any[0].stream_version, 4);
    assert_eq!(store.stream_version("s-1").await.expect("version"), 4);
    assert_eq!(store.stream_version("nope").await.expect("version"), 0);

    let read = store.read_stream("s-1", 2).await.expect("read");
    assert_eq!(
        read.iter()
            .map(|e| e.data["n"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(3), Some(4)]
    );
}

#[tokio::test]
async fn concurrent_appends_to_one_stream_have_exactly_one_winner() {
    let db = TestDb::new_event_log().await;
    let store = Arc::new(PgEventStore::new(db.pool.clone()));
    store
        .append("hot", ExpectedVersion::NoStream, &[event(0)])
        .await
        .expect("seed");

    let attempts = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append("hot", ExpectedVersion::Exact(1), &[event(i)])
                .await
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.expect("task"))
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1);
    assert!(
        lost.iter()
            .all(|r| matches!(r, Err(AppendError::Conflict { .. }))),
        "{lost:?}"
    );
    assert_eq!(store.stream_version("hot").await.expect("version"), 2);
}

#[tokio::test]
async fn an_idempotency_key_is_used_once() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let mut keyed = event(1);
    keyed.metadata = json!({ "idempotency_key": "u1:k1" });
    let first = store
        .append("s", ExpectedVersion::Any, &[keyed.clone()])
        .await
        .expect("first");

    keyed.event_id = Uuid::new_v4();
    let repeat = store.append("other", ExpectedVersion::Any, &[keyed]).await;
    assert!(
        matches!(repeat, Err(AppendError::DuplicateIdempotencyKey(ref k)) if k == "u1:k1"),
        "{repeat:?}"
    );
    assert_eq!(
        store.stream_version("other").await.expect("version"),
        0,
        "nothing appended"
    );

    let found = store
        .find_by_idempotency_key("u1:k1")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.event_id, first[0].event_id);
    assert!(
        store
            .find_by_idempotency_key("u1:k2")
            .await
            .expect("lookup")
            .is_none()
    );
}

#[tokio::test]
async fn snapshots_only_move_forward() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let snap = |v| Snapshot {
        stream_version: v,
        snapshot_version: 1,
        state: json!({ "v": v }),
    };
    assert!(store.load_snapshot("s").await.expect("load").is_none());
    store.save_snapshot("s", &snap(10)).await.expect("save");
    store
        .save_snapshot("s", &snap(5))
        .await
        .expect("older save is ignored");
    assert_eq!(
        store.load_snapshot("s").await.expect("load"),
        Some(snap(10))
    );
}

#[tokio::test]
async fn message_events_are_found_by_message_id() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let (m1, m2) = (Uuid::new_v4(), Uuid::new_v4());
    let msg = |m: Uuid, t: &str| NewEvent {
        data: json!({ "message_id": m }),
        event_type: t.into(),
        ..event(0)
    };
    store
        .append(
            "c",
            ExpectedVersion::Any,
            &[
                msg(m1, "MessageSent"),
                msg(m2, "MessageSent"),
                msg(m1, "MessageDeleted"),
            ],
        )
        .await
        .expect("append");
    let found = store.read_message_events("c", m1).await.expect("read");
    assert_eq!(
        found
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["MessageSent", "MessageDeleted"]
    );
    assert!(
        store
            .read_message_events("other", m1)
            .await
            .expect("read")
            .is_empty()
    );
}

/// An event that commits late with a low position is held back, not skipped.
#[tokio::test]
async fn whole_log_reader_waits_for_an_open_transaction_then_sees_it_first() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let all = LogFilter::default();

    let mut slow = db.pool.begin().await.expect("begin");
    let low = store
        .append_in(&mut slow, "a", ExpectedVersion::Any, &[event(1)])
        .await
        .expect("append a");
    let high = store
        .append("b", ExpectedVersion::Any, &[event(2)])
        .await
        .expect("append b");
    assert!(low[0].global_position < high[0].global_position);

    let visible = store
        .read_all(Cursor::START, 100, &all)
        .await
        .expect("read");
    assert!(
        visible.is_empty(),
        "b must wait behind the open transaction that holds a: {visible:?}"
    );

    slow.commit().await.expect("commit");
    let visible = read_when_visible(&store, Cursor::START, &all, 2).await;
    let ids: Vec<_> = visible.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, vec![low[0].event_id, high[0].event_id]);

    let after_first = store
        .read_all(visible[0].cursor(), 100, &all)
        .await
        .expect("read");
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].event_id, high[0].event_id);
}

#[tokio::test]
async fn whole_log_reads_filter_by_stream_and_type() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    store
        .append(
            "a",
            ExpectedVersion::Any,
            &[
                event(1),
                NewEvent {
                    event_type: "ReadUpTo".into(),
                    ..event(2)
                },
            ],
        )
        .await
        .expect("a");
    store
        .append("b", ExpectedVersion::Any, &[event(3)])
        .await
        .expect("b");
    let only_a = LogFilter {
        stream_id: Some("a".into()),
        event_types: vec![],
    };
    assert_eq!(
        read_when_visible(&store, Cursor::START, &only_a, 2)
            .await
            .len(),
        2
    );
    let only_reads = LogFilter {
        stream_id: None,
        event_types: vec!["ReadUpTo".into()],
    };
    let got = read_when_visible(&store, Cursor::START, &only_reads, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data["n"], 2);
}

/// Many writers hold their transactions open for random times and some roll
/// back; a concurrent reader must see every committed event exactly once, in
/// commit order, and must not stall on the rolled-back ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_make_a_reader_skip_or_repeat() {
    const WRITERS: u64 = 12;
    const TXS_PER_WRITER: u64 = 25;
    let db = TestDb::new_event_log().await;
    let store = Arc::new(PgEventStore::new(db.pool.clone()));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let pool = db.pool.clone();
            tokio::spawn(async move {
                let mut committed = Vec::new();
                for i in 0..TXS_PER_WRITER {
                    let (delay, rollback, batch) = {
                        let mut rng = rand::rng();
                        (
                            rng.random_range(0..15u64),
                            rng.random_bool(0.2),
                            rng.random_range(1..=3u64),
                        )
                    };
                    let events: Vec<_> = (0..batch).map(|b| event(w * 1000 + i * 10 + b)).collect();
                    let mut tx = pool.begin().await.expect("begin");
                    let stream = format!("w{w}");
                    store
                        .append_in(&mut tx, &stream, ExpectedVersion::Any, &events)
                        .await
                        .expect("append");
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if rollback {
                        tx.rollback().await.expect("rollback");
                    } else {
                        tx.commit().await.expect("commit");
                        committed.extend(events.iter().map(|e| e.event_id));
                    }
                }
                committed
            })
        })
        .collect();

    let (expected_tx, expected_rx) = tokio::sync::watch::channel(None::<usize>);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = Cursor::START;
            let filter = LogFilter::default();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            // Reads until the writers have said how many events committed and all
            // of them arrived (or more: a duplicate), or the deadline passes.
            while tokio::time::Instant::now() < deadline {
                if expected_rx.borrow().is_some_and(|n| seen.len() >= n) {
                    break;
                }
                let page = store.read_all(cursor, 50, &filter).await.expect("read");
                for e in &page {
                    assert!(
                        e.cursor() > cursor,
                        "cursor went backwards: {} after {}",
                        e.cursor(),
                        cursor
                    );
                    cursor = e.cursor();
                    seen.push(e.event_id);
                }
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            seen
        })
    };

    let mut committed = HashSet::new();
    for w in writers {
        committed.extend(w.await.expect("writer"));
    }
    expected_tx.send_replace(Some(committed.len()));
    let seen = reader.await.expect("reader");

    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an event was delivered twice");
    let missed = committed.difference(&unique).count();
    if missed > 0 {
        // Name whatever held the cluster's xmin back, to tell a stall from a skip.
        let holders: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT datname::text, backend_xid::text, left(query, 80) FROM pg_stat_activity WHERE backend_xid IS NOT NULL",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap_or_default();
        eprintln!("transactions holding xmin back: {holders:?}");
    }
    let phantom = unique.difference(&committed).count();
    assert_eq!(
        (missed, phantom),
        (0, 0),
        "missed committed events / saw rolled-back ones (of {})",
        committed.len()
    );

    let commit_order: Vec<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM events ORDER BY transaction_id, global_position")
            .fetch_all(&db.pool)
            .await
            .expect("order");
    assert_eq!(
        seen, commit_order,
        "the reader's order is not the commit order"
    );
}

/// Transaction ids are ordered as numbers, not as the text they are read as:
/// 99999 comes before 100000. The boundary is the cluster's own (a new one's
/// ids are near 1,000), so the stamped rows are settled and visible.
#[tokio::test]
async fn commit_order_is_numeric_across_a_digit_boundary() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let boundary = test_support::settled_digit_boundary(&db.pool, 5).await;
    let stamps = boundary - 5..boundary + 5;
    for (i, xid) in stamps.clone().rev().enumerate() {
        sqlx::query(
            "INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version, data) \
             VALUES ($1::text::xid8, $2, 1, $3, 'MessageSent', 1, '{}')",
        )
        .bind(xid.to_string())
        .bind(format!("s-{i}"))
        .bind(Uuid::new_v4())
        .execute(&db.pool)
        .await
        .expect("insert");
    }
    let read = store
        .read_all(Cursor::START, 100, &LogFilter::default())
        .await
        .expect("read");
    let xids: Vec<u64> = read.iter().map(|e| e.transaction_id).collect();
    assert_eq!(xids, stamps.collect::<Vec<_>>());
    let after = store
        .read_all(read[4].cursor(), 100, &LogFilter::default())
        .await
        .expect("read");
    assert_eq!(after.first().map(|e| e.transaction_id), Some(boundary));
}

/// Whole-log reads see only what is below the oldest running transaction of
/// the whole cluster, and other tests run beside this one: wait (bounded) until
/// at least `n` events are visible, then return them.
async fn read_when_visible(
    store: &PgEventStore,
    after: Cursor,
    filter: &LogFilter,
    n: usize,
) -> Vec<event_store::RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let read = store.read_all(after, 1000, filter).await.expect("read");
        if read.len() >= n || tokio::time::Instant::now() > deadline {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener on the channel whole-log readers are woken on.
async fn listening(db: &TestDb) -> sqlx::postgres::PgListener {
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .expect("listener");
    listener
        .listen(event_store::NOTIFY_CHANNEL)
        .await
        .expect("listen");
    listener
}

/// Readers in other processes are woken after an append commits, by a
/// notification sent outside the append's transaction; a refused append (a
/// stale expected version) wakes nobody.
#[tokio::test]
async fn committed_appends_wake_listeners_and_refused_ones_do_not() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let mut listener = listening(&db).await;

    store
        .append("s", ExpectedVersion::NoStream, &[event(1)])
        .await
        .expect("append");
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a committed append wakes listeners")
        .expect("notification");

    let refused = store
        .append("s", ExpectedVersion::Exact(7), &[event(2)])
        .await;
    assert!(
        matches!(refused, Err(AppendError::Conflict { .. })),
        "{refused:?}"
    );
    let woken = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(woken.is_err(), "a refused append sent {woken:?}");
}

/// An append's own transaction sends no notification: PostgreSQL would hold
/// a cluster-wide lock from its pre-commit until its commit record is flushed,
/// serialising every append's commit.
#[tokio::test]
async fn an_append_inside_a_transaction_notifies_nobody_by_itself() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let mut listener = listening(&db).await;
    let mut tx = db.pool.begin().await.expect("begin");
    store
        .append_in(&mut tx, "s", ExpectedVersion::NoStream, &[event(1)])
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    let woken = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(
        woken.is_err(),
        "the append's transaction notified: {woken:?}"
    );
    store.committed();
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("committed() wakes listeners")
        .expect("notification");
}

/// Stamps ahead of the cluster's transaction counter come from another
/// cluster's history (a logical restore): opening the log refuses, saying how
/// to re-stamp, instead of serving a log whose order means nothing here.
#[tokio::test]
async fn a_log_stamped_by_another_cluster_is_refused_at_start() {
    let db = TestDb::new_event_log().await;
    event_store::connect(&db.url, 2)
        .await
        .expect("a log of this cluster opens");
    let current: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&db.pool)
        .await
        .expect("xid");
    let foreign = current.parse::<u64>().expect("xid") + 1_000_000;
    sqlx::query(
        "INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version, data) \
         VALUES ($1::text::xid8, 'restored', 1, $2, 'MessageSent', 1, '{}')",
    )
    .bind(foreign.to_string())
    .bind(Uuid::new_v4())
    .execute(&db.pool)
    .await
    .expect("insert");
    let refused = event_store::connect(&db.url, 2)
        .await
        .expect_err("a foreign log is refused");
    assert!(
        matches!(refused, event_store::ConnectError::ForeignStamps { stored, .. } if stored == foreign),
        "{refused}"
    );
    assert!(refused.to_string().contains("re-stamp"), "{refused}");

    // The documented re-stamp makes it usable, its order kept by position.
    sqlx::query("UPDATE events SET transaction_id = '1'::xid8")
        .execute(&db.pool)
        .await
        .expect("re-stamp");
    event_store::connect(&db.url, 2)
        .await
        .expect("a re-stamped log opens");
}
