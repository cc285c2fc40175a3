//! One behaviour, two adapters: every test here runs against the PostgreSQL
//! log and the SQLite log through the `EventLog` port, so the backends cannot
//! drift. What only one backend has (PostgreSQL's xid8 watermark, LISTEN, its
//! stamps) is tested in `log.rs`; SQLite's own concerns at the end here. The
//! accounts beside the log (`Accounts`) are held to the same rule.

mod common;

use common::{event, read_when_visible};
use event_store::{
    Accounts, AppendError, Credentials, Cursor, EventLog, ExpectedVersion, LogFilter, NewEvent,
    PgEventStore, RecordedEvent, RegisterError, Snapshot, SqliteEventStore,
};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use test_support::TestDb;
use uuid::Uuid;

/// A log, the accounts beside it, and whatever must live as long as they (a
/// database, a directory).
struct Backend {
    log: Arc<dyn EventLog>,
    accounts: Arc<dyn Accounts>,
    _owner: Box<dyn std::any::Any + Send>,
}

async fn postgres() -> Backend {
    let db = TestDb::new_event_log().await;
    let log = Arc::new(PgEventStore::new(db.pool.clone()));
    Backend {
        log: log.clone(),
        accounts: log,
        _owner: Box::new(db),
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = SqliteEventStore::open(&dir.path().join("events.db"), 4)
        .await
        .expect("open the SQLite log");
    let log = Arc::new(log);
    Backend {
        log: log.clone(),
        accounts: log,
        _owner: Box::new(dir),
    }
}

/// `both!(test)`: `test::postgres` and `test::sqlite`, each on a log of its own.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let backend = super::postgres().await;
                super::$name(backend.log.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let backend = super::sqlite().await;
                super::$name(backend.log.clone()).await;
            }
        }
    )*};
}

/// `both_with_accounts!(test)`: like `both!`, for tests that register users
/// (`test(log, accounts)`, the two ports of one backend).
macro_rules! both_with_accounts {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let backend = super::postgres().await;
                super::$name(backend.log.clone(), backend.accounts.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let backend = super::sqlite().await;
                super::$name(backend.log.clone(), backend.accounts.clone()).await;
            }
        }
    )*};
}

both!(
    expected_versions_are_enforced,
    concurrent_appends_to_one_stream_have_exactly_one_winner,
    an_idempotency_key_is_used_once,
    an_event_id_is_used_once,
    snapshots_only_move_forward,
    message_events_are_found_by_message_id,
    stream_ranges_read_exactly_the_gap,
    whole_log_reads_filter_by_stream_and_type,
    concurrent_writers_never_make_a_reader_skip_or_repeat,
    an_append_reports_where_its_stream_ended,
    lag_and_cursors_come_from_the_log,
    the_head_is_the_last_visible_event,
    concurrent_appenders_each_get_their_own_answer,
);

both_with_accounts!(
    a_registered_user_is_found_by_any_case_of_its_name,
    a_taken_username_is_refused_with_nothing_appended,
    a_refused_append_stores_no_credentials,
);

fn numbers(events: &[RecordedEvent]) -> Vec<Option<u64>> {
    events.iter().map(|e| e.data["n"].as_u64()).collect()
}

