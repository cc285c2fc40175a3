//! One publishing relay at a time: a session-level advisory lock held on a
//! dedicated connection. If the process or its connection dies, Postgres
//! releases the lock and a waiting instance takes over.

use super::RelayError;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio::sync::watch;

/// The advisory lock key of the relay ("chat-relay" as bytes).
const RELAY_LOCK: i64 = 0x6368_6174_7265_6c61;

/// The held relay lock.
pub(super) struct RelayLock {
    /// Detached from the pool: dropping it closes the session and so frees the
    /// lock, even when the relay task is aborted.
    connection: PgConnection,
}

/// Waits until this instance holds the lock; `None` if shut down first.
pub(super) async fn acquire(
    pool: &PgPool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<RelayLock>, RelayError> {
    let mut connection = pool.acquire().await?.detach();
    loop {
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut connection)
            .await?;
        if held {
            return Ok(Some(RelayLock { connection }));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return Ok(None);
        }
    }
}

impl RelayLock {
    /// Fails if the lock's session is gone (then another instance may hold it).
    pub(super) async fn confirm_held(&mut self) -> Result<(), RelayError> {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND granted AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(RELAY_LOCK)
        .fetch_one(&mut self.connection)
        .await
        .map_err(|_| RelayError::LostLeadership)?;
        if held {
            Ok(())
        } else {
            Err(RelayError::LostLeadership)
        }
    }

    /// Gives the lock up so another instance can take over at once.
    pub(super) async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RELAY_LOCK)
            .execute(&mut self.connection)
            .await;
    }
}
