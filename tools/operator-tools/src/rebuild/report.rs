//! What a rebuild did and how long each phase took.

use std::time::Duration;

/// Time spent per phase. Fetching, decoding and folding, and writing run in
/// three tasks at once during the bulk phase, so their sum exceeds the total.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    pub prepare: Duration,
    /// Fetching pages of the log (reader task).
    pub read: Duration,
    /// Decoding and folding pages (folder task).
    pub fold: Duration,
    /// Writing and committing pages (the rebuild's own task).
    pub write: Duration,
    /// Adding the messages primary key back after the bulk phase.
    pub index: Duration,
    pub catch_up: Duration,
    /// The switch transaction, lock wait included.
    pub switch: Duration,
    pub lock_wait: Duration,
    pub drop_old: Duration,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    pub projection: &'static str,
    /// Events read from the log.
    pub events: u64,
    pub applied: u64,
    pub duplicates: u64,
    /// Undecodable or out-of-order events, never applied (as live).
    pub skipped: u64,
    pub pages: u64,
    pub copy_pages: u64,
    pub exact_pages: u64,
    /// Events applied under the switch lock.
    pub tail_events: u64,
    /// Streams the live model had further than the log read (healed in the switch).
    pub reconciled_streams: u64,
    pub elapsed: Duration,
    pub phases: Phases,
}

impl RebuildReport {
    /// Events per second over the whole rebuild.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The rebuild's closing lines (stderr).
    pub fn summary(&self) -> String {
        let r = self;
        let ph = &r.phases;
        format!(
            "rebuilt {}: {} events in {:.2} s ({:.0} events/s); {} applied, {} duplicates, {} skipped; \
             {} pages ({} by COPY); switch {:.0} ms (lock wait {:.0} ms, tail {} events, {} streams healed)\n\
             phases: prepare {:.2} s, fetch {:.2} s, decode+fold {:.2} s, write {:.2} s (these three overlap), index {:.2} s, catch-up {:.2} s, drop old {:.2} s",
            r.projection,
            r.events,
            r.elapsed.as_secs_f64(),
            r.rate(),
            r.applied,
            r.duplicates,
            r.skipped,
            r.pages,
            r.copy_pages,
            ph.switch.as_secs_f64() * 1e3,
            ph.lock_wait.as_secs_f64() * 1e3,
            r.tail_events,
            r.reconciled_streams,
            ph.prepare.as_secs_f64(),
            ph.read.as_secs_f64(),
            ph.fold.as_secs_f64(),
            ph.write.as_secs_f64(),
            ph.index.as_secs_f64(),
            ph.catch_up.as_secs_f64(),
            ph.drop_old.as_secs_f64(),
        )
    }
}
