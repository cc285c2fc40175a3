//! Sockets per user across every gateway instance: `user:{id}:sockets` is a
//! sorted set of connection ids scored by expiry, refreshed with the
//! heartbeat, so a crashed gateway's sockets stop counting after the TTL and a
//! flush heals at the next heartbeat.

use crate::presence::now_ms;
use crate::{RedisError, RedisStore};
use live_state::PRESENCE_TTL;
use uuid::Uuid;

/// Takes a slot if fewer than the limit are live; returns 1 if taken.
/// KEYS: sockets. ARGV: now, expiry, connection, limit, ttl.
const ACQUIRE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"#;

/// The per-user socket limit.
#[derive(Debug, Clone)]
pub struct SocketSlots {
    store: RedisStore,
    limit: usize,
}

impl SocketSlots {
    pub fn new(store: RedisStore, limit: usize) -> Self {
        Self {
            store,
            limit: limit.max(1),
        }
    }

    fn key(&self, user: Uuid) -> String {
        self.store.key(&format!("user:{user}:sockets"))
    }

    /// Takes (or refreshes) a slot for `connection`; false when the user
    /// already has `limit` live sockets.
    pub async fn acquire(&self, user: Uuid, connection: Uuid) -> Result<bool, RedisError> {
        let mut c = self.store.connection();
        let now = now_ms();
        let taken: i64 = redis::Script::new(ACQUIRE)
            .key(self.key(user))
            .arg(now)
            .arg(now + PRESENCE_TTL.as_millis() as u64)
            .arg(connection.to_string())
            .arg(self.limit)
            .arg(PRESENCE_TTL.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(taken == 1)
    }

    /// Keeps a live socket's slot (with the heartbeat); re-creates it after a flush.
    pub async fn refresh(&self, user: Uuid, connection: Uuid) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        let key = self.key(user);
        redis::pipe()
            .cmd("ZADD")
            .arg(&key)
            .arg(now_ms() + PRESENCE_TTL.as_millis() as u64)
            .arg(connection.to_string())
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(PRESENCE_TTL.as_millis() as u64)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Gives a closed socket's slot back.
    pub async fn release(&self, user: Uuid, connection: Uuid) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        redis::cmd("ZREM")
            .arg(self.key(user))
            .arg(connection.to_string())
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }
}
