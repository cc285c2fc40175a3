//! `chat rebuild` on the embedded backend: the projection folded anew from
//! the log beside the live one, then switched in one write transaction,
//! while readers keep reading (DESIGN §5).
//!
//! 1. Prepare: take the data directory's rebuild lock (a file lock that dies
//!    with its process), remove what an interrupted run left, and open the
//!    fresh file `read-rm_rebuild.db` as a read model of its own. Its writes
//!    lock only that file, so the live projector of a `chat up` beside the
//!    rebuild never waits on the bulk phase.
//! 2. Bulk: pages of the log in commit order, decoded and checked as the
//!    live projector does, folded through `projector::apply_batch`, one
//!    transaction per page. An event the live projector would dead-letter is
//!    skipped, as it is there.
//! 3. Catch up without any lock on the live model until a pass finds little.
//! 4. Switch: read the log to its end into the rebuild, then one IMMEDIATE
//!    transaction on a connection with both files attached: if the live
//!    projector has meanwhile applied past the rebuild (it can only have
//!    moved in the moment between), give the lock back and catch up again;
//!    else replace every live table's rows with the rebuild's, and commit.
//!    WAL readers see the old rows until that commit and the new ones after.
//!    The live checkpoints stay as they are (as on the services path): the
//!    live projector resumes from its own, finds what the rebuild applied
//!    already a duplicate, and dead-letters what it would have.
//! 5. Remove the rebuild's file.
//!
//! Nothing writes the live file before the switch's one transaction, so an
//! interrupted rebuild leaves it as it was. Replayed events announce nothing.

