//! The relay's durable position in the log.

use event_store::Cursor;
use sqlx::PgPool;

/// The checkpoint row of the relay.
pub const RELAY_NAME: &str = "relay";

/// The relay's checkpoint (the start of the log if it never published).
pub async fn load_checkpoint(pool: &PgPool) -> Result<Cursor, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT transaction_id, global_position FROM relay_checkpoints WHERE name = $1",
    )
    .bind(RELAY_NAME)
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or(Cursor::START, |(tx, pos)| Cursor {
        transaction_id: tx as u64,
        global_position: pos,
    }))
}

/// Moves the checkpoint forward (never back, whoever writes it).
///
/// Committed without waiting for the WAL flush (`synchronous_commit = off`,
/// for this transaction only): a crash of Postgres may lose the last few
/// checkpoints, and the relay then resumes from an older one and
/// re-publishes events already confirmed. That is at least once, which the
/// consumers dedupe; the checkpoint still never passes an unconfirmed event
/// and never moves back. One simple query, so one round trip and one implicit
/// transaction (which `SET LOCAL` applies to, and a failure rolls back); the values are integers and a constant, so formatting them
/// in is safe.
pub(super) async fn save(pool: &PgPool, cursor: Cursor) -> Result<(), sqlx::Error> {
    let sql = format!(
        "SET LOCAL synchronous_commit = off; \
         INSERT INTO relay_checkpoints (name, transaction_id, global_position) VALUES ('{RELAY_NAME}', {tx}, {pos}) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id, \
         global_position = excluded.global_position, updated_at = now() \
         WHERE (relay_checkpoints.transaction_id, relay_checkpoints.global_position) \
             < (excluded.transaction_id, excluded.global_position)",
        tx = cursor.transaction_id as i64,
        pos = cursor.global_position,
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await?;
    Ok(())
}
