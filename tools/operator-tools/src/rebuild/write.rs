//! Writing a folded page: a few set-based statements per table, arrays bound
//! in binary and expanded with `unnest` (`messages` in `messages.rs`).

use super::deferred::DeferredKey;
use super::fold::PageFold;
use super::messages::MessagePath;
use super::rows::MemberChange;
use sqlx::PgConnection;

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Writes a page's changes into schema `s` (quoted) inside the caller's transaction.
pub async fn write_page(
    tx: &mut PgConnection,
    s: &str,
    fold: &PageFold,
    key: &mut DeferredKey,
) -> Result<MessagePath, sqlx::Error> {
    write_users(tx, s, fold).await?;
    write_channels(tx, s, fold).await?;
    write_members(tx, s, fold).await?;
    write_bans(tx, s, fold).await?;
    let path = super::messages::write_messages(tx, s, fold, key).await?;
    if !fold.positions.is_empty() {
        let (ids, versions): (Vec<&str>, Vec<i64>) = fold
            .positions
            .iter()
            .map(|(id, v)| (id.as_str(), *v as i64))
            .unzip();
        sqlx::query(sql(format!(
            "INSERT INTO {s}.stream_positions (stream_id, version) SELECT * FROM unnest($1::text[], $2::bigint[]) \
             ON CONFLICT (stream_id) DO UPDATE SET version = greatest({s}.stream_positions.version, excluded.version)"
        )))
        .bind(ids)
        .bind(versions)
        .execute(&mut *tx)
        .await?;
    }
    Ok(path)
}

async fn write_users(tx: &mut PgConnection, s: &str, fold: &PageFold) -> Result<(), sqlx::Error> {
    if fold.users.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = fold.users.values().collect();
    sqlx::query(sql(format!(
        "INSERT INTO {s}.users (user_id, username, display_name, registered_at) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) ON CONFLICT (user_id) DO NOTHING"
    )))
    .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.username.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.display_name.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.registered_at).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn write_channels(
    tx: &mut PgConnection,
    s: &str,
    fold: &PageFold,
) -> Result<(), sqlx::Error> {
    if !fold.channel_patches.is_empty() {
        let patches: Vec<_> = fold.channel_patches.iter().collect();
        sqlx::query(sql(format!(
            "UPDATE {s}.channels c SET archived = c.archived OR p.archived, \
             last_seq = greatest(c.last_seq, p.max_seq), updated_at = coalesce(p.updated_at, c.updated_at), \
             owner_id = coalesce(p.owner_id, c.owner_id) \
             FROM unnest($1::uuid[], $2::bool[], $3::bigint[], $4::timestamptz[], $5::uuid[]) \
                  AS p(channel_id, archived, max_seq, updated_at, owner_id) \
             WHERE c.channel_id = p.channel_id"
        )))
        .bind(patches.iter().map(|(id, _)| **id).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.archived).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.max_seq).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.updated_at).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.owner_id).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !fold.channel_inserts.is_empty() {
        let rows: Vec<_> = fold.channel_inserts.values().collect();
        sqlx::query(sql(format!(
            "INSERT INTO {s}.channels (channel_id, name, kind, max_members, owner_id, archived, created_at, last_seq, updated_at) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::uuid[], $6::bool[], \
                                  $7::timestamptz[], $8::bigint[], $9::timestamptz[]) \
             ON CONFLICT (channel_id) DO NOTHING"
        )))
        .bind(rows.iter().map(|r| r.channel_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.max_members).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.owner_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.archived).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.last_seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn write_members(tx: &mut PgConnection, s: &str, fold: &PageFold) -> Result<(), sqlx::Error> {
    let (mut deletes, mut puts, mut patches) = (Vec::new(), Vec::new(), Vec::new());
    for (key, change) in &fold.members {
        match change {
            MemberChange::Delete => deletes.push(*key),
            MemberChange::Put(row) => puts.push((*key, row)),
            MemberChange::Patch(p) => patches.push((*key, p)),
        }
    }
    if !deletes.is_empty() {
        sqlx::query(sql(format!(
            "DELETE FROM {s}.members m USING unnest($1::uuid[], $2::uuid[]) AS d(channel_id, user_id) \
             WHERE m.channel_id = d.channel_id AND m.user_id = d.user_id"
        )))
        .bind(deletes.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(deletes.iter().map(|k| k.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !puts.is_empty() {
        sqlx::query(sql(format!(
            "INSERT INTO {s}.members (channel_id, user_id, role, muted, read_seq, joined_at) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::bigint[], $6::timestamptz[]) \
             ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role, muted = excluded.muted, \
             read_seq = excluded.read_seq, joined_at = excluded.joined_at"
        )))
        .bind(puts.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind(puts.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
        .bind(puts.iter().map(|(_, r)| r.role).collect::<Vec<_>>())
        .bind(puts.iter().map(|(_, r)| r.muted).collect::<Vec<_>>())
        .bind(puts.iter().map(|(_, r)| r.read_seq).collect::<Vec<_>>())
        .bind(puts.iter().map(|(_, r)| r.joined_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !patches.is_empty() {
        sqlx::query(sql(format!(
            "UPDATE {s}.members m SET role = coalesce(p.role, m.role), muted = coalesce(p.muted, m.muted), \
             read_seq = greatest(m.read_seq, p.read_seq) \
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::bigint[]) AS p(channel_id, user_id, role, muted, read_seq) \
             WHERE m.channel_id = p.channel_id AND m.user_id = p.user_id"
        )))
        .bind(patches.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind(patches.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.role).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.muted).collect::<Vec<_>>())
        .bind(patches.iter().map(|(_, p)| p.read_seq).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

async fn write_bans(tx: &mut PgConnection, s: &str, fold: &PageFold) -> Result<(), sqlx::Error> {
    let deletes: Vec<_> = fold
        .bans
        .iter()
        .filter(|(_, b)| b.deleted)
        .map(|(k, _)| *k)
        .collect();
    let inserts: Vec<_> = fold
        .bans
        .iter()
        .filter_map(|(k, b)| b.insert.map(|at| (*k, at)))
        .collect();
    if !deletes.is_empty() {
        sqlx::query(sql(format!(
            "DELETE FROM {s}.bans b USING unnest($1::uuid[], $2::uuid[]) AS d(channel_id, user_id) \
             WHERE b.channel_id = d.channel_id AND b.user_id = d.user_id"
        )))
        .bind(deletes.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(deletes.iter().map(|k| k.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !inserts.is_empty() {
        sqlx::query(sql(format!(
            "INSERT INTO {s}.bans (channel_id, user_id, banned_at) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) ON CONFLICT DO NOTHING"
        )))
        .bind(inserts.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind(inserts.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
        .bind(inserts.iter().map(|(_, at)| *at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
