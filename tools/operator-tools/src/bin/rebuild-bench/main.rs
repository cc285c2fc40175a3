//! `rebuild-bench`: how fast `chat rebuild` turns a large log into a read
//! model, against a raw `COPY` of the same rows into an equivalent table.
//!
//! `cargo run --release -p operator-tools --bin rebuild-bench -- [MESSAGES] [CHANNELS] [PAGE_SIZE]`
//! (defaults 1000000, 1000, 20000). Seeds a scratch log (`CHAT_BENCH_DATABASE_URL`,
//! default `.../chat_bench_rebuild`; reused when it already has that shape), then
//! in the same run measures the raw COPY into `bench_raw.messages` (same DDL as
//! `rm.messages`) and the rebuild into `CHAT_BENCH_READ_DATABASE_URL`
//! (default `.../chat_bench_rebuild_read`). Prints a markdown table on stdout.

mod seed;

use anyhow::Context;
use event_store::PgEventStore;
use operator_tools::progress::Progress;
use operator_tools::rebuild::copy::{BinaryCopy, MESSAGE_COLUMNS};
use operator_tools::rebuild::{self, RebuildOptions};
use seed::Shape;
use sqlx::PgPool;
use std::time::Instant;

fn arg(n: usize, default: u64) -> anyhow::Result<u64> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("argument {n} ({v:?}) is not a number")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shape = Shape {
        messages: arg(1, 1_000_000)?,
        channels: arg(2, 1_000)?.max(1),
    };
    let page_size = arg(3, 20_000)?.max(1) as usize;
    let log_url = std::env::var("CHAT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/chat_bench_rebuild".into());
    let read_url = std::env::var("CHAT_BENCH_READ_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@localhost:5432/chat_bench_rebuild_read".into());
    let log = event_store::connect(&log_url, 4).await?;
    if seed::is_seeded(&log, shape).await? {
        eprintln!(
            "the scratch log already holds {} messages in {} channels",
            shape.messages, shape.channels
        );
    } else {
        let secs = seed::seed(&log, shape).await?;
        eprintln!(
            "seeded {} messages in {} channels in {secs:.1} s",
            shape.messages, shape.channels
        );
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&log)
        .await?;
    let read = read_model::connect(&read_url, 4).await?;

    let rows = seed::message_rows(shape).count() as u64;
    checkpoint(&read).await?;
    let copy_secs = raw_copy(&read, shape).await?;
    eprintln!("raw COPY of {rows} rows: {copy_secs:.2} s");

    checkpoint(&read).await?;
    let projection = rebuild::projection("read-model")?;
    let options = RebuildOptions {
        page_size,
        ..RebuildOptions::default()
    };
    let progress = Progress::stderr("rebuild read-model");
    let store = PgEventStore::new(log.clone());
    let report = rebuild::rebuild(&read, &store, projection, &options, &progress).await?;
    progress.finish();
    eprintln!("{}", report.summary());
    let built: i64 = sqlx::query_scalar("SELECT count(*) FROM rm.messages")
        .fetch_one(&read)
        .await?;
    anyhow::ensure!(
        built as u64 == rows,
        "the rebuilt model has {built} messages, expected {rows}"
    );

    let rebuild_secs = report.elapsed.as_secs_f64();
    println!("| what | events / rows | seconds | per second | time vs raw COPY |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| raw binary `COPY` into `messages` (same DDL, one statement) | {rows} | {copy_secs:.2} | {:.0} | 1.00x |",
        rows as f64 / copy_secs
    );
    println!(
        "| `chat rebuild read-model` (page {page_size}) | {events} | {rebuild_secs:.2} | {:.0} | {:.2}x |",
        report.rate(),
        rebuild_secs / copy_secs
    );
    let ph = &report.phases;
    println!();
    println!("| rebuild phase (fetch, fold and write overlap) | seconds |");
    println!("|---|---:|");
    for (name, d) in [
        ("prepare (lock, drop leftovers, create tables)", ph.prepare),
        ("fetch the log in commit order (reader task)", ph.read),
        ("decode and fold pages in memory (folder task)", ph.fold),
        (
            "write and commit pages: COPY messages, unnest the rest",
            ph.write,
        ),
        ("add the messages primary key back", ph.index),
        ("catch-up passes", ph.catch_up),
        ("switch transaction (lock, tail, rename)", ph.switch),
        ("drop the old schema", ph.drop_old),
    ] {
        println!("| {name} | {:.2} |", d.as_secs_f64());
    }
    Ok(())
}

/// A clean start for each measurement: dirty pages of the previous one flushed.
async fn checkpoint(read: &PgPool) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT").execute(read).await?;
    Ok(())
}

/// Times one binary `COPY` of every message row into a fresh `bench_raw.messages`.
async fn raw_copy(read: &PgPool, shape: Shape) -> anyhow::Result<f64> {
    sqlx::query("DROP SCHEMA IF EXISTS bench_raw CASCADE")
        .execute(read)
        .await?;
    read_model::create_tables(read, "bench_raw").await?;
    let mut conn = read.acquire().await?;
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY bench_raw.messages ({MESSAGE_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut stream = BinaryCopy::new(20_000);
    for (n, row) in seed::message_rows(shape).enumerate() {
        stream.message(&row);
        if n % 20_000 == 19_999 {
            copy.send(stream.take()).await?;
        }
    }
    copy.send(stream.finish()).await?;
    copy.finish().await?;
    let secs = started.elapsed().as_secs_f64();
    sqlx::query("DROP SCHEMA bench_raw CASCADE")
        .execute(read)
        .await?;
    Ok(secs)
}
