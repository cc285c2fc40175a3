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
pub(super) async fn save(pool: &PgPool, cursor: Cursor) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, transaction_id, global_position) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id, \
         global_position = excluded.global_position, updated_at = now() \
         WHERE (relay_checkpoints.transaction_id, relay_checkpoints.global_position) \
             < (excluded.transaction_id, excluded.global_position)",
    )
    .bind(RELAY_NAME)
    .bind(cursor.transaction_id as i64)
    .bind(cursor.global_position)
    .execute(pool)
    .await?;
    Ok(())
}
