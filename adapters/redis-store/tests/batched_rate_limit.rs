//! The batched send rate limit against the real Redis (a key prefix per
//! test): exact on one instance, within its documented bound on two, open
//! while Redis is away (cut by a TCP relay of the test's own, since the
//! shared server must keep serving other tests) and healed after its keys
//! are lost.

use live_state::Throttle;
use redis_store::{BatchedRateLimiter, DEFAULT_SYNC_INTERVAL, RedisStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

fn prefix() -> String {
    format!("test:{}:", Uuid::new_v4().simple())
}

async fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(url, prefix)
        .await
        .expect("Redis (is it running?)")
}

/// The shared bucket's level as Redis holds it (None: no key).
async fn shared_level(store: &RedisStore, user: Uuid) -> Option<f64> {
    let mut c = store.connection();
    let tokens: Option<String> = redis::cmd("HGET")
        .arg(format!("{}ratelimit:send:{user}", store.prefix()))
        .arg("tokens")
        .query_async(&mut c)
        .await
        .expect("HGET");
    tokens.map(|t| t.parse().expect("a number"))
}

/// Long enough for a reconciliation to have gone and come back.
async fn reconciled() {
    tokio::time::sleep(DEFAULT_SYNC_INTERVAL * 4).await;
}

async fn admitted(limiter: &BatchedRateLimiter, user: Uuid) -> bool {
    limiter
        .admit(user)
        .await
        .expect("the batched limiter never fails")
        .is_ok()
}

