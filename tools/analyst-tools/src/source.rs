//! Where the analysts' tools read the log (DESIGN §9): the services
//! backend's PostgreSQL, with SQL below the xid horizon ([`crate::log`]), or
//! the embedded backend's SQLite log in the data directory, through the
//! `EventLog` port ([`crate::embedded`]). Everything done with the events —
//! filters, formats, folds, replays — is one code path over either.

use crate::embedded::{self, Each};
use crate::log::{self, Horizon, LogQuery};
use crate::{AnalystError, connect};
use chrono::{DateTime, Utc};
use event_store::{Cursor, EventLog, SqliteEventStore};
use futures_util::TryStreamExt;
use service_kit::{Backend, DataDir};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Events read per round trip.
pub const PAGE_SIZE: i64 = 5000;

/// The event log a command reads.
#[derive(Debug, Clone)]
pub enum LogSource {
    /// The services backend's log database (or a replica of it).
    Postgres(PgPool),
    /// The embedded backend's log, a SQLite file read through the port.
    Embedded(Arc<dyn EventLog>),
}

impl LogSource {
    /// Opens the log of the backend `settings` choose; on the embedded one,
    /// the data directory must hold a log (no lock is taken: SQLite's own
    /// locking lets the tools read beside a running `chat up`).
    pub async fn open(settings: &service_kit::Settings) -> Result<LogSource, AnalystError> {
        match settings.backend.backend {
            Backend::Services => Ok(LogSource::Postgres(
                connect::open_log(&settings.database_url).await?,
            )),
            Backend::Embedded => {
                let dir = DataDir::existing(&settings.data_dir)?;
                let store = SqliteEventStore::open(&dir.events_file(), 2).await?;
                Ok(LogSource::Embedded(Arc::new(store)))
            }
        }
    }

    /// The horizon of a read that starts now (see [`log::settle`]).
    pub async fn settle(&self, max_wait: Duration) -> Result<Horizon, AnalystError> {
        match self {
            LogSource::Postgres(pool) => {
                log::settle(pool, max_wait).await.map_err(AnalystError::Log)
            }
            LogSource::Embedded(log) => Ok(Horizon {
                xid: embedded::horizon(log.as_ref()).await?,
                settled: true,
            }),
        }
    }

    /// Where `--until TIME` stops (see [`log::last_before_time`]).
    pub async fn last_before_time(
        &self,
        after: Cursor,
        horizon: u64,
        time: DateTime<Utc>,
    ) -> Result<Option<Cursor>, AnalystError> {
        match self {
            LogSource::Postgres(pool) => log::last_before_time(pool, after, horizon, time)
                .await
                .map_err(AnalystError::Log),
            LogSource::Embedded(log) => {
                embedded::last_before_time(log.as_ref(), after, horizon, time).await
            }
        }
    }

    /// How many events `query` selects.
    pub async fn count(&self, query: &LogQuery) -> Result<u64, AnalystError> {
        match self {
            LogSource::Postgres(pool) => query.count(pool).await.map_err(AnalystError::Log),
            LogSource::Embedded(log) => embedded::count(log.as_ref(), query).await,
        }
    }

    /// Hands every event `query` selects to `each`, in commit order, a page
    /// of [`PAGE_SIZE`] at a time; `Break` ends the read there.
    pub(crate) async fn scan(
        &self,
        query: &LogQuery,
        each: &mut Each<'_>,
    ) -> Result<(), AnalystError> {
        match self {
            LogSource::Postgres(pool) => {
                let mut cursor = query.after;
                loop {
                    let mut page = query.page(cursor, PAGE_SIZE);
                    let mut rows = page.build().fetch(pool);
                    let mut in_page = 0i64;
                    while let Some(row) = rows.try_next().await.map_err(AnalystError::Log)? {
                        let event = log::decode(&row).map_err(AnalystError::Log)?;
                        cursor = event.cursor();
                        in_page += 1;
                        if each(event)?.is_break() {
                            return Ok(());
                        }
                    }
                    if in_page < PAGE_SIZE {
                        return Ok(());
                    }
                }
            }
            LogSource::Embedded(log) => embedded::scan(log.as_ref(), query, each).await,
        }
    }
}
