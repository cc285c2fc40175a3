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
//!
//! The key is restored without a transaction id: `CREATE UNIQUE INDEX
//! CONCURRENTLY` (outside any transaction) builds the index, then `ADD
//! CONSTRAINT … PRIMARY KEY USING INDEX` attaches it, a catalog-only change.
//! A plain `ADD CONSTRAINT … PRIMARY KEY` holds an xid for the whole build,
//! and transaction ids are cluster-wide: every whole-log reader (the relay,
//! `/api/events`) would stand still for as long as the index takes to build.

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

    /// Puts the primary key back (a no-op when it is in place). Must run
    /// outside a transaction (on an autocommit connection).
    pub async fn restore(&mut self, conn: &mut PgConnection, s: &str) -> Result<(), sqlx::Error> {
        let Some((name, definition)) = &self.dropped else {
            return Ok(());
        };
        let constraint = read_model::quote_ident(name);
        match definition.strip_prefix("PRIMARY KEY ") {
            Some(columns) => {
                // Left over by a build that failed half-way (an invalid index).
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {s}.{constraint}"
                )))
                .execute(&mut *conn)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {constraint} ON {s}.messages {columns}"
                )))
                .execute(&mut *conn)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {s}.messages ADD CONSTRAINT {constraint} PRIMARY KEY USING INDEX {constraint}"
                )))
                .execute(&mut *conn)
                .await?;
            }
            // Not a plain column list: rebuild it the ordinary way.
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {s}.messages ADD CONSTRAINT {constraint} {definition}"
                )))
                .execute(&mut *conn)
                .await?;
            }
        }
        self.dropped = None;
        self.highest = HashMap::new();
        Ok(())
    }

    /// Whether writing `rows` needs the key in place first.
    pub fn needed_for(&self, rows: &[MessageRow], collide: bool) -> bool {
        self.is_deferred() && !rows.is_empty() && (collide || !self.admits(rows))
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
