//! The read database: the tables the projector writes and the query service
//! reads. Every table lives in one named schema (`rm` when live), so a
//! rebuild can create the same tables in another schema beside the live ones
//! and switch by renaming schemas in one transaction.

mod port;
mod postgres;
mod sqlite;

pub use port::{
    ChannelAccess, DirectoryRow, MemberRow, MessageRow, MyChannelRow, ReadModel, ReadTransaction,
    ReadWrites,
};
pub use postgres::{PgReadModel, PgReadWrites};
pub use sqlite::{CheckpointRow, DeadLetter, SqliteReadModel};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The checkpoint name of the live projection.
pub const LIVE_PROJECTION: &str = "live";

/// The schema queries read and the live projector writes.
pub const LIVE_SCHEMA: &str = "rm";

/// Why the read database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error(transparent)]
    Connect(#[from] event_store::ConnectError),
    #[error("invalid read database URL: {0}")]
    Url(sqlx::Error),
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Connects to the read database, creating it and the live schema if missing
/// (tolerating a concurrent creator).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, ReadModelError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(ReadModelError::Url)?
        .options([("idle_in_transaction_session_timeout", "10s")]);
    event_store::create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    create_tables(&pool, LIVE_SCHEMA).await?;
    Ok(pool)
}

/// Creates the read-model tables in `schema` (idempotent; serialised by an
/// advisory lock so concurrent starters do not race on the catalog).
pub async fn create_tables(pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('chat-read-model-ddl'))")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl(schema)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The DDL of every read-model table in `schema`.
pub fn ddl(schema: &str) -> String {
    let s = quote_ident(schema);
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS {s};

CREATE TABLE IF NOT EXISTS {s}.users (
    user_id       uuid PRIMARY KEY,
    username      text NOT NULL,
    display_name  text NOT NULL,
    registered_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS {s}.channels (
    channel_id  uuid PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    max_members int,
    owner_id    uuid NOT NULL,
    archived    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    -- The seq of the channel's last message (0: none yet).
    last_seq    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS {s}.members (
    channel_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    role       text NOT NULL,
    muted      boolean NOT NULL DEFAULT false,
    -- The member's read pointer: every message with seq <= read_seq is read.
    read_seq   bigint NOT NULL DEFAULT 0,
    joined_at  timestamptz NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_by_user ON {s}.members (user_id);

CREATE TABLE IF NOT EXISTS {s}.bans (
    channel_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    banned_at  timestamptz NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE IF NOT EXISTS {s}.messages (
    channel_id   uuid NOT NULL,
    seq          bigint NOT NULL,
    message_id   uuid NOT NULL UNIQUE,
    sender_id    uuid NOT NULL,
    -- NULL once deleted: a tombstone keeps its seq but not its content.
    content      text,
    message_type text NOT NULL,
    created_at   timestamptz NOT NULL,
    edited_at    timestamptz,
    deleted      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (channel_id, seq)
);

-- The last stream version applied per stream: makes every write idempotent
-- and order-safe (an event at or below it is a duplicate).
CREATE TABLE IF NOT EXISTS {s}.stream_positions (
    stream_id text PRIMARY KEY,
    version   bigint NOT NULL
);

-- Where each projection stands in the log, for lag reporting: the commit-order
-- cursor (transaction_id, global_position) of the latest event applied
-- (transaction_id 0: written before the cursor was kept; only the position is known).
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    projection      text PRIMARY KEY,
    global_position bigint NOT NULL,
    recorded_at     timestamptz NOT NULL,
    applied_at      timestamptz NOT NULL,
    transaction_id  bigint NOT NULL DEFAULT 0
);
ALTER TABLE {s}.checkpoints ADD COLUMN IF NOT EXISTS transaction_id bigint NOT NULL DEFAULT 0;
"#
    )
}

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
