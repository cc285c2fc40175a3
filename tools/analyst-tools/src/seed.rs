//! Synthetic history for benchmarks and tests: `MessageSent` events inserted
//! straight into `events` by the server (`generate_series`), one transaction
//! per batch as a bulk load must (DESIGN.md §3), so a million events take
//! seconds, not minutes. Not for production logs: no `ChannelCreated` precedes
//! the messages.

use sqlx::PgPool;
use uuid::Uuid;

const INSERT: &str = "
INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata)
SELECT 'channel-' || c.id, (g - 1) / $3 + 1, gen_random_uuid(), 'MessageSent', 1,
       jsonb_build_object('channel_id', c.id, 'message_id', gen_random_uuid(),
                          'seq', (g - 1) / $3 + 1, 'sender_id', $5::uuid,
                          'content', 'message number ' || g || ', \"quoted\" for CSV',
                          'message_type', 'text'),
       jsonb_build_object('correlation_id', gen_random_uuid(), 'actor_id', $5::uuid)
FROM generate_series($1::bigint, $2::bigint) AS g
JOIN unnest($4::uuid[]) WITH ORDINALITY AS c(id, n) ON c.n = (g - 1) % $3 + 1";

/// Appends `count` messages spread over `channels` new channel streams, in
/// transactions of `batch` rows; `on_batch` hears the running total.
pub async fn messages(
    pool: &PgPool,
    count: u64,
    channels: u32,
    batch: u64,
    mut on_batch: impl FnMut(u64),
) -> Result<(), sqlx::Error> {
    let channels = channels.max(1);
    let ids: Vec<Uuid> = (0..channels).map(|_| Uuid::now_v7()).collect();
    let sender = Uuid::now_v7();
    let mut from = 1u64;
    while from <= count {
        let to = (from + batch.max(1) - 1).min(count);
        sqlx::query(INSERT)
            .bind(i64::try_from(from).unwrap_or(i64::MAX))
            .bind(i64::try_from(to).unwrap_or(i64::MAX))
            .bind(i64::from(channels))
            .bind(&ids)
            .bind(sender)
            .execute(pool)
            .await?;
        on_batch(to);
        from = to + 1;
    }
    Ok(())
}
