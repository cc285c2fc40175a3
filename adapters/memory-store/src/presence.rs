//! Presence: per channel, each user's connections with their expiry; live
//! events on a broadcast channel every subscriber of the process reads.

use crate::now_ms;
use futures_util::StreamExt;
use live_state::{
    LiveEvent, LiveEvents, LiveStateError, OnlineSnapshot, PRESENCE_TTL, PresenceStore,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events a subscriber may fall behind by before it is dropped (and
/// subscribes again), as Redis drops a pub/sub client whose buffer is full.
const FAN_OUT_BUFFER: usize = 4096;

type Connections = HashMap<Uuid, u64>;

/// Presence and live fan-out of one process.
#[derive(Debug, Clone)]
pub struct MemoryPresence {
    channels: Arc<Mutex<HashMap<Uuid, HashMap<Uuid, Connections>>>>,
    live: broadcast::Sender<Option<LiveEvent>>,
    ttl_ms: u64,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self::with_ttl(PRESENCE_TTL)
    }
}

impl MemoryPresence {
    /// Entries that live `ttl` without a refresh (tests shorten it).
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            channels: Arc::default(),
            live: broadcast::Sender::new(FAN_OUT_BUFFER),
            ttl_ms: ttl.as_millis() as u64,
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<Uuid, HashMap<Uuid, Connections>>> {
        // A panic elsewhere cannot leave these maps half-updated (every
        // update is one insert or remove), so a poisoned lock is still sound.
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds or refreshes one entry; true if the user was not online there.
    fn touch(&self, channel: Uuid, user: Uuid, connection: Uuid) -> bool {
        let now = now_ms();
        let mut channels = self.channels();
        let users = channels.entry(channel).or_default();
        let connections = users.entry(user).or_default();
        let was_online = connections.values().any(|&expiry| expiry >= now);
        connections.retain(|_, &mut expiry| expiry >= now);
        connections.insert(connection, now + self.ttl_ms);
        !was_online
    }

    fn announce(&self, event: LiveEvent) {
        // No subscriber is not an error: nobody is there to tell.
        let _ = self.live.send(Some(event));
    }
}

fn online(connections: &Connections, now: u64) -> Option<u64> {
    connections.values().copied().filter(|&e| e >= now).max()
}

#[async_trait::async_trait]
impl PresenceStore for MemoryPresence {
    async fn join(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        if self.touch(channel, user, connection) {
            self.announce(LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: true,
            });
        }
        Ok(())
    }

    async fn leave(
        &self,
        channel: Uuid,
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        let now = now_ms();
        let went_offline = {
            let mut channels = self.channels();
            let Some(users) = channels.get_mut(&channel) else {
                return Ok(());
            };
            let Some(connections) = users.get_mut(&user) else {
                return Ok(());
            };
            connections.remove(&connection);
            connections.retain(|_, &mut expiry| expiry >= now);
            let gone = connections.is_empty();
            if gone {
                users.remove(&user);
                if users.is_empty() {
                    channels.remove(&channel);
                }
            }
            gone
        };
        if went_offline {
            self.announce(LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: false,
            });
        }
        Ok(())
    }

    async fn refresh(
        &self,
        channels: &[Uuid],
        user: Uuid,
        connection: Uuid,
    ) -> Result<(), LiveStateError> {
        for &channel in channels {
            if self.touch(channel, user, connection) {
                self.announce(LiveEvent::Presence {
                    channel_id: channel,
                    user_id: user,
                    online: true,
                });
            }
        }
        Ok(())
    }

    async fn online_users(&self, channel: Uuid) -> Result<BTreeSet<Uuid>, LiveStateError> {
        let now = now_ms();
        Ok(self
            .channels()
            .get(&channel)
            .map(|users| {
                users
                    .iter()
                    .filter(|(_, connections)| online(connections, now).is_some())
                    .map(|(user, _)| *user)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn snapshot(
        &self,
        channel: Uuid,
        limit: usize,
    ) -> Result<OnlineSnapshot, LiveStateError> {
        let now = now_ms();
        let channels = self.channels();
        let Some(users) = channels.get(&channel) else {
            return Ok(OnlineSnapshot::default());
        };
        // Ordered as Redis orders its sorted set: by expiry, then by id.
        let mut live: Vec<(u64, Uuid)> = users
            .iter()
            .filter_map(|(user, connections)| online(connections, now).map(|e| (e, *user)))
            .collect();
        let count = live.len() as u64;
        live.sort_unstable();
        Ok(OnlineSnapshot {
            users: live.into_iter().take(limit).map(|(_, user)| user).collect(),
            count,
        })
    }

    async fn sweep(&self, channel: Uuid) -> Result<(), LiveStateError> {
        let now = now_ms();
        let gone: Vec<Uuid> = {
            let mut channels = self.channels();
            let Some(users) = channels.get_mut(&channel) else {
                return Ok(());
            };
            let gone: Vec<Uuid> = users
                .iter()
                .filter(|(_, connections)| online(connections, now).is_none())
                .map(|(user, _)| *user)
                .collect();
            for user in &gone {
                users.remove(user);
            }
            if users.is_empty() {
                channels.remove(&channel);
            }
            gone
        };
        for user in gone {
            self.announce(LiveEvent::Presence {
                channel_id: channel,
                user_id: user,
                online: false,
            });
        }
        Ok(())
    }

    async fn publish(&self, event: &LiveEvent) -> Result<(), LiveStateError> {
        self.announce(event.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<LiveEvents, LiveStateError> {
        let receiver = self.live.subscribe();
        // A subscriber that fell too far behind ends, as a Redis pub/sub
        // client over its buffer limit is disconnected: it subscribes again.
        Ok(
            futures_util::stream::unfold(receiver, |mut receiver| async move {
                match receiver.recv().await {
                    Ok(event) => Some((event, receiver)),
                    Err(
                        broadcast::error::RecvError::Lagged(_)
                        | broadcast::error::RecvError::Closed,
                    ) => None,
                }
            })
            .boxed(),
        )
    }

    async fn probe(&self) -> Result<(), LiveStateError> {
        let _ = self.live.send(None);
        Ok(())
    }
}
