//! The SQLite adapter of the read model (the `embedded` backend).
//!
//! A schema is an attached database: every connection's main database is a
//! private in-memory one and the live tables' file is attached as `rm`, so
//! the queries name `rm.<table>` exactly as on PostgreSQL. Another schema (a
//! rebuild beside the live one) is the file `read-<schema>.db` next to the
//! live file, attached on every connection once it is asked for.
//!
//! One write connection, as in the event log's adapter: transactions begin
//! IMMEDIATE (taking the write lock at once), so no row locks are needed for
//! `lock_positions`. WAL lets the readers read while the writer writes;
//! `synchronous = FULL` makes a committed write survive a power cut.
//!
//! A rebuild's file is the exception (`open_scratch`, `bulk.rs`): it is
//! thrown away unless the rebuild completes, so it is written without
//! fsync, with its journal in memory and many rows to a statement.

use crate::port::{
    ChannelAccess, DirectoryRow, MemberRow, MessageRow, MyChannelRow, ReadModel, ReadTransaction,
    ReadWrites,
};
use crate::{LIVE_SCHEMA, quote_ident};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::Event;
use event_store::{Cursor, RecordedEvent};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Sqlite};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use uuid::Uuid;

mod bulk;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Read connections beside the one writer.
const READERS: u32 = 4;

/// The read model in SQLite files.
#[derive(Debug, Clone)]
pub struct SqliteReadModel {
    writer: SqlitePool,
    reader: SqlitePool,
    files: Arc<Files>,
}

/// Which file each schema lives in.
#[derive(Debug)]
struct Files {
    live: PathBuf,
    dir: PathBuf,
    /// The live file is a scratch one (`open_scratch`).
    scratch: bool,
    /// Schemas other than the live one, attached on every connection; the
    /// flag says whether this process has created their tables.
    others: Mutex<BTreeMap<String, bool>>,
}

impl Files {
    fn path_of(&self, schema: &str) -> PathBuf {
        if schema == LIVE_SCHEMA {
            self.live.clone()
        } else {
            self.dir.join(format!("read-{schema}.db"))
        }
    }

    fn wanted(&self) -> Vec<(String, PathBuf)> {
        let others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::once(LIVE_SCHEMA.to_owned())
            .chain(others.keys().cloned())
            .map(|schema| {
                let path = self.path_of(&schema);
                (schema, path)
            })
            .collect()
    }

    fn has_others(&self) -> bool {
        !self
            .others
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// A dead letter of the embedded backend: an event the projector gave up on.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    /// The envelope, as JSON.
    pub body: String,
    pub reason: String,
    pub failed_at: DateTime<Utc>,
}

/// Where a projection stands (for `chat status`).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRow {
    pub projection: String,
    pub cursor: Cursor,
    pub recorded_at: DateTime<Utc>,
    pub applied_at: DateTime<Utc>,
}

