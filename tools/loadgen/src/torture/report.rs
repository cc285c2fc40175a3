//! The table the fault run prints: one row per fault window and a total.

use super::check::{Violation, ViolationKind};
use super::history::OpRecord;

/// A fault window: what was injected and how long the system took to serve
/// again (None for the steady window before the first fault).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub fault: String,
    pub recovery_secs: Option<f64>,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fault: String,
    pub operations: u64,
    pub acknowledged: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Read-model rows are judged once, for the whole run: only the total has them.
    pub divergent: Option<u64>,
    pub recovery_secs: Option<f64>,
}

/// Counts per window, and a total row.
pub fn rows(windows: &[Window], ops: &[OpRecord], violations: &[Violation]) -> Vec<Row> {
    let count = |window: Option<usize>, kind: ViolationKind| {
        violations
            .iter()
            .filter(|v| v.kind == kind && (window.is_none() || v.window == window))
            .count() as u64
    };
    let mut rows: Vec<Row> = windows
        .iter()
        .enumerate()
        .map(|(i, w)| Row {
            fault: w.fault.clone(),
            operations: ops.iter().filter(|o| o.window == i).count() as u64,
            acknowledged: ops.iter().filter(|o| o.window == i && o.acked()).count() as u64,
            lost: count(Some(i), ViolationKind::Lost),
            duplicated: count(Some(i), ViolationKind::Duplicated),
            divergent: None,
            recovery_secs: w.recovery_secs,
        })
        .collect();
    rows.push(Row {
        fault: "total".into(),
        operations: ops.len() as u64,
        acknowledged: ops.iter().filter(|o| o.acked()).count() as u64,
        lost: count(None, ViolationKind::Lost),
        duplicated: count(None, ViolationKind::Duplicated),
        divergent: Some(count(None, ViolationKind::Divergent)),
        recovery_secs: windows
            .iter()
            .filter_map(|w| w.recovery_secs)
            .reduce(f64::max),
    });
    rows
}

/// A Markdown table (pastes into RELIABILITY.md as it is).
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| fault | operations | acknowledged | lost | duplicated | divergent rows | recovery s |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.fault,
            r.operations,
            r.acknowledged,
            r.lost,
            r.duplicated,
            r.divergent.map_or("-".into(), |d| d.to_string()),
            r.recovery_secs.map_or("-".into(), |s| format!("{s:.1}")),
        ));
    }
    out
}
