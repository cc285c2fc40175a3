//! Writing a page's messages. `COPY` has no `ON CONFLICT`, so it is the fast
//! path only: when the page's messages collide with nothing, its result
//! equals the exact path (patches of messages sent in the page, then an
//! ordered insert-if-absent). A unique violation rolls back to a savepoint and
//! takes the exact path instead.

use super::copy::{BinaryCopy, MESSAGE_COLUMNS};
use super::deferred::DeferredKey;
use super::fold::PageFold;
use sqlx::PgConnection;
use uuid::Uuid;

/// Which way a page's messages went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagePath {
    /// No messages in the page.
    None,
    /// Binary `COPY`.
    Copy,
    /// Ordered insert-if-absent (the page's messages collide).
    Exact,
    /// Nothing written: the exact path needs the primary key, which is
    /// restored outside a transaction; roll back, restore, write again.
    NeedsKey,
}

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

pub(super) async fn write_messages(
    tx: &mut PgConnection,
    s: &str,
    fold: &PageFold,
    key: &mut DeferredKey,
) -> Result<MessagePath, sqlx::Error> {
    // Patches of messages from earlier pages apply whichever path the inserts take.
    let (earlier, in_page): (Vec<_>, Vec<_>) = fold
        .message_patches
        .keys()
        .copied()
        .partition(|id| !fold.sent_in_page(id));
    patch_messages(tx, s, fold, &earlier).await?;
    let rows = &fold.message_inserts;
    if rows.is_empty() {
        return Ok(MessagePath::None);
    }
    if !fold.inserts_collide() && key.admits(rows) {
        sqlx::query("SAVEPOINT rebuild_copy")
            .execute(&mut *tx)
            .await?;
        match copy_messages(tx, s, fold).await {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT rebuild_copy")
                    .execute(&mut *tx)
                    .await?;
                key.written(rows);
                return Ok(MessagePath::Copy);
            }
            Err(e) if is_unique_violation(&e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT rebuild_copy")
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    // The exact path needs every unique index in place.
    if key.is_deferred() {
        return Ok(MessagePath::NeedsKey);
    }
    patch_messages(tx, s, fold, &in_page).await?;
    insert_messages_if_absent(tx, s, fold).await?;
    Ok(MessagePath::Exact)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23505")
}

async fn copy_messages(tx: &mut PgConnection, s: &str, fold: &PageFold) -> Result<(), sqlx::Error> {
    let mut copy = BinaryCopy::new(fold.message_inserts.len());
    for row in &fold.message_inserts {
        copy.message(row);
    }
    let mut stream = tx
        .copy_in_raw(&format!(
            "COPY {s}.messages ({MESSAGE_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    stream.send(copy.finish()).await?;
    stream.finish().await?;
    Ok(())
}

async fn patch_messages(
    tx: &mut PgConnection,
    s: &str,
    fold: &PageFold,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let patches: Vec<_> = ids
        .iter()
        .filter_map(|id| fold.message_patches.get(id))
        .collect();
    sqlx::query(sql(format!(
        "UPDATE {s}.messages m SET \
           content = CASE WHEN p.deleted THEN NULL WHEN m.deleted OR NOT p.edited THEN m.content ELSE p.content END, \
           edited_at = CASE WHEN m.deleted OR NOT p.edited THEN m.edited_at ELSE p.edited_at END, \
           deleted = m.deleted OR p.deleted \
         FROM unnest($1::uuid[], $2::bool[], $3::text[], $4::timestamptz[], $5::bool[]) \
              AS p(message_id, edited, content, edited_at, deleted) \
         WHERE m.message_id = p.message_id"
    )))
    .bind(ids.to_vec())
    .bind(patches.iter().map(|p| p.edit.is_some()).collect::<Vec<_>>())
    .bind(patches.iter().map(|p| p.edit.as_ref().map(|e| e.0.as_str())).collect::<Vec<_>>())
    .bind(patches.iter().map(|p| p.edit.as_ref().map(|e| e.1)).collect::<Vec<_>>())
    .bind(patches.iter().map(|p| p.deleted).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The exact path: every `MessageSent` in order, each inserted only if no row
/// has its id or its channel and seq (later duplicates in the page lose).
async fn insert_messages_if_absent(
    tx: &mut PgConnection,
    s: &str,
    fold: &PageFold,
) -> Result<(), sqlx::Error> {
    let rows = &fold.message_inserts;
    sqlx::query(sql(format!(
        "INSERT INTO {s}.messages ({MESSAGE_COLUMNS}) \
         SELECT channel_id, seq, message_id, sender_id, content, message_type, created_at, edited_at, deleted \
         FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
                     $7::timestamptz[], $8::timestamptz[], $9::bool[]) WITH ORDINALITY \
              AS r(channel_id, seq, message_id, sender_id, content, message_type, created_at, edited_at, deleted, ord) \
         ORDER BY ord ON CONFLICT DO NOTHING"
    )))
    .bind(rows.iter().map(|r| r.channel_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sender_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.content.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message_type.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.edited_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
