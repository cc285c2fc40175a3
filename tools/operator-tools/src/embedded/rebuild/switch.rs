//! The switch: the live file's model tables replaced by the rebuild's in
//! one IMMEDIATE transaction on a connection with both files attached.
//!
//! Readers attach `read.db` as `rm` on connections of their own, so no
//! cheaper atomic switch exists: renaming the rebuild's file over the live
//! one would leave open connections on the old file (and its WAL) and let
//! new ones see the new file, a mixed state, and re-attaching every pool's
//! connections is not one instant either. The copy is made cheap instead:
//! where a table has the same columns in both files, `INSERT INTO live
//! SELECT * FROM rebuilt` into the just-emptied table lets SQLite move the
//! b-tree's records as they are (its transfer optimisation) rather than
//! insert row by row. WAL readers see the old rows until the commit and the
//! new ones after; the live file keeps `synchronous = FULL`.

use super::{Build, MODEL_TABLES, RebuildError};
use crate::progress::Progress;
use crate::rebuild::Projection;
use read_model::{LIVE_SCHEMA, quote_ident};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use std::path::Path;
use std::time::{Duration, Instant};

/// Attempts to switch before giving up on a live projector that keeps ahead.
const SWITCH_ATTEMPTS: u32 = 20;

impl Build<'_> {
    /// Reads the log to its end into the rebuild, then replaces the live
    /// rows in one transaction unless the live projector got further meanwhile.
    pub(super) async fn switch(
        &mut self,
        conn: &mut SqliteConnection,
        p: Projection,
        page_size: usize,
        progress: &Progress,
    ) -> Result<(), RebuildError> {
        let live = quote_ident(LIVE_SCHEMA);
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
                replace_rows(&mut tx, p.rebuild_schema, table).await?;
            }
            tx.commit().await?;
            return Ok(());
        }
        Err(RebuildError::Overtaken(SWITCH_ATTEMPTS))
    }
}

/// Replaces the live rows of `table` with the rebuilt ones, inside the
/// caller's transaction.
async fn replace_rows(
    tx: &mut SqliteConnection,
    rebuild_schema: &str,
    table: &str,
) -> Result<(), sqlx::Error> {
    let columns = |schema: &str| {
        sqlx::query_scalar::<_, String>("SELECT name FROM pragma_table_info($1, $2) ORDER BY cid")
            .bind(table.to_owned())
            .bind(schema.to_owned())
    };
    let ours = columns(rebuild_schema).fetch_all(&mut *tx).await?;
    let theirs = columns(LIVE_SCHEMA).fetch_all(&mut *tx).await?;
    let (live, rebuilt, t) = (
        quote_ident(LIVE_SCHEMA),
        quote_ident(rebuild_schema),
        quote_ident(table),
    );
    sqlx::query(AssertSqlSafe(format!("DELETE FROM {live}.{t}")))
        .execute(&mut *tx)
        .await?;
    // The transfer optimisation needs `SELECT *` and no column list, so
    // only tables of the same columns in the same order take it (a live
    // file from an older release may have them in another order).
    let insert = if ours == theirs {
        format!("INSERT INTO {live}.{t} SELECT * FROM {rebuilt}.{t}")
    } else {
        let columns = ours
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        format!("INSERT INTO {live}.{t} ({columns}) SELECT {columns} FROM {rebuilt}.{t}")
    };
    sqlx::query(AssertSqlSafe(insert)).execute(&mut *tx).await?;
    Ok(())
}

/// One connection with the live file and the rebuild's attached under
/// their schema names, for the switch.
pub(super) async fn connect(
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
    }
    // The live file's commit survives a power cut (the rebuild's is only read).
    sqlx::query(AssertSqlSafe(format!(
        "PRAGMA {}.synchronous = FULL",
        quote_ident(LIVE_SCHEMA)
    )))
    .execute(&mut conn)
    .await?;
    Ok(conn)
}
