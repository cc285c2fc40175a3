//! One behaviour, two adapters: every test here runs against Redis (a key
//! prefix of its own) and against the in-memory store, through the port;
//! the throttle's also against the batched Redis throttle.

use futures_util::StreamExt;
use live_state::{LiveEvent, LiveEvents, PresenceStore, SocketCensus, SocketLimit, Throttle};
use memory_store::{MemoryCensus, MemoryPresence, MemorySocketSlots, MemoryThrottle};
use redis_store::{BatchedRateLimiter, Presence, RateLimiter, RedisStore, SocketSlots};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The adapters of one backend, sharing one store.
struct Backend {
    presence: Arc<dyn PresenceStore>,
    /// Sends: 1 a second, bursts of 3.
    throttle: Arc<dyn Throttle>,
    /// Two sockets per user.
    slots: Arc<dyn SocketLimit>,
    census: Arc<dyn SocketCensus>,
}

async fn redis() -> Backend {
    redis_with(|store| Arc::new(RateLimiter::new(store, 1, 3))).await
}

/// Redis, with sends admitted from local buckets reconciled in batches.
async fn redis_batched() -> Backend {
    redis_with(|store| Arc::new(BatchedRateLimiter::spawn(store, 1, 3))).await
}

async fn redis_with(throttle: impl FnOnce(RedisStore) -> Arc<dyn Throttle>) -> Backend {
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let store = RedisStore::connect(&test_support::redis_url(), &prefix)
        .await
        .expect("Redis (is it running?)");
    Backend {
        presence: Arc::new(Presence::new(store.clone())),
        throttle: throttle(store.clone()),
        slots: Arc::new(SocketSlots::new(store.clone(), 2)),
        census: Arc::new(store),
    }
}

async fn memory() -> Backend {
    Backend {
        presence: Arc::new(MemoryPresence::default()),
        throttle: Arc::new(MemoryThrottle::new(1, 3)),
        slots: Arc::new(MemorySocketSlots::new(2)),
        census: Arc::new(MemoryCensus::default()),
    }
}

/// `both!(test)`: `test::redis` and `test::memory`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn redis() {
                super::$name(super::redis().await).await;
            }
            #[tokio::test]
            async fn memory() {
                super::$name(super::memory().await).await;
            }
        }
    )*};
}

both!(
    a_user_is_online_while_any_of_their_connections_is,
    snapshots_count_everyone_and_list_at_most_the_limit,
    a_refresh_recreates_what_was_lost,
    typing_and_probes_reach_every_subscriber,
    buckets_admit_a_burst_then_say_how_long_to_wait,
    socket_slots_are_capped_per_user,
    the_census_keeps_each_instances_last_count,
);

/// The next live event within a second (`None` inside: a probe; panics on silence).
async fn next(events: &mut LiveEvents) -> Option<LiveEvent> {
    tokio::time::timeout(Duration::from_secs(1), events.next())
        .await
        .expect("a live event in time")
        .expect("the subscription is open")
}

/// Nothing more arrives for a moment (a probe sent now is the next event).
async fn quiet(presence: &dyn PresenceStore, events: &mut LiveEvents) {
    presence.probe().await.expect("probe");
    assert_eq!(next(events).await, None, "an unexpected live event");
}

