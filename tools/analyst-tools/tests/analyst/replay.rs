//! A replay into a separate target at time T (or position P) holds the same
//! rows as a read model built the live way from the events up to T; the live
//! read model and a filled target are refused. On both backends: the target
//! is a database on PostgreSQL, a SQLite file on the embedded backend.

use crate::helpers::Log;
use analyst_tools::{AnalystCommand, AnalystError, Projection, ReplayArgs};
use chrono::{DateTime, Utc};
use domain::{ChannelCommand, ChannelId, Event, MessageFacts, Role, StoredEvent, UserId};
use event_store::RecordedEvent;
use read_model::{PgReadModel, ReadModel, SqliteReadModel};
use sqlx::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::any::Any;
use std::path::Path;
use test_support::{ScratchDb, TestDb};

const TABLES: [&str; 6] = [
    "users",
    "channels",
    "members",
    "bans",
    "messages",
    "stream_positions",
];

/// Every row of the read model's tables (checkpoints aside), as sorted JSON.
async fn dump_pg(pool: &PgPool) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    for table in TABLES {
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]')::text FROM rm.{table} t"
        )))
        .fetch_one(pool)
        .await
        .expect("dump");
        tables.push((table.to_owned(), rows));
    }
    tables
}

/// The same for a SQLite read-model file (its tables are schema `rm`).
async fn dump_sqlite(path: &Path) -> Vec<(String, String)> {
    let pool: SqlitePool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(path).read_only(true))
        .await
        .expect("open the file");
    let mut tables = Vec::new();
    for table in TABLES {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(table)
            .fetch_all(&pool)
            .await
            .expect("columns");
        assert!(!columns.is_empty(), "{table} exists");
        // UUIDs are blobs, which JSON cannot hold: as hex text.
        let pairs: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "'{c}', CASE typeof(\"{c}\") WHEN 'blob' THEN hex(\"{c}\") ELSE \"{c}\" END"
                )
            })
            .collect();
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT json_object({}) AS j FROM \"{table}\" ORDER BY j",
            pairs.join(", ")
        )))
        .fetch_all(&pool)
        .await
        .expect("dump");
        tables.push((table.to_owned(), format!("[{}]", rows.join(","))));
    }
    pool.close().await;
    tables
}

/// Where a replay writes: its `--into`, and what keeps it alive.
struct Target {
    into: String,
    _owner: Box<dyn Any + Send>,
}

/// A target not there yet (`created` false) or an empty read model.
async fn target(log: &Log, name: &str, created: bool) -> Target {
    if log.is_sqlite() {
        let path = log.scratch_path(&format!("{name}.db"));
        if created {
            SqliteReadModel::open(&path)
                .await
                .expect("an empty read model")
                .close()
                .await;
        }
        return Target {
            into: path.display().to_string(),
            _owner: Box::new(()),
        };
    }
    if created {
        let db = TestDb::new_read_model().await;
        Target {
            into: db.url.clone(),
            _owner: Box::new(db),
        }
    } else {
        let db = ScratchDb::new("chat_test_replay");
        Target {
            into: db.url.clone(),
            _owner: Box::new(db),
        }
    }
}

/// The rows of the target at `into`.
async fn dump(log: &Log, into: &str) -> Vec<(String, String)> {
    if log.is_sqlite() {
        return dump_sqlite(Path::new(into)).await;
    }
    let pool = PgPool::connect(into).await.expect("the target exists");
    let rows = dump_pg(&pool).await;
    pool.close().await;
    rows
}

/// The target at `into` as the services read a read model.
async fn model(log: &Log, into: &str) -> Box<dyn ReadModel> {
    if log.is_sqlite() {
        Box::new(SqliteReadModel::open(Path::new(into)).await.expect("open"))
    } else {
        Box::new(PgReadModel::new(
            PgPool::connect(into).await.expect("the target exists"),
        ))
    }
}

