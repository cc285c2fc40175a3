//! One page through the rebuild: folded in memory (by the reader task during
//! the bulk phase), then written in the writer's transaction.

use super::deferred::DeferredKey;
use super::fold::{Admit, PageFold, StreamVersions};
use super::messages::MessagePath;
use super::source::LogEvent;
use super::{Projection, RebuildReport, write};
use event_store::Cursor;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};

/// A page read and folded, ready to write.
pub(crate) struct Folded {
    fold: PageFold,
    pub(super) events: u64,
    duplicates: u64,
    skipped: u64,
    pub(super) last: Option<Cursor>,
    read: Duration,
    pub(super) folding: Duration,
}

/// Folds a page (moving its events) against the streams' applied versions.
pub(crate) fn fold_page(
    versions: &mut StreamVersions,
    page: Vec<LogEvent>,
    read: Duration,
) -> Folded {
    let started = Instant::now();
    let mut folded = Folded {
        fold: PageFold::default(),
        events: page.len() as u64,
        duplicates: 0,
        skipped: 0,
        last: page.last().map(LogEvent::cursor),
        read,
        folding: Duration::ZERO,
    };
    for event in page {
        let event_id = event.event_id;
        match folded.fold.fold(versions, event) {
            Admit::Applied => {}
            Admit::Duplicate => folded.duplicates += 1,
            Admit::Skipped => {
                folded.skipped += 1;
                tracing::warn!(%event_id, "event cannot be applied (undecodable or out of order); skipped, as the live projector would");
            }
        }
    }
    folded.folding = started.elapsed();
    folded
}

/// Where a rebuild stands between pages.
pub(crate) struct Build {
    pub(crate) projection: Projection,
    pub(crate) target: String,
    pub(crate) versions: StreamVersions,
    pub(crate) cursor: Cursor,
    pub(crate) report: RebuildReport,
    /// The messages primary key, dropped during the bulk phase.
    pub(crate) key: DeferredKey,
}

impl Build {
    /// Writes a folded page in a transaction of its own on `conn`; when the
    /// page needs the messages primary key, restores it first, outside any
    /// transaction (`deferred.rs`).
    pub(crate) async fn write_committed(
        &mut self,
        conn: &mut PgConnection,
        folded: Folded,
    ) -> Result<(), sqlx::Error> {
        let fold = &folded.fold;
        if self
            .key
            .needed_for(&fold.message_inserts, fold.inserts_collide())
        {
            self.key.restore(conn, &self.target).await?;
        }
        loop {
            let mut tx = conn.begin().await?;
            if self.try_write(&mut tx, &folded).await? {
                tx.commit().await?;
                break;
            }
            // Collided with rows of earlier pages: only now known.
            tx.rollback().await?;
            self.key.restore(conn, &self.target).await?;
        }
        self.count(folded);
        Ok(())
    }

    /// Writes a folded page in the connection's open transaction, with the
    /// primary key in place (the switch).
    pub(crate) async fn write(
        &mut self,
        tx: &mut PgConnection,
        folded: Folded,
    ) -> Result<(), sqlx::Error> {
        if !self.try_write(tx, &folded).await? {
            return Err(sqlx::Error::Protocol(
                "the messages primary key is missing while writing in the switch".into(),
            ));
        }
        self.count(folded);
        Ok(())
    }

    /// False: nothing usable was written (roll back), the key is needed first.
    async fn try_write(
        &mut self,
        tx: &mut PgConnection,
        folded: &Folded,
    ) -> Result<bool, sqlx::Error> {
        let started = Instant::now();
        match write::write_page(tx, &self.target, &folded.fold, &mut self.key).await? {
            MessagePath::Copy => self.report.copy_pages += 1,
            MessagePath::Exact => self.report.exact_pages += 1,
            MessagePath::None => {}
            MessagePath::NeedsKey => return Ok(false),
        }
        self.report.phases.write += started.elapsed();
        Ok(true)
    }

    fn count(&mut self, folded: Folded) {
        let r = &mut self.report;
        r.phases.read += folded.read;
        r.phases.fold += folded.folding;
        r.events += folded.events;
        r.pages += 1;
        r.applied += folded.fold.applied;
        r.duplicates += folded.duplicates;
        r.skipped += folded.skipped;
        if let Some(last) = folded.last {
            self.cursor = last;
        }
    }
}
