//! Appends per second to the event log with 1, 8 and 64 concurrent writers, to
//! different streams and to one hot stream, beside a raw `INSERT` into a table
//! with the same columns and indexes, measured in the same run.
//!
//! `cargo run --release -p loadgen --bin append-bench [-- SECONDS_PER_CELL]`
//!
//! With a second argument, `COMMIT_DELAY_US`, every connection waits that long
//! before flushing its commit (`commit_delay`, `commit_siblings = 0`: a slow
//! disk, as networked storage has), and the table compares appends with the
//! old `NOTIFY` trigger inside the append's transaction against today's
//! appends (notification sent outside it), beside the raw `INSERT`.

use event_store::{AppendError, ExpectedVersion, NewEvent, PgEventStore};
use serde_json::json;
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let commit_delay_us: Option<u32> = std::env::args().nth(2).and_then(|s| s.parse().ok());
    let url = loadgen::fresh_database("chat_bench_append").await?;
    let pool = event_store::connect(&url, 70).await?;
    sqlx::raw_sql("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await?;
    let window = Duration::from_secs(seconds);
    if let Some(delay) = commit_delay_us {
        pool.close().await;
        return slow_commit_table(&url, delay, window).await;
    }
    let store = PgEventStore::new(pool.clone());

    println!(
        "| writers | raw INSERT (rows/s) | append, own stream (events/s) | vs raw | one hot stream, optimistic `Any` (events/s) | its conflicts | one hot stream, serialised in process like the command service (events/s) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for writers in [1usize, 8, 64] {
        let raw = run(writers, window, |w| raw_insert(pool.clone(), w)).await;
        let own = run(writers, window, |w| append_own(store.clone(), w)).await;
        let conflicts = Arc::new(AtomicU64::new(0));
        let hot = run(writers, window, |_| {
            append_hot(store.clone(), conflicts.clone())
        })
        .await;
        let head = Arc::new(tokio::sync::Mutex::new(0u64));
        let stream = format!("hot-serialised-{writers}");
        let serialised = run(writers, window, |_| {
            append_serialised(store.clone(), stream.clone(), head.clone())
        })
        .await;
        println!(
            "| {writers} | {raw:.0} | {own:.0} | {:.0}% | {hot:.0} | {} | {serialised:.0} |",
            own / raw * 100.0,
            conflicts.load(Ordering::Relaxed)
        );
        eprintln!("  done: {writers} writers");
    }
    Ok(())
}

/// Appends to own streams with and without a `NOTIFY` in the append's
/// transaction, every commit delayed by `delay_us`.
async fn slow_commit_table(url: &str, delay_us: u32, window: Duration) -> anyhow::Result<()> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?.options([
        ("commit_delay", delay_us.to_string()),
        ("commit_siblings", "0".to_owned()),
    ]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(70)
        .connect_with(options)
        .await?;
    let store = PgEventStore::new(pool.clone());
    println!(
        "| writers | raw INSERT (rows/s) | append, NOTIFY in its transaction (before) | append, NOTIFY after commit (now) | now vs raw |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for writers in [1usize, 8, 64] {
        let raw = run(writers, window, |w| raw_insert(pool.clone(), w)).await;
        sqlx::raw_sql(OLD_NOTIFY_TRIGGER).execute(&pool).await?;
        let before = run(writers, window, |w| append_own(store.clone(), w)).await;
        sqlx::raw_sql("DROP TRIGGER events_appended ON events")
            .execute(&pool)
            .await?;
        let now = run(writers, window, |w| append_own(store.clone(), w)).await;
        println!(
            "| {writers} | {raw:.0} | {before:.0} | {now:.0} | {:.0}% |",
            now / raw * 100.0
        );
        eprintln!("  done: {writers} writers");
    }
    Ok(())
}

/// The trigger the log had until the fix: a statement-level `NOTIFY` inside
/// every append's transaction.
const OLD_NOTIFY_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION notify_events_appended() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('chat_events', ''); RETURN NULL; END $$;
CREATE TRIGGER events_appended AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended();";

/// Runs `writers` copies of a loop for `window`; returns operations per second.
async fn run<F, Fut>(writers: usize, window: Duration, make: impl Fn(usize) -> F) -> f64
where
    F: FnOnce(Arc<AtomicU64>, Instant) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(make(w)(done.clone(), deadline)))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
}

fn event() -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: json!({"channel_id": Uuid::nil(), "message_id": Uuid::now_v7(), "seq": 1, "sender_id": Uuid::nil(), "content": "hello there", "message_type": "text"}),
        metadata: json!({"correlation_id": Uuid::now_v7(), "actor_id": Uuid::nil()}),
    }
}

fn raw_insert(
    pool: PgPool,
    writer: usize,
) -> impl FnOnce(
    Arc<AtomicU64>,
    Instant,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    move |done, deadline| {
        Box::pin(async move {
            let stream = format!("raw-{writer}-{}", Uuid::now_v7());
            let mut version = 0i64;
            while Instant::now() < deadline {
                version += 1;
                let e = event();
                let ok = sqlx::query(
                    "INSERT INTO raw_events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&stream)
                .bind(version)
                .bind(e.event_id)
                .bind(&e.event_type)
                .bind(e.schema_version as i32)
                .bind(&e.data)
                .bind(&e.metadata)
                .execute(&pool)
                .await
                .is_ok();
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    }
}

fn append_own(
    store: PgEventStore,
    writer: usize,
) -> impl FnOnce(
    Arc<AtomicU64>,
    Instant,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    move |done, deadline| {
        Box::pin(async move {
            let stream = format!("own-{writer}-{}", Uuid::now_v7());
            let mut version = 0u64;
            while Instant::now() < deadline {
                let expected = if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                };
                if store.append(&stream, expected, &[event()]).await.is_ok() {
                    version += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    }
}

fn append_hot(
    store: PgEventStore,
    conflicts: Arc<AtomicU64>,
) -> impl FnOnce(
    Arc<AtomicU64>,
    Instant,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    move |done, deadline| {
        Box::pin(async move {
            while Instant::now() < deadline {
                match store.append("hot", ExpectedVersion::Any, &[event()]).await {
                    Ok(_) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(AppendError::Conflict { .. }) => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

fn append_serialised(
    store: PgEventStore,
    stream: String,
    head: Arc<tokio::sync::Mutex<u64>>,
) -> impl FnOnce(
    Arc<AtomicU64>,
    Instant,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    move |done, deadline| {
        Box::pin(async move {
            while Instant::now() < deadline {
                let mut version = head.lock().await;
                let expected = if *version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(*version)
                };
                if store.append(&stream, expected, &[event()]).await.is_ok() {
                    *version += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    }
}
