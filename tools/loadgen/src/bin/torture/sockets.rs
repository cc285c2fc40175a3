//! Socket clients that stay subscribed to the load channels through every
//! fault: each reconnects when dropped and resumes each channel by
//! `after_seq` (the last seq it holds), re-fetches over REST where the
//! server answers `recovered: false`, and records every frame it gets.

use crate::api::Api;
use futures_util::{SinkExt, StreamExt};
use loadgen::torture::{SocketEvent, SocketRecord};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// A socket client and what it recorded.
pub struct Subscriber {
    pub name: String,
    pub user_id: Uuid,
    pub token: String,
    /// The instance it connects to (index and `host:port`).
    pub instance: usize,
    pub addr: String,
    pub channels: Vec<Uuid>,
    pub records: Mutex<Vec<SocketRecord>>,
    /// The last seq held per channel (what a resume asks after).
    pub last: Mutex<HashMap<Uuid, u64>>,
    /// Whether its socket is up and every channel subscribed.
    pub live: Mutex<bool>,
}

/// A socket that sends nothing for this long is taken for dead.
const SILENCE: Duration = Duration::from_secs(30);

impl Subscriber {
    fn record(&self, started: Instant, event: SocketEvent) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(SocketRecord {
                at: started.elapsed(),
                event,
            });
    }

    fn last_of(&self, channel: Uuid) -> u64 {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&channel)
            .copied()
            .unwrap_or(0)
    }

    fn hold(&self, channel: Uuid, seq: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let held = last.entry(channel).or_default();
        if seq == *held + 1 {
            *held = seq;
        }
    }

    fn set_live(&self, live: bool) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = live;
    }

    pub fn is_live(&self) -> bool {
        *self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects, resumes and records until `stop`.
    pub async fn run(self: Arc<Self>, api: Arc<Api>, mut stop: watch::Receiver<bool>) {
        let started = api.started;
        while !*stop.borrow() {
            let reason = tokio::select! {
                reason = self.session(&api, started) => reason,
                _ = stop.changed() => break,
            };
            self.set_live(false);
            self.record(started, SocketEvent::Disconnected { reason });
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                _ = stop.changed() => break,
            }
        }
        self.set_live(false);
    }

    /// One connection, to its end; returns why it ended.
    async fn session(&self, api: &Api, started: Instant) -> String {
        let url = format!("ws://{}/ws?access_token={}", self.addr, self.token);
        let mut socket = match tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(url),
        )
        .await
        {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => return format!("connect: {e}"),
            Err(_) => return "connect: timed out".into(),
        };
        self.record(
            started,
            SocketEvent::Connected {
                instance: self.instance,
            },
        );
        let mut pending: HashMap<Uuid, Instant> = HashMap::new();
        for channel in &self.channels {
            if let Err(e) = self.subscribe(&mut socket, *channel, started).await {
                return e;
            }
            pending.insert(*channel, Instant::now());
        }
        let mut retry: Vec<(Uuid, Instant)> = Vec::new();
        let mut ping = tokio::time::interval(Duration::from_secs(10));
        loop {
            let due = retry.iter().position(|(_, at)| *at <= Instant::now());
            if let Some(i) = due {
                let (channel, _) = retry.swap_remove(i);
                if let Err(e) = self.subscribe(&mut socket, channel, started).await {
                    return e;
                }
                pending.insert(channel, Instant::now());
            }
            let frame = tokio::select! {
                frame = tokio::time::timeout(SILENCE, socket.next()) => frame,
                _ = ping.tick() => {
                    if socket.send(Message::text(json!({"type": "ping"}).to_string())).await.is_err() {
                        return "ping: send failed".into();
                    }
                    continue;
                }
                _ = tokio::time::sleep(Duration::from_millis(250)), if !retry.is_empty() => continue,
            };
            let text = match frame {
                Err(_) => return format!("silent for {SILENCE:?}"),
                Ok(None) => return "closed".into(),
                Ok(Some(Err(e))) => return format!("read: {e}"),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(close)))) => return format!("close frame {close:?}"),
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let channel = frame["channel_id"]
                .as_str()
                .and_then(|c| c.parse::<Uuid>().ok());
            match (frame["type"].as_str(), channel) {
                (Some("subscribed"), Some(channel)) => {
                    let last_seq = frame["last_seq"].as_u64().unwrap_or(0);
                    let recovered = frame["recovered"].as_bool().unwrap_or(false);
                    self.record(
                        started,
                        SocketEvent::Subscribed {
                            channel_id: channel,
                            last_seq,
                            recovered,
                        },
                    );
                    if !recovered {
                        self.fetch(api, channel, last_seq, started).await;
                    }
                    pending.remove(&channel);
                    self.set_live(pending.is_empty() && retry.is_empty());
                }
                (Some(kind @ ("message" | "message_deleted")), Some(channel)) => {
                    let (Some(seq), Some(message_id)) = (
                        frame["seq"].as_u64(),
                        frame["message_id"].as_str().and_then(|m| m.parse().ok()),
                    ) else {
                        continue;
                    };
                    let event = if kind == "message" {
                        SocketEvent::Message {
                            channel_id: channel,
                            seq,
                            message_id,
                        }
                    } else {
                        SocketEvent::Deleted {
                            channel_id: channel,
                            seq,
                            message_id,
                        }
                    };
                    self.record(started, event);
                    self.hold(channel, seq);
                }
                (Some("unsubscribed"), Some(channel)) => {
                    let reason = frame["reason"].as_str().unwrap_or("").to_owned();
                    self.record(
                        started,
                        SocketEvent::Unsubscribed {
                            channel_id: channel,
                            reason,
                        },
                    );
                }
                // A subscribe the server could not serve now (a backend
                // away): ask again shortly, from what is held.
                (Some("error"), Some(channel)) if pending.contains_key(&channel) => {
                    pending.remove(&channel);
                    self.set_live(false);
                    retry.push((channel, Instant::now() + Duration::from_millis(500)));
                }
                _ => {}
            }
        }
    }

    async fn subscribe<S>(
        &self,
        socket: &mut S,
        channel: Uuid,
        started: Instant,
    ) -> Result<(), String>
    where
        S: SinkExt<Message> + Unpin,
    {
        let after_seq = self.last_of(channel);
        self.record(
            started,
            SocketEvent::Subscribing {
                channel_id: channel,
                after_seq,
            },
        );
        let frame = json!({"type": "subscribe", "channel_id": channel, "after_seq": after_seq});
        socket
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|_| "subscribe: send failed".to_owned())
    }

    /// After `recovered: false`: what it misses up to `last_seq`, over REST,
    /// in windows of 100 (`after`/`before` are exclusive seqs).
    async fn fetch(&self, api: &Api, channel: Uuid, last_seq: u64, started: Instant) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.last_of(channel) < last_seq && Instant::now() < deadline {
            let after = self.last_of(channel);
            let path = format!(
                "/api/channels/{channel}/messages?after={after}&before={}&limit=100",
                after + 101
            );
            let Some((200, body)) = api.get(self.instance, &path, &self.token).await else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            };
            let mut page: Vec<(u64, Uuid)> = body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| Some((m["seq"].as_u64()?, m["message_id"].as_str()?.parse().ok()?)))
                .collect();
            page.sort_unstable();
            if page.is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            for (seq, message_id) in page {
                self.record(
                    started,
                    SocketEvent::Fetched {
                        channel_id: channel,
                        seq,
                        message_id,
                    },
                );
                self.hold(channel, seq);
            }
        }
    }
}

/// The users online in each channel as a fresh socket on `addr` sees them
/// in its `subscribed` frames.
pub async fn online_users(
    addr: &str,
    token: &str,
    channels: &[Uuid],
) -> Option<HashMap<Uuid, Vec<Uuid>>> {
    let url = format!("ws://{addr}/ws?access_token={token}");
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .ok()?
    .ok()?;
    for channel in channels {
        let frame = json!({"type": "subscribe", "channel_id": channel});
        socket.send(Message::text(frame.to_string())).await.ok()?;
    }
    let mut online = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while online.len() < channels.len() && Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_secs(5), socket.next()).await
        else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame["type"] == "subscribed"
            && let Some(channel) = frame["channel_id"].as_str().and_then(|c| c.parse().ok())
        {
            let users = frame["online_users"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str()?.parse().ok())
                .collect();
            online.insert(channel, users);
        }
    }
    let _ = socket.close(None).await;
    Some(online)
}
