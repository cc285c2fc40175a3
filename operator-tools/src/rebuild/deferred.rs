//! The bulk phase builds `messages` without its primary key `(channel_id,
//! seq)` and adds it back once, before the catch-up: maintaining that index
//! row by row is most of the cost of inserting a message (messages of many
//! channels interleave, so every insert lands on a different index page),
//! while building it at the end is a single sort.
//!
//! Without the index the database cannot refuse a second row for a channel
//! and seq, so this keeps the highest seq written per channel (memory grows
//! with channels, not messages): a `COPY` whose every row is above its
//! channel's highest cannot collide. Anything else restores the key at once
//! and goes the exact way. `message_id` keeps its unique index throughout.

use super::copy::MessageRow;
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// The deferred primary key of `{schema}.messages`.
#[derive(Debug)]
pub struct DeferredKey {
    /// `(name, definition)` while dropped; None once restored (or never dropped).
    dropped: Option<(String, String)>,
    highest: HashMap<Uuid, i64>,
}

impl DeferredKey {
    /// Drops the primary key of `{s}.messages` (quoted schema), remembering it.
    pub async fn defer(conn: &mut PgConnection, s: &str) -> Result<Self, sqlx::Error> {
        let key: Option<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = '{s}.messages'::regclass AND contype = 'p'"
        )))
        .fetch_optional(&mut *conn)
        .await?;
        if let Some((name, _)) = &key {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {s}.messages DROP CONSTRAINT {}",
                read_model::quote_ident(name)
            )))
            .execute(&mut *conn)
            .await?;
        }
        Ok(Self {
            dropped: key,
            highest: HashMap::new(),
        })
    }

    /// Puts the primary key back (a no-op when it is in place).
    pub async fn restore(&mut self, conn: &mut PgConnection, s: &str) -> Result<(), sqlx::Error> {
        if let Some((name, definition)) = self.dropped.take() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE {s}.messages ADD CONSTRAINT {} {definition}",
                read_model::quote_ident(&name)
            )))
            .execute(&mut *conn)
            .await?;
            self.highest = HashMap::new();
        }
        Ok(())
    }

    /// Whether the key is dropped right now.
    pub fn is_deferred(&self) -> bool {
        self.dropped.is_some()
    }

    /// Whether rows (free of collisions among themselves) can be copied
    /// without the key: each above its channel's highest seq written so far.
    pub fn admits(&self, rows: &[MessageRow]) -> bool {
        !self.is_deferred()
            || rows
                .iter()
                .all(|r| self.highest.get(&r.channel_id).is_none_or(|h| r.seq > *h))
    }

    /// Records rows as written (or possibly written).
    pub fn written(&mut self, rows: &[MessageRow]) {
        if !self.is_deferred() {
            return;
        }
        for r in rows {
            let h = self.highest.entry(r.channel_id).or_insert(r.seq);
            *h = (*h).max(r.seq);
        }
    }
}