impl SqliteReadModel {
    /// Opens the live read model at `path` (creating the file and its
    /// tables); other schemas go beside it.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        Self::open_with(path, false).await
    }

    /// Opens a read model in a throwaway file, such as a rebuild's, that a
    /// crash may leave corrupt: it is written without fsync, its journal
    /// kept in memory and its pages in a large cache. Whoever opens one
    /// must discard the file unless it completed; a live model never is one.
    pub async fn open_scratch(path: &Path) -> Result<Self, sqlx::Error> {
        Self::open_with(path, true).await
    }

    async fn open_with(path: &Path, scratch: bool) -> Result<Self, sqlx::Error> {
        let files = Arc::new(Files {
            live: path.to_owned(),
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            scratch,
            others: Mutex::new(BTreeMap::new()),
        });
        let options = SqliteConnectOptions::new()
            .filename(":memory:")
            // Attached files inherit the main database's open flags.
            .create_if_missing(true)
            // Another process (an operator's tool) may hold the write lock
            // for a moment; wait for it rather than fail.
            .busy_timeout(Duration::from_secs(10));
        let writer = pool(1, &files, true)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        create_tables(&writer, LIVE_SCHEMA, scratch).await?;
        let reader = pool(READERS, &files, false).connect_with(options).await?;
        Ok(Self {
            writer,
            reader,
            files,
        })
    }

    /// Closes both pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Makes `schema` known to every connection, creating its tables when
    /// `create` (else only when its file exists). False: it has no file.
    async fn use_schema(&self, schema: &str, create: bool) -> Result<bool, sqlx::Error> {
        if schema == LIVE_SCHEMA {
            return Ok(true);
        }
        if schema.is_empty()
            || !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(sqlx::Error::Configuration(
                format!("schema {schema:?}: only letters, digits and `_` name a SQLite read model")
                    .into(),
            ));
        }
        let created = {
            let mut others = self
                .files
                .others
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match others.get(schema) {
                Some(created) => *created,
                None if create || self.files.path_of(schema).exists() => {
                    others.insert(schema.to_owned(), false);
                    false
                }
                None => return Ok(false),
            }
        };
        if create && !created {
            create_tables(&self.writer, schema, false).await?;
            self.files
                .others
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(schema.to_owned(), true);
        }
        Ok(true)
    }

    /// Stores an event the live projector gives up on, with why, and moves
    /// the live checkpoint past it, in one transaction: the projector never
    /// reads it again, and a second call for the same event (after a crash
    /// between the two) stores nothing more.
    pub async fn dead_letter(
        &self,
        recorded: &RecordedEvent,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let body = serde_json::to_string(recorded).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut tx = SqliteTransaction {
            tx,
            s: quote_ident(LIVE_SCHEMA),
        };
        sqlx::query(
            "INSERT INTO rm.dead_letters (event_id, stream_id, stream_version, event_type, body, reason, failed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(recorded.event_id)
        .bind(&recorded.stream_id)
        .bind(to_i64(recorded.stream_version))
        .bind(&recorded.event_type)
        .bind(body)
        .bind(reason)
        .bind(stamp(Utc::now()))
        .execute(&mut *tx.tx)
        .await?;
        tx.save_checkpoint(
            crate::LIVE_PROJECTION,
            Some(recorded.cursor()),
            recorded.recorded_at,
        )
        .await?;
        tx.tx.commit().await
    }

    /// The oldest `limit` dead letters.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, event_id, stream_id, stream_version, event_type, body, reason, failed_at \
             FROM rm.dead_letters ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
    }

    /// Removes dead letter `id` (false: there was none).
    pub async fn remove_dead_letter(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM rm.dead_letters WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every projection's checkpoint, by name.
    pub async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, sqlx::Error> {
        #[derive(sqlx::FromRow)]
        struct Stored {
            projection: String,
            transaction_id: i64,
            global_position: i64,
            recorded_at: DateTime<Utc>,
            applied_at: DateTime<Utc>,
        }
        let rows: Vec<Stored> = sqlx::query_as(
            "SELECT projection, transaction_id, global_position, recorded_at, applied_at \
             FROM rm.checkpoints ORDER BY projection",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| CheckpointRow {
                projection: r.projection,
                cursor: cursor(r.transaction_id, r.global_position),
                recorded_at: r.recorded_at,
                applied_at: r.applied_at,
            })
            .collect())
    }
}

fn pool(max: u32, files: &Arc<Files>, writer: bool) -> SqlitePoolOptions {
    let on_connect = files.clone();
    let on_acquire = files.clone();
    SqlitePoolOptions::new()
        .max_connections(max)
        .after_connect(move |conn, _| attach(conn, on_connect.clone(), writer))
        .before_acquire(move |conn, _| {
            let files = on_acquire.clone();
            Box::pin(async move {
                // A schema asked for since this connection was opened.
                if files.has_others() {
                    attach(conn, files, writer).await?;
                }
                Ok(true)
            })
        })
}

