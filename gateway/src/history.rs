//! What the gateway reads from the read model: the messages a subscriber missed.

use crate::frames::ServerFrame;
use crate::hub::Live;
use futures_util::future::BoxFuture;
use read_model::ReadModel;
use std::sync::Arc;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Default of `CHAT_WS_RECOVERY_LIMIT`: most messages replayed on subscribe;
/// further back, `recovered: false` tells the client to page through REST.
pub const DEFAULT_RECOVERY_LIMIT: u64 = 10_000;

/// History queries run at once per instance: a reconnect storm queues here
/// instead of exhausting the read pool (which also serves HTTP reads).
const CONCURRENT_READS: usize = 4;

/// seq, message_id, sender_id, content, message_type, created_at, deleted.
pub(crate) type Row = (
    i64,
    Uuid,
    Uuid,
    Option<String>,
    String,
    chrono::DateTime<chrono::Utc>,
    bool,
);

/// Where the history rows come from: the read model in production; a model
/// of it in the subscribe/replay/live merge's model test.
pub(crate) trait HistorySource: Send + Sync + std::fmt::Debug {
    /// The channel's last seq (0 before its first message is projected).
    fn last_seq(&self, channel: Uuid) -> BoxFuture<'_, Result<u64, sqlx::Error>>;
    /// Rows with seq > `after`, oldest first, at most `limit`.
    fn rows_after(
        &self,
        channel: Uuid,
        after: u64,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<Row>, sqlx::Error>>;
}

/// The read model, through its port.
#[derive(Debug)]
struct Port(Arc<dyn ReadModel>);

impl HistorySource for Port {
    fn last_seq(&self, channel: Uuid) -> BoxFuture<'_, Result<u64, sqlx::Error>> {
        self.0.last_seq(channel)
    }

    fn rows_after(
        &self,
        channel: Uuid,
        after: u64,
        limit: i64,
    ) -> BoxFuture<'_, Result<Vec<Row>, sqlx::Error>> {
        Box::pin(async move {
            let rows = self.0.messages_after(channel, after as i64, limit).await?;
            Ok(rows
                .into_iter()
                .map(|m| {
                    (
                        m.seq,
                        m.message_id,
                        m.sender_id,
                        m.content,
                        m.message_type,
                        m.created_at,
                        m.deleted,
                    )
                })
                .collect())
        })
    }
}

/// Read-model queries of the gateway.
#[derive(Debug, Clone)]
pub struct History {
    source: Arc<dyn HistorySource>,
    reads: Arc<Semaphore>,
}

impl History {
    pub fn new(read: Arc<dyn ReadModel>) -> Self {
        Self::from_source(Arc::new(Port(read)))
    }

    pub(crate) fn from_source(source: Arc<dyn HistorySource>) -> Self {
        Self {
            source,
            reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
        }
    }

    /// The channel's last seq in the read model (0 before its first message is projected).
    pub async fn last_seq(&self, channel: Uuid) -> Result<u64, sqlx::Error> {
        self.source.last_seq(channel).await
    }

    /// Message frames with seq > `after`, oldest first (at most `limit`);
    /// deleted ones as `message_deleted`.
    pub async fn messages_after(
        &self,
        channel: Uuid,
        after: u64,
        limit: i64,
    ) -> Result<Vec<Live>, sqlx::Error> {
        let _permit = self.reads.acquire().await;
        metrics::counter!("ws_history_reads_total").increment(1);
        let rows = self.source.rows_after(channel, after, limit).await?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, message_id, sender_id, content, message_type, created_at, deleted)| {
                    let seq = seq as u64;
                    let frame = if deleted {
                        ServerFrame::MessageDeleted {
                            channel_id: channel,
                            seq,
                            message_id,
                        }
                    } else {
                        ServerFrame::Message {
                            channel_id: channel,
                            seq,
                            message_id,
                            sender_id,
                            content: content.unwrap_or_default(),
                            message_type,
                            created_at,
                        }
                    };
                    Live::new(Some(seq), &frame)
                },
            )
            .collect())
    }
}
