//! Opening the write database: created if missing, migrated, and with
//! sessions that cannot sit idle inside a transaction (which would hold every
//! whole-log reader back, cluster-wide).

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;
use std::time::Duration;

/// Why the event log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid database URL: {0}")]
    Url(sqlx::Error),
    #[error(
        "cannot reach PostgreSQL at {host}:{port} ({source}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    )]
    Unreachable {
        host: String,
        port: u16,
        source: sqlx::Error,
    },
    #[error("cannot create database {name}: {source}")]
    Create { name: String, source: sqlx::Error },
    #[error("migrating the event log failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the event log holds transaction ids up to {stored}, ahead of this cluster's {current}: it was copied from another cluster (a logical dump or replication), so its commit order means nothing here; re-stamp it first (operator-tools/README.md, \"Restoring the event log into another cluster\")"
    )]
    ForeignStamps { stored: u64, current: u64 },
    #[error("checking the event log's transaction ids failed: {0}")]
    Check(sqlx::Error),
}

/// Connects a pool to the event log at `url`, creating and migrating the database first.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, ConnectError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(ConnectError::Url)?
        .options([("idle_in_transaction_session_timeout", "10s")])
        .log_statements(tracing::log::LevelFilter::Trace);
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
        .map_err(|source| unreachable(&options, source))?;
    migrate(&pool).await?;
    check_stamps(&pool).await?;
    Ok(pool)
}

/// Refuses a log whose `transaction_id` stamps lie ahead of this cluster's
/// counter: they come from another cluster's history, and whole-log readers
/// would not see them (or would skip new events behind an old checkpoint).
/// Physical backups and streaming replicas keep the stamps valid.
pub async fn check_stamps(pool: &PgPool) -> Result<(), ConnectError> {
    let stamps: Result<(Option<String>, String), _> = sqlx::query_as(
        "SELECT (SELECT max(transaction_id) FROM events)::text, \
                pg_snapshot_xmax(pg_current_snapshot())::text",
    )
    .fetch_one(pool)
    .await;
    let (stored, current) = match stamps {
        Ok(stamps) => stamps,
        // No `events` table: nothing is stamped (a database without a log yet).
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") => {
            return Ok(());
        }
        Err(e) => return Err(ConnectError::Check(e)),
    };
    let parse = |text: &str| {
        text.parse::<u64>()
            .map_err(|e| ConnectError::Check(sqlx::Error::Decode(Box::new(e))))
    };
    let current = parse(&current)?;
    match stored.as_deref().map(parse).transpose()? {
        Some(stored) if stored >= current => Err(ConnectError::ForeignStamps { stored, current }),
        _ => Ok(()),
    }
}

/// Applies the write database's migrations (idempotent; safe to race).
pub async fn migrate(pool: &PgPool) -> Result<(), ConnectError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}

/// Creates the database named in `options` if it does not exist. Tolerates a
/// concurrent creator (two processes starting at once).
pub async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), ConnectError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let maintenance = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&maintenance)
        .await
        .map_err(|source| unreachable(options, source))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|source| unreachable(options, source))?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut conn)
            .await;
        match created {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // 42P04 duplicate_database, 23505 unique_violation: another process won the race.
            Err(e)
                if matches!(
                    e.as_database_error().and_then(|d| d.code()).as_deref(),
                    Some("42P04" | "23505")
                ) => {}
            Err(source) => return Err(ConnectError::Create { name, source }),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

fn unreachable(options: &PgConnectOptions, source: sqlx::Error) -> ConnectError {
    ConnectError::Unreachable {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        source,
    }
}
