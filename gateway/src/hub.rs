//! The in-process fan-out: which connection is subscribed to which channel,
//! and the per-subscription state that makes delivery gap-free and
//! duplicate-free. One broker queue per gateway feeds it; fan-out never
//! blocks on a client (`Connection::push`).
//!
//! A subscription that is behind (a fresh `subscribe` with `after_seq`, or a
//! gap seen live) catches up in a task of its own that pages through the read
//! model and sends at the client's pace (`Connection::send_paced`). Meanwhile
//! live message frames are not buffered, only the highest seq seen is noted
//! (the read model has them: pushes follow commits); other live frames
//! (edits, deletes, presence, read pointers) wait in a bounded buffer and
//! follow the replay; typing is dropped while catching up.

use crate::catch_up;
use crate::changes::ChangeMarks;
use crate::connection::Connection;
use crate::frames::ServerFrame;
use crate::history::History;
use bytestring::ByteString;
use live_state::{OnlineSnapshot, PresenceStore};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use tokio::task::AbortHandle;
use uuid::Uuid;

/// Non-message live frames held for one subscription while it catches up.
pub(crate) const MAX_PENDING: usize = 1024;

/// A live frame for a channel; new messages carry their `seq`.
#[derive(Debug, Clone)]
pub struct Live {
    pub seq: Option<u64>,
    /// Worth nothing later (typing): dropped rather than buffered.
    pub ephemeral: bool,
    pub frame: ByteString,
}

impl Live {
    pub fn new(seq: Option<u64>, frame: &ServerFrame) -> Self {
        Self {
            seq,
            ephemeral: matches!(frame, ServerFrame::Typing { .. }),
            frame: frame.to_text().into(),
        }
    }
}

pub(crate) enum State {
    /// Replaying history up to at least `target`; other frames wait in `pending`.
    CatchingUp {
        target: u64,
        pending: VecDeque<Live>,
    },
    /// Every message up to `last_seq` was delivered.
    Live { last_seq: u64 },
}

/// One connection's subscription to one channel.
pub struct Subscription {
    pub connection: Arc<Connection>,
    pub channel_id: Uuid,
    /// The channel's stream version its authorization saw: removals at or
    /// before it were already taken into account.
    pub authorized_version: std::sync::atomic::AtomicU64,
    active: AtomicBool,
    pub(crate) state: Mutex<State>,
    task: Mutex<Option<AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a hub lock leaves plain data behind: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Subscription {
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst) && !self.connection.is_closed()
    }

    /// Stops it: no frame of it is queued after this returns (its catch-up
    /// task is aborted).
    fn revoke(&self) {
        self.active.store(false, Ordering::SeqCst);
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }

    fn deliver(self: &Arc<Self>, live: &Live, hub: &Arc<Hub>) {
        let mut state = lock(&self.state);
        match &mut *state {
            State::CatchingUp { target, pending } => match live.seq {
                Some(seq) => *target = (*target).max(seq),
                None if live.ephemeral => {}
                None if pending.len() < MAX_PENDING => pending.push_back(live.clone()),
                None => {
                    // The channel moves faster than this client reads.
                    self.connection.end(crate::frames::close::SLOW_CONSUMER);
                }
            },
            State::Live { last_seq } => match live.seq {
                None => {
                    self.connection.push(live.frame.clone());
                }
                Some(seq) if seq <= *last_seq => {}
                Some(seq) if seq == *last_seq + 1 => {
                    *last_seq = seq;
                    self.connection.push(live.frame.clone());
                }
                Some(seq) => {
                    // A push went missing: fetch the hole from the read model.
                    let from = *last_seq;
                    *state = State::CatchingUp {
                        target: seq,
                        pending: VecDeque::new(),
                    };
                    drop(state);
                    metrics::counter!("ws_gap_repairs_total").increment(1);
                    hub.start_catch_up(self, from);
                }
            },
        }
    }

    /// The highest message seq it delivered or saw announced.
    fn seen(&self) -> u64 {
        match &*lock(&self.state) {
            State::CatchingUp { target, .. } => *target,
            State::Live { last_seq } => *last_seq,
        }
    }

    /// Raises the target (to the head the subscribe saw).
    pub(crate) fn raise_target(&self, to: u64) {
        if let State::CatchingUp { target, .. } = &mut *lock(&self.state) {
            *target = (*target).max(to);
        }
    }

    /// Caught up to `from`: either takes the frames that waited (to send
    /// them, then look again) or, with none waiting and no newer seq seen,
    /// goes live. `None`: live now.
    pub(crate) fn settle(&self, from: u64) -> Option<Settle> {
        let mut state = lock(&self.state);
        match &mut *state {
            State::Live { .. } => None,
            State::CatchingUp { target, .. } if *target > from => Some(Settle::ReadMore(*target)),
            State::CatchingUp { pending, .. } if !pending.is_empty() => {
                Some(Settle::Send(std::mem::take(pending)))
            }
            State::CatchingUp { .. } => {
                *state = State::Live { last_seq: from };
                None
            }
        }
    }
}

