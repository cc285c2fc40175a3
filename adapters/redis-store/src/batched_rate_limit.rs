//! The send rate limit without a Redis round trip per send (issue #14).
//!
//! Each instance admits or refuses from a local token bucket per key
//! (`local_buckets`), at once. A task reconciles with Redis every `interval`
//! (50 ms by default) in one pipelined round trip for every key touched
//! since the last one: it adds what this instance admitted to the shared
//! bucket (the same `ratelimit:{key}` hash, refilled at `rate` up to `burst`,
//! as [`crate::RateLimiter`] keeps, so both can run side by side), reads back
//! the shared level and sets the local bucket to it, less what was admitted
//! here while the answer travelled. The shared level may go negative: what
//! several instances admitted together before hearing of each other is a
//! debt, paid back by refusals until the bucket refills.
//!
//! Over-admission, per user, with `N` instances and `Δ` = the interval plus
//! one round trip: over any window of `W` seconds a user is admitted at most
//! `burst + rate × W` (one shared bucket) plus what the other instances
//! admitted before their next reconciliation, at most
//! `(N − 1) × (burst + rate × Δ)`. The `burst` term is spent only by a user
//! whose bucket was full (idle, or unknown to an instance, which starts it
//! full) on several instances at the same moment; a user already sending
//! steadily gains about `(N − 1) × rate × Δ`, and the debt takes it back. A
//! Redis flush forgets the shared buckets (and their debts): at most one more
//! burst per user, within one interval of the flush. So does an instance
//! holding more than `CAPACITY` users, for each user it forgot to make room.
//!
//! Fail open: when Redis does not answer, sends go on being admitted by the
//! local buckets alone (each instance then limits on its own, never more
//! strictly than the shared limit would), what they consumed meanwhile is
//! dropped as a flush would drop it, and the next round trip that succeeds
//! resumes the sharing. A send never waits for Redis and never fails on it.

use crate::RedisStore;
use crate::local_buckets::LocalBuckets;
use live_state::{LiveStateError, RateLimited, Throttle};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// Adds what one instance consumed to the shared bucket and answers its level
/// in thousandths of a token (Lua numbers come back as integers).
const RECONCILE: &str = r#"
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local used = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000) - used
redis.call('HSET', key, 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', key, math.ceil((burst - tokens) * 1000 / rate) + 1000)
return math.floor(tokens * 1000)
"#;

/// How often the local buckets are reconciled by default.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// Keys held in process before idle ones are dropped to make room.
const CAPACITY: usize = 100_000;

/// A reconciliation that takes longer than this counts as Redis being down.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// Keys per pipeline, so one reconciliation never holds Redis for long.
const CHUNK: usize = 1_000;

/// Full buckets are swept out about once a second.
const EVICT_EVERY: Duration = Duration::from_secs(1);

/// Admits sends from local buckets, shared with every instance through Redis
/// in batches (see the module doc for the bound on over-admission).
#[derive(Clone)]
pub struct BatchedRateLimiter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BatchedRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedRateLimiter")
            .field("store", &self.shared.store)
            .field("rate_per_sec", &self.shared.rate_per_sec)
            .field("burst", &self.shared.burst)
            .finish_non_exhaustive()
    }
}

struct Shared {
    store: RedisStore,
    rate_per_sec: f64,
    burst: f64,
    local: Mutex<LocalBuckets>,
    epoch: Instant,
}

impl Shared {
    fn local(&self) -> MutexGuard<'_, LocalBuckets> {
        // Every update leaves the buckets whole: a poisoned lock is sound.
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Pushes one batch and answers each key's shared level, in order.
    async fn push(&self, batch: &[(String, u32)]) -> Result<Vec<f64>, redis::RedisError> {
        let script = redis::Script::new(RECONCILE);
        let mut connection = self.store.connection();
        let mut levels = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            // Loaded in the same round trip: a restarted Redis forgot it.
            pipe.cmd("SCRIPT").arg("LOAD").arg(RECONCILE).ignore();
            for (key, used) in chunk {
                pipe.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(1)
                    .arg(self.store.key(&format!("ratelimit:{key}")))
                    .arg(self.rate_per_sec)
                    .arg(self.burst)
                    .arg(*used);
            }
            let answered: Vec<i64> = pipe.query_async(&mut connection).await?;
            levels.extend(answered.into_iter().map(|milli| milli as f64 / 1000.0));
        }
        Ok(levels)
    }
}

impl BatchedRateLimiter {
    /// `rate_per_sec` sends a second per user, bursts of `burst`, reconciled
    /// every [`DEFAULT_SYNC_INTERVAL`]. Spawns the reconciling task, so it
    /// must be called inside a tokio runtime; the task ends once every clone
    /// is dropped.
    pub fn spawn(store: RedisStore, rate_per_sec: u32, burst: u32) -> Self {
        Self::with_interval(store, rate_per_sec, burst, DEFAULT_SYNC_INTERVAL)
    }

    /// As [`BatchedRateLimiter::spawn`], reconciled every `interval`.
    pub fn with_interval(
        store: RedisStore,
        rate_per_sec: u32,
        burst: u32,
        interval: Duration,
    ) -> Self {
        let (rate, burst) = (f64::from(rate_per_sec.max(1)), f64::from(burst.max(1)));
        let shared = Arc::new(Shared {
            store,
            rate_per_sec: rate,
            burst,
            local: Mutex::new(LocalBuckets::new(rate, burst, CAPACITY)),
            epoch: Instant::now(),
        });
        tokio::spawn(reconcile(Arc::downgrade(&shared), interval));
        Self { shared }
    }
}

/// Reconciles every `interval` until the limiter is dropped.
async fn reconcile(limiter: Weak<Shared>, interval: Duration) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reachable = true;
    let mut last_eviction = Instant::now();
    loop {
        tick.tick().await;
        let Some(shared) = limiter.upgrade() else {
            return;
        };
        if last_eviction.elapsed() >= EVICT_EVERY {
            let now = shared.now_ms();
            shared.local().evict_idle(now);
            last_eviction = Instant::now();
        }
        let batch = shared.local().take_batch();
        if batch.is_empty() {
            continue;
        }
        match tokio::time::timeout(SYNC_TIMEOUT, shared.push(&batch)).await {
            Ok(Ok(levels)) => {
                let now = shared.now_ms();
                let mut local = shared.local();
                for ((key, _), level) in batch.iter().zip(levels) {
                    local.correct(key, level, now);
                }
                drop(local);
                if !reachable {
                    tracing::info!("send rate limit: Redis answers again; sharing resumed");
                    reachable = true;
                }
            }
            outcome => {
                // What this batch consumed is dropped, as a flush would drop it.
                if reachable {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {SYNC_TIMEOUT:?}"),
                    };
                    tracing::warn!(%error, "send rate limit: Redis unavailable; each instance limits on its own until it answers");
                    reachable = false;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Throttle for BatchedRateLimiter {
    async fn admit_key(&self, key: &str) -> Result<Result<(), RateLimited>, LiveStateError> {
        let now = self.shared.now_ms();
        Ok(self.shared.local().admit(key, now))
    }
}