/// The rows of a read model built the live way: `apply_event` over the log's
/// events that `keep` keeps, in commit order, through the read-model port.
async fn live_model(log: &Log, keep: impl Fn(&RecordedEvent) -> bool) -> Vec<(String, String)> {
    let scratch = target(log, &format!("live-{}", uuid::Uuid::new_v4()), true).await;
    let read = model(log, &scratch.into).await;
    let mut tx = read.begin(read_model::LIVE_SCHEMA).await.expect("begin");
    for recorded in log.all().await.iter().filter(|e| keep(e)) {
        let event = Event::from_stored(&StoredEvent {
            event_type: recorded.event_type.clone(),
            schema_version: recorded.schema_version,
            data: recorded.data.clone(),
        })
        .expect("decodes");
        projector::apply_event(&mut *tx, log.port.as_ref(), recorded, &event)
            .await
            .expect("applies");
    }
    tx.commit().await.expect("commit");
    drop(read);
    dump(log, &scratch.into).await
}

/// The live read database the settings name (PostgreSQL), kept alive.
async fn live_read(log: &Log) -> (String, Option<TestDb>) {
    if log.is_sqlite() {
        return (String::new(), None);
    }
    let db = TestDb::new_read_model().await;
    (db.url.clone(), Some(db))
}

struct History {
    t: DateTime<Utc>,
    general: ChannelId,
    cat: UserId,
}

/// A history with a change of every kind on each side of the returned time.
async fn history(log: &Log) -> History {
    let ann = log.register("ann").await;
    let bob = log.register("bob").await;
    let cat = log.register("cat").await;
    let general = log.create_channel(ann, "general").await;
    let random = log.create_channel(bob, "random").await;
    for user in [bob, cat] {
        log.command(user, general, ChannelCommand::Join).await;
    }
    let first = log.send(bob, general, "hello").await;
    log.send(cat, general, "hi bob").await;
    log.command(
        ann,
        general,
        ChannelCommand::ChangeRole {
            user_id: bob,
            role: Role::Admin,
        },
    )
    .await;
    log.command(cat, general, ChannelCommand::SetMuted { muted: true })
        .await;
    log.command(cat, general, ChannelCommand::MarkRead { seq: 2 })
        .await;
    let t = log.now().await;
    let dan = log.register("dan").await;
    log.command(dan, random, ChannelCommand::Join).await;
    log.command(bob, general, ChannelCommand::Kick { user_id: cat })
        .await;
    log.command(ann, general, ChannelCommand::Ban { user_id: cat })
        .await;
    let facts = MessageFacts {
        channel_id: general,
        message_id: first,
        seq: 1,
        sender_id: bob,
        deleted: false,
    };
    log.command(
        ann,
        general,
        ChannelCommand::DeleteMessage {
            message: Some(facts),
        },
    )
    .await;
    log.command(bob, random, ChannelCommand::Archive).await;
    History { t, general, cat }
}

fn args(until: &str, into: &str, force: bool) -> ReplayArgs {
    ReplayArgs {
        projection: Projection::ReadModel,
        until: until.to_owned(),
        into: into.to_owned(),
        force,
        batch: 3,
        jobs: 3,
    }
}

both!(
    replay_at_a_time_equals_the_live_model_built_up_to_it,
    replay_to_a_position_and_its_refusals
);