/// Attaches every wanted schema the connection lacks.
fn attach(
    conn: &mut SqliteConnection,
    files: Arc<Files>,
    writer: bool,
) -> BoxFuture<'_, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let attached: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_database_list")
            .fetch_all(&mut *conn)
            .await?;
        for (schema, path) in files.wanted() {
            if attached.contains(&schema) {
                continue;
            }
            let file = path.to_str().ok_or_else(|| {
                sqlx::Error::Configuration(
                    format!("the read model's path {} is not UTF-8", path.display()).into(),
                )
            })?;
            let s = quote_ident(&schema);
            sqlx::query(AssertSqlSafe(format!("ATTACH DATABASE $1 AS {s}")))
                .bind(file)
                .execute(&mut *conn)
                .await?;
            if writer && files.scratch && schema == LIVE_SCHEMA {
                for pragma in SCRATCH_PRAGMAS {
                    sqlx::query(AssertSqlSafe(format!("PRAGMA {s}.{pragma}")))
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query("PRAGMA temp_store = MEMORY")
                    .execute(&mut *conn)
                    .await?;
            } else if writer {
                sqlx::query(AssertSqlSafe(format!("PRAGMA {s}.synchronous = FULL")))
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    })
}

/// A scratch file's settings on the writer: nothing waits for the disk
/// (a crash may corrupt the file, which is then discarded), the rollback
/// journal in memory (rollbacks still work), 64 MiB of page cache so a
/// bulk load rarely reads back what it wrote.
const SCRATCH_PRAGMAS: [&str; 3] = [
    "synchronous = OFF",
    "journal_mode = MEMORY",
    "cache_size = -65536",
];

