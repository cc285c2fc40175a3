//! The Redis adapter of `live-state` (DESIGN.md §8). Redis holds only what heals itself:
//! presence (entries expire, so a crashed gateway's sockets disappear),
//! typing and presence fan-out by pub/sub, gateway socket counts, and send
//! rate-limit windows (per call, [`RateLimiter`], or from local buckets
//! reconciled in batches, [`BatchedRateLimiter`]). A flush loses nothing
//! that matters.

mod batched_rate_limit;
mod local_buckets;
mod port;
mod presence;
mod rate_limit;
mod sockets;

pub use batched_rate_limit::{BatchedRateLimiter, DEFAULT_SYNC_INTERVAL};
pub use live_state::{LiveEvent, OnlineSnapshot, PRESENCE_TTL, RateLimited};
pub use presence::Presence;
pub use rate_limit::RateLimiter;
pub use sockets::SocketSlots;

use redis::aio::ConnectionManager;

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error(
        "cannot reach Redis at {url} ({source}); start it with: redis-server --daemonize yes --port 6379"
    )]
    Unreachable {
        url: String,
        source: redis::RedisError,
    },
    #[error("Redis: {0}")]
    Command(#[from] redis::RedisError),
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A connection to Redis with a key prefix (tests give each their own).
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url`; every key is prefixed with `prefix` (empty in production).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let unreachable = |source| RedisError::Unreachable {
            url: redact(url),
            source,
        };
        let client = redis::Client::open(url).map_err(unreachable)?;
        let connection = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.get_connection_manager(),
        )
        .await
        .map_err(|_| {
            unreachable(redis::RedisError::from((
                redis::ErrorKind::Io,
                "connect timed out",
            )))
        })?
        .map_err(unreachable)?;
        Ok(Self {
            client,
            connection,
            prefix: prefix.to_owned(),
        })
    }

    /// A multiplexed connection that reconnects by itself.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The prefix of every key (empty in production; a test's own in tests).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Records how many sockets gateway `instance` holds (expires unless refreshed).
    pub async fn report_sockets(&self, instance: &str, sockets: usize) -> Result<(), RedisError> {
        let mut c = self.connection();
        redis::cmd("SET")
            .arg(self.key(&format!("gateway:{instance}:sockets")))
            .arg(sockets)
            .arg("EX")
            .arg(live_state::CENSUS_TTL.as_secs())
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Sockets per gateway instance, as last reported.
    pub async fn gateway_sockets(&self) -> Result<Vec<(String, u64)>, RedisError> {
        let mut c = self.connection();
        let pattern = self.key("gateway:*:sockets");
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut c).await?;
        let mut out = Vec::new();
        for key in keys {
            let count: Option<u64> = redis::cmd("GET").arg(&key).query_async(&mut c).await?;
            let instance = key
                .trim_start_matches(&self.key("gateway:"))
                .trim_end_matches(":sockets")
                .to_owned();
            out.push((instance, count.unwrap_or(0)));
        }
        out.sort();
        Ok(out)
    }

    /// Whether Redis answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut c = self.connection();
        redis::cmd("PING").query_async::<()>(&mut c).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(
            super::redact("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
