//! `chat replay`: time travel. Builds the read model as it was at a past
//! moment into a separate database, by reading the log in commit order up to
//! that moment and applying each event with the projector's own
//! `apply_event`, in batched transactions (so no long write transaction holds
//! the log's readers back). A reader task fetches the next page while the
//! current one is applied, spread over `--jobs` connections by stream. On
//! the embedded backend the target is a SQLite file, built through the
//! read-model port with the projector's `apply_batch`.

use crate::log::LogQuery;
use crate::parse::{self, Until};
use crate::progress::Progress;
use crate::replay_apply as apply;
use crate::source::LogSource;
use crate::target::{self, Target};
use crate::target_file::{self, TargetFile};
use crate::{AnalystError, connect};
use chrono::{DateTime, Utc};
use event_store::{Cursor, EventLog, PgEventStore, RecordedEvent};
use read_model::LIVE_SCHEMA;
use service_kit::Backend;
use sqlx::PgPool;
use tokio::sync::mpsc;

/// The projections a replay can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Projection {
    /// The read model the query service reads: users, channels, members,
    /// bans, messages (`read_model::create_tables`, schema `rm`).
    #[value(name = "read-model")]
    ReadModel,
}

/// The flags of `chat replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The projection to build; `read-model` is the one there is.
    /// Example: `--projection read-model`.
    #[arg(long, value_enum)]
    pub projection: Projection,
    /// The moment to rebuild: an RFC 3339 time (the events recorded at or
    /// before it), a global position (the events at or below it), or a cursor
    /// (the events up to and including it in commit order).
    /// Examples: `--until 2026-03-01T12:00:00Z`, `--until 1500`, `--until 812-77`.
    #[arg(long, value_name = "TIME|POS")]
    pub until: String,
    /// Where to build it, created if missing: on the services backend a
    /// database (the tables go in schema `rm`), on the embedded backend a
    /// SQLite file. Never the live read model nor the event log.
    /// Examples: `--into postgres://postgres@localhost:5432/chat_asof`,
    /// `--into ./chat_asof.db`.
    #[arg(long, value_name = "DATABASE_URL|FILE")]
    pub into: String,
    /// Replace the `rm` schema (the file, on the embedded backend) of a
    /// target that already holds rows (an earlier replay). Example: `--force`.
    #[arg(long)]
    pub force: bool,
    /// Events applied per transaction in the target. Example: `--batch 500`.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub batch: u32,
    /// Connections applying events at once; each takes a share of the
    /// streams, and a stream's events stay in order (PostgreSQL; SQLite has
    /// one writer). Example: `--jobs 8`.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub jobs: u32,
}

/// What a replay built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Events applied.
    pub events: u64,
    /// The cursor and time of the last event applied.
    pub last: Option<(Cursor, DateTime<Utc>)>,
    /// Where it was built (`host:port/database`).
    pub target: String,
}

/// The part of the log a replay to `until` applies (below `horizon`).
pub fn query_until(until: Until, horizon: u64) -> LogQuery {
    let mut query = LogQuery {
        horizon,
        ..LogQuery::default()
    };
    match until {
        Until::Cursor(c) => query.until = Some(c),
        Until::Time(t) => query.recorded_until = Some(t),
        Until::Position(p) => query.position_until = Some(p),
    }
    query
}

/// Replays the log of `source` into the target of `args` (a database URL on
/// PostgreSQL, a file path on the embedded backend), refusing what
/// `settings` names as live.
pub async fn replay(
    source: &LogSource,
    args: &ReplayArgs,
    settings: &service_kit::Settings,
    progress: &mut Progress,
) -> Result<ReplaySummary, AnalystError> {
    match source {
        LogSource::Postgres(pool) => replay_pg(pool, args, settings, progress).await,
        LogSource::Embedded(log) => replay_embedded(log.as_ref(), args, settings, progress).await,
    }
}