async fn replay_at_a_time_equals_the_live_model_built_up_to_it(log: Log) {
    let History { t, general, cat } = history(&log).await;
    let (live_url, _live) = live_read(&log).await;
    let settings = log.settings(&live_url);
    let target = target(&log, "asof", false).await;

    let code = analyst_tools::run(
        AnalystCommand::Replay(args(&t.to_rfc3339(), &target.into, false)),
        &settings,
    )
    .await
    .expect("replays");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let replayed = dump(&log, &target.into).await;
    assert_eq!(replayed, live_model(&log, |e| e.recorded_at <= t).await);

    let read = model(&log, &target.into).await;
    let members: Vec<String> = read
        .members(general.0, 10)
        .await
        .expect("members")
        .into_iter()
        .filter_map(|m| m.username)
        .collect();
    assert_eq!(members, ["ann", "bob", "cat"]);
    let cats = read.channels_of(cat.0, 100).await.expect("cat's channels");
    assert_eq!(cats.len(), 1);
    assert!(cats[0].muted, "cat had muted general at T");
    assert_ne!(
        replayed,
        live_model(&log, |_| true).await,
        "the past differs from now"
    );
    let last_applied = log
        .all()
        .await
        .into_iter()
        .filter(|e| e.recorded_at <= t)
        .map(|e| e.global_position)
        .max();
    let checkpoint = read.checkpoint("replay").await.expect("checkpoint");
    assert_eq!(checkpoint.map(|c| c.global_position), last_applied);
}

async fn replay_to_a_position_and_its_refusals(log: Log) {
    history(&log).await;
    let (live_url, _live) = live_read(&log).await;
    let settings = log.settings(&live_url);
    let source = log.source();
    let mut positions: Vec<i64> = log.all().await.iter().map(|e| e.global_position).collect();
    positions.sort_unstable();
    let position = positions[9];
    let target = target(&log, "position", true).await;
    let mut hidden = analyst_tools::progress::Progress::hidden();
    let summary = analyst_tools::replay::replay(
        &source,
        &args(&position.to_string(), &target.into, false),
        &settings,
        &mut hidden,
    )
    .await
    .expect("an empty read model is an empty target");
    assert_eq!(summary.events, 10);
    assert_eq!(summary.last.map(|(c, _)| c.global_position), Some(position));
    assert_eq!(
        dump(&log, &target.into).await,
        live_model(&log, |e| e.global_position <= position).await
    );

    let again = analyst_tools::replay::replay(
        &source,
        &args("2100-01-01T00:00:00Z", &target.into, false),
        &settings,
        &mut hidden,
    )
    .await;
    let Err(AnalystError::Refused { reason, .. }) = again else {
        panic!("a filled target without --force: {again:?}");
    };
    assert!(
        reason.contains("--force") && reason.contains("rm.channels"),
        "{reason}"
    );
    let forced = analyst_tools::replay::replay(
        &source,
        &args("2100-01-01T00:00:00Z", &target.into, true),
        &settings,
        &mut hidden,
    )
    .await
    .expect("--force replaces");
    assert_eq!(forced.events, positions.len() as u64);
    assert_eq!(
        dump(&log, &target.into).await,
        live_model(&log, |_| true).await
    );

    let live: Vec<String> = match log.data_dir() {
        Some(data) => vec![
            data.join("read.db").display().to_string(),
            format!("{}/./read.db", data.display()),
            data.join("events.db").display().to_string(),
            data.join("read-rebuild.db").display().to_string(),
        ],
        None => vec![
            live_url.clone(),
            live_url.replace("localhost", "127.0.0.1"),
            log.db().url.clone(),
        ],
    };
    for into in &live {
        let refused =
            analyst_tools::replay::replay(&source, &args("1", into, true), &settings, &mut hidden)
                .await;
        assert!(
            matches!(refused, Err(AnalystError::Refused { .. })),
            "{into}: {refused:?}"
        );
    }
    if let Some(data) = log.data_dir() {
        assert!(!data.join("read.db").exists(), "nothing written there");
        let url = analyst_tools::run(
            AnalystCommand::Replay(args("1", "postgres://postgres@localhost/x", false)),
            &settings,
        )
        .await
        .expect_err("a URL on the embedded backend");
        assert!(format!("{url:#}").starts_with("invalid --into"), "{url:#}");
    }
    let bad = analyst_tools::run(
        AnalystCommand::Replay(args("last tuesday", &target.into, false)),
        &settings,
    )
    .await
    .expect_err("bad --until");
    assert!(
        format!("{bad:#}").starts_with("invalid --until \"last tuesday\""),
        "{bad:#}"
    );
}
