//! A fresh event log per test, written through the command service in
//! process; exports run in process into a buffer; a tiny RFC 4180 reader.

use analyst_tools::LogSource;
use analyst_tools::events::{self, EventsArgs};
use analyst_tools::progress::Progress;
use chrono::{DateTime, Utc};
use command_service::{CommandContext, CommandService, Intent};
use domain::{
    ChannelCommand, ChannelId, ChannelKind, Event, MessageId, MessagePolicy, RegisterUser, User,
    UserId, user_stream,
};
use event_store::{ExpectedVersion, NewEvent, PgEventStore};
use sqlx::PgPool;
use std::sync::Arc;
use test_support::TestDb;

pub struct Log {
    pub db: TestDb,
    pub store: PgEventStore,
    pub commands: Arc<CommandService>,
}

impl Log {
    pub async fn new() -> Log {
        let db = TestDb::new_event_log().await;
        let store = PgEventStore::new(db.pool.clone());
        let commands = Arc::new(CommandService::new(
            Arc::new(store.clone()),
            MessagePolicy::default(),
        ));
        Log {
            db,
            store,
            commands,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Settings naming this log and `read_url` as the live databases.
    pub fn settings(&self, read_url: &str) -> service_kit::Settings {
        let (log, read) = (self.db.url.clone(), read_url.to_owned());
        service_kit::Settings::from_lookup(move |name| match name {
            "CHAT_DATABASE_URL" => Some(log.clone()),
            "CHAT_READ_DATABASE_URL" => Some(read.clone()),
            _ => None,
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
        self.store
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

    /// The database's clock, a little after everything committed so far and a
    /// little before anything that follows.
    pub async fn now(&self) -> DateTime<Utc> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(self.pool())
            .await
            .expect("clock");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        now
    }

    /// Every event's cursor in commit order, straight from SQL.
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
pub async fn export(pool: &PgPool, args: &EventsArgs) -> String {
    let source = LogSource::Postgres(pool.clone());
    let plan = events::plan(&source, args).await.expect("plan");
    let mut out = Vec::new();
    events::export(&source, &plan, &mut out, &mut Progress::hidden())
        .await
        .expect("export");
    String::from_utf8(out).expect("utf-8")
}

/// The NDJSON lines of an export, parsed.
pub async fn export_lines(pool: &PgPool, args: &EventsArgs) -> Vec<serde_json::Value> {
    export(pool, args)
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
