//! A large export runs in constant memory and is complete and in order.
//! The size is `ANALYST_EXPORT_EVENTS` (default 200,000 here, to stay within
//! a minute in a debug build; `export-bench` runs 1,000,000 in release).

use crate::helpers::Log;
use analyst_tools::LogSource;
use analyst_tools::events::{self, EventsArgs};
use analyst_tools::progress::Progress;
use std::io::Write;

/// Counts lines, checks each line's cursor follows the last, keeps nothing,
/// and samples the process's resident memory as it goes.
struct CheckingSink {
    partial: Vec<u8>,
    lines: u64,
    last: (u64, i64),
    out_of_order: u64,
    peak_rss_kib: u64,
}

impl CheckingSink {
    fn line(&mut self, line: &[u8]) {
        // The first key of a line is `cursor` (keys are sorted).
        let text = std::str::from_utf8(line).expect("utf-8");
        let cursor = text
            .strip_prefix("{\"cursor\":\"")
            .and_then(|rest| rest.split('"').next())
            .expect("a line starts with its cursor");
        let (tx, pos) = cursor.split_once('-').expect("tx-pos");
        let here = (tx.parse().expect("tx"), pos.parse().expect("pos"));
        if here <= self.last {
            self.out_of_order += 1;
        }
        self.last = here;
        self.lines += 1;
        if self.lines.is_multiple_of(10_000) {
            self.peak_rss_kib = self.peak_rss_kib.max(rss_kib());
        }
    }
}

impl Write for CheckingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                self.line(&rest[..end]);
            } else {
                self.partial.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            }
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_export_is_complete_ordered_and_in_constant_memory() {
    let count: u64 = std::env::var("ANALYST_EXPORT_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let log = Log::new().await;
    analyst_tools::seed::messages(log.pool(), count, 500, 50_000, |_| {})
        .await
        .expect("seeded");
    let source = LogSource::Postgres(log.pool().clone());
    let plan = events::plan(&source, &EventsArgs::default())
        .await
        .expect("plan");
    assert_eq!(plan.query.count(log.pool()).await.expect("count"), count);
    let baseline = rss_kib();
    let mut sink = CheckingSink {
        partial: Vec::new(),
        lines: 0,
        last: (0, 0),
        out_of_order: 0,
        peak_rss_kib: baseline,
    };
    let summary = events::export(&source, &plan, &mut sink, &mut Progress::hidden())
        .await
        .expect("export");

    assert_eq!(summary.events, count);
    assert_eq!(sink.lines, count, "every event, once");
    assert!(sink.partial.is_empty(), "the last line ends with a newline");
    assert_eq!(sink.out_of_order, 0, "cursors strictly increase");
    let last_sql: String = sqlx::query_scalar(
        "SELECT transaction_id::text || '-' || global_position FROM events \
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(log.pool())
    .await
    .expect("last");
    assert_eq!(summary.last_cursor.map(|c| c.to_string()), Some(last_sql));
    // Held in memory, the export would be about count × 400 bytes (80 MB at
    // 200k); a page of 5000 events is a few MB.
    let grew_mib = sink.peak_rss_kib.saturating_sub(baseline) / 1024;
    assert!(
        grew_mib < 40,
        "resident memory grew by {grew_mib} MiB during the export"
    );
}