async fn a_user_is_online_while_any_of_their_connections_is(b: Backend) {
    let (channel, user) = (Uuid::new_v4(), Uuid::new_v4());
    let (tab1, tab2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut events = b.presence.subscribe().await.expect("subscribe");
    let presence = |online| {
        Some(LiveEvent::Presence {
            channel_id: channel,
            user_id: user,
            online,
        })
    };

    b.presence.join(channel, user, tab1).await.expect("join");
    assert_eq!(next(&mut events).await, presence(true));
    b.presence.join(channel, user, tab2).await.expect("join");
    quiet(b.presence.as_ref(), &mut events).await;

    b.presence.leave(channel, user, tab1).await.expect("leave");
    quiet(b.presence.as_ref(), &mut events).await;
    let online = b.presence.online_users(channel).await.expect("online");
    assert_eq!(online.into_iter().collect::<Vec<_>>(), vec![user]);

    b.presence.leave(channel, user, tab2).await.expect("leave");
    assert_eq!(next(&mut events).await, presence(false));
    assert!(
        b.presence
            .online_users(channel)
            .await
            .expect("online")
            .is_empty()
    );
    b.presence
        .leave(channel, user, tab2)
        .await
        .expect("leaving twice is harmless");
    b.presence.sweep(channel).await.expect("sweep");
    quiet(b.presence.as_ref(), &mut events).await;
}

async fn snapshots_count_everyone_and_list_at_most_the_limit(b: Backend) {
    // One past the 1,000 online a channel is sized for.
    const ONLINE: usize = 1_001;
    let channel = Uuid::new_v4();
    let users: Vec<Uuid> = (0..ONLINE).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        b.presence
            .join(channel, *user, Uuid::new_v4())
            .await
            .expect("join");
    }
    let snapshot = b.presence.snapshot(channel, 100).await.expect("snapshot");
    assert_eq!(snapshot.count, ONLINE as u64);
    assert_eq!(snapshot.users.len(), 100);
    let listed: std::collections::HashSet<_> = snapshot.users.iter().collect();
    assert_eq!(listed.len(), 100, "each listed once");
    assert!(snapshot.users.iter().all(|u| users.contains(u)));
    let all = b.presence.snapshot(channel, 2_000).await.expect("snapshot");
    assert_eq!(all.users.len(), ONLINE);
    let empty = b
        .presence
        .snapshot(Uuid::new_v4(), 10)
        .await
        .expect("snapshot");
    assert_eq!((empty.count, empty.users.len()), (0, 0));
    // A sweep with nothing expired takes nobody away.
    b.presence.sweep(channel).await.expect("sweep");
    assert_eq!(
        b.presence
            .online_users(channel)
            .await
            .expect("online")
            .len(),
        ONLINE
    );
}

async fn a_refresh_recreates_what_was_lost(b: Backend) {
    let (user, connection) = (Uuid::new_v4(), Uuid::new_v4());
    let channels = [Uuid::new_v4(), Uuid::new_v4()];
    b.presence
        .join(channels[0], user, connection)
        .await
        .expect("join");
    let mut events = b.presence.subscribe().await.expect("subscribe");
    // The entry in the second channel is missing (a flush, a restart): the
    // heartbeat's refresh puts it back and says the user is online there.
    b.presence
        .refresh(&channels, user, connection)
        .await
        .expect("refresh");
    assert_eq!(
        next(&mut events).await,
        Some(LiveEvent::Presence {
            channel_id: channels[1],
            user_id: user,
            online: true
        })
    );
    quiet(b.presence.as_ref(), &mut events).await;
    for channel in channels {
        assert!(
            b.presence
                .online_users(channel)
                .await
                .expect("online")
                .contains(&user)
        );
    }
    b.presence
        .refresh(&[], user, connection)
        .await
        .expect("refreshing no channel is harmless");
}

async fn typing_and_probes_reach_every_subscriber(b: Backend) {
    let mut first = b.presence.subscribe().await.expect("subscribe");
    let mut second = b.presence.subscribe().await.expect("subscribe");
    let typing = LiveEvent::Typing {
        channel_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
    };
    b.presence.publish(&typing).await.expect("publish");
    b.presence.probe().await.expect("probe");
    for events in [&mut first, &mut second] {
        assert_eq!(next(events).await, Some(typing.clone()));
        assert_eq!(next(events).await, None, "the probe");
    }
}

/// The batched Redis throttle (local buckets, reconciled in batches) keeps
/// the port's behaviour.
#[tokio::test]
async fn batched_buckets_admit_a_burst_then_say_how_long_to_wait() {
    buckets_admit_a_burst_then_say_how_long_to_wait(redis_batched().await).await;
}

