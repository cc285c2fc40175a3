//! Export speed of `chat events`: seeds EVENTS synthetic events (default
//! 1,000,000) into a scratch database `chat_bench_export` (dropped and
//! recreated), then exports them all as NDJSON and as CSV into a sink that
//! counts lines and bytes, and prints a markdown table with the peak RSS.
//!
//! `cargo run --release -p analyst-tools --bin export-bench [-- EVENTS] [--reuse]`
//! (`--reuse`: keep the scratch database of an earlier run if it holds EVENTS;
//! server: `CHAT_BENCH_DATABASE_URL`, default the local `postgres` database)

use analyst_tools::events::{self, EventsArgs};
use analyst_tools::format::Format;
use analyst_tools::progress::Progress;
use sqlx::PgPool;
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reuse = args.iter().any(|a| a == "--reuse");
    let count: u64 = match args.iter().find(|a| !a.starts_with("--")) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let source = analyst_tools::LogSource::Postgres(match reused(reuse, count).await? {
        Some(pool) => pool,
        None => seeded(count).await?,
    });
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
        let plan = events::plan(&source, &args).await?;
        let total = source.count(&plan.query).await?;
        let planning = planned.elapsed().as_secs_f64();
        let mut sink = BufWriter::with_capacity(1 << 16, Counting::default());
        let exporting = Instant::now();
        let summary = events::export(&source, &plan, &mut sink, &mut Progress::hidden()).await?;
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
            "| {format:?} | {} | {} | {planning:.2} | {took:.2} | {:.0} | {:.1} | {:.0} |",
            summary.events,
            sink.bytes,
            summary.events as f64 / took,
            sink.bytes as f64 / took / 1e6,
            peak_rss_mib()
        );
    }
    Ok(())
}

fn server_options() -> anyhow::Result<PgConnectOptions> {
    let server = std::env::var("CHAT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into());
    Ok(PgConnectOptions::from_str(&server)?)
}

/// With `--reuse`, the scratch database of an earlier run if it holds `count` events.
async fn reused(reuse: bool, count: u64) -> anyhow::Result<Option<PgPool>> {
    if !reuse {
        return Ok(None);
    }
    let url = server_options()?
        .database(DATABASE)
        .to_url_lossy()
        .to_string();
    let Ok(pool) = event_store::connect(&url, 4).await else {
        return Ok(None);
    };
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    Ok((u64::try_from(held).ok() == Some(count)).then_some(pool))
}

/// A fresh scratch database holding `count` seeded events.
async fn seeded(count: u64) -> anyhow::Result<PgPool> {
    let options = server_options()?;
    let mut conn = PgConnection::connect_with(&options).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS \"{DATABASE}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{DATABASE}\""),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    let url = options.database(DATABASE).to_url_lossy().to_string();
    let pool = event_store::connect(&url, 4).await?;
    let started = Instant::now();
    analyst_tools::seed::messages(&pool, count, 1000, 50_000, |done| {
        eprintln!("  seeded {done}/{count}");
    })
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE events")
        .execute(&pool)
        .await?;
    let took = started.elapsed().as_secs_f64();
    eprintln!("  seeded {count} events in {took:.1}s");
    Ok(pool)
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