async fn replay_pg(
    log_pool: &PgPool,
    args: &ReplayArgs,
    settings: &service_kit::Settings,
    progress: &mut Progress,
) -> Result<ReplaySummary, AnalystError> {
    let Projection::ReadModel = args.projection;
    let until = parse::until("--until", &args.until, true)?;
    let connections = args.jobs.clamp(1, 64) + 1;
    let Target { pool, described } =
        target::prepare(&args.into, settings, args.force, connections).await?;
    let horizon = crate::log::settle(log_pool, crate::events::SETTLE_WAIT)
        .await
        .map_err(AnalystError::Log)?;
    if !horizon.settled {
        return Err(AnalystError::Unsettled {
            seconds: crate::events::SETTLE_WAIT.as_secs(),
        });
    }
    let horizon = horizon.xid;
    let query = query_until(until, horizon);
    let total = query.count(log_pool).await.map_err(AnalystError::Log)?;
    progress.note(&format!("replay: {total} events to apply into {described}"));
    progress.set_total(total);
    let (pages, mut incoming) = mpsc::channel::<Result<Vec<RecordedEvent>, sqlx::Error>>(2);
    let reader = tokio::spawn(apply::read_pages(log_pool.clone(), query, pages));
    let store = PgEventStore::new(log_pool.clone());
    let batch = usize::try_from(args.batch.max(1)).unwrap_or(1000);
    let jobs = usize::try_from(args.jobs.clamp(1, 64)).unwrap_or(1);
    let mut applied = 0u64;
    let mut last = None;
    while let Some(page) = incoming.recv().await {
        let page = page.map_err(AnalystError::Log)?;
        apply::apply_page(&pool, &store, &page, jobs, batch).await?;
        applied += page.len() as u64;
        progress.inc(page.len() as u64);
        if let Some(e) = page.last() {
            last = Some((e.cursor(), e.recorded_at));
        }
    }
    reader.abort();
    Ok(ReplaySummary {
        events: applied,
        last,
        target: described,
    })
}

/// The embedded replay: the log read through the port a page at a time, each
/// page applied with the projector's `apply_batch` in transactions of
/// `--batch` events, each also moving the `replay` checkpoint. SQLite has one
/// writer, so `--jobs` has nothing to spread.
async fn replay_embedded(
    log: &dyn EventLog,
    args: &ReplayArgs,
    settings: &service_kit::Settings,
    progress: &mut Progress,
) -> Result<ReplaySummary, AnalystError> {
    let Projection::ReadModel = args.projection;
    let until = parse::until("--until", &args.until, true)?;
    let TargetFile { model, described } =
        target_file::prepare(&args.into, settings, args.force).await?;
    let horizon = crate::embedded::horizon(log).await?;
    let query = query_until(until, horizon);
    let total = crate::embedded::count(log, &query).await?;
    progress.note(&format!("replay: {total} events to apply into {described}"));
    progress.set_total(total);
    let batch = usize::try_from(args.batch.max(1)).unwrap_or(1000);
    let mut applied = 0u64;
    let mut last = None;
    let mut page = Vec::new();
    let mut after = query.after;
    loop {
        page.clear();
        let paged = LogQuery {
            after,
            ..query.clone()
        };
        let mut full = false;
        crate::embedded::scan(log, &paged, &mut |event| {
            page.push(event);
            full = page.len() as i64 == crate::source::PAGE_SIZE;
            Ok(if full {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })
        .await?;
        for chunk in page.chunks(batch) {
            apply::apply_chunk(&model, log, chunk).await?;
            applied += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
        }
        let Some(e) = page.last() else { break };
        last = Some((e.cursor(), e.recorded_at));
        if !full {
            break;
        }
        after = e.cursor();
    }
    model.close().await;
    Ok(ReplaySummary {
        events: applied,
        last,
        target: described,
    })
}

/// `chat replay`: replays with progress on stderr and sums up there.
pub async fn run(
    args: &ReplayArgs,
    settings: &service_kit::Settings,
) -> Result<ReplaySummary, AnalystError> {
    parse::until("--until", &args.until, true)?;
    match settings.backend.backend {
        Backend::Services => {
            connect::options(&args.into, "--into")?;
        }
        Backend::Embedded => {
            target_file::path_of(&args.into)?;
        }
    }
    let source = LogSource::open(settings).await?;
    let mut progress = Progress::stderr("replay", None);
    let started = std::time::Instant::now();
    let result = replay(&source, args, settings, &mut progress).await;
    progress.finish();
    let summary = result?;
    let elapsed = started.elapsed();
    let last = match summary.last {
        Some((cursor, at)) => format!(
            "; last event {cursor} recorded at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
        None => "; the log has no event up to that moment".to_owned(),
    };
    progress.note(&format!(
        "replay: applied {} events into {} (schema {LIVE_SCHEMA}) in {:.1}s ({:.0}/s){last}",
        summary.events,
        summary.target,
        elapsed.as_secs_f64(),
        crate::progress::rate(summary.events, elapsed)
    ));
    Ok(summary)
}
