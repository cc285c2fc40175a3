//! How a replay moves events from the log into the target: a reader task
//! sends pages; each page is split by stream over a few connections (a
//! stream's events stay in order on one, which is all `apply_event` needs:
//! its writes are per stream), applied in batched transactions, and then
//! checkpointed.

use crate::AnalystError;
use crate::log::{self, LogQuery};
use domain::{Event, StoredEvent};
use event_store::{EventLog, PgEventStore, RecordedEvent};
use futures_util::TryStreamExt;
use read_model::{LIVE_SCHEMA, PgReadWrites, ReadModel};
use sqlx::PgPool;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use tokio::sync::mpsc;

/// Events fetched from the log per page.
const PAGE_SIZE: i64 = 5000;

/// Sends the query's events page by page until the log is exhausted.
pub(crate) async fn read_pages(
    pool: PgPool,
    query: LogQuery,
    pages: mpsc::Sender<Result<Vec<RecordedEvent>, sqlx::Error>>,
) {
    let mut after = query.after;
    loop {
        let page = async {
            let mut qb = query.page(after, PAGE_SIZE);
            let rows: Vec<_> = qb.build().fetch(&pool).try_collect().await?;
            rows.iter().map(log::decode).collect::<Result<Vec<_>, _>>()
        }
        .await;
        let full = matches!(&page, Ok(events) if events.len() as i64 == PAGE_SIZE);
        if let Ok(events) = &page
            && let Some(e) = events.last()
        {
            after = e.cursor();
        }
        let failed = page.is_err();
        if pages.send(page).await.is_err() || failed || !full {
            return;
        }
    }
}

/// Applies a page: its streams spread over `jobs` connections, each in
/// transactions of `batch` events; then the checkpoint.
pub(crate) async fn apply_page(
    pool: &PgPool,
    store: &PgEventStore,
    page: &[RecordedEvent],
    jobs: usize,
    batch: usize,
) -> Result<(), AnalystError> {
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut shares: Vec<Vec<&RecordedEvent>> = vec![Vec::new(); jobs.max(1)];
    for event in page {
        let share = hasher.hash_one(&event.stream_id) as usize % shares.len();
        shares[share].push(event);
    }
    futures_util::future::try_join_all(shares.iter().map(|share| async move {
        for chunk in share.chunks(batch.max(1)) {
            apply_batch(pool, store, chunk).await?;
        }
        Ok::<(), AnalystError>(())
    }))
    .await?;
    match page.last() {
        Some(last) => checkpoint(pool, last).await,
        None => Ok(()),
    }
}

/// Applies `events` in one transaction of the target.
async fn apply_batch(
    pool: &PgPool,
    store: &PgEventStore,
    events: &[&RecordedEvent],
) -> Result<(), AnalystError> {
    let mut tx = pool.begin().await.map_err(AnalystError::Target)?;
    let mut writes = PgReadWrites::new(&mut tx, LIVE_SCHEMA);
    for recorded in events {
        let event = decode(recorded)?;
        projector::apply_event(&mut writes, store, recorded, &event)
            .await
            .map_err(|source| AnalystError::Apply {
                cursor: recorded.cursor().to_string(),
                cause: Box::new(source),
            })?;
    }
    tx.commit().await.map_err(AnalystError::Target)
}

/// The domain event a recorded one holds.
fn decode(recorded: &RecordedEvent) -> Result<Event, AnalystError> {
    let stored = StoredEvent {
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        data: recorded.data.clone(),
    };
    Event::from_stored(&stored).map_err(|e| AnalystError::Corrupt {
        event_id: recorded.event_id,
        cursor: recorded.cursor().to_string(),
        reason: e.to_string(),
    })
}

/// Applies `events` (in commit order) in one transaction of an embedded
/// target, moving its `replay` checkpoint to the last of them.
pub(crate) async fn apply_chunk(
    model: &dyn ReadModel,
    log: &dyn EventLog,
    events: &[RecordedEvent],
) -> Result<(), AnalystError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(());
    };
    let decoded = events.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let items: Vec<(&RecordedEvent, &Event)> = events.iter().zip(&decoded).collect();
    let mut tx = model
        .begin(LIVE_SCHEMA)
        .await
        .map_err(AnalystError::Target)?;
    projector::apply_batch(&mut *tx, log, &items)
        .await
        .map_err(|(index, source)| AnalystError::Apply {
            cursor: match index.and_then(|i| events.get(i)) {
                Some(e) => e.cursor().to_string(),
                None => format!("{}..{}", first.cursor(), last.cursor()),
            },
            cause: Box::new(source),
        })?;
    tx.save_checkpoint("replay", Some(last.cursor()), last.recorded_at)
        .await
        .map_err(AnalystError::Target)?;
    tx.commit().await.map_err(AnalystError::Target)
}

/// Records how far the replay got.
async fn checkpoint(pool: &PgPool, last: &RecordedEvent) -> Result<(), AnalystError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {}.checkpoints (projection, global_position, recorded_at, applied_at) \
         VALUES ('replay', $1, $2, now()) ON CONFLICT (projection) DO UPDATE SET \
         global_position = excluded.global_position, recorded_at = excluded.recorded_at, \
         applied_at = excluded.applied_at",
        read_model::quote_ident(LIVE_SCHEMA)
    )))
    .bind(last.global_position)
    .bind(last.recorded_at)
    .execute(pool)
    .await
    .map_err(AnalystError::Target)?;
    Ok(())
}
