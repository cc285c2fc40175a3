//! The relay's publish rate with confirms beside a bare lapin publisher with
//! confirms (issue #14): the same events, bodies, routing keys, vhost and
//! confirm window, so the ratio is what reading the log, checkpointing and
//! encoding cost on top of what RabbitMQ itself takes.
//!
//! ```text
//! relay-bench --log POSTGRES_URL --amqp AMQP_URL [--pg-db NAME]
//! ```
//!
//! The log must hold the events already (e.g. `backend-bench seed
//! --postgres URL`) and no relay may have published them. In one process,
//! in this order, the projector's queue purged before each:
//!
//! 1. bare publisher: every event read into memory and encoded beforehand;
//!    then, on one confirm-mode channel, windows of the relay's batch size:
//!    publish each (mandatory, persistent, as the relay does), then await
//!    every confirm of the window;
//! 2. the relay (`command_service::relay::run`, as `chat up` runs it) from
//!    its empty checkpoint, timed from its start until its checkpoint is the
//!    log's last event (its connect, topology declaration and lock included);
//! 3. the bare publisher again, so a machine that got busier or quieter
//!    shows as a difference between 1 and 3.
//!
//! Prints a markdown table (events/s of each and relay × bare, the bare
//! figure being the mean of 1 and 3) and the core shares of each phase.

use anyhow::{Context, bail};
use broker::lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use broker::lapin::types::FieldTable;
use broker::lapin::{BasicProperties, Confirmation};
use command_service::relay::{self, RelayConfig};
use event_store::{Cursor, LogFilter, PgEventStore};
use loadgen::cpu;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: relay-bench --log POSTGRES_URL --amqp AMQP_URL [--pg-db NAME]";
/// Bound on the relay's drain: a relay that stops publishing fails the run.
const RELAY_TIMEOUT: Duration = Duration::from_secs(600);

/// One event as the relay would publish it.
struct Encoded {
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut log_url = None;
    let mut amqp_url = None;
    let mut pg_databases = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--log" => log_url = Some(value()?),
            "--amqp" => amqp_url = Some(value()?),
            "--pg-db" => pg_databases = value()?.split(',').map(str::to_owned).collect(),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    let (Some(log_url), Some(amqp_url)) = (log_url, amqp_url) else {
        bail!("{USAGE}");
    };
    let pool = event_store::connect(&log_url, 8).await?;
    if relay::checkpoint(&pool).await? != Cursor::START {
        bail!("a relay already published from this log: seed a fresh one");
    }
    let config = RelayConfig::new(amqp_url.clone());
    let window = usize::try_from(config.batch_size).context("batch size")?;
    let (events, last) = encode_log(&PgEventStore::new(pool.clone())).await?;
    let n = events.len();
    let bytes = events.iter().map(|e| e.body.len()).sum::<usize>() / n.max(1);
    eprintln!("{n} events, {bytes} bytes per body on average, confirm window {window}");
    let selector = cpu::Selector {
        pg_databases,
        load_pids: vec![std::process::id()],
        ..cpu::Selector::default()
    };

    let connection = broker::connect(&amqp_url, "relay-bench").await?;
    let channel = connection.create_channel().await?;
    broker::declare_events(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let purge = || async {
        channel
            .queue_purge(broker::PROJECTOR_QUEUE.into(), QueuePurgeOptions::default())
            .await
    };

    let mut rows = Vec::new();
    for phase in ["bare publisher", "relay", "bare publisher again"] {
        purge().await?;
        let before = selector.snapshot();
        let started = Instant::now();
        if phase == "relay" {
            run_relay(&pool, config.clone(), last).await?;
        } else {
            for chunk in events.chunks(window) {
                let mut confirms = Vec::with_capacity(chunk.len());
                for e in chunk {
                    let options = BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    };
                    confirms.push(
                        channel
                            .basic_publish(
                                broker::EVENTS_EXCHANGE.into(),
                                e.routing_key.as_str().into(),
                                options,
                                &e.body,
                                e.properties.clone(),
                            )
                            .await?,
                    );
                }
                for confirm in confirms {
                    if !matches!(confirm.await?, Confirmation::Ack(_)) {
                        bail!("RabbitMQ refused a publish");
                    }
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let shares = before.shares_until(&selector.snapshot());
        eprintln!("{phase}: {n} events in {secs:.2} s");
        rows.push((phase, n as f64 / secs, shares));
    }
    purge().await?;

    let bare = (rows[0].1 + rows[2].1) / 2.0;
    println!(
        "| events | bytes per body | confirm window | bare publisher events/s | relay events/s \
         | bare publisher again events/s | relay × bare |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {bytes} | {window} | {:.0} | {:.0} | {:.0} | {:.2} |",
        rows[0].1,
        rows[1].1,
        rows[2].1,
        rows[1].1 / bare
    );
    println!();
    println!("| phase |{}", cpu::Shares::header());
    println!("|---|{}", cpu::Shares::alignment());
    for (phase, _, shares) in &rows {
        println!(
            "| {phase} (relay-bench is the load generator) |{}",
            shares.cells()
        );
    }
    Ok(())
}

/// Every event of the log, encoded as the relay encodes it, and the cursor
/// of the last.
async fn encode_log(store: &PgEventStore) -> anyhow::Result<(Vec<Encoded>, Cursor)> {
    let mut events = Vec::new();
    let mut cursor = Cursor::START;
    loop {
        let page = store.read_all(cursor, 5000, &LogFilter::default()).await?;
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        for event in &page {
            events.push(Encoded {
                routing_key: broker::routing_key(&event.stream_id, &event.event_type),
                body: serde_json::to_vec(event)?,
                properties: BasicProperties::default()
                    .with_message_id(event.event_id.to_string().into())
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2)
                    .with_type(event.event_type.clone().into())
                    .with_timestamp(event.recorded_at.timestamp().max(0) as u64)
                    .with_headers(FieldTable::default()),
            });
        }
    }
    if events.is_empty() {
        bail!("the log is empty: seed it first (backend-bench seed --postgres URL)");
    }
    Ok((events, cursor))
}

/// Runs the relay until its checkpoint reaches `last`, then stops it.
async fn run_relay(pool: &sqlx::PgPool, config: RelayConfig, last: Cursor) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(relay::run(pool.clone(), config, stopped));
    let deadline = Instant::now() + RELAY_TIMEOUT;
    let reached = loop {
        if relay::checkpoint(pool).await? >= last {
            break true;
        }
        if Instant::now() > deadline || task.is_finished() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    if !reached {
        bail!("the relay did not reach the log's end within {RELAY_TIMEOUT:?}");
    }
    Ok(())
}
