//! The embedded backend's log, read through the `EventLog` port (DESIGN §9).
//!
//! SQLite has one writer, so commit order is position order and an append's
//! `transaction_id` is its first position: every append that commits after
//! the head has a higher transaction id than the head's, which makes "below
//! the head's transaction id + 1" the same horizon PostgreSQL's xmin gives —
//! fixed once when a read starts, with nothing to wait for. The port filters
//! by stream and type; the other clauses of a [`LogQuery`] are judged on each
//! event ([`LogQuery::admits`]), and a read stops at the first event past the
//! horizon or the `until` cursor ([`LogQuery::is_past`]).

use crate::AnalystError;
use crate::log::LogQuery;
use chrono::{DateTime, Utc};
use event_store::{Cursor, EventLog, LogFilter, RecordedEvent};
use futures_util::TryStreamExt;
use std::ops::ControlFlow;

/// Events read from the port per round trip (and per stream page).
const PAGE_SIZE: i64 = 5000;

/// Hears each event a scan selects; `Break` ends the scan there.
pub(crate) type Each<'a> =
    dyn FnMut(RecordedEvent) -> Result<ControlFlow<()>, AnalystError> + Send + 'a;

/// The horizon of a read that starts now: only appends committed so far.
pub(crate) async fn horizon(log: &dyn EventLog) -> Result<u64, AnalystError> {
    let head = log.head().await.map_err(AnalystError::Log)?;
    Ok(head.transaction_id.saturating_add(1))
}

/// Hands every event `query` selects to `each`, in commit order, reading a
/// page at a time (so memory stays flat for any size).
pub(crate) async fn scan(
    log: &dyn EventLog,
    query: &LogQuery,
    each: &mut Each<'_>,
) -> Result<(), AnalystError> {
    let filter = LogFilter {
        stream_id: query.stream_id.clone(),
        event_types: query.event_types.clone(),
    };
    let mut after = query.after;
    loop {
        let mut rows = log.read_all_stream(after, PAGE_SIZE, &filter);
        let mut read = 0i64;
        while let Some(event) = rows.try_next().await.map_err(AnalystError::Log)? {
            if query.is_past(&event) {
                return Ok(());
            }
            read += 1;
            after = event.cursor();
            if query.admits(&event) && each(event)?.is_break() {
                return Ok(());
            }
        }
        if read < PAGE_SIZE {
            return Ok(());
        }
    }
}

/// How many events `query` selects (a pass over them, for progress and ETA).
pub(crate) async fn count(log: &dyn EventLog, query: &LogQuery) -> Result<u64, AnalystError> {
    let mut n = 0u64;
    scan(log, query, &mut |_| {
        n += 1;
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    Ok(n)
}

/// The last cursor before the first event after `after` (below `horizon`)
/// recorded later than `time`, as `log::last_before_time` says on PostgreSQL.
pub(crate) async fn last_before_time(
    log: &dyn EventLog,
    after: Cursor,
    horizon: u64,
    time: DateTime<Utc>,
) -> Result<Option<Cursor>, AnalystError> {
    let bounds = LogQuery {
        after,
        horizon,
        ..LogQuery::default()
    };
    let mut first_late = None;
    scan(log, &bounds, &mut |event| {
        if event.recorded_at > time {
            first_late = Some(event.cursor());
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    Ok(first_late.map(|late| Cursor {
        transaction_id: late.transaction_id,
        global_position: late.global_position - 1,
    }))
}

/// Hands the events of `stream` to `each` in version order, a page at a time.
pub(crate) async fn scan_stream(
    log: &dyn EventLog,
    stream: &str,
    each: &mut Each<'_>,
) -> Result<(), AnalystError> {
    let mut after_version = 0u64;
    loop {
        let page = log
            .read_stream_range(stream, after_version, u64::MAX, PAGE_SIZE)
            .await
            .map_err(AnalystError::Log)?;
        let full = page.len() as i64 == PAGE_SIZE;
        for event in page {
            after_version = event.stream_version;
            if each(event)?.is_break() {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// When the first event of `stream` was recorded (None: no such stream).
pub(crate) async fn first_recorded(
    log: &dyn EventLog,
    stream: &str,
) -> Result<Option<DateTime<Utc>>, AnalystError> {
    let first = log
        .read_stream_range(stream, 0, u64::MAX, 1)
        .await
        .map_err(AnalystError::Log)?;
    Ok(first.first().map(|e| e.recorded_at))
}

/// The `UserRegistered` events of `streams` recorded at or before `as_of`.
pub(crate) async fn registrations(
    log: &dyn EventLog,
    streams: &[String],
    as_of: DateTime<Utc>,
) -> Result<Vec<RecordedEvent>, AnalystError> {
    let mut found = Vec::new();
    for stream in streams {
        let events = log
            .read_stream(stream, 0)
            .await
            .map_err(AnalystError::Log)?;
        found.extend(
            events
                .into_iter()
                .filter(|e| e.event_type == "UserRegistered" && e.recorded_at <= as_of),
        );
    }
    Ok(found)
}
