//! Export speed of `chat events`: seeds EVENTS synthetic events (default
//! 1,000,000) into a scratch database `chat_bench_export` (dropped and
//! recreated), then exports them all as NDJSON and as CSV into a sink that
//! counts lines and bytes, and prints a markdown table with the peak RSS.
//!
//! `cargo run --release -p analyst-tools --bin export-bench [-- EVENTS]`
//! (server: `CHAT_BENCH_DATABASE_URL`, default the local `postgres` database)

use analyst_tools::events::{self, EventsArgs};
use analyst_tools::format::Format;
use analyst_tools::progress::Progress;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::io::{BufWriter, Write};
use std::str::FromStr;
use std::time::Instant;

const DATABASE: &str = "chat_bench_export";

/// Counts what it is given and keeps nothing.
#[derive(Default)]
struct Counting {
    bytes: u64,
    lines: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let url = fresh_database().await?;
    let pool = event_store::connect(&url, 4).await?;
    let started = Instant::now();
    analyst_tools::seed::messages(&pool, count, 1000, 50_000, |done| {
        eprintln!("  seeded {done}/{count}");
    })
    .await?;
    let seeded = started.elapsed();
    sqlx::raw_sql("VACUUM ANALYZE events")
        .execute(&pool)
        .await?;
    eprintln!("  seeded {count} events in {:.1}s", seeded.as_secs_f64());

    println!(
        "| format | events | bytes | plan + count (s) | export (s) | events/s | MB/s | peak RSS (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for format in [Format::Ndjson, Format::Csv] {
        let args = EventsArgs {
            format,
            ..EventsArgs::default()
        };
        let planned = Instant::now();
        let plan = events::plan(&pool, &args).await?;
        let total = plan.query.count(&pool).await?;
        let planning = planned.elapsed();
        let mut sink = BufWriter::with_capacity(1 << 16, Counting::default());
        let exporting = Instant::now();
        let summary = events::export(&pool, &plan, &mut sink, &mut Progress::hidden()).await?;
        let took = exporting.elapsed().as_secs_f64();
        let sink = sink.into_inner().map_err(|e| e.into_error())?;
        let header = u64::from(format == Format::Csv);
        anyhow::ensure!(
            summary.events == count && total == count && sink.lines == count + header,
            "incomplete export: {} events, {} lines, count {total}",
            summary.events,
            sink.lines
        );
        println!(
            "| {format:?} | {} | {} | {:.2} | {took:.2} | {:.0} | {:.1} | {:.0} |",
            summary.events,
            sink.bytes,
            planning.as_secs_f64(),
            summary.events as f64 / took,
            sink.bytes as f64 / took / 1e6,
            peak_rss_mib()
        );
    }
    Ok(())
}

/// Drops and recreates the scratch database; returns its URL.
async fn fresh_database() -> anyhow::Result<String> {
    let server = std::env::var("CHAT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into());
    let options = PgConnectOptions::from_str(&server)?;
    let mut conn = PgConnection::connect_with(&options).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{DATABASE}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{DATABASE}\""
    )))
    .execute(&mut conn)
    .await?;
    Ok(options.database(DATABASE).to_url_lossy().to_string())
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
