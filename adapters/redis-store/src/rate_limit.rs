//! Rate limits shared by every instance: a token bucket in Redis (refilled at
//! `rate` per second up to `burst`), updated atomically by a script. Per user
//! for sends; per username and per client address for logins and registrations.

use crate::{RedisError, RedisStore};
use live_state::RateLimited;
use uuid::Uuid;

const TOKEN_BUCKET: &str = r#"
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"#;

/// Admits or refuses sends per user (or any other keyed attempts).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    store: RedisStore,
    rate_per_sec: f64,
    burst: u32,
}

impl RateLimiter {
    pub fn new(store: RedisStore, rate_per_sec: u32, burst: u32) -> Self {
        Self {
            store,
            rate_per_sec: f64::from(rate_per_sec.max(1)),
            burst: burst.max(1),
        }
    }

    /// `per_minute` attempts a minute per key, refilled evenly, all of them
    /// available at once to a key unused for a minute.
    pub fn per_minute(store: RedisStore, per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            store,
            rate_per_sec: f64::from(per_minute) / 60.0,
            burst: per_minute,
        }
    }

    /// Takes one send from `user`'s bucket, or says how long to wait.
    pub async fn admit(&self, user: Uuid) -> Result<Result<(), RateLimited>, RedisError> {
        let admitted = self.admit_key(&format!("send:{user}")).await?;
        metrics::counter!("rate_limit_checks_total", "outcome" => if admitted.is_ok() { "allowed" } else { "limited" }).increment(1);
        Ok(admitted)
    }

    /// Takes one attempt from the bucket named `key` (e.g. `login:user:ann`),
    /// or says how long to wait.
    pub async fn admit_key(&self, key: &str) -> Result<Result<(), RateLimited>, RedisError> {
        let mut c = self.store.connection();
        let (allowed, wait): (i64, i64) = redis::Script::new(TOKEN_BUCKET)
            .key(self.store.key(&format!("ratelimit:{key}")))
            .arg(self.rate_per_sec)
            .arg(self.burst)
            .invoke_async(&mut c)
            .await?;
        Ok(if allowed == 1 {
            Ok(())
        } else {
            Err(RateLimited {
                retry_after_ms: wait.max(1) as u64,
            })
        })
    }
}
