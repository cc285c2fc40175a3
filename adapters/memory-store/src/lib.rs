//! `live-state` inside one process (the `embedded` backend): the same
//! behaviour as the Redis adapter, with the same expiries, for a single
//! `chat up`. Every map is bounded by what is live: expired entries are
//! dropped when they are next looked at and by the sweeps the gateway runs.

mod census;
mod presence;
mod throttle;

pub use census::MemoryCensus;
pub use presence::MemoryPresence;
pub use throttle::{MemorySocketSlots, MemoryThrottle};

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, the unit every expiry here is kept in.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
