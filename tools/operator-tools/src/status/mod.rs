//! `chat status`: where the log's head is, how far the relay and each
//! projection trail it (events and seconds, in commit order), what holds
//! whole-log readers back, how many dead letters wait, and how many sockets
//! each gateway holds. Usable as a health probe through its exit code.

mod gather;
mod render;

pub use gather::{Services, gather};
pub use render::table;

use serde::Serialize;

/// Everything `chat status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub log: LogHead,
    /// None on the embedded backend: no relay, the projector reads the log.
    pub relay: Option<RelayStatus>,
    pub projections: Vec<ProjectionStatus>,
    pub dead_letters: DeadLetters,
    /// None on the embedded backend: the gateway lives in the `chat up`
    /// process and its sockets are not published where another process can
    /// count them.
    pub gateways: Option<Vec<GatewaySockets>>,
    /// No lag above the given thresholds.
    pub healthy: bool,
    /// Why not healthy, one line each.
    pub problems: Vec<String>,
}

/// The head of the event log.
#[derive(Debug, Clone, Serialize)]
pub struct LogHead {
    /// The last event readers may read, in commit order (`{transaction}-{position}`).
    pub head_cursor: Option<String>,
    /// The highest global position (committed or not yet readable).
    pub global_position: i64,
    /// Planner estimate of the row count.
    pub events_estimate: i64,
}

/// The outbox relay's position and lag.
#[derive(Debug, Clone, Serialize)]
pub struct RelayStatus {
    pub checkpoint: Option<String>,
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(flatten)]
    pub lag: Lag,
    /// The oldest running transaction holding every whole-log reader back, if any.
    pub hold_back: Option<HoldBack>,
}

/// How far a reader trails the log.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Lag {
    /// Events after the checkpoint in commit order.
    pub lag_events: i64,
    /// Age of the oldest of them (0 when caught up).
    pub lag_seconds: f64,
}

/// A running transaction below which readers cannot read (DESIGN.md §3).
#[derive(Debug, Clone, Serialize)]
pub struct HoldBack {
    pub pid: i32,
    pub database: Option<String>,
    pub transaction_age_seconds: f64,
    pub state: Option<String>,
    /// Committed events readers cannot see yet because of it.
    pub held_back_events: i64,
}

/// One projection's checkpoint and lag.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// The last applied global position (None: never ran).
    pub checkpoint: Option<i64>,
    pub checkpoint_recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(flatten)]
    pub lag: Lag,
}

/// The dead-letter queue (the embedded backend: its table).
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    pub queue: String,
    /// None: the queue does not exist yet (no process declared the topology).
    pub depth: Option<u32>,
}

/// Sockets one gateway instance last reported.
#[derive(Debug, Clone, Serialize)]
pub struct GatewaySockets {
    pub instance: String,
    pub sockets: i64,
}

/// Lag limits; exceeding one makes the report unhealthy (exit code 2).
#[derive(Debug, Clone, Copy, Default)]
pub struct Thresholds {
    pub max_lag_events: Option<i64>,
    pub max_lag_seconds: Option<f64>,
}

impl Thresholds {
    /// The problems of one reader's lag, named `who`.
    pub fn check(&self, who: &str, lag: Lag) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(max) = self.max_lag_events
            && lag.lag_events > max
        {
            problems.push(format!("{who} lags {} events (max {max})", lag.lag_events));
        }
        if let Some(max) = self.max_lag_seconds
            && lag.lag_seconds > max
        {
            problems.push(format!("{who} lags {:.1} s (max {max})", lag.lag_seconds));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_flag_only_what_exceeds_them() {
        let t = Thresholds {
            max_lag_events: Some(10),
            max_lag_seconds: Some(5.0),
        };
        let lag = |e, s| Lag {
            lag_events: e,
            lag_seconds: s,
        };
        assert!(t.check("relay", lag(10, 5.0)).is_empty());
        assert_eq!(
            t.check("relay", lag(11, 1.0)),
            vec!["relay lags 11 events (max 10)"]
        );
        assert_eq!(t.check("x", lag(0, 6.0)).len(), 1);
        assert!(
            Thresholds::default()
                .check("x", lag(1_000_000, 1e6))
                .is_empty()
        );
    }
}
