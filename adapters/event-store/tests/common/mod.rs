//! What the event log's test files share: an event, a bounded wait for
//! visibility, and the whole-log reader that concurrent-writer tests run.

use event_store::{Cursor, EventLog, LogFilter, NewEvent, RecordedEvent};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// A `MessageSent` carrying `n`, to tell events apart.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: json!({ "n": n }),
        metadata: json!({}),
    }
}

/// Whole-log reads on PostgreSQL see only what is below the oldest running
/// transaction of the whole cluster, and other tests run beside this one:
/// wait (bounded) until at least `n` events are visible, then return them.
pub async fn read_when_visible(
    log: &dyn EventLog,
    after: Cursor,
    filter: &LogFilter,
    n: usize,
) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let read = log.read_all(after, 1000, filter).await.expect("read");
        if read.len() >= n || tokio::time::Instant::now() > deadline {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reader of the whole log in pages of 50, asserting that its cursor only
/// moves forward; it returns the event ids it read, in order, once `total`
/// says how many to expect and that many arrived (or after 60 s).
pub fn spawn_reader(
    log: Arc<dyn EventLog>,
    total: watch::Receiver<Option<usize>>,
) -> tokio::task::JoinHandle<Vec<Uuid>> {
    tokio::spawn(async move {
        let (mut seen, mut cursor) = (Vec::new(), Cursor::START);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if total.borrow().is_some_and(|n| seen.len() >= n) {
                break;
            }
            let page = log
                .read_all(cursor, 50, &LogFilter::default())
                .await
                .expect("read");
            for e in &page {
                assert!(
                    e.cursor() > cursor,
                    "cursor went backwards: {} after {cursor}",
                    e.cursor()
                );
                cursor = e.cursor();
                seen.push(e.event_id);
            }
            if page.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        seen
    })
}
