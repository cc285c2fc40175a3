//! The database a replay writes into: never a live one, never one that holds
//! data unless `--force` says to replace its `rm` schema; created if missing,
//! with the read-model tables in `rm`.

use crate::{AnalystError, connect};
use read_model::{LIVE_SCHEMA, quote_ident};
use sqlx::PgPool;

/// A replay target, ready to be written.
pub struct Target {
    pub pool: PgPool,
    /// `host:port/database`, safe to print.
    pub described: String,
}

/// Checks, creates and prepares the replay target at `url`.
pub async fn prepare(
    url: &str,
    settings: &service_kit::Settings,
    force: bool,
    connections: u32,
) -> Result<Target, AnalystError> {
    let options = connect::options(url, "--into")?;
    let described = connect::describe(&options);
    let live = [
        (
            &settings.read_database_url,
            "it is the live read database (CHAT_READ_DATABASE_URL)",
        ),
        (
            &settings.database_url,
            "it is the event log (CHAT_DATABASE_URL)",
        ),
    ];
    for (live_url, reason) in live {
        if let Ok(live_options) = connect::options(live_url, "settings")
            && connect::same_database(&options, &live_options)
        {
            return Err(AnalystError::Refused {
                target: described,
                reason: reason.to_owned(),
            });
        }
    }
    event_store::create_database_if_missing(&options)
        .await
        .map_err(AnalystError::TargetCreate)?;
    let pool = connect::open(url, "replay target", connections).await?;
    let filled = tables_with_rows(&pool).await?;
    if !filled.is_empty() {
        if !force {
            return Err(AnalystError::Refused {
                target: described,
                reason: format!(
                    "it already holds data ({}); pass --force to replace its {LIVE_SCHEMA} schema",
                    filled.join(", ")
                ),
            });
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(LIVE_SCHEMA)
        )))
        .execute(&pool)
        .await
        .map_err(AnalystError::Target)?;
    }
    read_model::create_tables(&pool, LIVE_SCHEMA)
        .await
        .map_err(AnalystError::Target)?;
    Ok(Target { pool, described })
}

/// The user tables of the database that hold at least one row (`schema.table`).
async fn tables_with_rows(pool: &PgPool) -> Result<Vec<String>, AnalystError> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .map_err(AnalystError::Target)?;
    let mut filled = Vec::new();
    for (schema, table) in tables {
        let has_rows: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {}.{})",
            quote_ident(&schema),
            quote_ident(&table)
        )))
        .fetch_one(pool)
        .await
        .map_err(AnalystError::Target)?;
        if has_rows {
            filled.push(format!("{schema}.{table}"));
        }
    }
    Ok(filled)
}
