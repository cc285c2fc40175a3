//! `chat rebuild`: builds a projection anew from the event log, beside the
//! live one, then switches atomically (DESIGN.md §5).
//!
//! 1. Prepare: take the rebuild lock, drop what an interrupted run left
//!    (`rm_rebuild`, `rm_old_*`), create fresh tables in `rm_rebuild`.
//! 2. Bulk, as a pipeline one page apart: a reader task fetches the log in
//!    commit order in large pages, a folder task decodes and folds each page
//!    in memory into row changes (`fold.rs`), the writer writes them
//!    set-based (`write.rs`, `messages.rs`) and commits per page (a long
//!    transaction would hold back every whole-log reader, DESIGN.md §3).
//!    The messages primary key is built once afterwards, concurrently and
//!    outside any transaction, so it holds no xid (`deferred.rs`).
//! 3. Catch up without locks until a pass finds little new.
//! 4. Switch (`switch.rs`): lock the live projector out, apply the tail,
//!    carry the checkpoints over, swap the schemas by renaming, commit, drop
//!    the old schema.
//!
//! Nothing touches the live schema before the switch's one transaction, so an
//! interrupted rebuild leaves it as it was. Replayed events announce nothing.

pub mod copy;
mod deferred;
mod fold;
mod messages;
mod page;
mod report;
mod rows;
mod source;
mod switch;
mod write;

pub use report::{Phases, RebuildReport};

use crate::progress::Progress;
use deferred::DeferredKey;
use event_store::{Cursor, PgEventStore};
use fold::StreamVersions;
use page::{Build, Folded, fold_page};
use read_model::quote_ident;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A projection that can be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projection {
    /// What operators call it (`chat rebuild read-model`).
    pub name: &'static str,
    /// The live schema queries read.
    pub schema: &'static str,
    /// Where the new version is built.
    pub rebuild_schema: &'static str,
    /// Its checkpoint row in `{schema}.checkpoints`.
    pub checkpoint: &'static str,
}

/// Every projection there is.
pub const PROJECTIONS: &[Projection] = &[Projection {
    name: "read-model",
    schema: read_model::LIVE_SCHEMA,
    rebuild_schema: "rm_rebuild",
    checkpoint: projector::LIVE_PROJECTION,
}];

/// Looks a projection up by name.
pub fn projection(name: &str) -> Result<Projection, RebuildError> {
    PROJECTIONS
        .iter()
        .find(|p| p.name == name)
        .copied()
        .ok_or_else(|| RebuildError::UnknownProjection {
            name: name.to_owned(),
            known: PROJECTIONS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// How a rebuild runs.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Events read, folded and committed together.
    pub page_size: usize,
    /// Switch once a catch-up pass reads fewer events than this.
    pub switch_below: usize,
    /// Test hook: fail with `Stopped` after this many bulk pages.
    pub stop_after_pages: Option<u64>,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            page_size: 20_000,
            switch_below: 1_000,
            stop_after_pages: None,
        }
    }
}

