//! The in-process fan-out: which connection is subscribed to which channel,
//! and the per-subscription state that makes delivery gap-free and
//! duplicate-free. One broker queue per gateway feeds it; it never blocks on
//! a client: frames go to each connection's bounded queue with `try_send`,
//! and a full queue marks the connection as a slow consumer.

use crate::frames::ServerFrame;
use crate::history::History;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// Live frames held for one subscription while it catches up, at most.
const MAX_BUFFERED: usize = 1024;

/// A frame for a connection's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    Text(Arc<str>),
}

/// A live frame for a channel; message frames carry their `seq`.
#[derive(Debug, Clone)]
pub struct Live {
    pub seq: Option<u64>,
    pub frame: Arc<str>,
}

impl Live {
    pub fn new(seq: Option<u64>, frame: &ServerFrame) -> Self {
        Self {
            seq,
            frame: frame.to_text().into(),
        }
    }
}

/// A connection as the hub sees it.
#[derive(Debug)]
pub struct Connection {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tx: mpsc::Sender<Outbound>,
    slow: AtomicBool,
    pub kill: Notify,
}

impl Connection {
    pub fn new(user_id: Uuid, tx: mpsc::Sender<Outbound>) -> Arc<Self> {
        Arc::new(Self {
            id: Uuid::now_v7(),
            user_id,
            tx,
            slow: AtomicBool::new(false),
            kill: Notify::new(),
        })
    }

    /// Queues a frame without waiting; a full queue makes this a slow consumer.
    pub fn push(&self, frame: Arc<str>) -> bool {
        if self.tx.try_send(Outbound::Text(frame)).is_ok() {
            metrics::counter!("ws_frames_out_total").increment(1);
            return true;
        }
        if !self.slow.swap(true, Ordering::SeqCst) {
            metrics::counter!("ws_slow_consumer_disconnects_total").increment(1);
            self.kill.notify_one();
        }
        false
    }

    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::SeqCst)
    }
}

enum State {
    /// Replaying history; live frames wait here, in arrival order.
    CatchingUp(Vec<Live>),
    /// Every message up to `last_seq` was delivered.
    Live { last_seq: u64 },
}

/// One connection's subscription to one channel.
pub struct Subscription {
    pub connection: Arc<Connection>,
    pub channel_id: Uuid,
    state: Mutex<State>,
}

/// What catching up found.
pub enum CatchUp {
    /// The subscription is live.
    Done,
    /// A gap remains after the buffer: read history again from this seq.
    Again(u64),
}

impl Subscription {
    fn deliver(self: &Arc<Self>, live: &Live, hub: &Arc<Hub>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match &mut *state {
            State::CatchingUp(buffer) => {
                if buffer.len() < MAX_BUFFERED {
                    buffer.push(live.clone());
                } else {
                    // Catching up slower than the channel moves: a slow consumer.
                    self.connection.kill.notify_one();
                }
            }
            State::Live { last_seq } => match live.seq {
                None => {
                    self.connection.push(live.frame.clone());
                }
                Some(seq) if seq <= *last_seq => {}
                Some(seq) if seq == *last_seq + 1 => {
                    *last_seq = seq;
                    self.connection.push(live.frame.clone());
                }
                Some(_) => {
                    // A push went missing: fetch the hole from the read model,
                    // which already has it (pushes follow commits).
                    let from = *last_seq;
                    *state = State::CatchingUp(vec![live.clone()]);
                    metrics::counter!("ws_gap_repairs_total").increment(1);
                    let (sub, hub) = (self.clone(), hub.clone());
                    tokio::spawn(async move { hub.catch_up(&sub, from).await });
                }
            },
        }
    }

    /// The seq of the first buffered message frame.
    fn first_buffered_seq(&self) -> Option<u64> {
        match &*self.state.lock().ok()? {
            State::CatchingUp(buffer) => buffer.iter().find_map(|l| l.seq),
            State::Live { .. } => None,
        }
    }

    /// Sends history frames (already read, in seq order, after `from`), then the
    /// buffered live frames, and goes live if no gap remains.
    fn finish_catch_up(&self, mut from: u64, history: Vec<Live>) -> CatchUp {
        let Ok(mut state) = self.state.lock() else {
            return CatchUp::Done;
        };
        for live in history {
            if let Some(seq) = live.seq {
                from = from.max(seq);
            }
            self.connection.push(live.frame);
        }
        let State::CatchingUp(buffer) = &mut *state else {
            return CatchUp::Done;
        };
        let pending = std::mem::take(buffer);
        let mut rest = pending.into_iter();
        for live in rest.by_ref() {
            match live.seq {
                Some(seq) if seq <= from => {}
                Some(seq) if seq == from + 1 => {
                    from = seq;
                    self.connection.push(live.frame);
                }
                Some(_) => {
                    // Still a hole: keep this and the rest buffered, read again.
                    let mut keep = vec![live];
                    keep.extend(rest);
                    *buffer = keep;
                    return CatchUp::Again(from);
                }
                None => {
                    self.connection.push(live.frame);
                }
            }
        }
        *state = State::Live { last_seq: from };
        CatchUp::Done
    }
}

/// Every subscription of this gateway instance.
pub struct Hub {
    by_channel: RwLock<HashMap<Uuid, HashMap<Uuid, Arc<Subscription>>>>,
    by_connection: Mutex<HashMap<Uuid, HashSet<Uuid>>>,
    history: History,
}

