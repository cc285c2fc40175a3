//! Pages of the log for the rebuild's bulk phase, fetched and decoded ahead
//! of the writer: while page N is written, N+1 is decoded on a blocking
//! thread and N+2 fetched, so the three costs overlap instead of adding up.

use super::RebuildError;
use domain::Event;
use event_store::{Cursor, EventLog, LogFilter, RecordedEvent};
use projector::EventSchemas;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A page read from the log and decoded as the live projector decodes.
pub(super) struct Decoded {
    /// The events to apply, with their domain events.
    pub items: Vec<(RecordedEvent, Event)>,
    /// Events read (applied or not).
    pub read: usize,
    /// Events the live projector would dead-letter (left out of `items`).
    pub skipped: u64,
    /// The cursor after the page's last event.
    pub next: Option<Cursor>,
    pub fetching: Duration,
    pub decoding: Duration,
}

/// Checks each event against its schema and decodes it: the live
/// projector's decision (`projector::decode_logged`); one it would
/// dead-letter is counted and left out.
pub(super) fn decode_page(page: Vec<RecordedEvent>, schemas: &EventSchemas) -> Decoded {
    let started = Instant::now();
    let read = page.len();
    let next = page.last().map(RecordedEvent::cursor);
    let mut items = Vec::with_capacity(read);
    for recorded in page {
        if let Ok(event) = projector::decode_logged(&recorded, schemas) {
            items.push((recorded, event));
        }
    }
    Decoded {
        skipped: (read - items.len()) as u64,
        items,
        read,
        next,
        fetching: Duration::ZERO,
        decoding: started.elapsed(),
    }
}

/// A page on its way: its decoding runs on a blocking thread.
pub(super) type Ahead = Result<JoinHandle<Decoded>, RebuildError>;

/// Fetches pages from `cursor` until a short one, handing each to a
/// blocking thread to decode and sending the handle on; stops when the
/// receiver hangs up.
pub(super) async fn fetch_ahead(
    log: &dyn EventLog,
    schemas: Arc<EventSchemas>,
    mut cursor: Cursor,
    page_size: usize,
    pages: mpsc::Sender<Ahead>,
) {
    let limit = i64::try_from(page_size).unwrap_or(i64::MAX);
    loop {
        let started = Instant::now();
        let page = match log.read_all(cursor, limit, &LogFilter::default()).await {
            Ok(page) => page,
            Err(e) => {
                let _ = pages.send(Err(RebuildError::Log(e))).await;
                return;
            }
        };
        let fetching = started.elapsed();
        let last = page.last().map(RecordedEvent::cursor);
        let full = page.len() >= page_size;
        let schemas = schemas.clone();
        let decoding = tokio::task::spawn_blocking(move || Decoded {
            fetching,
            ..decode_page(page, &schemas)
        });
        if pages.send(Ok(decoding)).await.is_err() {
            return;
        }
        match last {
            Some(last) if full => cursor = last,
            _ => return,
        }
    }
}
