//! A write transaction for loading many events at once (a rebuild): the
//! same rows as the ordinary one, with far fewer statements. Each statement
//! is a round trip to the connection's worker thread, which costs more than
//! SQLite's own work on one row, so:
//!
//! - `MessageSent` rows are gathered and inserted many to a statement, in
//!   their order (a multi-row `INSERT … ON CONFLICT DO NOTHING` resolves each
//!   row in turn, as separate statements would), and each channel's
//!   `last_seq`/`updated_at` moves once per flush to the highest seq and the
//!   last instant, which is where the per-message updates would leave it;
//! - any other event flushes what is gathered before its own writes, so
//!   every statement still sees the rows of the events before it;
//! - the stream positions are locked and saved in one statement each.

use super::{SqliteReadModel, SqliteTransaction, stamp};
use crate::port::{ReadTransaction, ReadWrites};
use chrono::{DateTime, Utc};
use domain::Event;
use event_store::{Cursor, RecordedEvent};
use sqlx::AssertSqlSafe;
use std::collections::HashMap;
use uuid::Uuid;

/// Rows to a multi-row insert (7 parameters each, far below SQLite's
/// 32,766, and few enough that a statement stays small).
const ROWS_PER_INSERT: usize = 256;

impl SqliteReadModel {
    /// Opens a write transaction on `schema`'s tables that gathers writes
    /// into multi-row statements (`bulk.rs`); its rows equal those of
    /// [`crate::ReadModel::begin`]'s transaction given the same calls.
    pub async fn begin_bulk(&self, schema: &str) -> Result<Box<dyn ReadTransaction>, sqlx::Error> {
        self.use_schema(schema, true).await?;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(BulkTransaction {
            inner: SqliteTransaction {
                tx,
                s: crate::quote_ident(schema),
            },
            messages: Vec::new(),
            channels: HashMap::new(),
        }))
    }
}

/// A message row waiting for its insert.
struct PendingMessage {
    channel_id: Uuid,
    seq: i64,
    message_id: Uuid,
    sender_id: Uuid,
    content: String,
    message_type: String,
    created_at: String,
}

struct BulkTransaction {
    inner: SqliteTransaction,
    messages: Vec<PendingMessage>,
    /// Per channel: the highest seq gathered and the instant of its last message.
    channels: HashMap<Uuid, (i64, String)>,
}

impl BulkTransaction {
    /// Writes what is gathered.
    async fn flush(&mut self) -> Result<(), sqlx::Error> {
        let s = self.inner.s.clone();
        for chunk in self.messages.chunks(ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO {s}.messages (channel_id, seq, message_id, sender_id, content, message_type, created_at) \
                 VALUES {values} ON CONFLICT DO NOTHING"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for m in chunk {
                query = query
                    .bind(m.channel_id)
                    .bind(m.seq)
                    .bind(m.message_id)
                    .bind(m.sender_id)
                    .bind(&m.content)
                    .bind(&m.message_type)
                    .bind(&m.created_at);
            }
            query.execute(&mut *self.inner.tx).await?;
        }
        self.messages.clear();
        let sql = format!(
            "UPDATE {s}.channels SET last_seq = max(last_seq, $2), updated_at = $3 WHERE channel_id = $1"
        );
        for (channel, (seq, at)) in self.channels.drain() {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(channel)
                .bind(seq)
                .bind(at)
                .execute(&mut *self.inner.tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ReadWrites for BulkTransaction {
    async fn lock_positions(
        &mut self,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error> {
        // The write lock is the transaction's (BEGIN IMMEDIATE), as in the
        // ordinary one; the version-0 rows are made for every stream at once.
        let s = self.inner.s.clone();
        let names = serde_json::to_string(streams).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {s}.stream_positions (stream_id, version) \
             SELECT value, 0 FROM json_each($1) WHERE true ON CONFLICT (stream_id) DO NOTHING"
        )))
        .bind(&names)
        .execute(&mut *self.inner.tx)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT stream_id, version FROM {s}.stream_positions \
             WHERE stream_id IN (SELECT value FROM json_each($1))"
        )))
        .bind(&names)
        .fetch_all(&mut *self.inner.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(stream, version)| (stream, version.max(0) as u64))
            .collect())
    }

    async fn write(&mut self, recorded: &RecordedEvent, event: &Event) -> Result<(), sqlx::Error> {
        let Event::MessageSent(e) = event else {
            self.flush().await?;
            return self.inner.write(recorded, event).await;
        };
        let at = stamp(recorded.recorded_at);
        let seq = e.seq as i64;
        match self.channels.get_mut(&e.channel_id.0) {
            Some((highest, last)) => {
                *highest = (*highest).max(seq);
                last.clone_from(&at);
            }
            None => {
                self.channels.insert(e.channel_id.0, (seq, at.clone()));
            }
        }
        self.messages.push(PendingMessage {
            channel_id: e.channel_id.0,
            seq,
            message_id: e.message_id.0,
            sender_id: e.sender_id.0,
            content: e.content.clone(),
            message_type: e.message_type.clone(),
            created_at: at,
        });
        Ok(())
    }

    async fn save_positions(&mut self, moved: &[(String, i64)]) -> Result<(), sqlx::Error> {
        self.flush().await?;
        let s = self.inner.s.clone();
        let moved = serde_json::to_string(moved).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {s}.stream_positions (stream_id, version) \
             SELECT value ->> 0, value ->> 1 FROM json_each($1) WHERE true \
             ON CONFLICT (stream_id) DO UPDATE SET version = max(version, excluded.version)"
        )))
        .bind(moved)
        .execute(&mut *self.inner.tx)
        .await?;
        Ok(())
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        cursor: Option<Cursor>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        self.flush().await?;
        self.inner
            .save_checkpoint(projection, cursor, recorded_at)
            .await
    }
}

