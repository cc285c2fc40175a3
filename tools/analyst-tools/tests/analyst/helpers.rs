//! A fresh event log per test (PostgreSQL, or an embedded data directory),
//! written through the command service in process; exports run in process into a buffer; a tiny RFC 4180 reader.

use analyst_tools::LogSource;
use analyst_tools::events::{self, EventsArgs};
use analyst_tools::progress::Progress;
use chrono::{DateTime, Utc};
use command_service::{CommandContext, CommandService, Intent};
use domain::{
    ChannelCommand, ChannelId, ChannelKind, Event, MessageId, MessagePolicy, RegisterUser, User,
    UserId, user_stream,
};
use event_store::{
    Cursor, EventLog, ExpectedVersion, LogFilter, NewEvent, PgEventStore, RecordedEvent,
    SqliteEventStore,
};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use test_support::TestDb;

/// `both!(test)`: `test::postgres` and `test::sqlite`, each `test(log)` on a
/// log of its own: a fresh PostgreSQL database, or an embedded data
/// directory in a temporary directory.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::helpers::Log::new().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::helpers::Log::sqlite().await).await;
            }
        }
    )*};
}

/// What holds a test's log.
pub enum Backend {
    Postgres {
        db: TestDb,
        store: PgEventStore,
    },
    /// The data directory is `dir/data`, so a test can name paths beside it.
    Sqlite {
        dir: tempfile::TempDir,
    },
}

pub struct Log {
    pub backend: Backend,
    pub port: Arc<dyn EventLog>,
    pub commands: Arc<CommandService>,
}

impl Log {
    /// A log in a fresh PostgreSQL database.
    pub async fn new() -> Log {
        let db = TestDb::new_event_log().await;
        let store = PgEventStore::new(db.pool.clone());
        let commands = Arc::new(CommandService::new(
            Arc::new(store.clone()),
            MessagePolicy::default(),
        ));
        Log {
            port: Arc::new(store.clone()),
            backend: Backend::Postgres { db, store },
            commands,
        }
    }

    /// An embedded data directory whose log is written with `SqliteEventStore`.
    pub async fn sqlite() -> Log {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data directory");
        let store = SqliteEventStore::open(&data.join("events.db"), 2)
            .await
            .expect("open the SQLite log");
        let commands = Arc::new(CommandService::new(
            Arc::new(store.clone()),
            MessagePolicy::default(),
        ));
        Log {
            port: Arc::new(store),
            backend: Backend::Sqlite { dir },
            commands,
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.backend, Backend::Sqlite { .. })
    }

    /// The PostgreSQL log's pool (the PostgreSQL-only tests).
    pub fn pool(&self) -> &PgPool {
        match &self.backend {
            Backend::Postgres { db, .. } => &db.pool,
            Backend::Sqlite { .. } => panic!("a PostgreSQL-only test ran on SQLite"),
        }
    }

    /// The PostgreSQL log's database.
    pub fn db(&self) -> &TestDb {
        match &self.backend {
            Backend::Postgres { db, .. } => db,
            Backend::Sqlite { .. } => panic!("a PostgreSQL-only test ran on SQLite"),
        }
    }

    /// The PostgreSQL log's store.
    pub fn store(&self) -> &PgEventStore {
        match &self.backend {
            Backend::Postgres { store, .. } => store,
            Backend::Sqlite { .. } => panic!("a PostgreSQL-only test ran on SQLite"),
        }
    }

