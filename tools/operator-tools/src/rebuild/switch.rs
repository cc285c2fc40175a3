//! The two ends of a rebuild that touch more than its own schema: preparing
//! (the rebuild lock, leftovers of an interrupted run, fresh tables) and the
//! switch, one transaction that locks the live projector out, applies the
//! tail, carries the checkpoints over and swaps the schemas by renaming.
//!
//! Queries keep reading the live schema until the rename commits and then
//! resolve the same names to the new tables (a schema rename invalidates
//! every cached plan); the projector's next batch waits on the lock and then
//! writes the new tables.

use super::{Build, Projection, RebuildError, source};
use event_store::PgEventStore;
use read_model::{PgReadWrites, quote_ident};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Instant;

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Takes the rebuild lock on a dedicated session, drops leftovers of an
/// interrupted run and creates the rebuild schema's tables.
pub(super) async fn prepare(read: &PgPool, p: Projection) -> Result<PgConnection, RebuildError> {
    let mut conn = read.acquire().await?.detach();
    // Bulk pages need not wait for the WAL flush: a crash only means a rerun.
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    // Folding a tail between statements of the switch may take a moment.
    sqlx::query("SET idle_in_transaction_session_timeout = '60s'")
        .execute(&mut conn)
        .await?;
    // A rebuild killed a moment ago may still hold the lock until its session ends.
    let mut tries = 0;
    loop {
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(format!("chat-rebuild:{}", p.name))
            .fetch_one(&mut conn)
            .await?;
        if held {
            break;
        }
        tries += 1;
        if tries == 10 {
            return Err(RebuildError::Busy(p.name));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2 ESCAPE '!' ORDER BY 1",
    )
    .bind(p.rebuild_schema)
    .bind(format!("{}!_old!_%", p.schema))
    .fetch_all(&mut conn)
    .await?;
    for schema in leftovers {
        tracing::info!(%schema, "dropping the leftover of an earlier rebuild");
        sqlx::query(sql(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(&schema)
        )))
        .execute(&mut conn)
        .await?;
    }
    read_model::create_tables(read, p.rebuild_schema).await?;
    Ok(conn)
}

/// Switches the live schema to the rebuilt one (see the module doc).
pub(super) async fn switch(
    conn: &mut PgConnection,
    log: &PgEventStore,
    build: &mut Build,
    page_size: usize,
) -> Result<(), RebuildError> {
    let started = Instant::now();
    let p = build.projection;
    let live = quote_ident(p.schema);
    let target = build.target.clone();
    let old_name = format!("{}_old_{}", p.schema, chrono::Utc::now().timestamp_millis());
    let old = quote_ident(&old_name);
    sqlx::query("SET synchronous_commit = on")
        .execute(&mut *conn)
        .await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '60s'")
        .execute(&mut *tx)
        .await?;
    // Serialises with `read_model::create_tables` of a process starting now.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('chat-read-model-ddl'))")
        .execute(&mut *tx)
        .await?;
    let waited = Instant::now();
    sqlx::query(sql(format!(
        "LOCK TABLE {live}.stream_positions IN EXCLUSIVE MODE"
    )))
    .execute(&mut *tx)
    .await?;
    build.report.phases.lock_wait = waited.elapsed();

    // Read the whole tail before this transaction writes anything: once it
    // has a transaction id it would hold back the very reads it waits for.
    let mut tail = Vec::new();
    let mut cursor = build.cursor;
    loop {
        let page = source::read_page(log.pool(), cursor, page_size)
            .await
            .map_err(RebuildError::Log)?;
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        let short = page.len() < page_size;
        tail.push(page);
        if short {
            break;
        }
    }
    for page in tail {
        build.report.tail_events += page.len() as u64;
        let folded = super::fold_page(&mut build.versions, page, std::time::Duration::ZERO);
        build.write(&mut tx, folded).await?;
    }
    reconcile(&mut tx, log, build, &live).await?;

    sqlx::query(sql(format!("DELETE FROM {target}.checkpoints")))
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql(format!(
        "INSERT INTO {target}.checkpoints (projection, global_position, recorded_at, applied_at, transaction_id) \
         SELECT projection, global_position, recorded_at, applied_at, transaction_id FROM {live}.checkpoints"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query(sql(format!("ALTER SCHEMA {live} RENAME TO {old}")))
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql(format!("ALTER SCHEMA {target} RENAME TO {live}")))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    build.report.phases.switch = started.elapsed();
    tracing::info!(projection = p.name, old = %old_name, "switched to the rebuilt model");

    // Waits for queries still reading the old tables, then frees them.
    let dropping = Instant::now();
    sqlx::query(sql(format!("DROP SCHEMA {old} CASCADE")))
        .execute(&mut *conn)
        .await?;
    build.report.phases.drop_old = dropping.elapsed();
    Ok(())
}

/// Streams the live model applied further than the log read here (which the
/// commit-order horizon should make impossible, but costs one query to rule
/// out): their missing events are read by stream and applied with the live
/// projector's own `apply_event`, so the new model is never behind the old.
async fn reconcile(
    tx: &mut PgConnection,
    log: &PgEventStore,
    build: &mut Build,
    live: &str,
) -> Result<(), RebuildError> {
    let target = &build.target;
    let behind: Vec<(String, i64, i64)> = sqlx::query_as(sql(format!(
        "SELECT l.stream_id, l.version, coalesce(r.version, 0) FROM {live}.stream_positions l \
         LEFT JOIN {target}.stream_positions r USING (stream_id) \
         WHERE r.version IS NULL OR r.version < l.version"
    )))
    .fetch_all(&mut *tx)
    .await?;
    let mut writes = PgReadWrites::new(tx, build.projection.rebuild_schema);
    for (stream, live_version, ours) in behind {
        let tail_error = |reason: String| RebuildError::Tail {
            stream: stream.clone(),
            reason,
        };
        let events = log
            .read_stream(&stream, ours.max(0) as u64)
            .await
            .map_err(RebuildError::Log)?;
        for recorded in events
            .iter()
            .filter(|e| e.stream_version <= live_version.max(0) as u64)
        {
            let stored = domain::StoredEvent {
                event_type: recorded.event_type.clone(),
                schema_version: recorded.schema_version,
                data: recorded.data.clone(),
            };
            let event =
                domain::Event::from_stored(&stored).map_err(|e| tail_error(e.to_string()))?;
            projector::apply_event(&mut writes, log, recorded, &event)
                .await
                .map_err(|e| tail_error(e.to_string()))?;
            build
                .versions
                .insert(stream.clone(), recorded.stream_version);
        }
        build.report.reconciled_streams += 1;
    }
    Ok(())
}