#[async_trait::async_trait]
impl ReadTransaction for BulkTransaction {
    async fn commit(mut self: Box<Self>) -> Result<(), sqlx::Error> {
        self.flush().await?;
        self.inner.tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LIVE_SCHEMA;
    use crate::ReadModel;
    use chrono::TimeDelta;
    use domain::{
        ChannelCreated, ChannelId, ChannelKind, MemberJoined, MessageDeleted, MessageEdited,
        MessageId, MessageSent, ReadUpTo, UserId,
    };

    fn recorded(n: usize, stream: &str) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::now_v7(),
            event_type: String::new(),
            schema_version: 1,
            stream_id: stream.to_owned(),
            stream_version: n as u64 + 1,
            global_position: n as i64 + 1,
            transaction_id: 1,
            recorded_at: DateTime::UNIX_EPOCH + TimeDelta::seconds(n as i64),
            data: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
        }
    }

    /// Every row of the model's tables, as text.
    async fn rows(model: &SqliteReadModel) -> Vec<String> {
        let mut out = Vec::new();
        for table in [
            "users",
            "channels",
            "members",
            "bans",
            "messages",
            "stream_positions",
        ] {
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1, 'rm') ORDER BY cid")
                    .bind(table)
                    .fetch_all(&model.reader)
                    .await
                    .expect("columns");
            let row = columns
                .iter()
                .map(|c| format!("quote({c})"))
                .collect::<Vec<_>>()
                .join(" || ',' || ");
            let found: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT '{table}: ' || {row} FROM rm.{table} ORDER BY 1"
            )))
            .fetch_all(&model.reader)
            .await
            .expect("rows");
            out.extend(found);
        }
        out
    }

    /// The same calls through both transactions leave the same rows, with
    /// the cases where gathering could go wrong: an edit and a delete of a
    /// message sent just before, a seq and a message id taken twice (the
    /// later insert does nothing), a message of an unknown channel, other
    /// events between messages, and messages left for the commit to write.
    #[tokio::test]
    async fn a_bulk_transaction_writes_what_the_ordinary_one_does() {
        let (owner, user) = (UserId::new(), UserId::new());
        let (c1, c2) = (ChannelId::new(), ChannelId::new());
        let ids: Vec<MessageId> = (0..6).map(|_| MessageId::new()).collect();
        let sent = |channel: ChannelId, seq: u64, id: MessageId| {
            Event::MessageSent(MessageSent {
                channel_id: channel,
                message_id: id,
                seq,
                sender_id: owner,
                content: format!("message {seq} {id:?}"),
                message_type: "text".into(),
                client_msg_id: None,
            })
        };
        let events = vec![
            Event::ChannelCreated(ChannelCreated {
                channel_id: c1,
                name: "one".into(),
                kind: ChannelKind::Public,
                max_members: None,
                owner_id: owner,
            }),
            sent(c1, 1, ids[0]),
            sent(c1, 2, ids[1]),
            Event::MessageEdited(MessageEdited {
                channel_id: c1,
                message_id: ids[0],
                seq: 1,
                sender_id: owner,
                content: "edited".into(),
                edited_by: owner,
            }),
            sent(c1, 3, ids[2]),
            Event::MessageDeleted(MessageDeleted {
                channel_id: c1,
                message_id: ids[2],
                seq: 3,
                sender_id: owner,
                deleted_by: owner,
            }),
            sent(c1, 3, ids[3]),
            sent(c2, 1, ids[4]),
            sent(c1, 4, ids[1]),
            Event::MemberJoined(MemberJoined {
                channel_id: c1,
                user_id: user,
            }),
            Event::ReadUpTo(ReadUpTo {
                channel_id: c1,
                user_id: user,
                seq: 2,
            }),
            sent(c1, 5, ids[5]),
        ];
        let dir = tempfile::tempdir().expect("dir");
        let ordinary = SqliteReadModel::open(&dir.path().join("read.db"))
            .await
            .expect("open");
        let bulk = SqliteReadModel::open_scratch(&dir.path().join("scratch.db"))
            .await
            .expect("open");
        let streams = vec!["s1".to_owned(), "s2".to_owned()];
        for (model, gathered) in [(&ordinary, false), (&bulk, true)] {
            let mut tx = if gathered {
                model.begin_bulk(LIVE_SCHEMA).await
            } else {
                model.begin(LIVE_SCHEMA).await
            }
            .expect("begin");
            let positions = tx.lock_positions(&streams).await.expect("lock");
            assert_eq!(positions, [("s1".into(), 0), ("s2".into(), 0)].into());
            for (n, event) in events.iter().enumerate() {
                tx.write(&recorded(n, "s1"), event).await.expect("write");
            }
            tx.save_positions(&[("s1".into(), 12), ("s2".into(), 3)])
                .await
                .expect("positions");
            tx.commit().await.expect("commit");
            let mut tx = model.begin(LIVE_SCHEMA).await.expect("begin");
            let positions = tx.lock_positions(&streams).await.expect("lock");
            assert_eq!(positions, [("s1".into(), 12), ("s2".into(), 3)].into());
        }
        let expected = rows(&ordinary).await;
        assert_eq!(
            expected
                .iter()
                .filter(|r| r.starts_with("messages"))
                .count(),
            5,
            "{expected:#?}"
        );
        assert_eq!(rows(&bulk).await, expected);
    }
}
