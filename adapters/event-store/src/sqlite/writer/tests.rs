//! Groups built by hand, so which appends share one transaction is known: a
//! refusal rolls back only its own savepoint (the others commit, with no gap
//! in positions), and a failed commit records nothing of the group and fails
//! every caller in it. Real SQLite files in a temporary directory.

use super::{Job, commit_group};
use crate::sqlite::insert::Append;
use crate::{
    Accounts, AppendError, Credentials, Cursor, EventLog, ExpectedVersion, LogFilter, NewEvent,
    RecordedEvent, RegisterError, SqliteEventStore,
};
use serde_json::json;
use tokio::sync::oneshot;
use uuid::Uuid;

type Answer<E> = oneshot::Receiver<Result<Vec<RecordedEvent>, E>>;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: json!({ "n": n }),
        metadata: json!({}),
    }
}

fn keyed(n: u64, key: &str) -> NewEvent {
    NewEvent {
        metadata: json!({ "idempotency_key": key }),
        ..event(n)
    }
}

fn credentials(username: &str) -> Credentials {
    Credentials {
        user_id: Uuid::new_v4(),
        username: username.to_owned(),
        password_hash: format!("hash of {username}'s password"),
    }
}

fn append(
    stream: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> (Job, Answer<AppendError>) {
    let (reply, answer) = oneshot::channel();
    (
        Job::Append(Append::new(stream, expected, events), reply),
        answer,
    )
}

fn register(stream: &str, events: &[NewEvent], username: &str) -> (Job, Answer<RegisterError>) {
    let (reply, answer) = oneshot::channel();
    let append = Append::new(stream, ExpectedVersion::NoStream, events);
    (Job::Register(append, credentials(username), reply), answer)
}

async fn open() -> (tempfile::TempDir, SqliteEventStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = SqliteEventStore::open(&dir.path().join("events.db"), 2)
        .await
        .expect("open the SQLite log");
    (dir, log)
}

async fn whole_log(log: &SqliteEventStore) -> Vec<RecordedEvent> {
    log.read_all(Cursor::START, 1000, &LogFilter::default())
        .await
        .expect("read")
}

fn numbers(events: &[RecordedEvent]) -> Vec<Option<u64>> {
    events.iter().map(|e| e.data["n"].as_u64()).collect()
}

#[tokio::test]
async fn a_refusal_in_a_group_rolls_back_only_its_own_append() {
    let (_dir, log) = open().await;
    log.register(
        "user-zoe",
        ExpectedVersion::NoStream,
        &[event(0)],
        &credentials("zoe"),
    )
    .await
    .expect("register");
    let taken_id = event(99);
    let (a, a_answer) = append("s1", ExpectedVersion::NoStream, &[event(1), event(2)]);
    let (b, b_answer) = append("s1", ExpectedVersion::NoStream, &[event(3)]);
    let (c, c_answer) = append(
        "s2",
        ExpectedVersion::Any,
        &[taken_id.clone(), keyed(4, "k")],
    );
    let (d, d_answer) = append("s3", ExpectedVersion::Any, &[event(5), keyed(6, "k")]);
    let (e, e_answer) = append("s4", ExpectedVersion::Any, &[event(7), taken_id]);
    let (f, f_answer) = register("user-x", &[event(8)], "ZOE");
    let (g, g_answer) = append("s1", ExpectedVersion::Exact(2), &[event(9)]);
    let (h, h_answer) = register("user-yan", &[event(10)], "yan");
    let woken = log.appended();
    commit_group(&log.writer, vec![a, b, c, d, e, f, g, h], &log.appended).await;

    let a = a_answer.await.expect("answered").expect("a new stream");
    assert!(
        matches!(b_answer.await.expect("answered"), Err(AppendError::Conflict { ref stream_id, .. }) if stream_id == "s1"),
        "the group's earlier append made s1 exist"
    );
    let c = c_answer
        .await
        .expect("answered")
        .expect("a first use of the key");
    assert!(matches!(
        d_answer.await.expect("answered"),
        Err(AppendError::DuplicateIdempotencyKey(ref k)) if k == "k"
    ));
    assert!(matches!(
        e_answer.await.expect("answered"),
        Err(AppendError::DuplicateEventId)
    ));
    assert!(matches!(
        f_answer.await.expect("answered"),
        Err(RegisterError::UsernameTaken(ref name)) if name == "ZOE"
    ));
    let g = g_answer
        .await
        .expect("answered")
        .expect("s1 at 2 within the group");
    let h = h_answer.await.expect("answered").expect("a free username");
    assert_eq!(g[0].stream_version, 3);

    let all = whole_log(&log).await;
    assert_eq!(
        numbers(&all),
        [0, 1, 2, 99, 4, 9, 10].map(Some),
        "exactly the accepted appends, in queue order"
    );
    assert_eq!(
        all.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>(),
        "a rolled-back savepoint leaves no gap"
    );
    assert_eq!(
        all[1..],
        [a, c, g, h.clone()].concat()[..],
        "what each caller got is what is stored"
    );
    for refused in ["s3", "s4", "user-x"] {
        assert_eq!(
            log.stream_version(refused).await.expect("version"),
            0,
            "{refused}"
        );
    }
    assert!(log.credentials_of("yan").await.expect("lookup").is_some());
    assert!(woken.has_changed().expect("the log is open"));
    assert_eq!(*woken.borrow(), h[0].global_position);
}

/// A deferred foreign key is checked at COMMIT: an append to the stream
/// `poison` makes the group's commit fail after every savepoint succeeded.
#[tokio::test]
async fn a_failed_commit_fails_every_caller_of_the_group() {
    let (_dir, log) = open().await;
    sqlx::raw_sql(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED); \
         CREATE TRIGGER poison AFTER INSERT ON events WHEN NEW.stream_id = 'poison' \
         BEGIN INSERT INTO child VALUES (1); END;",
    )
    .execute(&log.writer)
    .await
    .expect("the poison");
    let woken = log.appended();
    let (a, a_answer) = append("s1", ExpectedVersion::NoStream, &[event(1)]);
    let (b, b_answer) = register("user-zed", &[event(2)], "zed");
    let (c, c_answer) = append("poison", ExpectedVersion::Any, &[event(3)]);
    let (d, d_answer) = append("s1", ExpectedVersion::NoStream, &[event(4)]);
    commit_group(&log.writer, vec![a, b, c, d], &log.appended).await;

    for (name, answer) in [("a", a_answer), ("c", c_answer), ("d", d_answer)] {
        let failed = answer.await.expect("answered");
        assert!(
            matches!(&failed, Err(AppendError::Database(e)) if e.to_string().contains("FOREIGN KEY")),
            "{name}: {failed:?}"
        );
    }
    assert!(matches!(
        b_answer.await.expect("answered"),
        Err(RegisterError::Database(_))
    ));
    assert!(
        whole_log(&log).await.is_empty(),
        "nothing of the group is recorded"
    );
    assert_eq!(log.credentials_of("zed").await.expect("lookup"), None);
    assert!(!woken.has_changed().expect("the log is open"));

    let next = log
        .append("s1", ExpectedVersion::NoStream, &[event(5)])
        .await
        .expect("the next group commits");
    assert_eq!(next[0].global_position, 1);
    assert_eq!(numbers(&whole_log(&log).await), [Some(5)]);
}