async fn expected_versions_are_enforced(log: Arc<dyn EventLog>) {
    let first = log
        .append("s-1", ExpectedVersion::NoStream, &[event(1), event(2)])
        .await
        .expect("new stream");
    assert_eq!(
        first.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    for (expected, why) in [
        (ExpectedVersion::NoStream, "the stream exists"),
        (ExpectedVersion::Exact(1), "stale"),
        (ExpectedVersion::Exact(7), "ahead: must not leave a gap"),
    ] {
        let refused = log.append("s-1", expected, &[event(3)]).await;
        assert!(
            matches!(refused, Err(AppendError::Conflict { .. })),
            "{why}: {refused:?}"
        );
    }
    let exact = log
        .append("s-1", ExpectedVersion::Exact(2), &[event(3)])
        .await
        .expect("exact");
    assert_eq!(exact[0].stream_version, 3);
    let any = log
        .append("s-1", ExpectedVersion::Any, &[event(4)])
        .await
        .expect("any");
    assert_eq!(any[0].stream_version, 4);
    assert_eq!(log.stream_version("s-1").await.expect("version"), 4);
    assert_eq!(log.stream_version("nope").await.expect("version"), 0);
    assert!(
        log.append("s-1", ExpectedVersion::Exact(1), &[])
            .await
            .expect("an empty append is a no-op")
            .is_empty()
    );

    let read = log.read_stream("s-1", 2).await.expect("read");
    assert_eq!(numbers(&read), vec![Some(3), Some(4)]);
    // What an append returns is what a read gives back.
    let whole = log.read_stream("s-1", 0).await.expect("read");
    assert_eq!(whole[..2], first[..]);
}

async fn concurrent_appends_to_one_stream_have_exactly_one_winner(log: Arc<dyn EventLog>) {
    log.append("hot", ExpectedVersion::NoStream, &[event(0)])
        .await
        .expect("seed");
    let attempts = (0..16).map(|i| {
        let log = log.clone();
        tokio::spawn(async move {
            log.append("hot", ExpectedVersion::Exact(1), &[event(i)])
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
    assert_eq!(log.stream_version("hot").await.expect("version"), 2);
}

async fn an_idempotency_key_is_used_once(log: Arc<dyn EventLog>) {
    let mut keyed = event(1);
    keyed.metadata = json!({ "idempotency_key": "u1:k1" });
    let first = log
        .append("s", ExpectedVersion::Any, &[keyed.clone()])
        .await
        .expect("first");

    keyed.event_id = Uuid::new_v4();
    let repeat = log
        .append("other", ExpectedVersion::Any, &[event(2), keyed])
        .await;
    assert!(
        matches!(repeat, Err(AppendError::DuplicateIdempotencyKey(ref k)) if k == "u1:k1"),
        "{repeat:?}"
    );
    assert_eq!(
        log.stream_version("other").await.expect("version"),
        0,
        "nothing of the refused append is in the log"
    );
    let found = log
        .find_by_idempotency_key("u1:k1")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.event_id, first[0].event_id);
    assert!(
        log.find_by_idempotency_key("u1:k2")
            .await
            .expect("lookup")
            .is_none()
    );
}

async fn an_event_id_is_used_once(log: Arc<dyn EventLog>) {
    let once = event(1);
    log.append("a", ExpectedVersion::Any, std::slice::from_ref(&once))
        .await
        .expect("first");
    let again = log
        .append("b", ExpectedVersion::Any, &[event(2), once])
        .await;
    assert!(
        matches!(again, Err(AppendError::DuplicateEventId)),
        "{again:?}"
    );
    assert_eq!(log.stream_version("b").await.expect("version"), 0);
}

async fn snapshots_only_move_forward(log: Arc<dyn EventLog>) {
    let snap = |v, shape| Snapshot {
        stream_version: v,
        snapshot_version: shape,
        state: json!({ "v": v, "text": "a 'quoted' \"value\"" }),
    };
    assert!(log.load_snapshot("s").await.expect("load").is_none());
    log.save_snapshot("s", &snap(10, 1)).await.expect("save");
    log.save_snapshot("s", &snap(5, 1))
        .await
        .expect("an older save is ignored");
    assert_eq!(
        log.load_snapshot("s").await.expect("load"),
        Some(snap(10, 1))
    );
    log.save_snapshot("s", &snap(5, 2))
        .await
        .expect("another shape replaces it");
    assert_eq!(
        log.load_snapshot("s").await.expect("load"),
        Some(snap(5, 2))
    );
}

async fn message_events_are_found_by_message_id(log: Arc<dyn EventLog>) {
    let (m1, m2) = (Uuid::new_v4(), Uuid::new_v4());
    let msg = |m: Uuid, t: &str| NewEvent {
        data: json!({ "message_id": m }),
        event_type: t.into(),
        ..event(0)
    };
    log.append(
        "c",
        ExpectedVersion::Any,
        &[
            msg(m1, "MessageSent"),
            msg(m2, "MessageSent"),
            event(7),
            msg(m1, "MessageDeleted"),
        ],
    )
    .await
    .expect("append");
    let found = log.read_message_events("c", m1).await.expect("read");
    assert_eq!(
        found
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["MessageSent", "MessageDeleted"]
    );
    assert!(
        log.read_message_events("other", m1)
            .await
            .expect("read")
            .is_empty()
    );
}

async fn stream_ranges_read_exactly_the_gap(log: Arc<dyn EventLog>) {
    let events: Vec<NewEvent> = (1..=50).map(event).collect();
    log.append("s-range", ExpectedVersion::NoStream, &events)
        .await
        .expect("append");
    log.append("s-other", ExpectedVersion::NoStream, &[event(1), event(2)])
        .await
        .expect("append");
    let versions =
        |page: &[RecordedEvent]| page.iter().map(|e| e.stream_version).collect::<Vec<_>>();
    let gap = log
        .read_stream_range("s-range", 10, 14, 100)
        .await
        .expect("range");
    assert_eq!(versions(&gap), vec![11, 12, 13], "exclusive on both sides");
    assert!(gap.iter().all(|e| e.stream_id == "s-range"));
    let first = log
        .read_stream_range("s-range", 0, 51, 20)
        .await
        .expect("page");
    assert_eq!(versions(&first), (1..=20).collect::<Vec<_>>());
    let second = log
        .read_stream_range("s-range", 20, 51, 20)
        .await
        .expect("page");
    assert_eq!(versions(&second), (21..=40).collect::<Vec<_>>());
    for (after, before) in [(10, 11), (10, 10), (12, 3)] {
        assert!(
            log.read_stream_range("s-range", after, before, 100)
                .await
                .expect("empty range")
                .is_empty(),
            "({after}, {before}) holds no version"
        );
    }
    assert!(
        log.read_stream_range("s-range", 0, 51, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
}

async fn whole_log_reads_filter_by_stream_and_type(log: Arc<dyn EventLog>) {
    let read_up_to = |n| NewEvent {
        event_type: "ReadUpTo".into(),
        ..event(n)
    };
    log.append("a", ExpectedVersion::Any, &[event(1), read_up_to(2)])
        .await
        .expect("a");
    log.append("b", ExpectedVersion::Any, &[event(3), read_up_to(4)])
        .await
        .expect("b");
    let filtered = |stream: Option<&str>, types: &[&str]| LogFilter {
        stream_id: stream.map(String::from),
        event_types: types.iter().map(|t| t.to_string()).collect(),
    };
    let cases = [
        (
            filtered(None, &[]),
            vec![Some(1), Some(2), Some(3), Some(4)],
        ),
        (filtered(Some("a"), &[]), vec![Some(1), Some(2)]),
        (filtered(None, &["ReadUpTo"]), vec![Some(2), Some(4)]),
        (
            filtered(None, &["ReadUpTo", "MessageSent", "ReadUpTo"]),
            vec![Some(1), Some(2), Some(3), Some(4)],
        ),
        (filtered(Some("b"), &["ReadUpTo"]), vec![Some(4)]),
        (filtered(Some("c"), &[]), vec![]),
    ];
    for (filter, expected) in cases {
        let got = read_when_visible(log.as_ref(), Cursor::START, &filter, expected.len()).await;
        assert_eq!(numbers(&got), expected, "{filter:?}");
    }
    let all = read_when_visible(log.as_ref(), Cursor::START, &LogFilter::default(), 4).await;
    let after_second = log
        .read_all(all[1].cursor(), 1, &LogFilter::default())
        .await
        .expect("read");
    assert_eq!(
        numbers(&after_second),
        vec![Some(3)],
        "paged by cursor and limit"
    );
}

/// Many writers append to their own streams and one shared stream at once; a
/// concurrent reader must see every appended event exactly once, with the
/// cursor only moving forward.
async fn concurrent_writers_never_make_a_reader_skip_or_repeat(log: Arc<dyn EventLog>) {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 30;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut appended = Vec::new();
                for i in 0..APPENDS {
                    let stream = if i % 3 == 0 {
                        "shared".to_owned()
                    } else {
                        format!("w{w}")
                    };
                    let batch: Vec<_> = (0..1 + i % 3)
                        .map(|b| event(w * 1000 + i * 10 + b))
                        .collect();
                    // Two racing appends to one stream may both expect
                    // "any" version and still conflict on PostgreSQL (the
                    // unique version): the loser retries, as commands do.
                    let recorded = loop {
                        match log.append(&stream, ExpectedVersion::Any, &batch).await {
                            Err(e) if e.is_conflict() => continue,
                            other => break other.expect("append"),
                        }
                    };
                    appended.extend(recorded.iter().map(|e| e.event_id));
                }
                appended
            })
        })
        .collect();
    let (total_tx, total_rx) = tokio::sync::watch::channel(None::<usize>);
    let reader = common::spawn_reader(log.clone(), total_rx);
    let mut appended = HashSet::new();
    for w in writers {
        appended.extend(w.await.expect("writer"));
    }
    total_tx.send_replace(Some(appended.len()));
    let seen = reader.await.expect("reader");
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "an event was read twice");
    assert_eq!(unique, appended, "the reader missed or invented events");
    let shared = log.read_stream("shared", 0).await.expect("read");
    assert_eq!(
        shared.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (1..=shared.len() as u64).collect::<Vec<_>>(),
        "the shared stream's versions are contiguous"
    );
}

async fn an_append_reports_where_its_stream_ended(log: Arc<dyn EventLog>) {
    let batch = log
        .append(
            "v",
            ExpectedVersion::NoStream,
            &[event(1), event(2), event(3)],
        )
        .await
        .expect("append");
    log.append("v", ExpectedVersion::Exact(3), &[event(4)])
        .await
        .expect("append");
    assert_eq!(
        log.version_after_append(&batch[0]).await.expect("version"),
        3
    );
    let cursor = log
        .latest_cursor_of(&batch.iter().map(|e| e.global_position).collect::<Vec<_>>())
        .await
        .expect("cursor");
    assert_eq!(cursor, Some(batch[2].cursor()));
    assert_eq!(log.latest_cursor_of(&[-1]).await.expect("cursor"), None);
}

async fn lag_and_cursors_come_from_the_log(log: Arc<dyn EventLog>) {
    assert_eq!(
        log.oldest_recorded_after(Cursor::START).await.expect("lag"),
        None
    );
    let first = log
        .append("l", ExpectedVersion::Any, &[event(1)])
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = log
        .append("l", ExpectedVersion::Any, &[event(2)])
        .await
        .expect("append");
    assert!(first[0].recorded_at < second[0].recorded_at);
    assert_eq!(
        log.oldest_recorded_after(Cursor::START).await.expect("lag"),
        Some(first[0].recorded_at)
    );
    assert_eq!(
        log.oldest_recorded_after(first[0].cursor())
            .await
            .expect("lag"),
        Some(second[0].recorded_at)
    );
    assert_eq!(
        log.oldest_recorded_after(second[0].cursor())
            .await
            .expect("lag"),
        None
    );
}

async fn the_head_is_the_last_visible_event(log: Arc<dyn EventLog>) {
    assert_eq!(log.head().await.expect("head"), Cursor::START);
    log.append("a", ExpectedVersion::Any, &[event(1), event(2)])
        .await
        .expect("append");
    let last = log
        .append("b", ExpectedVersion::Any, &[event(3)])
        .await
        .expect("append");
    let all = LogFilter::default();
    assert_eq!(
        read_when_visible(&*log, Cursor::START, &all, 3).await.len(),
        3
    );
    let head = log.head().await.expect("head");
    assert_eq!(head, last[0].cursor());
    // A reader starting at the head sees only what comes after it.
    let after = log
        .append("a", ExpectedVersion::Any, &[event(4)])
        .await
        .expect("append");
    assert_eq!(read_when_visible(&*log, head, &all, 1).await, after);
}

/// 64 appenders on 8 seeded streams at once (on SQLite they reach the writer
/// in groups): on purpose some expect no stream (refused), pairs on two
/// streams share an idempotency key (one of each pair is recorded), the rest
/// append at the version they read (recorded or refused as they raced).
/// Every answer is its caller's own, and the log holds exactly the recorded
/// appends, with gap-free stream versions and positions rising in commit order.
async fn concurrent_appenders_each_get_their_own_answer(log: Arc<dyn EventLog>) {
    const APPENDERS: u64 = 64;
    const STREAMS: u64 = 8;
    const ROUNDS: u64 = 5;
    let mut recorded = std::collections::HashMap::new();
    for s in 0..STREAMS {
        let seed = log
            .append(&format!("g{s}"), ExpectedVersion::NoStream, &[event(s)])
            .await
            .expect("seed");
        recorded.insert(seed[0].event_id, seed[0].clone());
    }
    let appenders = (0..APPENDERS).map(|a| {
        let log = log.clone();
        tokio::spawn(async move {
            let stream = format!("g{}", a % STREAMS);
            let mut answers = Vec::new();
            for round in 0..ROUNDS {
                let n = 1000 * a + 10 * round;
                // Appenders 4q+1 and 4q+2 share a key (and write other streams).
                let key = format!("k{}-{round}", a / 4);
                let (expected, batch) = match a % 4 {
                    0 => (ExpectedVersion::NoStream, vec![event(n)]),
                    1 | 2 => (
                        ExpectedVersion::Any,
                        vec![
                            event(n),
                            NewEvent {
                                metadata: json!({ "idempotency_key": key }),
                                ..event(n + 1)
                            },
                        ],
                    ),
                    _ => {
                        let at = log.stream_version(&stream).await.expect("version");
                        (ExpectedVersion::Exact(at), vec![event(n), event(n + 1)])
                    }
                };
                let result = loop {
                    match log.append(&stream, expected, &batch).await {
                        // Two "any" appends to one stream can race on the
                        // unique version on PostgreSQL: retry, as commands do.
                        Err(e) if e.is_conflict() && expected == ExpectedVersion::Any => continue,
                        other => break other,
                    }
                };
                answers.push((a, key, expected, batch, result));
            }
            (stream, answers)
        })
    });
    let mut key_winners = std::collections::HashMap::<String, usize>::new();
    for appender in futures_util::future::join_all(appenders).await {
        let (stream, answers) = appender.expect("appender");
        for (a, key, expected, batch, result) in answers {
            match result {
                Ok(events) => {
                    assert_eq!(
                        events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
                        batch.iter().map(|e| e.event_id).collect::<Vec<_>>(),
                        "appender {a} got its own events back"
                    );
                    assert!(events.iter().all(|e| e.stream_id == stream));
                    match expected {
                        ExpectedVersion::Exact(at) => assert_eq!(events[0].stream_version, at + 1),
                        ExpectedVersion::Any => *key_winners.entry(key).or_default() += 1,
                        ExpectedVersion::NoStream => panic!("appender {a}: {stream} was seeded"),
                    }
                    recorded.extend(events.into_iter().map(|e| (e.event_id, e)));
                }
                Err(AppendError::Conflict { stream_id, .. }) => {
                    assert_eq!(stream_id, stream, "appender {a}'s conflict is its own");
                    assert!(
                        !matches!(expected, ExpectedVersion::Any),
                        "appender {a} retries"
                    );
                }
                Err(AppendError::DuplicateIdempotencyKey(k)) => {
                    assert_eq!(k, key, "appender {a}'s refused key is its own");
                    key_winners.entry(key).or_default();
                }
                Err(e) => panic!("appender {a}: {e}"),
            }
        }
    }
    assert_eq!(key_winners.len(), (APPENDERS / 4 * ROUNDS) as usize);
    assert!(
        key_winners.values().all(|&won| won == 1),
        "one append per key is recorded: {key_winners:?}"
    );

    let all = read_when_visible(&*log, Cursor::START, &LogFilter::default(), recorded.len()).await;
    assert_eq!(all.len(), recorded.len(), "exactly the recorded appends");
    for e in &all {
        assert_eq!(
            recorded.get(&e.event_id),
            Some(e),
            "as its appender was told"
        );
    }
    assert!(
        all.windows(2).all(|w| w[0].cursor() < w[1].cursor()),
        "commit order only moves forward"
    );
    for s in 0..STREAMS {
        let stream: Vec<_> = all
            .iter()
            .filter(|e| e.stream_id == format!("g{s}"))
            .collect();
        assert_eq!(
            stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
            (1..=stream.len() as u64).collect::<Vec<_>>(),
            "g{s} has no gap"
        );
        assert!(
            stream
                .windows(2)
                .all(|w| w[0].global_position < w[1].global_position),
            "g{s}'s positions rise with its versions"
        );
    }
}

fn credentials(username: &str) -> Credentials {
    Credentials {
        user_id: Uuid::new_v4(),
        username: username.to_owned(),
        password_hash: format!("hash of {username}'s password"),
    }
}

async fn a_registered_user_is_found_by_any_case_of_its_name(
    log: Arc<dyn EventLog>,
    accounts: Arc<dyn Accounts>,
) {
    let alice = credentials("Alice");
    let registered = accounts
        .register("user-a", ExpectedVersion::NoStream, &[event(1)], &alice)
        .await
        .expect("register");
    assert_eq!(registered.len(), 1);
    assert_eq!(
        log.read_stream("user-a", 0).await.expect("read"),
        registered
    );
    for asked in ["Alice", "alice", "ALICE"] {
        assert_eq!(
            accounts.credentials_of(asked).await.expect("lookup"),
            Some(alice.clone()),
            "{asked}"
        );
    }
    assert_eq!(accounts.credentials_of("bob").await.expect("lookup"), None);
}

async fn a_taken_username_is_refused_with_nothing_appended(
    log: Arc<dyn EventLog>,
    accounts: Arc<dyn Accounts>,
) {
    let first = credentials("carol");
    accounts
        .register("user-1", ExpectedVersion::NoStream, &[event(1)], &first)
        .await
        .expect("register");
    let refused = accounts
        .register(
            "user-2",
            ExpectedVersion::NoStream,
            &[event(2)],
            &credentials("CAROL"),
        )
        .await;
    assert!(
        matches!(&refused, Err(RegisterError::UsernameTaken(name)) if name == "CAROL"),
        "{refused:?}"
    );
    assert_eq!(log.stream_version("user-2").await.expect("version"), 0);
    assert_eq!(
        accounts.credentials_of("carol").await.expect("lookup"),
        Some(first)
    );
    // Nothing of the refused registration is in the log: the whole log is
    // the first registration, then the next append.
    let next = log
        .append("other", ExpectedVersion::NoStream, &[event(3)])
        .await
        .expect("append");
    let all = read_when_visible(&*log, Cursor::START, &LogFilter::default(), 2).await;
    assert_eq!(numbers(&all), vec![Some(1), Some(3)]);
    assert_eq!(all[1], next[0]);
}

async fn a_refused_append_stores_no_credentials(
    log: Arc<dyn EventLog>,
    accounts: Arc<dyn Accounts>,
) {
    log.append("user-d", ExpectedVersion::NoStream, &[event(1)])
        .await
        .expect("the stream exists");
    let conflict = accounts
        .register(
            "user-d",
            ExpectedVersion::NoStream,
            &[event(2)],
            &credentials("dave"),
        )
        .await;
    assert!(
        matches!(
            conflict,
            Err(RegisterError::Append(AppendError::Conflict { .. }))
        ),
        "{conflict:?}"
    );
    assert_eq!(accounts.credentials_of("dave").await.expect("lookup"), None);

    let keyed = |n| NewEvent {
        metadata: json!({ "idempotency_key": "reg:erin:k" }),
        ..event(n)
    };
    accounts
        .register(
            "user-e",
            ExpectedVersion::NoStream,
            &[keyed(3)],
            &credentials("erin"),
        )
        .await
        .expect("register");
    let replayed = accounts
        .register(
            "user-f",
            ExpectedVersion::NoStream,
            &[keyed(4)],
            &credentials("frank"),
        )
        .await;
    assert!(
        matches!(
            replayed,
            Err(RegisterError::Append(AppendError::DuplicateIdempotencyKey(
                _
            )))
        ),
        "{replayed:?}"
    );
    assert_eq!(
        accounts.credentials_of("frank").await.expect("lookup"),
        None
    );
    assert_eq!(log.stream_version("user-f").await.expect("version"), 0);
}

/// The embedded log keeps what it acknowledged across a reopen, and goes on
/// numbering where it stopped.
#[tokio::test]
async fn sqlite_log_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let before = {
        let log = SqliteEventStore::open(&path, 2).await.expect("open");
        let written = log
            .append("s", ExpectedVersion::NoStream, &[event(1), event(2)])
            .await
            .expect("append");
        log.close().await;
        written
    };
    let log = SqliteEventStore::open(&path, 2).await.expect("reopen");
    assert_eq!(log.read_stream("s", 0).await.expect("read"), before);
    let next = log
        .append("t", ExpectedVersion::NoStream, &[event(3)])
        .await
        .expect("append");
    assert_eq!(next[0].global_position, before[1].global_position + 1);
}

