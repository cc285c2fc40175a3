//! After the load: wait for quiet, read the system back and judge the
//! history; print the table and every violation with its excerpt.

use crate::api::Api;
use crate::load::World;
use crate::observe;
use crate::run::System;
use crate::sockets::{Subscriber, online_users};
use anyhow::Context;
use loadgen::torture::check::{self, LoggedEvent};
use loadgen::torture::report::{self, Window};
use loadgen::torture::{Violation, ViolationKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the relay, projector and sockets get to drain after the load.
const QUIET_BOUND: Duration = Duration::from_secs(180);

async fn pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

/// Until the read model holds the whole log, the projector's queue is empty
/// and every socket holds every channel's last seq.
async fn wait_quiet(
    system: &System,
    log: &sqlx::PgPool,
    read: &sqlx::PgPool,
    subscribers: &[Arc<Subscriber>],
) -> anyhow::Result<Option<f64>> {
    let started = Instant::now();
    while started.elapsed() < QUIET_BOUND {
        let events = observe::log_events(log).await?;
        let positions = observe::read_positions(read).await.unwrap_or_default();
        let depth = observe::queue_depth(&system.rabbit.url(), broker::PROJECTOR_QUEUE)
            .await
            .unwrap_or(u64::MAX);
        let projected = check::check_projected(&events, &positions, depth, 0).is_empty();
        let messages = observe::channel_messages(&events);
        let delivered = subscribers.iter().all(|s| {
            let last = s.last.lock().unwrap_or_else(|e| e.into_inner());
            s.channels.iter().all(|c| {
                last.get(c).copied().unwrap_or(0) == messages.get(c).map_or(0, |m| m.len() as u64)
            })
        });
        if projected && delivered {
            return Ok(Some(started.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(None)
}

/// Presence right after quiet, as each instance's sockets see it; a flush
/// heals within a heartbeat, so it is asked again for a while.
async fn presence(
    system: &System,
    world: &World,
    subscribers: &[Arc<Subscriber>],
) -> Vec<Violation> {
    let expected: Vec<(Uuid, Uuid)> = subscribers
        .iter()
        .filter(|s| s.is_live())
        .flat_map(|s| s.channels.iter().map(|c| (*c, s.user_id)))
        .collect();
    let started = Instant::now();
    loop {
        let mut violations = Vec::new();
        for instance in &system.instances {
            let online: HashMap<Uuid, HashSet<Uuid>> =
                online_users(&instance.addr, &world.owner.token, &world.channels)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(c, users)| (c, users.into_iter().collect()))
                    .collect();
            for mut v in check::check_presence(&expected, &online) {
                v.detail = format!("{}: {}", instance.name, v.detail);
                violations.push(v);
            }
        }
        if violations.is_empty() || started.elapsed() > Duration::from_secs(45) {
            return violations;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn divergence(
    system: &System,
    read: &sqlx::PgPool,
    events: &[LoggedEvent],
) -> anyhow::Result<Vec<Violation>> {
    let fold_url = system.pg.url("chat_fold");
    let until = events.iter().map(|e| e.global_position).max().unwrap_or(0);
    observe::fold_with_replay(
        &system.chat,
        &system.pg.url("chat"),
        &system.pg.url("chat_read"),
        &fold_url,
        until,
    )
    .await?;
    let fold = pool(&fold_url).await?;
    let mut violations = Vec::new();
    for (table, key) in observe::TABLES {
        let live = observe::table_rows(read, table, key).await?;
        let folded = observe::table_rows(&fold, table, key).await?;
        violations.extend(check::diff_table(table, &live, &folded));
    }
    fold.close().await;
    Ok(violations)
}

pub async fn judge(
    system: &System,
    api: &Api,
    world: &World,
    subscribers: &[Arc<Subscriber>],
    windows: Vec<Window>,
    mut violations: Vec<Violation>,
    seed: u64,
) -> anyhow::Result<bool> {
    let log = pool(&system.pg.url("chat")).await?;
    let read = pool(&system.pg.url("chat_read")).await?;
    eprintln!(
        "torture: waiting for quiet (at most {} s)",
        QUIET_BOUND.as_secs()
    );
    let quiet = wait_quiet(system, &log, &read, subscribers).await?;
    match quiet {
        Some(s) => eprintln!("torture: quiet after {s:.1}s"),
        None => eprintln!(
            "torture: not quiet within {} s; judging what there is",
            QUIET_BOUND.as_secs()
        ),
    }
    violations.extend(presence(system, world, subscribers).await);

    let events = observe::log_events(&log).await?;
    let history = api
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    violations.extend(check::check_commands(&history, &events));
    violations.extend(check::check_contiguous(&events));
    let published = observe::drain_audit(&system.rabbit.url()).await?;
    violations.extend(check::check_published(&events, &published));
    let positions = observe::read_positions(&read).await?;
    let depth = observe::queue_depth(&system.rabbit.url(), broker::PROJECTOR_QUEUE).await?;
    let dead = observe::queue_depth(&system.rabbit.url(), broker::DEAD_LETTER_QUEUE).await?;
    violations.extend(check::check_projected(&events, &positions, depth, dead));
    violations.extend(divergence(system, &read, &events).await?);
    let messages = observe::channel_messages(&events);
    let mut socket_lines = Vec::new();
    for s in subscribers {
        let records = s.records.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (found, summary) = check::check_socket(&s.name, &records, &messages);
        violations.extend(found);
        socket_lines.push(format!(
            "  {}: {} messages, {} connections, {} repeats after a resume (dropped by seq)",
            s.name, summary.messages, summary.reconnects, summary.resume_duplicates
        ));
    }

    let rows = report::rows(&windows, &history, &violations);
    println!(
        "torture: seed {seed}; {} events in the log, {} publishes seen by the audit queue",
        events.len(),
        published.len()
    );
    println!("{}", report::render(&rows));
    let refused = history
        .iter()
        .filter(|o| matches!(o.outcome, loadgen::torture::Outcome::Rejected { .. }))
        .count();
    let gave_up = history
        .iter()
        .filter(|o| matches!(o.outcome, loadgen::torture::Outcome::GaveUp { .. }))
        .count();
    println!("commands refused by a rule: {refused}; unanswered within 60 s: {gave_up}");
    println!("sockets:\n{}", socket_lines.join("\n"));
    if violations.is_empty() {
        println!("torture: no violation (seed {seed})");
        return Ok(true);
    }
    let mut by_kind: BTreeMap<ViolationKind, Vec<&Violation>> = BTreeMap::new();
    for v in &violations {
        by_kind.entry(v.kind).or_default().push(v);
    }
    println!(
        "torture: {} violations (seed {seed}; replay with --seed {seed}):",
        violations.len()
    );
    for (kind, found) in by_kind {
        println!("{kind:?}: {}", found.len());
        for v in found.iter().take(5) {
            println!(
                "  window {:?}: {}",
                v.window,
                v.detail.replace('\n', "\n  ")
            );
        }
    }
    Ok(false)
}
