//! Presence and live fan-out. `channel:{id}:users` is a sorted set of
//! `{user}:{connection}` scored by expiry time: gateways refresh their entries
//! with the heartbeat, and an entry whose gateway died simply expires. A user
//! is online in a channel while any of their entries is live. Presence changes
//! and typing go out on the pub/sub channel `live:{channel}`.

use crate::{RedisError, RedisStore};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// How long a presence entry lives without a refresh.
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

/// Presence operations over a `RedisStore`.
#[derive(Debug, Clone)]
pub struct Presence {
    store: RedisStore,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Presence {
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }

    fn users_key(&self, channel: Uuid) -> String {
        self.store.key(&format!("channel:{channel}:users"))
    }

    /// Adds a connection of `user` to `channel`; announces the user online if
    /// this is their first live connection there.
    pub async fn join(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), RedisError> {
        let was_online = self.online_users(channel).await?.contains(&user);
        let mut c = self.store.connection();
        redis::cmd("ZADD")
            .arg(self.users_key(channel))
            .arg(now_ms() + PRESENCE_TTL.as_millis() as u64)
            .arg(format!("{user}:{connection}"))
            .query_async::<()>(&mut c)
            .await?;
        if !was_online {
            self.publish(&LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: true,
            })
            .await?;
        }
        Ok(())
    }

    /// Removes a connection; announces the user offline if it was their last.
    pub async fn leave(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        redis::cmd("ZREM")
            .arg(self.users_key(channel))
            .arg(format!("{user}:{connection}"))
            .query_async::<()>(&mut c)
            .await?;
        if !self.online_users(channel).await?.contains(&user) {
            self.publish(&LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: false,
            })
            .await?;
        }
        Ok(())
    }

    /// Extends the life of a connection's entries (called with the heartbeat).
    pub async fn refresh(
        &self,
        channels: &[Uuid],
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        let mut pipe = redis::pipe();
        let expiry = now_ms() + PRESENCE_TTL.as_millis() as u64;
        for channel in channels {
            pipe.cmd("ZADD")
                .arg(self.users_key(*channel))
                .arg("XX")
                .arg(expiry)
                .arg(format!("{user}:{connection}"))
                .ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(())
    }

    /// Users with a live connection in `channel`.
    pub async fn online_users(&self, channel: Uuid) -> Result<BTreeSet<Uuid>, RedisError> {
        let mut c = self.store.connection();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.users_key(channel))
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut c)
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| m.split_once(':').and_then(|(u, _)| u.parse().ok()))
            .collect())
    }

    /// Removes expired entries (a crashed gateway's) and announces the users
    /// who thereby went offline.
    pub async fn sweep(&self, channel: Uuid) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        let key = self.users_key(channel);
        let expired: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({}", now_ms()))
            .query_async(&mut c)
            .await?;
        if expired.is_empty() {
            return Ok(());
        }
        let removed: usize = redis::cmd("ZREM")
            .arg(&key)
            .arg(&expired)
            .query_async(&mut c)
            .await?;
        if removed == 0 {
            return Ok(()); // another gateway swept first and announced it
        }
        let online = self.online_users(channel).await?;
        let gone: BTreeSet<Uuid> = expired
            .iter()
            .filter_map(|m| m.split_once(':').and_then(|(u, _)| u.parse().ok()))
            .collect();
        for user in gone.difference(&online) {
            self.publish(&LiveEvent::Presence {
                channel_id: channel,
                user_id: *user,
                online: false,
            })
            .await?;
        }
        Ok(())
    }

    /// Publishes a live event to every gateway.
    pub async fn publish(&self, event: &LiveEvent) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        let body = serde_json::to_string(event).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Parse, "encode", e.to_string()))
        })?;
        redis::cmd("PUBLISH")
            .arg(self.store.key(&format!("live:{}", event.channel_id())))
            .arg(body)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }

    /// Every live event of every channel, as they are published. Ends when the
    /// subscription connection drops (the caller resubscribes).
    pub async fn subscribe(
        &self,
    ) -> Result<impl futures_util::Stream<Item = LiveEvent> + use<>, RedisError> {
        let mut pubsub = self.store.client.get_async_pubsub().await?;
        pubsub.psubscribe(self.store.key("live:*")).await?;
        Ok(pubsub.into_on_message().filter_map(|msg| async move {
            let payload: String = msg.get_payload().ok()?;
            serde_json::from_str(&payload).ok()
        }))
    }
}
