//! One behaviour, two backends: a test written once against `Backend` runs
//! on PostgreSQL/RabbitMQ/Redis (`Pipeline`) and on an embedded data
//! directory (`Files`), through the `chat` commands and the ports, so the
//! tools cannot drift apart (after `event-store/tests/behaviour.rs`).

use crate::files::Files;
use crate::helpers::Pipeline;
use command_service::CommandService;
use domain::Event;
use event_store::{Cursor, EventLog, LogFilter};
use projector::EventSchemas;
use read_model::{LIVE_SCHEMA, ReadModel};
use std::sync::Arc;
use std::time::Duration;

pub enum Backend {
    Services(Box<Pipeline>),
    Embedded(Box<Files>),
}

impl Backend {
    pub async fn services() -> Backend {
        Backend::Services(Box::new(Pipeline::running().await))
    }

    pub async fn embedded() -> Backend {
        Backend::Embedded(Box::new(Files::running().await))
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        match self {
            Backend::Services(p) => Arc::new(p.store()),
            Backend::Embedded(f) => f.log.clone(),
        }
    }

    pub fn read(&self) -> Arc<dyn ReadModel> {
        match self {
            Backend::Services(p) => Arc::new(read_model::PgReadModel::new(p.read.pool.clone())),
            Backend::Embedded(f) => Arc::new(f.read.clone()),
        }
    }

    pub fn commands(&self) -> &CommandService {
        match self {
            Backend::Services(p) => &p.commands,
            Backend::Embedded(f) => &f.commands,
        }
    }

    pub async fn chat(&self, args: &[&str]) -> (anyhow::Result<std::process::ExitCode>, String) {
        match self {
            Backend::Services(p) => p.chat(args).await,
            Backend::Embedded(f) => f.chat(args).await,
        }
    }

    /// `chat status --json ...`: its exit code and report.
    pub async fn status(&self, extra: &[&str]) -> (std::process::ExitCode, serde_json::Value) {
        let args: Vec<&str> = ["status", "--json"].iter().chain(extra).copied().collect();
        let (code, out) = self.chat(&args).await;
        let code = code.expect("status runs");
        let json = serde_json::from_str(out.trim()).expect("--json prints one JSON object");
        (code, json)
    }

    /// Waits until the live read model has applied every event of the log.
    pub async fn wait_projected(&self) {
        match self {
            Backend::Services(p) => p.wait_projected().await,
            Backend::Embedded(f) => f.wait_projected().await,
        }
    }

    /// Waits until every event is on its way to the projector: the relay
    /// published it (services); the projector reads the log itself (embedded).
    pub async fn wait_delivered(&self) {
        if let Backend::Services(_) = self {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while self.status(&[]).await.1["relay"]["lag_events"] != 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the relay did not catch up"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub async fn stop_projector(&mut self) {
        match self {
            Backend::Services(p) => {
                p.stop_projector();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Backend::Embedded(f) => f.stop_projector().await,
        }
    }

    /// Runs SQL that both dialects read alike on the live read model, past the port.
    pub async fn damage(&self, sql: &str) {
        match self {
            Backend::Services(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&p.read.pool)
                    .await
                    .expect("damage");
            }
            Backend::Embedded(f) => {
                let pool = f.raw_read().await;
                let sql = sql.replace("rm.", "");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("damage");
                pool.close().await;
            }
        }
    }

    /// A fresh, empty read model of the same kind, and what it lives in.
    pub async fn fresh_read_model(&self) -> (Arc<dyn ReadModel>, Box<dyn std::any::Any + Send>) {
        match self {
            Backend::Services(_) => {
                let db = test_support::TestDb::new_read_model().await;
                read_model::create_tables(&db.pool, LIVE_SCHEMA)
                    .await
                    .expect("tables");
                (
                    Arc::new(read_model::PgReadModel::new(db.pool.clone())),
                    Box::new(db),
                )
            }
            Backend::Embedded(_) => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let read = read_model::SqliteReadModel::open(&dir.path().join("read.db"))
                    .await
                    .expect("open");
                (Arc::new(read), Box::new(dir))
            }
        }
    }
}

/// `both!(test)`: `test::services` and `test::embedded`, each on its own backend.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn services() {
                super::$name(crate::backends::Backend::services().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$name(crate::backends::Backend::embedded().await).await;
            }
        }
    )*};
}
pub(crate) use both;

/// Folds the whole log into `read` event by event, the way the live
/// projector decides: checked against its schema and decoded, then
/// `apply_event` in a transaction of its own; an event it refuses is skipped
/// (the live projector dead-letters it).
pub async fn reference_fold(log: &dyn EventLog, read: &dyn ReadModel) {
    let schemas = EventSchemas::load().expect("schemas");
    let mut cursor = Cursor::START;
    loop {
        let page = log
            .read_all(cursor, 500, &LogFilter::default())
            .await
            .expect("log page");
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        for recorded in &page {
            let body = serde_json::to_vec(recorded).expect("envelope");
            let Ok((_, event)) = projector::decode_delivery(&body, &schemas) else {
                continue;
            };
            let event: Event = event;
            let mut tx = read.begin(LIVE_SCHEMA).await.expect("begin");
            if projector::apply_event(&mut *tx, log, recorded, &event)
                .await
                .is_ok()
            {
                tx.commit().await.expect("commit");
            }
        }
    }
}

/// What the read model answers through its port about every channel and
/// user and stream of the log: two models that answer alike are alike.
pub async fn answers(read: &dyn ReadModel, log: &dyn EventLog) -> Vec<String> {
    let events = log
        .read_all(Cursor::START, i64::MAX, &LogFilter::default())
        .await
        .expect("the log");
    let mut streams: Vec<String> = events.iter().map(|e| e.stream_id.clone()).collect();
    streams.sort();
    streams.dedup();
    let uuid_of = |prefix: &str| -> Vec<uuid::Uuid> {
        streams
            .iter()
            .filter_map(|s| s.strip_prefix(prefix))
            .filter_map(|id| id.parse().ok())
            .collect()
    };
    let (channels, mut users) = (uuid_of("channel-"), uuid_of("user-"));
    for e in &events {
        for field in ["user_id", "owner_id", "sender_id"] {
            if let Some(id) = e.data[field].as_str().and_then(|s| s.parse().ok()) {
                users.push(id);
            }
        }
    }
    users.sort();
    users.dedup();
    let mut out = Vec::new();
    for &c in &channels {
        for &u in &users {
            out.push(format!(
                "{:?}",
                read.channel_for(c, u).await.expect("channel")
            ));
        }
        out.push(format!(
            "{:?}",
            read.members(c, 10_000).await.expect("members")
        ));
        out.push(format!(
            "{:?}",
            read.messages_between(c, 0, i64::MAX, 100_000)
                .await
                .expect("messages")
        ));
        out.push(format!("{:?}", read.last_seq(c).await.expect("last seq")));
    }
    for &u in &users {
        out.push(format!(
            "{:?}",
            read.channels_of(u, 100_000).await.expect("mine")
        ));
    }
    let mut positions: Vec<(String, u64)> = read
        .stream_positions(LIVE_SCHEMA, &streams)
        .await
        .expect("positions")
        .into_iter()
        .collect();
    positions.sort();
    out.push(format!("{positions:?}"));
    out
}

/// Asserts two sets of answers are equal, naming the first that differs.
pub fn assert_same_answers(left: &[String], right: &[String], what: &str) {
    assert_eq!(left.len(), right.len(), "{what}: not as many answers");
    for (n, (l, r)) in left.iter().zip(right).enumerate() {
        assert_eq!(l, r, "{what}: answer {n} differs");
    }
}