    /// The embedded data directory (None on PostgreSQL).
    pub fn data_dir(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Postgres { .. } => None,
            Backend::Sqlite { dir } => Some(dir.path().join("data")),
        }
    }

    /// A scratch path beside the data directory (SQLite only).
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        match &self.backend {
            Backend::Postgres { .. } => panic!("no scratch directory on PostgreSQL"),
            Backend::Sqlite { dir } => dir.path().join(name),
        }
    }

    /// The log as the tools read it.
    pub fn source(&self) -> LogSource {
        match &self.backend {
            Backend::Postgres { db, .. } => LogSource::Postgres(db.pool.clone()),
            Backend::Sqlite { .. } => LogSource::Embedded(self.port.clone()),
        }
    }

    /// Settings choosing this log's backend: on PostgreSQL this log and
    /// `read_url` as the live databases; embedded, this data directory.
    pub fn settings(&self, read_url: &str) -> service_kit::Settings {
        let lookup: Vec<(&str, String)> = match &self.backend {
            Backend::Postgres { db, .. } => vec![
                ("CHAT_DATABASE_URL", db.url.clone()),
                ("CHAT_READ_DATABASE_URL", read_url.to_owned()),
            ],
            Backend::Sqlite { dir } => vec![
                ("CHAT_BACKEND", "embedded".to_owned()),
                (
                    "CHAT_DATA_DIR",
                    dir.path().join("data").display().to_string(),
                ),
            ],
        };
        service_kit::Settings::from_lookup(move |name| {
            lookup
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
        .expect("settings")
    }

    /// Registers a user by appending `UserRegistered` to their stream.
    pub async fn register(&self, username: &str) -> UserId {
        let user_id = UserId::new();
        let events = User::decide(
            None,
            RegisterUser {
                user_id,
                username: username.into(),
                display_name: None,
            },
        )
        .expect("registration decides");
        self.port
            .append(
                &user_stream(user_id),
                ExpectedVersion::NoStream,
                &new_events(&events),
            )
            .await
            .expect("registered");
        user_id
    }

    pub async fn command(&self, actor: UserId, channel: ChannelId, command: ChannelCommand) {
        run_command(&self.commands, actor, channel, command).await;
    }

    pub async fn create_channel(&self, owner: UserId, name: &str) -> ChannelId {
        let channel_id = ChannelId::new();
        let create = ChannelCommand::Create {
            channel_id,
            name: name.into(),
            kind: ChannelKind::Public,
            max_members: None,
        };
        self.command(owner, channel_id, create).await;
        channel_id
    }

    /// Sends a message; returns its id.
    pub async fn send(&self, sender: UserId, channel: ChannelId, content: &str) -> MessageId {
        send(&self.commands, sender, channel, content).await
    }

    /// The log's clock (the database's on PostgreSQL, this process's on
    /// SQLite, which stamps appends itself), a little after everything
    /// committed so far and a little before anything that follows.
    pub async fn now(&self) -> DateTime<Utc> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let now = match &self.backend {
            Backend::Postgres { db, .. } => sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(&db.pool)
                .await
                .expect("clock"),
            Backend::Sqlite { .. } => Utc::now(),
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        now
    }

    /// The whole log in commit order, read through the port. On PostgreSQL
    /// a whole-log read sees only what no running transaction (of any test
    /// in the cluster) can still overtake, so it is read again until it
    /// holds every row.
    pub async fn all(&self) -> Vec<RecordedEvent> {
        let rows: Option<i64> = match &self.backend {
            Backend::Postgres { db, .. } => Some(
                sqlx::query_scalar("SELECT count(*) FROM events")
                    .fetch_one(&db.pool)
                    .await
                    .expect("count"),
            ),
            Backend::Sqlite { .. } => None,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let all = self.read_whole_log().await;
            if rows.is_none_or(|n| n == all.len() as i64) {
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the log's {rows:?} rows never became visible ({} seen)",
                all.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    async fn read_whole_log(&self) -> Vec<RecordedEvent> {
        let mut all = Vec::new();
        let mut after = Cursor::START;
        loop {
            let page = self
                .port
                .read_all(after, 10_000, &LogFilter::default())
                .await
                .expect("read the log");
            let Some(last) = page.last() else {
                return all;
            };
            after = last.cursor();
            all.extend(page);
        }
    }

    /// The cursors of the events that satisfy `keep`, in commit order.
    pub async fn cursors_where(&self, keep: impl Fn(&RecordedEvent) -> bool) -> Vec<String> {
        self.all()
            .await
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.cursor().to_string())
            .collect()
    }

    /// Every event's cursor in commit order, straight from SQL (PostgreSQL).
    pub async fn sql_cursors(&self, filter: &str) -> Vec<String> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT transaction_id::text || '-' || global_position FROM events {filter} \
             ORDER BY transaction_id, global_position"
        )))
        .fetch_all(self.pool())
        .await
        .expect("sql order")
    }
}

pub async fn run_command(
    commands: &CommandService,
    actor: UserId,
    channel: ChannelId,
    command: ChannelCommand,
) {
    let ctx = CommandContext {
        actor,
        correlation_id: uuid::Uuid::now_v7(),
        expected_version: None,
        idempotency_key: None,
        request_fingerprint: None,
    };
    commands
        .execute(channel, Intent::Command(command), &ctx, "any")
        .await
        .expect("command succeeds");
}

pub async fn send(
    commands: &CommandService,
    sender: UserId,
    channel: ChannelId,
    content: &str,
) -> MessageId {
    let message_id = MessageId::new();
    let send = ChannelCommand::SendMessage {
        message_id,
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: None,
    };
    run_command(commands, sender, channel, send).await;
    message_id
}

pub fn new_events(events: &[Event]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| {
            let stored = e.to_stored();
            NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: stored.event_type,
                schema_version: stored.schema_version,
                data: stored.data,
                metadata: serde_json::json!({"correlation_id": uuid::Uuid::now_v7()}),
            }
        })
        .collect()
}

/// Runs an export in process; returns what it wrote.
pub async fn export(source: &LogSource, args: &EventsArgs) -> String {
    let plan = events::plan(source, args).await.expect("plan");
    let mut out = Vec::new();
    events::export(source, &plan, &mut out, &mut Progress::hidden())
        .await
        .expect("export");
    String::from_utf8(out).expect("utf-8")
}

/// The NDJSON lines of an export, parsed.
pub async fn export_lines(source: &LogSource, args: &EventsArgs) -> Vec<serde_json::Value> {
    export(source, args)
        .await
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

pub fn cursors(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["cursor"].as_str().expect("cursor").to_owned())
        .collect()
}

/// RFC 4180: records end with CRLF; a quoted field may hold commas, CRLF and
/// doubled quotes.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, '\n') => panic!("a bare LF ends a record"),
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quoted field");
    assert!(
        field.is_empty() && record.is_empty(),
        "last record lacks CRLF"
    );
    records
}