impl Hub {
    pub fn new(history: History) -> Arc<Self> {
        Arc::new(Self {
            by_channel: RwLock::new(HashMap::new()),
            by_connection: Mutex::new(HashMap::new()),
            history,
        })
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Registers a subscription that buffers live frames until caught up.
    pub fn subscribe(&self, connection: &Arc<Connection>, channel_id: Uuid) -> Arc<Subscription> {
        let sub = Arc::new(Subscription {
            connection: connection.clone(),
            channel_id,
            state: Mutex::new(State::CatchingUp(Vec::new())),
        });
        if let Ok(mut map) = self.by_channel.write() {
            map.entry(channel_id)
                .or_default()
                .insert(connection.id, sub.clone());
        }
        if let Ok(mut map) = self.by_connection.lock() {
            map.entry(connection.id).or_default().insert(channel_id);
        }
        metrics::gauge!("ws_subscriptions").increment(1.0);
        sub
    }

    /// Removes one subscription; true if it existed.
    pub fn unsubscribe(&self, connection_id: Uuid, channel_id: Uuid) -> bool {
        let removed = self
            .by_channel
            .write()
            .ok()
            .and_then(|mut map| {
                let subs = map.get_mut(&channel_id)?;
                let removed = subs.remove(&connection_id);
                if subs.is_empty() {
                    map.remove(&channel_id);
                }
                removed
            })
            .is_some();
        if let Ok(mut map) = self.by_connection.lock()
            && let Some(channels) = map.get_mut(&connection_id)
        {
            channels.remove(&channel_id);
        }
        if removed {
            metrics::gauge!("ws_subscriptions").decrement(1.0);
        }
        removed
    }

    /// Removes every subscription of a connection; returns their channels.
    pub fn remove_connection(&self, connection_id: Uuid) -> Vec<Uuid> {
        let channels: Vec<Uuid> = self
            .by_connection
            .lock()
            .ok()
            .and_then(|mut map| map.remove(&connection_id))
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        for channel in &channels {
            self.unsubscribe(connection_id, *channel);
        }
        channels
    }

    /// The channels a connection is subscribed to.
    pub fn channels_of(&self, connection_id: Uuid) -> Vec<Uuid> {
        self.by_connection
            .lock()
            .ok()
            .and_then(|map| map.get(&connection_id).map(|s| s.iter().copied().collect()))
            .unwrap_or_default()
    }

    /// Channels with at least one local subscriber.
    pub fn channels(&self) -> Vec<Uuid> {
        self.by_channel
            .read()
            .map(|map| map.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `connection_id` is subscribed to `channel_id`.
    pub fn is_subscribed(&self, connection_id: Uuid, channel_id: Uuid) -> bool {
        self.by_channel
            .read()
            .map(|map| {
                map.get(&channel_id)
                    .is_some_and(|s| s.contains_key(&connection_id))
            })
            .unwrap_or(false)
    }

    /// Hands a live frame to every subscription of `channel_id`, except the
    /// connections of `except_user`.
    pub fn dispatch(self: &Arc<Self>, channel_id: Uuid, live: &Live, except_user: Option<Uuid>) {
        let subs: Vec<Arc<Subscription>> = self
            .by_channel
            .read()
            .map(|map| {
                map.get(&channel_id)
                    .map(|s| s.values().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        for sub in subs {
            if Some(sub.connection.user_id) != except_user {
                sub.deliver(live, self);
            }
        }
    }

    /// Ends the subscriptions of `user_id` to `channel_id` (kicked, banned,
    /// left): they stop receiving at once. Returns the connections affected.
    pub fn evict(&self, channel_id: Uuid, user_id: Uuid) -> Vec<Arc<Connection>> {
        let victims: Vec<Arc<Connection>> = self
            .by_channel
            .read()
            .map(|map| {
                map.get(&channel_id)
                    .map(|s| {
                        s.values()
                            .filter(|sub| sub.connection.user_id == user_id)
                            .map(|sub| sub.connection.clone())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        for connection in &victims {
            self.unsubscribe(connection.id, channel_id);
        }
        victims
    }

    /// Reads history after `from` and hands it over, repeating while gaps remain.
    pub async fn catch_up(self: &Arc<Self>, sub: &Arc<Subscription>, mut from: u64) {
        let mut stalled = 0;
        loop {
            let history = match self.history.messages_after(sub.channel_id, from).await {
                Ok(history) => history,
                Err(e) => {
                    tracing::warn!(error = %e, "history read failed while catching up; closing the connection");
                    sub.connection.kill.notify_one();
                    return;
                }
            };
            match sub.finish_catch_up(from, history) {
                CatchUp::Done => return,
                CatchUp::Again(next) if next > from => {
                    from = next;
                    stalled = 0;
                }
                CatchUp::Again(next) => {
                    // The read model lacks the next seq: it may lag (a replica), or
                    // the message may never arrive (dead-lettered). Wait a little,
                    // then accept the hole rather than stall the subscription.
                    from = next;
                    stalled += 1;
                    if stalled > 50 {
                        tracing::warn!(channel_id = %sub.channel_id, after = from, "skipping a seq the read model never got");
                        from = sub
                            .first_buffered_seq()
                            .map_or(from, |s| s.saturating_sub(1));
                        stalled = 0;
                    } else {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }
}