use crate::progress::Progress;
use crate::rebuild::{Projection, RebuildOptions, RebuildReport};
use domain::Event;
use event_store::{Cursor, EventLog, LogFilter, RecordedEvent};
use projector::{EventSchemas, Outcome};
use read_model::{LIVE_SCHEMA, ReadModel, SqliteReadModel, quote_ident};
use service_kit::DataDir;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tables whose rows the switch replaces (the model; the checkpoints
/// and the dead letters are the live projector's own).
pub const MODEL_TABLES: [&str; 6] = [
    "users",
    "channels",
    "members",
    "bans",
    "messages",
    "stream_positions",
];

/// Attempts to switch before giving up on a live projector that keeps ahead.
const SWITCH_ATTEMPTS: u32 = 20;

/// Why a rebuild failed. The live model is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("another rebuild of {0} is running on this data directory")]
    Busy(&'static str),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("reading the event log: {0}")]
    Log(sqlx::Error),
    #[error("writing the read model: {0}")]
    Read(#[from] sqlx::Error),
    #[error("the event schemas: {0}")]
    Schemas(String),
    #[error("applying the log: {0}")]
    Apply(projector::ApplyError),
    #[error("the live projector kept ahead of the rebuild through {0} attempts to switch")]
    Overtaken(u32),
    #[error("stopped after {0} pages, as asked")]
    Stopped(u64),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RebuildError {
    let path = path.display().to_string();
    move |source| RebuildError::Io { what, path, source }
}

/// The file a projection is rebuilt in.
pub fn rebuild_file(data: &DataDir, p: Projection) -> PathBuf {
    data.path().join(format!("read-{}.db", p.rebuild_schema))
}

/// Rebuilds `projection` of the data directory from `log` and switches to it.
pub async fn rebuild(
    data: &DataDir,
    log: &dyn EventLog,
    projection: Projection,
    options: &RebuildOptions,
    progress: &Progress,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let page_size = options.page_size.max(1);
    let _lock = lock(data, projection).await?;
    let schemas = EventSchemas::load().map_err(RebuildError::Schemas)?;
    let file = rebuild_file(data, projection);
    remove_files(&file)?;
    let model = SqliteReadModel::open(&file).await?;
    let mut build = Build {
        model,
        log,
        schemas,
        cursor: Cursor::START,
        report: RebuildReport {
            projection: projection.name,
            ..RebuildReport::default()
        },
    };
    build.report.phases.prepare = started.elapsed();
    let outcome = build
        .run(data, projection, options, page_size, progress)
        .await;
    // Closed before its file is removed, on every path: a pool still open
    // would delete the journals of the next run's file as it closes.
    build.model.close().await;
    outcome?;
    let dropping = Instant::now();
    remove_files(&file)?;
    build.report.phases.drop_old = dropping.elapsed();
    build.report.elapsed = started.elapsed();
    tracing::info!(
        projection = projection.name,
        "switched to the rebuilt model"
    );
    Ok(build.report)
}

/// The rebuild under way.
struct Build<'a> {
    /// The rebuild's file, opened as a read model of its own (its live schema).
    model: SqliteReadModel,
    log: &'a dyn EventLog,
    schemas: EventSchemas,
    /// The last event read from the log.
    cursor: Cursor,
    report: RebuildReport,
}

impl Build<'_> {
    /// Bulk, catch-up and switch.
    async fn run(
        &mut self,
        data: &DataDir,
        projection: Projection,
        options: &RebuildOptions,
        page_size: usize,
        progress: &Progress,
    ) -> Result<(), RebuildError> {
        let head = self.log.head().await.map_err(RebuildError::Log)?;
        progress.set_length(head.global_position.max(0) as u64);
        loop {
            let read = self.page(page_size).await?;
            progress.inc(read as u64);
            if options
                .stop_after_pages
                .is_some_and(|n| self.report.pages >= n)
            {
                return Err(RebuildError::Stopped(self.report.pages));
            }
            if read < page_size {
                break;
            }
        }

        let catch_up = Instant::now();
        for _ in 0..100 {
            let read = self.page(page_size).await?;
            progress.inc(read as u64);
            if read < options.switch_below {
                break;
            }
        }
        self.report.phases.catch_up = catch_up.elapsed();

        progress.set_message("switching");
        let switching = Instant::now();
        let file = rebuild_file(data, projection);
        let mut conn = connect(&data.read_file(), &file, projection.rebuild_schema).await?;
        let switched = self
            .switch(&mut conn, projection, page_size, progress)
            .await;
        let _ = conn.close().await;
        self.report.phases.switch = switching.elapsed();
        switched
    }

    /// Reads the page after the cursor and applies it; returns its length.
    async fn page(&mut self, page_size: usize) -> Result<usize, RebuildError> {
        let fetching = Instant::now();
        let limit = i64::try_from(page_size).unwrap_or(i64::MAX);
        let page = self
            .log
            .read_all(self.cursor, limit, &LogFilter::default())
            .await
            .map_err(RebuildError::Log)?;
        self.report.phases.read += fetching.elapsed();
        let Some(next) = page.last().map(RecordedEvent::cursor) else {
            return Ok(0);
        };
        let read = page.len();
        let decoding = Instant::now();
        let mut decoded = Vec::with_capacity(read);
        for recorded in page {
            // The live projector's decision: the envelope's bytes against
            // its schema, then the domain's decoding.
            let event = serde_json::to_vec(&recorded)
                .ok()
                .and_then(|body| projector::decode_delivery(&body, &self.schemas).ok());
            match event {
                Some((_, event)) => decoded.push((recorded, event)),
                None => self.report.skipped += 1,
            }
        }
        self.report.phases.fold += decoding.elapsed();
        let writing = Instant::now();
        self.apply(&decoded).await?;
        self.report.phases.write += writing.elapsed();
        self.cursor = next;
        self.report.events += read as u64;
        self.report.pages += 1;
        Ok(read)
    }

    /// Applies decoded events in one transaction; one that can never apply
    /// is left out (the ones before it commit alone first), as the live
    /// projector dead-letters it.
    async fn apply(&mut self, items: &[(RecordedEvent, Event)]) -> Result<(), RebuildError> {
        let mut rest = items;
        while !rest.is_empty() {
            let refs: Vec<(&RecordedEvent, &Event)> = rest.iter().map(|(r, e)| (r, e)).collect();
            let mut tx = self.model.begin(LIVE_SCHEMA).await?;
            match projector::apply_batch(&mut *tx, self.log, &refs).await {
                Ok(outcomes) => {
                    tx.commit().await?;
                    self.tally(&outcomes);
                    break;
                }
                Err((Some(index), _)) => {
                    drop(tx);
                    if index > 0 {
                        let mut tx = self.model.begin(LIVE_SCHEMA).await?;
                        let outcomes = projector::apply_batch(&mut *tx, self.log, &refs[..index])
                            .await
                            .map_err(|(_, e)| RebuildError::Apply(e))?;
                        tx.commit().await?;
                        self.tally(&outcomes);
                    }
                    self.report.skipped += 1;
                    rest = &rest[index + 1..];
                }
                Err((None, e)) => return Err(RebuildError::Apply(e)),
            }
        }
        Ok(())
    }

    fn tally(&mut self, outcomes: &[Outcome]) {
        for outcome in outcomes {
            match outcome {
                Outcome::Applied { .. } => self.report.applied += 1,
                Outcome::Duplicate => self.report.duplicates += 1,
            }
        }
    }

    /// Reads the log to its end into the rebuild, then replaces the live
    /// rows in one transaction unless the live projector got further meanwhile.
    async fn switch(
        &mut self,
        conn: &mut SqliteConnection,
        p: Projection,
        page_size: usize,
        progress: &Progress,
    ) -> Result<(), RebuildError> {
        let (live, rebuilt) = (quote_ident(LIVE_SCHEMA), quote_ident(p.rebuild_schema));
        for _ in 0..SWITCH_ATTEMPTS {
            loop {
                let read = self.page(page_size).await?;
                progress.inc(read as u64);
                self.report.tail_events += read as u64;
                if read == 0 {
                    break;
                }
            }
            let waited = Instant::now();
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            self.report.phases.lock_wait += waited.elapsed();
            let applied: Option<(i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT transaction_id, global_position FROM {live}.checkpoints WHERE projection = $1"
            )))
            .bind(p.checkpoint)
            .fetch_optional(&mut *tx)
            .await?;
            let ours = (
                i64::try_from(self.cursor.transaction_id).unwrap_or(i64::MAX),
                self.cursor.global_position,
            );
            if applied.is_some_and(|live| live > ours) {
                tx.rollback().await?;
                continue;
            }
            for table in MODEL_TABLES {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1, $2) ORDER BY cid")
                        .bind(table)
                        .bind(p.rebuild_schema)
                        .fetch_all(&mut *tx)
                        .await?;
                let columns = columns
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ");
                let t = quote_ident(table);
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {live}.{t}")))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {live}.{t} ({columns}) SELECT {columns} FROM {rebuilt}.{t}"
                )))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            return Ok(());
        }
        Err(RebuildError::Overtaken(SWITCH_ATTEMPTS))
    }
}