/// Readers in the same process wait on `appended` instead of polling; a
/// refused append does not move it.
#[tokio::test]
async fn sqlite_appends_wake_readers_in_process() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = SqliteEventStore::open(&dir.path().join("events.db"), 2)
        .await
        .expect("open");
    let mut appended = log.appended();
    let written = log
        .append("s", ExpectedVersion::NoStream, &[event(1)])
        .await
        .expect("append");
    tokio::time::timeout(Duration::from_secs(5), appended.changed())
        .await
        .expect("woken in time")
        .expect("the log is open");
    assert_eq!(*appended.borrow_and_update(), written[0].global_position);
    let refused = log
        .append("s", ExpectedVersion::NoStream, &[event(2)])
        .await;
    assert!(refused.is_err());
    assert!(!appended.has_changed().expect("the log is open"));
}

/// A registration wakes readers in the same process like an append; a
/// refused one does not.
#[tokio::test]
async fn sqlite_registrations_wake_readers_in_process() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = SqliteEventStore::open(&dir.path().join("events.db"), 2)
        .await
        .expect("open");
    let mut appended = log.appended();
    let written = log
        .register(
            "user-g",
            ExpectedVersion::NoStream,
            &[event(1)],
            &credentials("gina"),
        )
        .await
        .expect("register");
    tokio::time::timeout(Duration::from_secs(5), appended.changed())
        .await
        .expect("woken in time")
        .expect("the log is open");
    assert_eq!(*appended.borrow_and_update(), written[0].global_position);
    let refused = log
        .register(
            "user-h",
            ExpectedVersion::NoStream,
            &[event(2)],
            &credentials("GINA"),
        )
        .await;
    assert!(refused.is_err());
    assert!(!appended.has_changed().expect("the log is open"));
}
