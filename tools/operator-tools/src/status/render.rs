//! The human form of the status: aligned sections on stdout.

use super::{Lag, StatusReport};
use crate::text::columns;
use std::fmt::Write;

/// The report as a table for people.
pub fn table(r: &StatusReport) -> String {
    let mut out = String::new();
    let none = || "-".to_owned();
    let _ = writeln!(out, "EVENT LOG");
    let _ = writeln!(
        out,
        "  head cursor       {}",
        r.log.head_cursor.clone().unwrap_or_else(none)
    );
    let _ = writeln!(out, "  global position   {}", r.log.global_position);
    let _ = writeln!(out, "  events (est.)     {}", r.log.events_estimate);
    let _ = writeln!(out, "\nRELAY");
    match &r.relay {
        None => {
            let _ = writeln!(out, "  none (embedded: the projector reads the log)");
        }
        Some(relay) => {
            let _ = writeln!(
                out,
                "  checkpoint        {}",
                relay.checkpoint.clone().unwrap_or_else(none)
            );
            let _ = writeln!(out, "  lag               {}", lag(relay.lag));
            match &relay.hold_back {
                None => {
                    let _ = writeln!(out, "  hold-back         none");
                }
                Some(h) => {
                    let _ = writeln!(
                        out,
                        "  hold-back         pid {} in {} ({}), transaction open {:.1} s, {} committed events not yet readable",
                        h.pid,
                        h.database.as_deref().unwrap_or("?"),
                        h.state.as_deref().unwrap_or("?"),
                        h.transaction_age_seconds,
                        h.held_back_events
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "\nPROJECTIONS");
    let rows: Vec<Vec<String>> = r
        .projections
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.checkpoint.map_or_else(none, |c| c.to_string()),
                p.lag.lag_events.to_string(),
                format!("{:.1}", p.lag.lag_seconds),
                p.applied_at.map_or_else(none, |a| a.to_rfc3339()),
            ]
        })
        .collect();
    columns(
        &mut out,
        &[
            "NAME",
            "CHECKPOINT",
            "LAG EVENTS",
            "LAG SECONDS",
            "APPLIED AT",
        ],
        &rows,
    );
    let _ = writeln!(out, "\nDEAD LETTERS");
    let depth = r
        .dead_letters
        .depth
        .map_or_else(|| "not declared yet".to_owned(), |d| d.to_string());
    let _ = writeln!(out, "  {:<17} {depth}", r.dead_letters.queue);
    let _ = writeln!(out, "\nGATEWAYS");
    match &r.gateways {
        None => {
            let _ = writeln!(
                out,
                "  in the `chat up` process (embedded: its sockets are not counted from outside)"
            );
        }
        Some(gateways) if gateways.is_empty() => {
            let _ = writeln!(out, "  none reporting");
        }
        Some(gateways) => {
            let rows: Vec<Vec<String>> = gateways
                .iter()
                .map(|g| vec![g.instance.clone(), g.sockets.to_string()])
                .collect();
            columns(&mut out, &["INSTANCE", "SOCKETS"], &rows);
        }
    }
    let _ = writeln!(out);
    if r.healthy {
        let _ = writeln!(out, "STATUS  ok");
    } else {
        let _ = writeln!(out, "STATUS  lagging: {}", r.problems.join("; "));
    }
    out
}

fn lag(l: Lag) -> String {
    format!("{} events, {:.1} s", l.lag_events, l.lag_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::*;

    #[test]
    fn renders_every_section() {
        let report = StatusReport {
            log: LogHead {
                head_cursor: Some("7-3".into()),
                global_position: 3,
                events_estimate: 3,
            },
            relay: Some(RelayStatus {
                checkpoint: None,
                updated_at: None,
                lag: Lag {
                    lag_events: 3,
                    lag_seconds: 1.26,
                },
                hold_back: None,
            }),
            projections: vec![ProjectionStatus {
                name: "read-model".into(),
                checkpoint: Some(2),
                checkpoint_recorded_at: None,
                applied_at: None,
                lag: Lag::default(),
            }],
            dead_letters: DeadLetters {
                queue: "projector.dlq".into(),
                depth: Some(4),
            },
            gateways: Some(vec![GatewaySockets {
                instance: "gw-1".into(),
                sockets: 12,
            }]),
            healthy: false,
            problems: vec!["relay lags 3 events (max 1)".into()],
        };
        let text = table(&report);
        for expected in [
            "head cursor       7-3",
            "3 events, 1.3 s",
            "read-model  2",
            "projector.dlq     4",
            "gw-1      12",
            "lagging: relay lags 3",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
    }

    #[test]
    fn embedded_says_there_is_no_relay_nor_gateway_to_count() {
        let report = StatusReport {
            log: LogHead {
                head_cursor: Some("9-9".into()),
                global_position: 9,
                events_estimate: 9,
            },
            relay: None,
            projections: Vec::new(),
            dead_letters: DeadLetters {
                queue: "rm.dead_letters".into(),
                depth: Some(1),
            },
            gateways: None,
            healthy: true,
            problems: Vec::new(),
        };
        let text = table(&report);
        for expected in [
            "RELAY\n  none (embedded: the projector reads the log)",
            "rm.dead_letters   1",
            "GATEWAYS\n  in the `chat up` process",
            "STATUS  ok",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in\n{text}");
        }
        assert!(!text.contains("hold-back"), "{text}");
    }
}
