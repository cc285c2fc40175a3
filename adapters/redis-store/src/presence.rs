//! Presence and live fan-out. Two sorted sets per channel, both scored by
//! expiry time (ms) and both given a key expiry, so nothing outlives the
//! gateways that keep it fresh:
//!
//! - `channel:{id}:users`: user id → the latest expiry of their connections
//!   there. Online count and a bounded list of online users read from it in
//!   O(log n + limit), whatever the channel's size.
//! - `channel:{id}:user:{user}:conns`: that user's connections there
//!   (per-connection metadata), so leaving one of two tabs keeps them online.
//!
//! Gateways refresh their entries with the heartbeat using plain `ZADD`, which
//! re-creates what a Redis `FLUSHALL` or restart lost: presence heals within
//! one heartbeat. An entry whose gateway died simply expires. Presence changes
//! and typing go out on the pub/sub channel `live:{channel}`.

use crate::{RedisError, RedisStore};
use futures_util::StreamExt;
use live_state::{LiveEvent, OnlineSnapshot, PRESENCE_TTL};
use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Adds (or refreshes) a connection; returns 1 if the user was not online before.
/// KEYS: users, conns. ARGV: now, expiry, user, connection, ttl.
const JOIN: &str = r#"
local before = redis.call('ZSCORE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if before and tonumber(before) >= tonumber(ARGV[1]) then return 0 end
return 1
"#;

/// Removes a connection; returns 1 if the user thereby went offline.
/// KEYS: users, conns. ARGV: now, user, connection.
const LEAVE: &str = r#"
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
local rest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #rest == 0 then
  local removed = redis.call('ZREM', KEYS[1], ARGV[2])
  return removed
end
redis.call('ZADD', KEYS[1], 'XX', rest[2], ARGV[2])
return 0
"#;

/// Removes the users whose every entry expired; returns them.
/// KEYS: users. ARGV: now.
const SWEEP: &str = r#"
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
return gone
"#;

/// Presence operations over a `RedisStore`.
#[derive(Debug, Clone)]
pub struct Presence {
    store: RedisStore,
}

pub(crate) fn now_ms() -> u64 {
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

    fn conns_key(&self, channel: Uuid, user: Uuid) -> String {
        self.store
            .key(&format!("channel:{channel}:user:{user}:conns"))
    }

    /// Adds a connection of `user` to `channel`; announces the user online if
    /// this is their first live connection there.
    pub async fn join(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), RedisError> {
        if self.touch(channel, user, connection).await? {
            self.publish(&LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: true,
            })
            .await?;
        }
        Ok(())
    }

    /// Adds or refreshes one entry; true if the user was not online there.
    async fn touch(&self, channel: Uuid, user: Uuid, connection: Uuid) -> Result<bool, RedisError> {
        let mut c = self.store.connection();
        let now = now_ms();
        let became: i64 = redis::Script::new(JOIN)
            .key(self.users_key(channel))
            .key(self.conns_key(channel, user))
            .arg(now)
            .arg(now + PRESENCE_TTL.as_millis() as u64)
            .arg(user.to_string())
            .arg(connection.to_string())
            .arg(PRESENCE_TTL.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(became == 1)
    }

    /// Removes a connection; announces the user offline if it was their last.
    pub async fn leave(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        let gone: i64 = redis::Script::new(LEAVE)
            .key(self.users_key(channel))
            .key(self.conns_key(channel, user))
            .arg(now_ms())
            .arg(user.to_string())
            .arg(connection.to_string())
            .invoke_async(&mut c)
            .await?;
        if gone == 1 {
            self.publish(&LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: false,
            })
            .await?;
        }
        Ok(())
    }

    /// Extends the life of a connection's entries (called with the heartbeat),
    /// in one round trip however many channels. Re-creates entries Redis lost
    /// (a flush, a restart, a lapsed refresh) and announces those users online
    /// again.
    pub async fn refresh(
        &self,
        channels: &[Uuid],
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), RedisError> {
        if channels.is_empty() {
            return Ok(());
        }
        let mut c = self.store.connection();
        let now = now_ms();
        let script = redis::Script::new(JOIN);
        let invocations: Vec<redis::ScriptInvocation<'_>> = channels
            .iter()
            .map(|channel| {
                let mut invocation = script.prepare_invoke();
                invocation
                    .key(self.users_key(*channel))
                    .key(self.conns_key(*channel, user))
                    .arg(now)
                    .arg(now + PRESENCE_TTL.as_millis() as u64)
                    .arg(user.to_string())
                    .arg(connection.to_string())
                    .arg(PRESENCE_TTL.as_millis() as u64);
                invocation
            })
            .collect();
        let mut pipe = redis::pipe();
        pipe.load_script(&script).ignore();
        for invocation in &invocations {
            pipe.invoke_script(invocation);
        }
        let became: Vec<i64> = pipe.query_async(&mut c).await?;
        for (channel, became) in channels.iter().zip(became) {
            if became == 1 {
                self.publish(&LiveEvent::Presence {
                    channel_id: *channel,
                    user_id: user,
                    online: true,
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Users with a live connection in `channel` (all of them: for the
    /// projector's offline notifications).
    pub async fn online_users(&self, channel: Uuid) -> Result<BTreeSet<Uuid>, RedisError> {
        let mut c = self.store.connection();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.users_key(channel))
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut c)
            .await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    /// How many users are online in `channel`, and at most `limit` of them.
    pub async fn snapshot(
        &self,
        channel: Uuid,
        limit: usize,
    ) -> Result<OnlineSnapshot, RedisError> {
        let mut c = self.store.connection();
        let key = self.users_key(channel);
        let now = now_ms();
        let (count, users): (u64, Vec<String>) = redis::pipe()
            .cmd("ZCOUNT")
            .arg(&key)
            .arg(now)
            .arg("+inf")
            .cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(now)
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut c)
            .await?;
        Ok(OnlineSnapshot {
            users: users.iter().filter_map(|m| m.parse().ok()).collect(),
            count,
        })
    }

    /// Removes users whose entries all expired (a crashed gateway's) and
    /// announces them offline. Atomic: a user refreshed meanwhile stays.
    pub async fn sweep(&self, channel: Uuid) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        let gone: Vec<String> = redis::Script::new(SWEEP)
            .key(self.users_key(channel))
            .arg(now_ms())
            .invoke_async(&mut c)
            .await?;
        for user in gone.iter().filter_map(|m| m.parse::<Uuid>().ok()) {
            self.publish(&LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
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

    /// Every live event of every channel, as they are published (`None`: a
    /// message that is no event, such as a `probe`). Ends when the
    /// subscription connection drops (the caller resubscribes).
    pub async fn subscribe(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Option<LiveEvent>> + use<>, RedisError> {
        let mut pubsub = self.store.client.get_async_pubsub().await?;
        pubsub.psubscribe(self.store.key("live:*")).await?;
        Ok(pubsub.into_on_message().map(|msg| {
            let payload: String = msg.get_payload().ok()?;
            serde_json::from_str(&payload).ok()
        }))
    }

    /// Publishes a message every live subscriber receives and ignores: a
    /// subscriber that hears nothing, not even probes, knows its pub/sub
    /// connection is dead even when TCP has not noticed (a half-open link).
    pub async fn probe(&self) -> Result<(), RedisError> {
        let mut c = self.store.connection();
        redis::cmd("PUBLISH")
            .arg(self.store.key("live:probe"))
            .arg(r#"{"type":"probe"}"#)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }
}
