//! Loads channel state without reading the channel's history: a bounded
//! in-process cache keyed by stream version, then the latest snapshot, then
//! only the events after it. Snapshots are taken every `SNAPSHOT_EVERY` events.

use crate::CommandError;
use domain::{Channel, Event, StoredEvent};
use event_store::{EventLog, RecordedEvent, Snapshot};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Events between snapshots: bounds the tail a cold load replays.
const SNAPSHOT_EVERY: u64 = 100;
/// The shape of the snapshot's `state`; bump when `Channel` changes shape.
const SNAPSHOT_VERSION: i32 = 1;
/// Channels kept in memory per process.
const CACHE_CAPACITY: usize = 10_000;

/// A channel's state at a stream version (0 and `None`: not created).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub version: u64,
    pub state: Option<Channel>,
}

/// A channel's state, and whether it was just read from the log.
#[derive(Debug, Clone)]
pub struct Current {
    pub loaded: Loaded,
    pub verified: bool,
}

/// Channel state by stream, cached.
pub struct ChannelRepository {
    store: Arc<dyn EventLog>,
    cache: Mutex<HashMap<String, Loaded>>,
}

/// Events read per round trip when folding a stream's tail.
const LOAD_PAGE: i64 = 1000;

impl ChannelRepository {
    pub fn new(store: Arc<dyn EventLog>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The state of `stream` as this process last knew it, without a read when
    /// it is cached (`verified` false: the append's expected version proves it,
    /// or a caller that must be sure asks again with `verify`); otherwise, or
    /// with `verify`, as [`load`](Self::load) reads it (`verified` true).
    pub async fn current(&self, stream: &str, verify: bool) -> Result<Current, CommandError> {
        if !verify {
            let cached = self.cache.lock().ok().and_then(|c| c.get(stream).cloned());
            if let Some(loaded) = cached {
                return Ok(Current {
                    loaded,
                    verified: false,
                });
            }
        }
        Ok(Current {
            loaded: self.load(stream).await?,
            verified: true,
        })
    }

    /// The current state of `stream`.
    pub async fn load(&self, stream: &str) -> Result<Loaded, CommandError> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(stream).cloned());
        let mut loaded = match cached {
            Some(hit) => hit,
            None => self.load_from_snapshot(stream).await?,
        };
        let before = loaded.version;
        // In pages: a channel with no usable snapshot (a new snapshot format,
        // an old log) is folded without holding its whole history in memory.
        loop {
            let page = self
                .store
                .read_stream_range(stream, loaded.version, u64::MAX, LOAD_PAGE)
                .await?;
            for recorded in &page {
                loaded.state = Channel::evolve(loaded.state, &decode(recorded)?);
                loaded.version = recorded.stream_version;
            }
            if page.len() < LOAD_PAGE as usize {
                break;
            }
        }
        self.advanced(stream, before, loaded.clone()).await;
        Ok(loaded)
    }

    /// Takes in state that moved from version `before` (this process appended or
    /// read the events): caches it, and snapshots it when it crossed a multiple
    /// of `SNAPSHOT_EVERY`.
    pub async fn advanced(&self, stream: &str, before: u64, loaded: Loaded) {
        if loaded.version / SNAPSHOT_EVERY > before / SNAPSHOT_EVERY {
            // Inline, so snapshots land in version order (one group in a hundred events).
            snapshot(self.store.as_ref(), stream, &loaded).await;
        }
        self.remember(stream, loaded);
    }

    /// Drops a cached entry that proved stale.
    pub fn forget(&self, stream: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(stream);
        }
    }

    fn remember(&self, stream: &str, loaded: Loaded) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY && !cache.contains_key(stream) {
                // Evict an arbitrary entry: a miss costs one snapshot read.
                if let Some(victim) = cache.keys().next().cloned() {
                    cache.remove(&victim);
                }
            }
            match cache.get(stream) {
                Some(existing) if existing.version > loaded.version => {}
                _ => {
                    cache.insert(stream.to_owned(), loaded);
                }
            }
        }
    }

    async fn load_from_snapshot(&self, stream: &str) -> Result<Loaded, CommandError> {
        let Some(snapshot) = self.store.load_snapshot(stream).await? else {
            return Ok(Loaded::default());
        };
        if snapshot.snapshot_version != SNAPSHOT_VERSION {
            return Ok(Loaded::default());
        }
        match serde_json::from_value::<Channel>(snapshot.state) {
            Ok(state) => Ok(Loaded {
                version: snapshot.stream_version,
                state: Some(state),
            }),
            Err(e) => {
                tracing::warn!(%stream, error = %e, "ignoring unreadable snapshot");
                Ok(Loaded::default())
            }
        }
    }
}

/// Saves `loaded` as the snapshot of `stream`; a failure is only logged.
async fn snapshot(store: &dyn EventLog, stream: &str, loaded: &Loaded) {
    let Some(state) = &loaded.state else { return };
    let Ok(state) = serde_json::to_value(state) else {
        return;
    };
    let snapshot = Snapshot {
        stream_version: loaded.version,
        snapshot_version: SNAPSHOT_VERSION,
        state,
    };
    // A lost snapshot only costs speed; never fail the command for it.
    if let Err(e) = store.save_snapshot(stream, &snapshot).await {
        tracing::warn!(%stream, error = %e, "snapshot not saved");
    }
}

/// Decodes a recorded event into the domain, upcasting old versions.
pub(crate) fn decode(recorded: &RecordedEvent) -> Result<Event, CommandError> {
    let stored = StoredEvent {
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        data: recorded.data.clone(),
    };
    Event::from_stored(&stored).map_err(|e| CommandError::Corrupt {
        stream: recorded.stream_id.clone(),
        reason: e.to_string(),
    })
}
