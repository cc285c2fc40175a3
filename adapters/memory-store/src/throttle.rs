//! Token buckets and socket slots of one process.

use crate::now_ms;
use live_state::{LiveStateError, PRESENCE_TTL, RateLimited, SocketLimit, Throttle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// Buckets kept before the full ones (which carry no information) are dropped.
const BUCKETS_BEFORE_PRUNING: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Token buckets refilled at `rate` per second up to `burst`.
#[derive(Debug, Clone)]
pub struct MemoryThrottle {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    rate_per_ms: f64,
    burst: f64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single insert or remove: a poisoned lock is sound.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryThrottle {
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(rate_per_sec.max(1)), burst.max(1))
    }

    /// `per_minute` attempts a minute per key, refilled evenly, all of them
    /// available at once to a key unused for a minute.
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self::with_rate(f64::from(per_minute) / 60.0, per_minute)
    }

    fn with_rate(rate_per_sec: f64, burst: u32) -> Self {
        Self {
            buckets: Arc::default(),
            rate_per_ms: rate_per_sec / 1000.0,
            burst: f64::from(burst),
        }
    }

    fn refilled(&self, bucket: Bucket, now: u64) -> f64 {
        (bucket.tokens + now.saturating_sub(bucket.at_ms) as f64 * self.rate_per_ms).min(self.burst)
    }
}

#[async_trait::async_trait]
impl Throttle for MemoryThrottle {
    async fn admit_key(&self, key: &str) -> Result<Result<(), RateLimited>, LiveStateError> {
        let now = now_ms();
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= BUCKETS_BEFORE_PRUNING && !buckets.contains_key(key) {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
        }
        let bucket = buckets.get(key).copied();
        let tokens = bucket.map_or(self.burst, |b| self.refilled(b, now));
        let (tokens, verdict) = if tokens >= 1.0 {
            (tokens - 1.0, Ok(()))
        } else {
            let wait = ((1.0 - tokens) / self.rate_per_ms).ceil() as u64;
            (
                tokens,
                Err(RateLimited {
                    retry_after_ms: wait.max(1),
                }),
            )
        };
        buckets.insert(key.to_owned(), Bucket { tokens, at_ms: now });
        Ok(verdict)
    }
}

/// Live sockets per user, each slot expiring unless refreshed.
#[derive(Debug, Clone)]
pub struct MemorySocketSlots {
    users: Arc<Mutex<HashMap<Uuid, HashMap<Uuid, u64>>>>,
    limit: usize,
}

impl MemorySocketSlots {
    pub fn new(limit: usize) -> Self {
        Self {
            users: Arc::default(),
            limit: limit.max(1),
        }
    }
}

fn slot_expiry() -> u64 {
    now_ms() + PRESENCE_TTL.as_millis() as u64
}

#[async_trait::async_trait]
impl SocketLimit for MemorySocketSlots {
    async fn acquire(&self, user: Uuid, connection: Uuid) -> Result<bool, LiveStateError> {
        let now = now_ms();
        let mut users = lock(&self.users);
        let slots = users.entry(user).or_default();
        slots.retain(|_, &mut expiry| expiry >= now);
        if !slots.contains_key(&connection) && slots.len() >= self.limit {
            return Ok(false);
        }
        slots.insert(connection, slot_expiry());
        Ok(true)
    }

    async fn refresh(&self, user: Uuid, connection: Uuid) -> Result<(), LiveStateError> {
        lock(&self.users)
            .entry(user)
            .or_default()
            .insert(connection, slot_expiry());
        Ok(())
    }

    async fn release(&self, user: Uuid, connection: Uuid) -> Result<(), LiveStateError> {
        let mut users = lock(&self.users);
        if let Some(slots) = users.get_mut(&user) {
            slots.remove(&connection);
            if slots.is_empty() {
                users.remove(&user);
            }
        }
        Ok(())
    }
}
