//! The in-process half of the batched rate limit: one token bucket per key
//! that admits or refuses at once, and remembers what it consumed since the
//! last reconciliation with Redis so the next one can push it and correct
//! the bucket to the shared level. Pure (times are passed in), so the
//! arithmetic is tested without a clock or a server.

use live_state::RateLimited;
use std::collections::HashMap;

/// One key's local view.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// May be negative: debt taken on before this instance heard what
    /// others consumed; it is paid back by refilling before the next admit.
    tokens: f64,
    at_ms: u64,
    /// Admitted here since the last batch was taken.
    pending: u32,
    /// Listed in the next batch.
    queued: bool,
}

/// Local token buckets (refilled at `rate` per second up to `burst`) and
/// the keys touched since the last batch.
#[derive(Debug)]
pub(crate) struct LocalBuckets {
    buckets: HashMap<String, Bucket>,
    queued: Vec<String>,
    rate_per_ms: f64,
    burst: f64,
    capacity: usize,
}

impl LocalBuckets {
    /// Buckets for `rate_per_sec` and `burst`, keeping about `capacity` keys.
    pub(crate) fn new(rate_per_sec: f64, burst: f64, capacity: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            queued: Vec::new(),
            rate_per_ms: rate_per_sec / 1000.0,
            burst,
            capacity: capacity.max(1),
        }
    }

    fn refilled(&self, bucket: &Bucket, now_ms: u64) -> f64 {
        (bucket.tokens + now_ms.saturating_sub(bucket.at_ms) as f64 * self.rate_per_ms)
            .min(self.burst)
    }

    /// Takes one token from `key`'s bucket, or says how long until there is
    /// one. A key this instance does not know starts full: Redis is asked
    /// only afterwards, in the next batch.
    pub(crate) fn admit(&mut self, key: &str, now_ms: u64) -> Result<(), RateLimited> {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.capacity {
            self.make_room(now_ms);
        }
        let (rate_per_ms, burst) = (self.rate_per_ms, self.burst);
        // Looked up first so a known key (the usual case) allocates nothing.
        let bucket = match self.buckets.get_mut(key) {
            Some(bucket) => bucket,
            None => self.buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: burst,
                at_ms: now_ms,
                pending: 0,
                queued: false,
            }),
        };
        let tokens =
            (bucket.tokens + now_ms.saturating_sub(bucket.at_ms) as f64 * rate_per_ms).min(burst);
        bucket.at_ms = now_ms;
        if !bucket.queued {
            bucket.queued = true;
            self.queued.push(key.to_owned());
        }
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.pending = bucket.pending.saturating_add(1);
            Ok(())
        } else {
            bucket.tokens = tokens;
            let wait = ((1.0 - tokens) / rate_per_ms).ceil() as u64;
            Err(RateLimited {
                retry_after_ms: wait.max(1),
            })
        }
    }

    /// Every key touched since the last batch, with what it consumed here
    /// meanwhile (0 for one that was only refused: its level is still worth
    /// reading back). Starts the next batch.
    pub(crate) fn take_batch(&mut self) -> Vec<(String, u32)> {
        let keys = std::mem::take(&mut self.queued);
        keys.into_iter()
            .filter_map(|key| {
                let bucket = self.buckets.get_mut(&key)?;
                bucket.queued = false;
                let used = std::mem::take(&mut bucket.pending);
                Some((key, used))
            })
            .collect()
    }

    /// Sets `key`'s bucket to the shared level Redis answered (which counts
    /// everything this instance pushed), less what was admitted here since
    /// the batch was taken (not pushed yet).
    pub(crate) fn correct(&mut self, key: &str, shared: f64, now_ms: u64) {
        let burst = self.burst;
        let bucket = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
            pending: 0,
            queued: false,
        });
        bucket.tokens = shared.min(burst) - f64::from(bucket.pending);
        bucket.at_ms = now_ms;
    }

    /// Forgets the buckets that carry no information: refilled to full with
    /// nothing left to push (a key seen again starts full anyway).
    pub(crate) fn evict_idle(&mut self, now_ms: u64) {
        let mut buckets = std::mem::take(&mut self.buckets);
        buckets.retain(|_, b| b.pending > 0 || b.queued || self.refilled(b, now_ms) < self.burst);
        self.buckets = buckets;
    }

    /// At capacity: drops idle buckets, then those not touched since the
    /// last batch (Redis still has their level; the next batch brings it
    /// back). Keys touched within one interval are kept, so the map holds at
    /// most `capacity` plus one interval's worth of keys.
    fn make_room(&mut self, now_ms: u64) {
        self.evict_idle(now_ms);
        if self.buckets.len() >= self.capacity {
            self.buckets.retain(|_, b| b.pending > 0 || b.queued);
        }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::LocalBuckets;

    #[test]
    fn a_fresh_key_admits_exactly_the_burst_then_names_the_wait() {
        let mut b = LocalBuckets::new(20.0, 100.0, 1_000);
        for n in 0..100 {
            assert_eq!(b.admit("u", 1_000), Ok(()), "send {n}");
        }
        let refused = b.admit("u", 1_000).expect_err("the 101st");
        assert_eq!(refused.retry_after_ms, 50, "one token at 20 a second");
        assert!(b.admit("u", 1_049).is_err(), "not before the wait");
        assert_eq!(b.admit("u", 1_050), Ok(()), "a token after the wait");
        // One second refills 20, no more.
        let admitted = (0..30).filter(|_| b.admit("u", 2_050).is_ok()).count();
        assert_eq!(admitted, 20);
    }

    #[test]
    fn a_batch_lists_each_touched_key_once_with_what_it_consumed() {
        let mut b = LocalBuckets::new(1.0, 2.0, 1_000);
        for _ in 0..3 {
            let _ = b.admit("a", 0);
        }
        let _ = b.admit("b", 0);
        let mut batch = b.take_batch();
        batch.sort();
        assert_eq!(batch, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert_eq!(b.take_batch(), vec![], "nothing touched since");
        assert!(b.admit("a", 0).is_err());
        assert_eq!(
            b.take_batch(),
            vec![("a".to_owned(), 0)],
            "a refusal asks for the level"
        );
    }

    #[test]
    fn a_correction_takes_the_shared_level_less_what_was_admitted_since() {
        let mut b = LocalBuckets::new(10.0, 10.0, 1_000);
        for _ in 0..4 {
            assert_eq!(b.admit("u", 0), Ok(()));
        }
        assert_eq!(b.take_batch(), vec![("u".to_owned(), 4)]);
        // Two more while the batch is on its way.
        assert_eq!(b.admit("u", 0), Ok(()));
        assert_eq!(b.admit("u", 0), Ok(()));
        // Another instance took 5 as well: Redis says 10 - 4 - 5 = 1 left.
        b.correct("u", 1.0, 0);
        // 1 - 2 = -1: two tokens short, 200 ms at 10 a second.
        assert_eq!(b.admit("u", 0).expect_err("in debt").retry_after_ms, 200);
        assert_eq!(b.admit("u", 200), Ok(()));
        assert_eq!(b.take_batch(), vec![("u".to_owned(), 3)]);
    }

    #[test]
    fn idle_keys_are_forgotten_and_the_map_stays_bounded() {
        let mut b = LocalBuckets::new(10.0, 10.0, 100);
        for n in 0..100 {
            let _ = b.admit(&format!("k{n}"), 0);
        }
        let _ = b.take_batch();
        // A second later every bucket is full again: nothing to remember.
        b.evict_idle(1_000);
        assert_eq!(b.len(), 0);
        for n in 0..100 {
            let _ = b.admit(&format!("k{n}"), 2_000);
        }
        let _ = b.take_batch();
        // At capacity, keys not touched since the last batch make room.
        assert_eq!(b.admit("new", 2_000), Ok(()));
        assert_eq!(b.len(), 1);
        // Keys touched within the interval are kept past capacity (their
        // consumption is still to be pushed) until the next batch.
        for n in 0..500 {
            let _ = b.admit(&format!("burst{n}"), 2_000);
        }
        assert_eq!(b.len(), 501);
        let _ = b.take_batch();
        assert_eq!(b.admit("later", 2_000), Ok(()));
        assert_eq!(b.len(), 1, "the pushed ones made room");
    }
}