/// Why a rebuild failed. The live model is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("unknown projection {name:?}; known: {known}")]
    UnknownProjection { name: String, known: String },
    #[error("another rebuild of {0} is running")]
    Busy(&'static str),
    #[error("reading the event log: {0}")]
    Log(sqlx::Error),
    #[error("writing the read database: {0}")]
    Read(#[from] sqlx::Error),
    #[error("applying the tail of stream {stream}: {reason}")]
    Tail { stream: String, reason: String },
    #[error("the log reader task failed")]
    Reader,
    #[error("stopped after {0} pages, as asked")]
    Stopped(u64),
}

/// Rebuilds `projection` from the log into fresh tables and switches to them.
pub async fn rebuild(
    read: &PgPool,
    log: &PgEventStore,
    projection: Projection,
    options: &RebuildOptions,
    progress: &Progress,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let page_size = options.page_size.max(1);
    let mut conn = switch::prepare(read, projection).await?;
    let target = quote_ident(projection.rebuild_schema);
    let key = DeferredKey::defer(&mut conn, &target).await?;
    let mut build = Build {
        projection,
        target,
        key,
        versions: StreamVersions::new(),
        cursor: Cursor::START,
        report: RebuildReport {
            projection: projection.name,
            ..RebuildReport::default()
        },
    };
    build.report.phases.prepare = started.elapsed();
    progress.set_length(
        source::estimate_events(log.pool())
            .await
            .map_err(RebuildError::Log)?,
    );

    // Bulk: a reader fetches, a folder decodes and folds, the writer writes:
    // each one page ahead of the next.
    let (raw, raw_pages) = mpsc::channel(1);
    let (pages, mut incoming) = mpsc::channel::<Result<Folded, sqlx::Error>>(1);
    let reader = AbortOnDrop(Some(tokio::spawn(read_ahead(
        log.pool().clone(),
        page_size,
        raw,
    ))));
    let folder = AbortOnDrop(Some(tokio::spawn(fold_ahead(raw_pages, pages))));
    while let Some(folded) = incoming.recv().await {
        let folded = folded.map_err(RebuildError::Log)?;
        let events = folded.events;
        build.write_committed(&mut conn, folded).await?;
        progress.inc(events);
        if options
            .stop_after_pages
            .is_some_and(|n| build.report.pages >= n)
        {
            return Err(RebuildError::Stopped(build.report.pages));
        }
    }
    drop(reader);
    build.versions = folder.join().await.ok_or(RebuildError::Reader)?;
    let indexing = Instant::now();
    build.key.restore(&mut conn, &build.target).await?;
    build.report.phases.index = indexing.elapsed();

    // Catch up with what was appended meanwhile, without locks.
    let catch_up = Instant::now();
    for _ in 0..100 {
        let page = source::read_page(log.pool(), build.cursor, page_size)
            .await
            .map_err(RebuildError::Log)?;
        let read = page.len();
        if read == 0 {
            break;
        }
        let folded = fold_page(&mut build.versions, page, Duration::ZERO);
        build.write_committed(&mut conn, folded).await?;
        progress.inc(read as u64);
        if read < options.switch_below {
            break;
        }
    }
    build.report.phases.catch_up = catch_up.elapsed();

    progress.set_message("switching");
    switch::switch(&mut conn, log, &mut build, page_size).await?;
    build.report.elapsed = started.elapsed();
    Ok(build.report)
}

/// A fetched page, not yet decoded, with the time the fetch took.
type RawPage = Result<(Vec<sqlx::postgres::PgRow>, Duration), sqlx::Error>;

/// Fetches pages until the log is exhausted (a short page), sending each on;
/// stops early when the folder hangs up.
async fn read_ahead(log: PgPool, page_size: usize, raw: mpsc::Sender<RawPage>) {
    let mut cursor = Cursor::START;
    loop {
        let started = Instant::now();
        let page = source::fetch_page(&log, cursor, page_size).await;
        let next = match &page {
            Ok(rows) if rows.len() == page_size => rows.last().map(source::row_cursor),
            _ => None,
        };
        if raw
            .send(page.map(|rows| (rows, started.elapsed())))
            .await
            .is_err()
        {
            return;
        }
        match next {
            Some(Ok(next)) => cursor = next,
            Some(Err(e)) => {
                let _ = raw.send(Err(e)).await;
                return;
            }
            None => return,
        }
    }
}

/// Decodes and folds fetched pages in order, sending each to the writer.
/// Returns the streams' applied versions for the catch-up and the switch.
async fn fold_ahead(
    mut raw: mpsc::Receiver<RawPage>,
    pages: mpsc::Sender<Result<Folded, sqlx::Error>>,
) -> StreamVersions {
    let mut versions = StreamVersions::new();
    while let Some(page) = raw.recv().await {
        let folded = page.and_then(|(rows, read)| {
            let started = Instant::now();
            let events = source::decode_rows(rows)?;
            let decoding = started.elapsed();
            let mut folded = fold_page(&mut versions, events, read);
            folded.folding += decoding;
            Ok(folded)
        });
        let failed = folded.is_err();
        if pages.send(folded).await.is_err() || failed {
            break;
        }
    }
    versions
}

/// Aborts a spawned task when dropped (an aborted rebuild stops its reader).
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    /// Waits for the task's result (None: it failed or was aborted).
    async fn join(mut self) -> Option<T> {
        self.0.take()?.await.ok()
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
