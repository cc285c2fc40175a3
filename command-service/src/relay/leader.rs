//! One publishing relay at a time: a session-level advisory lock held on a
//! dedicated connection. If the process or its connection dies, Postgres
//! releases the lock and a waiting instance takes over.

use super::RelayError;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use tokio::sync::watch;

/// The advisory lock key of the relay ("chat-relay" as bytes).
const RELAY_LOCK: i64 = 0x6368_6174_7265_6c61;

/// How long a check of the lock may take before this instance counts it lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The lock's session asks the server to drop it when its peer stops
/// answering: keepalive probes after 5 s of silence, every 2 s, 3 of them, and
/// unacknowledged data for 10 s. Otherwise a half-open connection would keep
/// the lock (and every standby waiting) for the OS default of two hours.
const SESSION_LIVENESS: &str = "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; \
     SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000";

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
    sqlx::raw_sql(SESSION_LIVENESS)
        .execute(&mut connection)
        .await?;
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
    /// A check that does not answer within `CHECK_TIMEOUT` counts as lost.
    pub(super) async fn confirm_held(&mut self) -> Result<(), RelayError> {
        let check = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND granted AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(RELAY_LOCK)
        .fetch_one(&mut self.connection);
        let held: bool = tokio::time::timeout(CHECK_TIMEOUT, check)
            .await
            .map_err(|_| RelayError::LostLeadership)?
            .map_err(|_| RelayError::LostLeadership)?;
        if held {
            Ok(())
        } else {
            Err(RelayError::LostLeadership)
        }
    }

    /// Gives the lock up so another instance can take over at once.
    /// Bounded: a dead session frees the lock by itself when it is dropped.
    pub(super) async fn release(mut self) {
        let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RELAY_LOCK)
            .execute(&mut self.connection);
        let _ = tokio::time::timeout(CHECK_TIMEOUT, unlock).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock's session carries the liveness settings, so the server drops a
    /// holder that stopped answering within seconds and a standby takes over.
    #[tokio::test]
    async fn the_lock_session_is_dropped_by_the_server_when_its_peer_goes_silent() {
        let db = test_support::TestDb::new_event_log().await;
        let (_stop, mut shutdown) = watch::channel(false);
        let mut lock = acquire(&db.pool, &mut shutdown)
            .await
            .expect("acquire")
            .expect("held");
        for (setting, expected) in [
            ("tcp_keepalives_idle", "5"),
            ("tcp_keepalives_interval", "2"),
            ("tcp_keepalives_count", "3"),
            ("tcp_user_timeout", "10000"),
        ] {
            let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
                .fetch_one(&mut lock.connection)
                .await
                .expect("show");
            assert_eq!(value, expected, "{setting}");
        }
        lock.confirm_held().await.expect("still held");
        lock.release().await;
    }
}