#[tokio::test]
async fn one_instance_admits_exactly_the_burst_then_refills_at_its_rate() {
    let store = store(&test_support::redis_url(), &prefix()).await;
    let limiter = BatchedRateLimiter::spawn(store.clone(), 20, 100);
    let user = Uuid::new_v4();
    for n in 0..100 {
        assert!(admitted(&limiter, user).await, "send {n} of the burst");
    }
    let emptied = Instant::now();
    let refused = limiter
        .admit(user)
        .await
        .expect("admit")
        .expect_err("the 101st send");
    assert!(
        (1..=50).contains(&refused.retry_after_ms),
        "at 20 a second the next token is at most 50 ms away: {refused:?}"
    );
    reconciled().await;
    let level = shared_level(&store, user)
        .await
        .expect("Redis has the bucket");
    assert!(
        level < 5.0,
        "Redis counted this instance's 100 sends: {level}"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut refilled = 0;
    while admitted(&limiter, user).await {
        refilled += 1;
    }
    let expected = 20.0 * emptied.elapsed().as_secs_f64();
    assert!(
        (refilled as f64 - expected).abs() <= 2.0,
        "refilled at 20 a second: {refilled} sends after {:?}",
        emptied.elapsed()
    );
    let refused = limiter
        .admit(user)
        .await
        .expect("admit")
        .expect_err("empty again");
    tokio::time::sleep(Duration::from_millis(refused.retry_after_ms + 5)).await;
    assert!(
        admitted(&limiter, user).await,
        "a token after the wait it named"
    );
}

#[tokio::test]
async fn two_instances_share_a_users_limit_within_the_documented_bound() {
    const RATE: f64 = 50.0;
    const BURST: f64 = 10.0;
    let prefix = prefix();
    let url = test_support::redis_url();
    let instances = [
        BatchedRateLimiter::spawn(store(&url, &prefix).await, RATE as u32, BURST as u32),
        BatchedRateLimiter::spawn(store(&url, &prefix).await, RATE as u32, BURST as u32),
    ];
    let user = Uuid::new_v4();
    let window = Duration::from_secs(2);
    let start = Instant::now();
    let senders = instances.iter().map(|limiter| async move {
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        let mut count = 0u32;
        while start.elapsed() < window {
            tick.tick().await;
            if admitted(limiter, user).await {
                count += 1;
            }
        }
        count
    });
    let counts = futures_util::future::join_all(senders).await;
    let elapsed = start.elapsed().as_secs_f64();
    let total: u32 = counts.iter().sum();
    // One shared bucket, plus the other instance's sends before it heard of
    // these (a full burst at the start, then a round trip's worth): with
    // Δ = the interval plus a round trip of up to 150 ms on a busy machine.
    let delta = (DEFAULT_SYNC_INTERVAL + Duration::from_millis(150)).as_secs_f64();
    let bound = BURST + RATE * elapsed + (BURST + RATE * delta);
    assert!(
        f64::from(total) <= bound,
        "{counts:?} admitted over {elapsed:.2} s; the bound is {bound:.0} (each alone would allow {:.0})",
        BURST + RATE * elapsed
    );
    assert!(
        f64::from(total) >= BURST + RATE * elapsed * 0.8,
        "the shared limit still admits its rate: {counts:?} over {elapsed:.2} s"
    );
    assert!(counts.iter().all(|&c| c > 0), "both sent: {counts:?}");
}

/// A TCP relay to Redis that the test can cut (connections dropped, new ones
/// closed at once) and mend.
struct Relay {
    url: String,
    down: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Relay {
    async fn start() -> Relay {
        let target = test_support::redis_url();
        let authority = target
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or_default();
        let upstream = authority.rsplit('@').next().unwrap_or_default().to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let local = listener.local_addr().expect("addr").to_string();
        let url = target.replacen(&upstream, &local, 1);
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (d, c) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue;
                }
                let (upstream, cut) = (upstream.clone(), c.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Relay { url, down, cut }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn mend(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn sends_are_admitted_while_redis_is_away_and_shared_again_after() {
    let relay = Relay::start().await;
    let prefix = prefix();
    let limiter = BatchedRateLimiter::spawn(store(&relay.url, &prefix).await, 1, 5);
    let direct = store(&test_support::redis_url(), &prefix).await;
    let user = Uuid::new_v4();

    relay.cut();
    for n in 0..5 {
        assert!(admitted(&limiter, user).await, "send {n} with Redis away");
    }
    // Reconciliations fail meanwhile; sends neither wait nor fail.
    reconciled().await;
    assert!(
        !admitted(&limiter, user).await,
        "the local bucket still limits"
    );
    assert_eq!(
        shared_level(&direct, user).await,
        None,
        "nothing reached Redis"
    );

    relay.mend();
    let deadline = Instant::now() + Duration::from_secs(20);
    let level = loop {
        // Touching the key asks for its level in the next reconciliation.
        let _ = admitted(&limiter, user).await;
        if let Some(level) = shared_level(&direct, user).await {
            break level;
        }
        assert!(
            Instant::now() < deadline,
            "the limiter reconciles again once Redis is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(level <= 5.0, "the shared bucket is in use again: {level}");
}

#[tokio::test]
async fn the_limit_heals_after_redis_loses_its_keys() {
    // FLUSHALL, limited to this test's prefix because Redis is shared.
    let prefix = prefix();
    let store = store(&test_support::redis_url(), &prefix).await;
    let limiter = BatchedRateLimiter::spawn(store.clone(), 1, 5);
    let user = Uuid::new_v4();
    for _ in 0..5 {
        assert!(admitted(&limiter, user).await);
    }
    assert!(!admitted(&limiter, user).await, "the burst is spent");
    reconciled().await;
    assert!(shared_level(&store, user).await.is_some_and(|l| l < 1.0));

    let mut c = store.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .expect("KEYS");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .expect("DEL");

    // The refusal asks for the level; Redis starts a full bucket again.
    assert!(!admitted(&limiter, user).await, "refused until it hears");
    reconciled().await;
    let mut after = 0;
    while admitted(&limiter, user).await {
        after += 1;
    }
    assert!(
        (5..=6).contains(&after),
        "a full burst again after the flush, no more: {after}"
    );
    reconciled().await;
    assert!(
        shared_level(&store, user).await.is_some_and(|l| l < 1.0),
        "Redis holds the bucket again"
    );
}

/// The real thing (so it runs alone): FLUSHALL, and SCRIPT FLUSH as a
/// restarted Redis forgets its scripts. The next round trips load the script
/// again and rebuild the bucket: one more burst, then the limit holds.
#[tokio::test]
async fn exclusive_flushall_and_forgotten_scripts_heal() {
    let store = store(&test_support::redis_url(), &prefix()).await;
    let limiter = BatchedRateLimiter::spawn(store.clone(), 1, 5);
    let user = Uuid::new_v4();
    for _ in 0..5 {
        assert!(admitted(&limiter, user).await);
    }
    assert!(!admitted(&limiter, user).await, "the burst is spent");
    reconciled().await;

    let mut c = store.connection();
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut c)
        .await
        .expect("FLUSHALL");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .expect("SCRIPT FLUSH");

    assert!(!admitted(&limiter, user).await, "refused until it hears");
    reconciled().await;
    let mut after = 0;
    while admitted(&limiter, user).await {
        after += 1;
    }
    assert!(
        (5..=6).contains(&after),
        "a full burst again after the flush, no more: {after}"
    );
    reconciled().await;
    assert!(
        shared_level(&store, user).await.is_some_and(|l| l < 1.0),
        "Redis holds the bucket again"
    );
}