async fn buckets_admit_a_burst_then_say_how_long_to_wait(b: Backend) {
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    for n in 0..3 {
        assert_eq!(
            b.throttle.admit(user).await.expect("admit"),
            Ok(()),
            "send {n}"
        );
    }
    let refused = b
        .throttle
        .admit(user)
        .await
        .expect("admit")
        .expect_err("the fourth send in a burst of 3");
    assert!(
        (1..=1000).contains(&refused.retry_after_ms),
        "at 1 a second the next token is at most a second away: {refused:?}"
    );
    assert_eq!(
        b.throttle.admit(other).await.expect("admit"),
        Ok(()),
        "another user's bucket"
    );
    assert_eq!(
        b.throttle.admit_key("login:user:ann").await.expect("admit"),
        Ok(()),
        "another key's bucket"
    );
    tokio::time::sleep(Duration::from_millis(refused.retry_after_ms + 50)).await;
    assert_eq!(
        b.throttle.admit(user).await.expect("admit"),
        Ok(()),
        "a token came back after the wait it named"
    );
}

async fn socket_slots_are_capped_per_user(b: Backend) {
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let [a, c, d] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    assert!(b.slots.acquire(user, a).await.expect("acquire"));
    assert!(b.slots.acquire(user, c).await.expect("acquire"));
    assert!(
        !b.slots.acquire(user, d).await.expect("acquire"),
        "a third socket"
    );
    assert!(
        b.slots.acquire(user, a).await.expect("acquire"),
        "a held slot is kept"
    );
    assert!(
        b.slots.acquire(other, d).await.expect("acquire"),
        "another user's slots"
    );
    b.slots.release(user, a).await.expect("release");
    assert!(
        b.slots.acquire(user, d).await.expect("acquire"),
        "a released slot is free"
    );
    b.slots.refresh(user, d).await.expect("refresh");
    assert!(!b.slots.acquire(user, a).await.expect("acquire"));
}

async fn the_census_keeps_each_instances_last_count(b: Backend) {
    assert_eq!(b.census.counts().await.expect("counts"), vec![]);
    b.census.report("gw-b", 3).await.expect("report");
    b.census.report("gw-a", 1_000).await.expect("report");
    b.census.report("gw-b", 2).await.expect("report again");
    assert_eq!(
        b.census.counts().await.expect("counts"),
        vec![("gw-a".to_owned(), 1_000), ("gw-b".to_owned(), 2)]
    );
}

/// In memory, entries expire as in Redis: a user whose every connection
/// lapsed is offline, and the sweep says so once.
#[tokio::test]
async fn memory_presence_expires_without_a_refresh() {
    let presence = MemoryPresence::with_ttl(Duration::from_millis(100));
    let (channel, user) = (Uuid::new_v4(), Uuid::new_v4());
    presence
        .join(channel, user, Uuid::new_v4())
        .await
        .expect("join");
    let mut events = presence.subscribe().await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        presence
            .online_users(channel)
            .await
            .expect("online")
            .is_empty()
    );
    assert_eq!(
        presence
            .snapshot(channel, 10)
            .await
            .expect("snapshot")
            .count,
        0
    );
    presence.sweep(channel).await.expect("sweep");
    assert_eq!(
        next(&mut events).await,
        Some(LiveEvent::Presence {
            channel_id: channel,
            user_id: user,
            online: false
        })
    );
    presence.sweep(channel).await.expect("sweep");
    quiet(&presence, &mut events).await;
}

/// A subscriber that falls thousands of events behind is ended (it
/// subscribes again), never left holding an unbounded backlog.
#[tokio::test]
async fn a_memory_subscriber_that_falls_behind_is_ended() {
    let presence = MemoryPresence::default();
    let mut events = presence.subscribe().await.expect("subscribe");
    let typing = LiveEvent::Typing {
        channel_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
    };
    for _ in 0..10_000 {
        presence.publish(&typing).await.expect("publish");
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(1), events.next())
            .await
            .expect("an answer in time")
            .is_none(),
        "the stream ends"
    );
}
