//! `chat rebuild` on the embedded backend: the projection folded anew from
//! the log beside the live one, then switched in one write transaction,
//! while readers keep reading (DESIGN §5).
//!
//! 1. Prepare: take the data directory's rebuild lock (a file lock that dies
//!    with its process), remove what an interrupted run left, and open the
//!    fresh file `read-rm_rebuild.db` as a read model of its own. Its writes
//!    lock only that file, so the live projector of a `chat up` beside the
//!    rebuild never waits on the bulk phase. The file is scratch (no fsync,
//!    journal in memory): a crash leaves it to the next run, which removes it.
//! 2. Bulk: pages of the log in commit order, fetched and decoded (checked
//!    as the live projector checks) ahead of the writer (`pages.rs`), folded
//!    through `projector::apply_batch` into a bulk transaction (many rows to
//!    a statement), one transaction per page. An event the live projector
//!    would dead-letter is skipped, as it is there.
//! 3. Catch up without any lock on the live model until a pass finds little.
//! 4. Switch: read the log to its end into the rebuild, then one IMMEDIATE
//!    transaction on a connection with both files attached: if the live
//!    projector has meanwhile applied past the rebuild (it can only have
//!    moved in the moment between), give the lock back and catch up again;
//!    else replace every live table's rows with the rebuild's, and commit
//!    (`switch.rs`, which says why this copy and no cheaper swap).
//!    WAL readers see the old rows until that commit and the new ones after.
//!    The live checkpoints stay as they are (as on the services path): the
//!    live projector resumes from its own, finds what the rebuild applied
//!    already a duplicate, and dead-letters what it would have.
//! 5. Remove the rebuild's file.
//!
//! Nothing writes the live file before the switch's one transaction, so an
//! interrupted rebuild leaves it as it was. Replayed events announce nothing.

mod pages;
mod switch;

use crate::progress::Progress;
use crate::rebuild::{Projection, RebuildOptions, RebuildReport};
use domain::Event;
use event_store::{Cursor, EventLog, LogFilter, RecordedEvent};
use pages::Decoded;
use projector::{EventSchemas, Outcome};
use read_model::{LIVE_SCHEMA, SqliteReadModel};
use service_kit::DataDir;
use sqlx::Connection;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

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
    #[error("the task decoding the log's pages failed")]
    Decoder,
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
    let schemas = Arc::new(EventSchemas::load().map_err(RebuildError::Schemas)?);
    let file = rebuild_file(data, projection);
    remove_files(&file)?;
    let model = SqliteReadModel::open_scratch(&file).await?;
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
    schemas: Arc<EventSchemas>,
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
        self.bulk(options, page_size, progress).await?;

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
        let mut conn = switch::connect(&data.read_file(), &file, projection.rebuild_schema).await?;
        let switched = self
            .switch(&mut conn, projection, page_size, progress)
            .await;
        let _ = conn.close().await;
        self.report.phases.switch = switching.elapsed();
        switched
    }

    /// The bulk phase: pages from the start of the log until a short one,
    /// fetched and decoded ahead (`pages.rs`) while this task writes.
    async fn bulk(
        &mut self,
        options: &RebuildOptions,
        page_size: usize,
        progress: &Progress,
    ) -> Result<(), RebuildError> {
        // One page waits decoded (or decoding) while the next is fetched.
        let (ahead, mut incoming) = mpsc::channel(1);
        let fetch = pages::fetch_ahead(
            self.log,
            self.schemas.clone(),
            self.cursor,
            page_size,
            ahead,
        );
        let write = async move {
            while let Some(decoding) = incoming.recv().await {
                let decoded = decoding?.await.map_err(|_| RebuildError::Decoder)?;
                let read = self.write_page(decoded).await?;
                progress.inc(read as u64);
                if options
                    .stop_after_pages
                    .is_some_and(|n| self.report.pages >= n)
                {
                    return Err(RebuildError::Stopped(self.report.pages));
                }
            }
            Ok(())
        };
        // The fetcher ends when the writer stops (its channel closes).
        let ((), written) = tokio::join!(fetch, write);
        written
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
        let fetching = fetching.elapsed();
        let decoded = Decoded {
            fetching,
            ..pages::decode_page(page, &self.schemas)
        };
        self.write_page(decoded).await
    }

    /// Applies a decoded page and moves the cursor past it; returns its length.
    async fn write_page(&mut self, page: Decoded) -> Result<usize, RebuildError> {
        let phases = &mut self.report.phases;
        phases.read += page.fetching;
        phases.fold += page.decoding;
        let Some(next) = page.next else {
            return Ok(0);
        };
        let writing = Instant::now();
        self.apply(&page.items).await?;
        self.report.phases.write += writing.elapsed();
        self.cursor = next;
        self.report.skipped += page.skipped;
        self.report.events += page.read as u64;
        self.report.pages += 1;
        Ok(page.read)
    }

    /// Applies decoded events in one transaction; one that can never apply
    /// is left out (the ones before it commit alone first), as the live
    /// projector dead-letters it.
    async fn apply(&mut self, items: &[(RecordedEvent, Event)]) -> Result<(), RebuildError> {
        let mut rest = items;
        while !rest.is_empty() {
            let refs: Vec<(&RecordedEvent, &Event)> = rest.iter().map(|(r, e)| (r, e)).collect();
            let mut tx = self.model.begin_bulk(LIVE_SCHEMA).await?;
            match projector::apply_batch(&mut *tx, self.log, &refs).await {
                Ok(outcomes) => {
                    tx.commit().await?;
                    self.tally(&outcomes);
                    break;
                }
                Err((Some(index), _)) => {
                    drop(tx);
                    if index > 0 {
                        let mut tx = self.model.begin_bulk(LIVE_SCHEMA).await?;
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
