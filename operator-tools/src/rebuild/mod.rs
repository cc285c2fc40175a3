//! `chat rebuild`: builds a projection anew from the event log, beside the
//! live one, then switches atomically (DESIGN.md §5).
//!
//! 1. Prepare: take the rebuild lock, drop what an interrupted run left
//!    (`rm_rebuild`, `rm_old_*`), create fresh tables in `rm_rebuild`.
//! 2. Bulk: read the log in commit order in large pages (a reader task runs
//!    one page ahead), fold each page in memory into row changes, write them
//!    set-based, commit per page (a long transaction would hold back every
//!    whole-log reader, DESIGN.md §3).
//! 3. Catch up without locks until a pass finds little new.
//! 4. Switch (`switch.rs`): lock the live projector out, apply the tail,
//!    carry the checkpoints over, swap the schemas by renaming, commit, drop
//!    the old schema.
//!
//! Nothing touches the live schema before the switch's one transaction, so an
//! interrupted rebuild leaves it as it was. Replayed events announce nothing.

pub mod copy;
pub mod fold;
mod report;
pub mod source;
mod switch;
pub mod write;

pub use report::{Phases, RebuildReport};

use crate::progress::Progress;
use event_store::{Cursor, PgEventStore};
use fold::{Admit, PageFold, StreamVersions};
use read_model::quote_ident;
use source::LogEvent;
use sqlx::{Connection, PgConnection, PgPool};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use write::MessagePath;

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
    #[error("stopped after {0} pages, as asked")]
    Stopped(u64),
}

/// Where a rebuild stands between pages.
pub(crate) struct Build {
    pub(crate) projection: Projection,
    pub(crate) target: String,
    pub(crate) versions: StreamVersions,
    pub(crate) cursor: Cursor,
    pub(crate) report: RebuildReport,
}

impl Build {
    /// Folds and writes one page in the connection's open transaction.
    pub(crate) async fn write(
        &mut self,
        tx: &mut PgConnection,
        page: &[LogEvent],
    ) -> Result<(), sqlx::Error> {
        let started = Instant::now();
        let mut fold = PageFold::default();
        for event in page {
            match fold.fold(&mut self.versions, event) {
                Admit::Applied => self.report.applied += 1,
                Admit::Duplicate => self.report.duplicates += 1,
                Admit::Skipped => {
                    self.report.skipped += 1;
                    tracing::warn!(event_id = %event.event_id, stream = %event.stream_id,
                        "event cannot be applied (undecodable or out of order); skipped as the live projector would");
                }
            }
        }
        self.report.phases.fold += started.elapsed();
        let started = Instant::now();
        match write::write_page(tx, &self.target, &fold).await? {
            MessagePath::Copy => self.report.copy_pages += 1,
            MessagePath::Exact => self.report.exact_pages += 1,
            MessagePath::None => {}
        }
        self.report.phases.write += started.elapsed();
        self.report.events += page.len() as u64;
        if let Some(last) = page.last() {
            self.cursor = last.cursor();
        }
        Ok(())
    }
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
    let mut build = Build {
        projection,
        target: quote_ident(projection.rebuild_schema),
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

    // Bulk: the reader stays one page ahead of the writer.
    let (pages, mut incoming) = mpsc::channel::<Result<(Vec<LogEvent>, Duration), sqlx::Error>>(1);
    let reader = AbortOnDrop(tokio::spawn(read_ahead(
        log.pool().clone(),
        page_size,
        pages,
    )));
    while let Some(page) = incoming.recv().await {
        let (page, read_time) = page.map_err(RebuildError::Log)?;
        build.report.phases.read += read_time;
        let mut tx = conn.begin().await?;
        build.write(&mut tx, &page).await?;
        tx.commit().await?;
        build.report.pages += 1;
        progress.inc(page.len() as u64);
        if options
            .stop_after_pages
            .is_some_and(|n| build.report.pages >= n)
        {
            return Err(RebuildError::Stopped(build.report.pages));
        }
    }
    drop(reader);

    // Catch up with what was appended meanwhile, without locks.
    let catch_up = Instant::now();
    for _ in 0..100 {
        let page = source::read_page(log.pool(), build.cursor, page_size)
            .await
            .map_err(RebuildError::Log)?;
        if page.is_empty() {
            break;
        }
        let mut tx = conn.begin().await?;
        build.write(&mut tx, &page).await?;
        tx.commit().await?;
        progress.inc(page.len() as u64);
        if page.len() < options.switch_below {
            break;
        }
    }
    build.report.phases.catch_up = catch_up.elapsed();

    progress.set_message("switching");
    switch::switch(&mut conn, log, &mut build, page_size).await?;
    build.report.elapsed = started.elapsed();
    Ok(build.report)
}

/// Reads pages until the log is exhausted (a short page), sending each with
/// the time it took; stops when the writer hangs up.
async fn read_ahead(
    log: PgPool,
    page_size: usize,
    pages: mpsc::Sender<Result<(Vec<LogEvent>, Duration), sqlx::Error>>,
) {
    let mut cursor = Cursor::START;
    loop {
        let started = Instant::now();
        let page = source::read_page(&log, cursor, page_size).await;
        let last = match &page {
            Ok(events) => events.last().map(LogEvent::cursor),
            Err(_) => None,
        };
        let full = matches!(&page, Ok(events) if events.len() == page_size);
        let sent = pages.send(page.map(|p| (p, started.elapsed()))).await;
        match (sent, last) {
            (Ok(()), Some(next)) if full => cursor = next,
            _ => return,
        }
    }
}

/// Aborts a spawned task when dropped (an aborted rebuild stops its reader).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
