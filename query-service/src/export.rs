//! The event log as NDJSON in global commit order, in constant memory for any
//! size: pages of [`PAGE_SIZE`] events are read one at a time, advancing the
//! (transaction id, position) cursor, and each line is handed to the HTTP body
//! as soon as it is serialised.

use actix_web::web::Bytes;
use event_store::{Cursor, EventLog, LogFilter, RecordedEvent};
use futures_util::Stream;
use serde_json::Value;
use std::sync::Arc;

/// Events read from the log per round trip.
pub(crate) const PAGE_SIZE: i64 = 1000;

/// Why an export stopped before its end (the response is aborted).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportFailed {
    #[error("the event log failed mid-export: {0}")]
    Log(sqlx::Error),
    #[error("an event could not be serialised: {0}")]
    Encode(serde_json::Error),
}

/// A running export: where it stands, what is left, and the current page.
pub(crate) struct Export {
    store: Arc<dyn EventLog>,
    filter: LogFilter,
    cursor: Cursor,
    /// Lines still to send (`None`: no limit).
    remaining: Option<i64>,
    page: std::vec::IntoIter<RecordedEvent>,
    /// Whether the last page came back full, so more may follow.
    more: bool,
    sent: u64,
}

impl Export {
    /// Starts an export after `after`, reading the first page now: a failing
    /// log is then answered with an error status instead of an empty 200.
    pub(crate) async fn start(
        store: Arc<dyn EventLog>,
        filter: LogFilter,
        after: Cursor,
        limit: Option<i64>,
    ) -> Result<Export, sqlx::Error> {
        let mut export = Export {
            store,
            filter,
            cursor: after,
            remaining: limit.map(|l| l.max(0)),
            page: Vec::new().into_iter(),
            more: true,
            sent: 0,
        };
        if export.remaining != Some(0) {
            export.fetch().await?;
        }
        Ok(export)
    }

    /// The export as an HTTP body stream. Headers are sent by the time a later
    /// page fails, so a failure then is logged and yields an error: actix
    /// drops the connection without the last chunk, and the client sees a
    /// truncated transfer, never a well-formed shorter file.
    pub(crate) fn into_stream(self) -> impl Stream<Item = Result<Bytes, ExportFailed>> + 'static {
        futures_util::stream::unfold(Some(self), |export| async move {
            let mut export = export?;
            match export.next_line().await {
                Ok(Some(line)) => Some((Ok(line), Some(export))),
                Ok(None) => None,
                Err(failed) => Some((Err(failed), None)),
            }
        })
    }

    async fn next_line(&mut self) -> Result<Option<Bytes>, ExportFailed> {
        loop {
            if self.remaining == Some(0) {
                return Ok(self.finish());
            }
            if let Some(event) = self.page.next() {
                self.cursor = event.cursor();
                if let Some(remaining) = &mut self.remaining {
                    *remaining -= 1;
                }
                return match line(&event) {
                    Ok(bytes) => {
                        self.sent += 1;
                        Ok(Some(bytes))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, cursor = %self.cursor, "event export: cannot serialise; aborting the response");
                        Err(ExportFailed::Encode(e))
                    }
                };
            }
            if !self.more {
                return Ok(self.finish());
            }
            if let Err(e) = self.fetch().await {
                tracing::error!(error = %e, cursor = %self.cursor, sent = self.sent, "event export: the log failed; aborting the response");
                return Err(ExportFailed::Log(e));
            }
        }
    }

    async fn fetch(&mut self) -> Result<(), sqlx::Error> {
        let want = self.remaining.map_or(PAGE_SIZE, |r| r.min(PAGE_SIZE));
        let events = self.store.read_all(self.cursor, want, &self.filter).await?;
        self.more = i64::try_from(events.len()).is_ok_and(|n| n == want);
        self.page = events.into_iter();
        Ok(())
    }

    fn finish(&self) -> Option<Bytes> {
        tracing::debug!(sent = self.sent, cursor = %self.cursor, "event export complete");
        None
    }
}

/// One NDJSON line: the event's envelope plus its `cursor`.
fn line(event: &RecordedEvent) -> Result<Bytes, serde_json::Error> {
    let mut envelope = serde_json::to_value(event)?;
    if let Value::Object(fields) = &mut envelope {
        fields.insert("cursor".into(), Value::String(event.cursor().to_string()));
    }
    let mut bytes = serde_json::to_vec(&envelope)?;
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}