/// One connection with the live file and the rebuild's attached under
/// their schema names, for the switch.
async fn connect(
    live: &Path,
    rebuild: &Path,
    rebuild_schema: &str,
) -> Result<SqliteConnection, sqlx::Error> {
    let mut conn = SqliteConnectOptions::new()
        .filename(":memory:")
        // Attached files inherit the main database's open flags.
        .create_if_missing(true)
        // The live projector of a `chat up` may hold the write lock for a moment.
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    for (schema, path) in [(LIVE_SCHEMA, live), (rebuild_schema, rebuild)] {
        let file = path.to_str().ok_or_else(|| {
            sqlx::Error::Configuration(format!("{} is not UTF-8", path.display()).into())
        })?;
        let s = quote_ident(schema);
        sqlx::query(AssertSqlSafe(format!("ATTACH DATABASE $1 AS {s}")))
            .bind(file)
            .execute(&mut conn)
            .await?;
        sqlx::query(AssertSqlSafe(format!("PRAGMA {s}.synchronous = FULL")))
            .execute(&mut conn)
            .await?;
    }
    Ok(conn)
}

/// Takes the data directory's rebuild lock for `p`; a rebuild killed a
/// moment ago releases it as its process ends.
async fn lock(data: &DataDir, p: Projection) -> Result<File, RebuildError> {
    let path = data.path().join(format!("rebuild-{}.lock", p.name));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("cannot open", &path))?;
    for _ in 0..10 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", &path)(e)),
        }
    }
    Err(RebuildError::Busy(p.name))
}

/// Removes a SQLite file and its journals (absent ones are fine).
fn remove_files(file: &Path) -> Result<(), RebuildError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot remove", &path)(e)),
        }
    }
    Ok(())
}