/// What a catching-up subscription does next.
pub(crate) enum Settle {
    ReadMore(u64),
    Send(VecDeque<Live>),
}

/// Every subscription of this gateway instance.
pub struct Hub {
    by_channel: RwLock<HashMap<Uuid, HashMap<Uuid, Arc<Subscription>>>>,
    by_connection: Mutex<HashMap<Uuid, HashSet<Uuid>>>,
    pub(crate) history: History,
    /// Who is online, for a resync's `subscribed` (None: nobody, in the merge's model test).
    pub(crate) presence: Option<Arc<dyn PresenceStore>>,
    pub(crate) recovery_limit: u64,
    pub(crate) presence_limit: usize,
    changes: Mutex<ChangeMarks>,
}

impl Hub {
    pub fn new(
        history: History,
        presence: Arc<dyn PresenceStore>,
        recovery_limit: u64,
        presence_limit: usize,
    ) -> Arc<Self> {
        Self::with(history, Some(presence), recovery_limit, presence_limit)
    }

    pub(crate) fn with(
        history: History,
        presence: Option<Arc<dyn PresenceStore>>,
        recovery_limit: u64,
        presence_limit: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            by_channel: RwLock::new(HashMap::new()),
            by_connection: Mutex::new(HashMap::new()),
            history,
            presence,
            recovery_limit,
            presence_limit,
            changes: Mutex::new(ChangeMarks::default()),
        })
    }

    fn channels_map(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, HashMap<Uuid, Arc<Subscription>>>> {
        self.by_channel
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a subscription (replacing one to the same channel) that
    /// notes live frames until it is caught up. A replacement starts with
    /// the highest seq the old one saw as its target: those pushes are not
    /// sent again, so the new one replays them from the read model if its
    /// start is below them (a lagging replica may answer a head behind them).
    pub fn subscribe(&self, connection: &Arc<Connection>, channel_id: Uuid) -> Arc<Subscription> {
        let seen = self
            .channels_map()
            .get(&channel_id)
            .and_then(|subs| subs.get(&connection.id))
            .map_or(0, |old| old.seen());
        self.unsubscribe(connection.id, channel_id);
        let sub = Arc::new(Subscription {
            connection: connection.clone(),
            channel_id,
            authorized_version: std::sync::atomic::AtomicU64::new(0),
            active: AtomicBool::new(true),
            state: Mutex::new(State::CatchingUp {
                target: seen,
                pending: VecDeque::new(),
            }),
            task: Mutex::new(None),
        });
        self.by_channel
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(channel_id)
            .or_default()
            .insert(connection.id, sub.clone());
        lock(&self.by_connection)
            .entry(connection.id)
            .or_default()
            .insert(channel_id);
        metrics::gauge!("ws_subscriptions").increment(1.0);
        sub
    }

    /// Removes one subscription; true if it existed.
    pub fn unsubscribe(&self, connection_id: Uuid, channel_id: Uuid) -> bool {
        let removed = {
            let mut map = self
                .by_channel
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let removed = map
                .get_mut(&channel_id)
                .and_then(|subs| subs.remove(&connection_id));
            if map.get(&channel_id).is_some_and(HashMap::is_empty) {
                map.remove(&channel_id);
            }
            removed
        };
        if let Some(channels) = lock(&self.by_connection).get_mut(&connection_id) {
            channels.remove(&channel_id);
        }
        match removed {
            Some(sub) => {
                sub.revoke();
                metrics::gauge!("ws_subscriptions").decrement(1.0);
                true
            }
            None => false,
        }
    }

    /// Removes every subscription of a connection; returns their channels.
    pub fn remove_connection(&self, connection_id: Uuid) -> Vec<Uuid> {
        let channels: Vec<Uuid> = lock(&self.by_connection)
            .remove(&connection_id)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        for channel in &channels {
            self.unsubscribe(connection_id, *channel);
        }
        channels
    }

    /// The channels a connection is subscribed to.
    pub fn channels_of(&self, connection_id: Uuid) -> Vec<Uuid> {
        lock(&self.by_connection)
            .get(&connection_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many subscriptions a connection has.
    pub fn subscription_count(&self, connection_id: Uuid) -> usize {
        lock(&self.by_connection)
            .get(&connection_id)
            .map_or(0, HashSet::len)
    }

    /// Channels with at least one local subscriber.
    pub fn channels(&self) -> Vec<Uuid> {
        self.channels_map().keys().copied().collect()
    }

    /// The subscriptions of a channel.
    pub fn subscriptions(&self, channel_id: Uuid) -> Vec<Arc<Subscription>> {
        self.channels_map()
            .get(&channel_id)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `connection_id` is subscribed to `channel_id`.
    pub fn is_subscribed(&self, connection_id: Uuid, channel_id: Uuid) -> bool {
        self.channels_map()
            .get(&channel_id)
            .is_some_and(|s| s.contains_key(&connection_id))
    }

    /// Hands a live frame to every subscription of `channel_id`, except the
    /// connections of `except_user`.
    pub fn dispatch(self: &Arc<Self>, channel_id: Uuid, live: &Live, except_user: Option<Uuid>) {
        for sub in self.subscriptions(channel_id) {
            if Some(sub.connection.user_id) != except_user {
                sub.deliver(live, self);
            }
        }
    }

    /// Hands an edit or delete of `message_id` (at `version` of the channel's
    /// stream) to the channel's subscribers unless it, or a newer change of
    /// the message, was handed out already (see `changes`).
    pub fn dispatch_change(
        self: &Arc<Self>,
        channel_id: Uuid,
        message_id: Uuid,
        version: u64,
        live: &Live,
    ) {
        // Held while fanning out, so two sources never cross on one message.
        let mut changes = lock(&self.changes);
        if changes.admit(message_id, version) {
            metrics::counter!("ws_message_changes_total").increment(1);
            self.dispatch(channel_id, live, None);
        }
    }

    /// Ends the subscriptions of `user_id` to `channel_id` that were
    /// authorized before `version` of the channel's stream (kicked, banned,
    /// left): they stop receiving at once. Returns the connections affected.
    pub fn evict(&self, channel_id: Uuid, user_id: Uuid, version: u64) -> Vec<Arc<Connection>> {
        let victims: Vec<Arc<Connection>> = self
            .subscriptions(channel_id)
            .into_iter()
            .filter(|sub| {
                sub.connection.user_id == user_id
                    && sub.authorized_version.load(Ordering::SeqCst) < version
            })
            .map(|sub| sub.connection.clone())
            .collect();
        victims
            .into_iter()
            .filter(|connection| self.unsubscribe(connection.id, channel_id))
            .collect()
    }

    /// Who is online in `channel_id` (nobody when presence cannot say).
    pub(crate) async fn online(&self, channel_id: Uuid) -> OnlineSnapshot {
        match &self.presence {
            Some(presence) => presence
                .snapshot(channel_id, self.presence_limit)
                .await
                .unwrap_or_default(),
            None => OnlineSnapshot::default(),
        }
    }

    /// Starts the replay of a subscription that was just answered: from
    /// `from`, to at least `last_seq` (the head the subscribe saw), then live.
    pub(crate) fn replay(self: &Arc<Self>, sub: &Arc<Subscription>, last_seq: u64, from: u64) {
        sub.raise_target(last_seq);
        self.start_catch_up(sub, from);
    }

    /// Starts (or restarts) the task that brings `sub` from `from` to live.
    pub(crate) fn start_catch_up(self: &Arc<Self>, sub: &Arc<Subscription>, from: u64) {
        let (hub, task_sub) = (self.clone(), sub.clone());
        let handle = tokio::spawn(async move { catch_up::run(&hub, &task_sub, from).await });
        let mut task = lock(&sub.task);
        if let Some(old) = task.replace(handle.abort_handle()) {
            old.abort();
        }
        drop(task);
        if !sub.active.load(Ordering::SeqCst) {
            handle.abort();
        }
    }
}

impl Hub {
    /// After a (re)connect of the feed: each subscribed channel's head is read
    /// once from the read model, and every subscription behind it catches up.
    pub(crate) async fn repair_gaps(self: &Arc<Self>) {
        for channel in self.channels() {
            match self.history.last_seq(channel).await {
                Ok(head) => self.repair(channel, head),
                Err(e) => {
                    tracing::warn!(error = %e, "gap repair after reconnect failed");
                    return;
                }
            }
        }
    }

    /// Brings every subscription of `channel_id` that is behind `head` up to
    /// it: a live one catches up; one catching up already (a subscribe
    /// being answered, a replay) goes on to `head`, not only to the target it
    /// had, which the lost announcements would not have raised.
    pub(crate) fn repair(self: &Arc<Self>, channel_id: Uuid, head: u64) {
        for sub in self.subscriptions(channel_id) {
            let mut state = lock(&sub.state);
            match &mut *state {
                State::Live { last_seq } if *last_seq < head => {
                    let from = *last_seq;
                    *state = State::CatchingUp {
                        target: head,
                        pending: VecDeque::new(),
                    };
                    drop(state);
                    metrics::counter!("ws_gap_repairs_total").increment(1);
                    self.start_catch_up(&sub, from);
                }
                State::CatchingUp { target, .. } => *target = (*target).max(head),
                State::Live { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod model_tests;
