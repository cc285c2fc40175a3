//! State that heals itself (DESIGN §8), as the services see it: who is online
//! in a channel (entries expire unless their gateway refreshes them), live
//! presence and typing events fanned out to every gateway, sockets per user,
//! and token-bucket rate limits. Two adapters: `redis-store` (shared by every
//! instance: the `services` backend) and `memory-store` (one process: the
//! `embedded` backend). Losing all of it loses nothing that matters: presence
//! comes back with the next heartbeat, a bucket starts full.

use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// How long a presence entry or a socket slot lives without a refresh.
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);

/// Something every gateway should tell the subscribers of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Presence {
        channel_id: Uuid,
        user_id: Uuid,
        online: bool,
    },
    Typing {
        channel_id: Uuid,
        user_id: Uuid,
    },
}

impl LiveEvent {
    pub fn channel_id(&self) -> Uuid {
        match self {
            LiveEvent::Presence { channel_id, .. } | LiveEvent::Typing { channel_id, .. } => {
                *channel_id
            }
        }
    }
}

/// What a gateway tells a new subscriber about who is online.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnlineSnapshot {
    /// At most the limit asked for.
    pub users: Vec<Uuid>,
    /// Every user online in the channel.
    pub count: u64,
}

/// The attempt was refused; retry after this many milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: retry in {retry_after_ms} ms")]
pub struct RateLimited {
    pub retry_after_ms: u64,
}

/// The store could not be used (the adapter says why).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LiveStateError(pub String);

/// Live events as they are published: `None` for a probe, which carries no
/// event. Ends when the adapter's subscription drops; the caller subscribes
/// again.
pub type LiveEvents = BoxStream<'static, Option<LiveEvent>>;

/// Presence with expiry, and the fan-out of live events.
#[async_trait::async_trait]
pub trait PresenceStore: Send + Sync + std::fmt::Debug {
    /// Adds a connection of `user` to `channel`; announces the user online if
    /// this is their first live connection there.
    async fn join(&self, channel: Uuid, user: Uuid, connection: Uuid)
    -> Result<(), LiveStateError>;

    /// Removes a connection; announces the user offline if it was their last.
    async fn leave(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError>;

    /// Extends a connection's entries in `channels` (with the heartbeat);
    /// re-creates lost ones and announces those users online again.
    async fn refresh(
        &self,
        channels: &[Uuid],
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError>;

    /// Every user with a live connection in `channel`.
    async fn online_users(&self, channel: Uuid) -> Result<BTreeSet<Uuid>, LiveStateError>;

    /// How many users are online in `channel`, and at most `limit` of them.
    async fn snapshot(&self, channel: Uuid, limit: usize)
    -> Result<OnlineSnapshot, LiveStateError>;

    /// Removes users whose entries all expired and announces them offline.
    async fn sweep(&self, channel: Uuid) -> Result<(), LiveStateError>;

    /// Publishes a live event to every gateway.
    async fn publish(&self, event: &LiveEvent) -> Result<(), LiveStateError>;

    /// Every live event of every channel from now on.
    async fn subscribe(&self) -> Result<LiveEvents, LiveStateError>;

    /// Publishes a probe every subscriber receives as `None`: a subscriber
    /// that hears nothing, not even probes, knows its subscription is dead.
    async fn probe(&self) -> Result<(), LiveStateError>;
}

/// Token buckets by key (`send:{user}`, `login:user:{name}`, …).
#[async_trait::async_trait]
pub trait Throttle: Send + Sync + std::fmt::Debug {
    /// Takes one attempt from the bucket named `key`, or says how long to wait.
    async fn admit_key(&self, key: &str) -> Result<Result<(), RateLimited>, LiveStateError>;

    /// Takes one send from `user`'s bucket, or says how long to wait.
    async fn admit(&self, user: Uuid) -> Result<Result<(), RateLimited>, LiveStateError> {
        let admitted = self.admit_key(&format!("send:{user}")).await?;
        let outcome = if admitted.is_ok() {
            "allowed"
        } else {
            "limited"
        };
        metrics::counter!("rate_limit_checks_total", "outcome" => outcome).increment(1);
        Ok(admitted)
    }
}

/// Live sockets per user, capped.
#[async_trait::async_trait]
pub trait SocketLimit: Send + Sync + std::fmt::Debug {
    /// Takes (or refreshes) a slot for `connection`; false when the user
    /// already has the limit of live sockets.
    async fn acquire(&self, user: Uuid, connection: Uuid) -> Result<bool, LiveStateError>;

    /// Keeps a live socket's slot (with the heartbeat); re-creates a lost one.
    async fn refresh(&self, user: Uuid, connection: Uuid) -> Result<(), LiveStateError>;

    /// Gives a closed socket's slot back.
    async fn release(&self, user: Uuid, connection: Uuid) -> Result<(), LiveStateError>;
}

/// How many sockets each gateway instance holds, as last reported, so
/// operators see the load per instance.
#[async_trait::async_trait]
pub trait SocketCensus: Send + Sync + std::fmt::Debug {
    /// Records `instance`'s socket count (forgotten unless reported again
    /// within [`CENSUS_TTL`]).
    async fn report(&self, instance: &str, sockets: usize) -> Result<(), LiveStateError>;

    /// Every instance heard from within [`CENSUS_TTL`], with its count, by instance.
    async fn counts(&self) -> Result<Vec<(String, u64)>, LiveStateError>;
}

/// How long a socket count stands without a new report.
pub const CENSUS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

// Shared adapters: one store behind several holders (a process builds each
// adapter once and hands out `Arc`s of the port).
#[async_trait::async_trait]
impl<T: Throttle + ?Sized> Throttle for std::sync::Arc<T> {
    async fn admit_key(&self, key: &str) -> Result<Result<(), RateLimited>, LiveStateError> {
        (**self).admit_key(key).await
    }

    async fn admit(&self, user: Uuid) -> Result<Result<(), RateLimited>, LiveStateError> {
        (**self).admit(user).await
    }
}

#[async_trait::async_trait]
impl<T: PresenceStore + ?Sized> PresenceStore for std::sync::Arc<T> {
    async fn join(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        (**self).join(channel, user, connection).await
    }

    async fn leave(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        (**self).leave(channel, user, connection).await
    }

    async fn refresh(
        &self,
        channels: &[Uuid],
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        (**self).refresh(channels, user, connection).await
    }

    async fn online_users(&self, channel: Uuid) -> Result<BTreeSet<Uuid>, LiveStateError> {
        (**self).online_users(channel).await
    }

    async fn snapshot(
        &self,
        channel: Uuid,
        limit: usize,
    ) -> Result<OnlineSnapshot, LiveStateError> {
        (**self).snapshot(channel, limit).await
    }

    async fn sweep(&self, channel: Uuid) -> Result<(), LiveStateError> {
        (**self).sweep(channel).await
    }

    async fn publish(&self, event: &LiveEvent) -> Result<(), LiveStateError> {
        (**self).publish(event).await
    }

    async fn subscribe(&self) -> Result<LiveEvents, LiveStateError> {
        (**self).subscribe().await
    }

    async fn probe(&self) -> Result<(), LiveStateError> {
        (**self).probe().await
    }
}