/// Creates the tables of `schema` (idempotent), in WAL mode unless it is
/// a scratch file (whose connection keeps its journal in memory).
async fn create_tables(
    writer: &SqlitePool,
    schema: &str,
    scratch: bool,
) -> Result<(), sqlx::Error> {
    let s = quote_ident(schema);
    if !scratch {
        // WAL is kept in the file; switching needs no other connection on it.
        sqlx::query(AssertSqlSafe(format!("PRAGMA {s}.journal_mode = WAL")))
            .execute(writer)
            .await?;
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::raw_sql(AssertSqlSafe(ddl(&s)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The tables of PostgreSQL's `ddl()` in SQLite's types: uuids as 16-byte
/// blobs, instants as fixed-width RFC 3339 text (which sorts as they do),
/// booleans as integers; plus the embedded backend's dead letters.
fn ddl(s: &str) -> String {
    format!(
        r#"
CREATE TABLE IF NOT EXISTS {s}.users (
    user_id       BLOB PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    registered_at TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS {s}.channels (
    channel_id  BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    max_members INTEGER,
    owner_id    BLOB NOT NULL,
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS {s}.members (
    channel_id BLOB NOT NULL,
    user_id    BLOB NOT NULL,
    role       TEXT NOT NULL,
    muted      INTEGER NOT NULL DEFAULT 0,
    read_seq   INTEGER NOT NULL DEFAULT 0,
    joined_at  TEXT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {s}.members_by_user ON members (user_id);

CREATE TABLE IF NOT EXISTS {s}.bans (
    channel_id BLOB NOT NULL,
    user_id    BLOB NOT NULL,
    banned_at  TEXT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS {s}.messages (
    channel_id   BLOB NOT NULL,
    seq          INTEGER NOT NULL,
    message_id   BLOB NOT NULL UNIQUE,
    sender_id    BLOB NOT NULL,
    content      TEXT,
    message_type TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    edited_at    TEXT,
    deleted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS {s}.stream_positions (
    stream_id TEXT PRIMARY KEY NOT NULL,
    version   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    projection      TEXT PRIMARY KEY NOT NULL,
    global_position INTEGER NOT NULL,
    recorded_at     TEXT NOT NULL,
    applied_at      TEXT NOT NULL,
    transaction_id  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE IF NOT EXISTS {s}.dead_letters (
    id             INTEGER PRIMARY KEY,
    event_id       BLOB NOT NULL,
    stream_id      TEXT NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    body           TEXT NOT NULL,
    reason         TEXT NOT NULL,
    failed_at      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS {s}.dead_letters_event_id ON dead_letters (event_id);
"#
    )
}

/// Fixed width (microseconds, as PostgreSQL keeps), so the text sorts as
/// the instants do.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn cursor(transaction_id: i64, global_position: i64) -> Cursor {
    Cursor {
        transaction_id: transaction_id.max(0) as u64,
        global_position,
    }
}

const CHANNEL: &str = "
SELECT c.channel_id, c.name, c.kind, c.max_members, c.owner_id, c.archived, c.created_at,
       c.last_seq,
       EXISTS (SELECT 1 FROM rm.members m WHERE m.channel_id = c.channel_id AND m.user_id = $2)
           AS is_member,
       EXISTS (SELECT 1 FROM rm.bans b WHERE b.channel_id = c.channel_id AND b.user_id = $2)
           AS is_banned
FROM rm.channels c
WHERE c.channel_id = $1";

const MEMBERS: &str = "
SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at
FROM rm.members m
LEFT JOIN rm.users u ON u.user_id = m.user_id
WHERE m.channel_id = $1
ORDER BY m.joined_at, m.user_id
LIMIT $2";

const MESSAGES_BETWEEN: &str = "
SELECT message_id, seq, sender_id,
       CASE WHEN deleted THEN NULL ELSE content END AS content,
       message_type, created_at, edited_at, deleted
FROM rm.messages
WHERE channel_id = $1 AND seq > $2 AND seq < $3
ORDER BY seq DESC
LIMIT $4";

const MESSAGES_AFTER: &str = "
SELECT message_id, seq, sender_id, content, message_type, created_at, edited_at, deleted
FROM rm.messages
WHERE channel_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3";

/// PostgreSQL's LATERAL last message becomes a join on the channel's
/// highest seq (one probe of the messages key); the capped unread count is
/// the same nested count.
const MINE: &str = "
SELECT c.channel_id, c.name, c.kind, c.archived, m.role, m.muted, m.read_seq, c.last_seq,
       (SELECT count(*) FROM (SELECT 1 FROM rm.messages u
        WHERE u.channel_id = m.channel_id AND u.seq > m.read_seq
          AND NOT u.deleted AND u.sender_id <> m.user_id
        LIMIT $2)) AS unread_count,
       lm.message_id AS lm_message_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id,
       CASE WHEN lm.deleted THEN NULL ELSE lm.content END AS lm_content,
       lm.message_type AS lm_type, lm.created_at AS lm_created_at,
       lm.edited_at AS lm_edited_at, lm.deleted AS lm_deleted
FROM rm.members m
JOIN rm.channels c ON c.channel_id = m.channel_id
LEFT JOIN rm.messages lm ON lm.channel_id = m.channel_id
    AND lm.seq = (SELECT max(x.seq) FROM rm.messages x WHERE x.channel_id = m.channel_id)
WHERE m.user_id = $1
ORDER BY coalesce(lm.created_at, c.created_at) DESC, c.channel_id";

/// SQLite's LIKE ignores case for ASCII letters only (PostgreSQL's ILIKE
/// folds every letter).
const DIRECTORY: &str = r"
SELECT c.channel_id, c.name, c.created_at,
       (SELECT count(*) FROM rm.members m WHERE m.channel_id = c.channel_id) AS member_count,
       EXISTS (SELECT 1 FROM rm.members m WHERE m.channel_id = c.channel_id AND m.user_id = $2)
           AS is_member
FROM rm.channels c
WHERE c.kind = 'public' AND NOT c.archived AND c.name LIKE $1 ESCAPE '\'
ORDER BY c.created_at DESC, c.channel_id DESC
LIMIT $3";

#[async_trait::async_trait]
impl ReadModel for SqliteReadModel {
    async fn channel_for(
        &self,
        channel_id: Uuid,
        user: Uuid,
    ) -> Result<Option<ChannelAccess>, sqlx::Error> {
        sqlx::query_as(CHANNEL)
            .bind(channel_id)
            .bind(user)
            .fetch_optional(&self.reader)
            .await
    }

    async fn members(&self, channel_id: Uuid, limit: i64) -> Result<Vec<MemberRow>, sqlx::Error> {
        sqlx::query_as(MEMBERS)
            .bind(channel_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
    }

    async fn member_count(&self, channel_id: Uuid) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM rm.members WHERE channel_id = $1")
            .bind(channel_id)
            .fetch_one(&self.reader)
            .await
    }

    async fn messages_between(
        &self,
        channel_id: Uuid,
        after: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error> {
        sqlx::query_as(MESSAGES_BETWEEN)
            .bind(channel_id)
            .bind(after)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
    }

    async fn messages_after(
        &self,
        channel_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error> {
        sqlx::query_as(MESSAGES_AFTER)
            .bind(channel_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
    }

    async fn last_seq(&self, channel_id: Uuid) -> Result<u64, sqlx::Error> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM rm.channels WHERE channel_id = $1")
                .bind(channel_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(last.unwrap_or(0).max(0) as u64)
    }

    async fn channels_of(
        &self,
        user: Uuid,
        unread_cap: i64,
    ) -> Result<Vec<MyChannelRow>, sqlx::Error> {
        let rows: Vec<crate::port::MyChannelColumns> = sqlx::query_as(MINE)
            .bind(user)
            .bind(unread_cap)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(MyChannelRow::from).collect())
    }

    async fn directory(
        &self,
        pattern: &str,
        user: Uuid,
        limit: i64,
    ) -> Result<Vec<DirectoryRow>, sqlx::Error> {
        sqlx::query_as(DIRECTORY)
            .bind(pattern)
            .bind(user)
            .bind(limit)
            .fetch_all(&self.reader)
            .await
    }

    async fn unmuted_members_except(
        &self,
        channel_id: Uuid,
        sender: Uuid,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT user_id FROM rm.members WHERE channel_id = $1 AND NOT muted AND user_id <> $2",
        )
        .bind(channel_id)
        .bind(sender)
        .fetch_all(&self.reader)
        .await
    }

    async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1 FROM rm.checkpoints LIMIT 1")
            .execute(&self.reader)
            .await?;
        Ok(())
    }

    async fn stream_positions(
        &self,
        schema: &str,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error> {
        if !self.use_schema(schema, false).await? {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT version FROM {}.stream_positions WHERE stream_id = $1",
            quote_ident(schema)
        );
        let mut conn = self.reader.acquire().await?;
        let mut positions = HashMap::with_capacity(streams.len());
        for stream in streams {
            let version: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                .bind(stream)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(version) = version {
                positions.insert(stream.clone(), version.max(0) as u64);
            }
        }
        Ok(positions)
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<Cursor>, sqlx::Error> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, global_position FROM rm.checkpoints WHERE projection = $1",
        )
        .bind(projection)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(tx, position)| cursor(tx, position)))
    }

    async fn begin(&self, schema: &str) -> Result<Box<dyn ReadTransaction>, sqlx::Error> {
        self.use_schema(schema, true).await?;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(SqliteTransaction {
            tx,
            s: quote_ident(schema),
        }))
    }
}

/// A write transaction on the one write connection.
struct SqliteTransaction {
    tx: sqlx::Transaction<'static, Sqlite>,
    /// The schema, quoted.
    s: String,
}

impl SqliteTransaction {
    async fn run(
        &mut self,
        sql: String,
        bind: impl FnOnce(
            sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
        ) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<(), sqlx::Error> {
        bind(sqlx::query(AssertSqlSafe(sql)))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// A (re)joining member starts afresh, as in the domain.
    async fn upsert_member(
        &mut self,
        channel: Uuid,
        user: Uuid,
        role: &str,
        at: &str,
    ) -> Result<(), sqlx::Error> {
        let s = &self.s;
        let sql = format!(
            "INSERT INTO {s}.members (channel_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role, muted = 0, \
             read_seq = 0, joined_at = excluded.joined_at"
        );
        self.run(sql, |q| q.bind(channel).bind(user).bind(role).bind(at))
            .await
    }

    async fn remove_member(&mut self, channel: Uuid, user: Uuid) -> Result<(), sqlx::Error> {
        let s = &self.s;
        let sql = format!("DELETE FROM {s}.members WHERE channel_id = $1 AND user_id = $2");
        self.run(sql, |q| q.bind(channel).bind(user)).await
    }

    async fn set_muted(
        &mut self,
        channel: Uuid,
        user: Uuid,
        muted: bool,
    ) -> Result<(), sqlx::Error> {
        let s = &self.s;
        let sql =
            format!("UPDATE {s}.members SET muted = $3 WHERE channel_id = $1 AND user_id = $2");
        self.run(sql, |q| q.bind(channel).bind(user).bind(muted))
            .await
    }
}

#[async_trait::async_trait]
impl ReadWrites for SqliteTransaction {
    async fn lock_positions(
        &mut self,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error> {
        // The transaction holds the database's write lock: an overlapping
        // one waits for it whole, so rows need no locks of their own; the
        // version-0 rows are made as PostgreSQL makes them.
        let s = self.s.clone();
        let insert = format!(
            "INSERT INTO {s}.stream_positions (stream_id, version) VALUES ($1, 0) \
             ON CONFLICT (stream_id) DO NOTHING RETURNING version"
        );
        let select = format!("SELECT version FROM {s}.stream_positions WHERE stream_id = $1");
        let mut positions = HashMap::with_capacity(streams.len());
        for stream in streams {
            let inserted: Option<i64> = sqlx::query_scalar(AssertSqlSafe(insert.clone()))
                .bind(stream)
                .fetch_optional(&mut *self.tx)
                .await?;
            let version = match inserted {
                Some(version) => version,
                None => {
                    sqlx::query_scalar(AssertSqlSafe(select.clone()))
                        .bind(stream)
                        .fetch_one(&mut *self.tx)
                        .await?
                }
            };
            positions.insert(stream.clone(), version.max(0) as u64);
        }
        Ok(positions)
    }

    async fn write(&mut self, recorded: &RecordedEvent, event: &Event) -> Result<(), sqlx::Error> {
        let at = stamp(recorded.recorded_at);
        let at = at.as_str();
        let s = self.s.clone();
        match event {
            Event::UserRegistered(e) => {
                let sql = format!(
                    "INSERT INTO {s}.users (user_id, username, display_name, registered_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING"
                );
                self.run(sql, |q| {
                    q.bind(e.user_id.0)
                        .bind(&e.username)
                        .bind(&e.display_name)
                        .bind(at)
                })
                .await?;
            }
            Event::ChannelCreated(e) => {
                let kind = if e.kind == domain::ChannelKind::Private {
                    "private"
                } else {
                    "public"
                };
                let sql = format!(
                    "INSERT INTO {s}.channels (channel_id, name, kind, max_members, owner_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (channel_id) DO NOTHING"
                );
                self.run(sql, |q| {
                    q.bind(e.channel_id.0)
                        .bind(&e.name)
                        .bind(kind)
                        .bind(e.max_members.map(|m| m as i32))
                        .bind(e.owner_id.0)
                        .bind(at)
                })
                .await?;
                self.upsert_member(e.channel_id.0, e.owner_id.0, "owner", at)
                    .await?;
            }
            Event::MemberJoined(e) => {
                self.upsert_member(e.channel_id.0, e.user_id.0, "member", at)
                    .await?
            }
            Event::MemberInvited(e) => {
                self.upsert_member(e.channel_id.0, e.user_id.0, "member", at)
                    .await?
            }
            Event::MemberLeft(e) => self.remove_member(e.channel_id.0, e.user_id.0).await?,
            Event::MemberKicked(e) => self.remove_member(e.channel_id.0, e.user_id.0).await?,
            Event::MemberBanned(e) => {
                self.remove_member(e.channel_id.0, e.user_id.0).await?;
                let sql = format!(
                    "INSERT INTO {s}.bans (channel_id, user_id, banned_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING"
                );
                self.run(sql, |q| q.bind(e.channel_id.0).bind(e.user_id.0).bind(at))
                    .await?;
            }
            Event::MemberUnbanned(e) => {
                let sql = format!("DELETE FROM {s}.bans WHERE channel_id = $1 AND user_id = $2");
                self.run(sql, |q| q.bind(e.channel_id.0).bind(e.user_id.0))
                    .await?;
            }
            Event::MemberRoleChanged(e) => {
                let role = match e.role {
                    domain::Role::Owner => "owner",
                    domain::Role::Admin => "admin",
                    domain::Role::Member => "member",
                };
                let sql = format!(
                    "UPDATE {s}.members SET role = $3 WHERE channel_id = $1 AND user_id = $2"
                );
                self.run(sql, |q| q.bind(e.channel_id.0).bind(e.user_id.0).bind(role))
                    .await?;
                if e.role == domain::Role::Owner {
                    // Ownership is transferred (the old owner's step-down is its own event).
                    let sql =
                        format!("UPDATE {s}.channels SET owner_id = $2 WHERE channel_id = $1");
                    self.run(sql, |q| q.bind(e.channel_id.0).bind(e.user_id.0))
                        .await?;
                }
            }
            Event::ChannelArchived(e) => {
                let sql = format!(
                    "UPDATE {s}.channels SET archived = 1, updated_at = $2 WHERE channel_id = $1"
                );
                self.run(sql, |q| q.bind(e.channel_id.0).bind(at)).await?;
            }
            Event::ChannelMuted(e) => self.set_muted(e.channel_id.0, e.user_id.0, true).await?,
            Event::ChannelUnmuted(e) => self.set_muted(e.channel_id.0, e.user_id.0, false).await?,
            Event::MessageSent(e) => {
                let sql = format!(
                    "INSERT INTO {s}.messages (channel_id, seq, message_id, sender_id, content, message_type, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
                );
                self.run(sql, |q| {
                    q.bind(e.channel_id.0)
                        .bind(e.seq as i64)
                        .bind(e.message_id.0)
                        .bind(e.sender_id.0)
                        .bind(&e.content)
                        .bind(&e.message_type)
                        .bind(at)
                })
                .await?;
                let sql = format!(
                    "UPDATE {s}.channels SET last_seq = max(last_seq, $2), updated_at = $3 WHERE channel_id = $1"
                );
                self.run(sql, |q| q.bind(e.channel_id.0).bind(e.seq as i64).bind(at))
                    .await?;
            }
            Event::MessageEdited(e) => {
                let sql = format!(
                    "UPDATE {s}.messages SET content = $2, edited_at = $3 WHERE message_id = $1 AND NOT deleted"
                );
                self.run(sql, |q| q.bind(e.message_id.0).bind(&e.content).bind(at))
                    .await?;
            }
            Event::MessageDeleted(e) => {
                let sql = format!(
                    "UPDATE {s}.messages SET content = NULL, deleted = 1 WHERE message_id = $1"
                );
                self.run(sql, |q| q.bind(e.message_id.0)).await?;
            }
            Event::ReadUpTo(e) => {
                let sql = format!(
                    "UPDATE {s}.members SET read_seq = max(read_seq, $3) WHERE channel_id = $1 AND user_id = $2"
                );
                self.run(sql, |q| {
                    q.bind(e.channel_id.0).bind(e.user_id.0).bind(e.seq as i64)
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn save_positions(&mut self, moved: &[(String, i64)]) -> Result<(), sqlx::Error> {
        let s = self.s.clone();
        let sql = format!(
            "INSERT INTO {s}.stream_positions (stream_id, version) VALUES ($1, $2) \
             ON CONFLICT (stream_id) DO UPDATE SET version = max(version, excluded.version)"
        );
        for (stream, version) in moved {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(stream)
                .bind(version)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        cursor: Option<Cursor>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let (tx_id, position) = match cursor {
            Some(c) => (to_i64(c.transaction_id), c.global_position),
            // Unknown: leave the cursor where it is (0-0 never wins the comparison).
            None => (0, 0),
        };
        let s = self.s.clone();
        let sql = format!(
            "INSERT INTO {s}.checkpoints (projection, global_position, recorded_at, applied_at, transaction_id) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (projection) DO UPDATE SET \
             global_position = CASE WHEN (transaction_id, global_position) \
                 < (excluded.transaction_id, excluded.global_position) \
                 THEN excluded.global_position ELSE global_position END, \
             transaction_id = CASE WHEN (transaction_id, global_position) \
                 < (excluded.transaction_id, excluded.global_position) \
                 THEN excluded.transaction_id ELSE transaction_id END, \
             recorded_at = max(recorded_at, excluded.recorded_at), applied_at = excluded.applied_at"
        );
        let (recorded_at, now) = (stamp(recorded_at), stamp(Utc::now()));
        self.run(sql, |q| {
            q.bind(projection)
                .bind(position)
                .bind(recorded_at)
                .bind(now)
                .bind(tx_id)
        })
        .await
    }
}

#[async_trait::async_trait]
impl ReadTransaction for SqliteTransaction {
    async fn commit(self: Box<Self>) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}
