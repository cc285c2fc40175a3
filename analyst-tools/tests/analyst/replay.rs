//! A replay into a separate database at time T (or position P) holds the
//! same rows as a read model built live from the events up to T; the live
//! read database and a filled target are refused.

use crate::helpers::Log;
use analyst_tools::{AnalystCommand, AnalystError, Projection, ReplayArgs};
use chrono::{DateTime, Utc};
use domain::{ChannelCommand, Event, MessageFacts, Role, StoredEvent};
use event_store::PgEventStore;
use sqlx::PgPool;
use test_support::{ScratchDb, TestDb};

/// Every row of the read model's tables (checkpoints aside), as sorted JSON.
async fn dump(pool: &PgPool) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    for table in [
        "users",
        "channels",
        "members",
        "bans",
        "messages",
        "stream_positions",
    ] {
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

/// A read model built the live way: `apply_event` over the log's events that
/// satisfy `condition`, in commit order.
async fn live_model(log: &Log, condition: &str) -> TestDb {
    let read = TestDb::new_read_model().await;
    let events = PgEventStore::new(log.pool().clone())
        .read_all(
            event_store::Cursor::START,
            100_000,
            &event_store::LogFilter::default(),
        )
        .await
        .expect("log");
    let wanted: Vec<uuid::Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT event_id FROM events WHERE {condition}"
    )))
    .fetch_all(log.pool())
    .await
    .expect("wanted");
    let mut tx = read.pool.begin().await.expect("begin");
    let mut writes = read_model::PgReadWrites::new(&mut tx, "rm");
    for recorded in events.iter().filter(|e| wanted.contains(&e.event_id)) {
        let event = Event::from_stored(&StoredEvent {
            event_type: recorded.event_type.clone(),
            schema_version: recorded.schema_version,
            data: recorded.data.clone(),
        })
        .expect("decodes");
        projector::apply_event(&mut writes, &log.store, recorded, &event)
            .await
            .expect("applies");
    }
    tx.commit().await.expect("commit");
    read
}

/// A history with a change of every kind on each side of the returned time.
async fn history(log: &Log) -> DateTime<Utc> {
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
    t
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

#[tokio::test]
async fn replay_at_a_time_equals_the_live_model_built_up_to_it() {
    let log = Log::new().await;
    let t = history(&log).await;
    let live_read = TestDb::new_read_model().await;
    let settings = log.settings(&live_read.url);
    let target = ScratchDb::new("chat_test_replay");

    let code = analyst_tools::run(
        AnalystCommand::Replay(args(&t.to_rfc3339(), &target.url, false)),
        &settings,
    )
    .await
    .expect("replays");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let replayed = analyst_tools::open_log(&target.url)
        .await
        .expect("target exists");
    let expected = live_model(&log, &format!("recorded_at <= '{}'", t.to_rfc3339())).await;
    assert_eq!(dump(&replayed).await, dump(&expected.pool).await);

    let members: Vec<(String, bool)> = sqlx::query_as(
        "SELECT u.username, m.muted FROM rm.members m JOIN rm.users u USING (user_id) \
         JOIN rm.channels c USING (channel_id) WHERE c.name = 'general' ORDER BY 1",
    )
    .fetch_all(&replayed)
    .await
    .expect("members");
    let cat_muted = ("cat".to_owned(), true);
    assert_eq!(
        members,
        [("ann".into(), false), ("bob".into(), false), cat_muted]
    );
    let now = live_model(&log, "true").await;
    assert_ne!(
        dump(&replayed).await,
        dump(&now.pool).await,
        "the past differs from now"
    );
    let checkpoint: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm.checkpoints WHERE projection = 'replay'")
            .fetch_one(&replayed)
            .await
            .expect("checkpoint");
    assert_eq!(checkpoint, 1);
    replayed.close().await;
}

#[tokio::test]
async fn replay_to_a_position_and_its_refusals() {
    let log = Log::new().await;
    history(&log).await;
    let live_read = TestDb::new_read_model().await;
    let settings = log.settings(&live_read.url);
    let pool = analyst_tools::LogSource::Postgres(
        analyst_tools::open_log(&log.db.url).await.expect("log"),
    );
    let position: i64 = sqlx::query_scalar(
        "SELECT global_position FROM events ORDER BY global_position OFFSET 9 LIMIT 1",
    )
    .fetch_one(log.pool())
    .await
    .expect("position");
    let target = TestDb::new_read_model().await;
    let mut hidden = analyst_tools::progress::Progress::hidden();
    let summary = analyst_tools::replay::replay(
        &pool,
        &args(&position.to_string(), &target.url, false),
        &settings,
        &mut hidden,
    )
    .await
    .expect("an empty read model is an empty target");
    assert_eq!(summary.events, 10);
    assert_eq!(summary.last.map(|(c, _)| c.global_position), Some(position));
    let expected = live_model(&log, &format!("global_position <= {position}")).await;
    assert_eq!(dump(&target.pool).await, dump(&expected.pool).await);

    let again = analyst_tools::replay::replay(
        &pool,
        &args("2100-01-01T00:00:00Z", &target.url, false),
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
        &pool,
        &args("2100-01-01T00:00:00Z", &target.url, true),
        &settings,
        &mut hidden,
    )
    .await
    .expect("--force replaces");
    let all = live_model(&log, "true").await;
    assert_eq!(forced.events, log.sql_cursors("").await.len() as u64);
    assert_eq!(dump(&target.pool).await, dump(&all.pool).await);

    let live_spelled_otherwise = live_read.url.replace("localhost", "127.0.0.1");
    for into in [
        live_read.url.as_str(),
        live_spelled_otherwise.as_str(),
        log.db.url.as_str(),
    ] {
        let refused =
            analyst_tools::replay::replay(&pool, &args("1", into, true), &settings, &mut hidden)
                .await;
        assert!(
            matches!(refused, Err(AnalystError::Refused { .. })),
            "{into}: {refused:?}"
        );
    }
    let bad = analyst_tools::run(
        AnalystCommand::Replay(args("last tuesday", &target.url, false)),
        &settings,
    )
    .await
    .expect_err("bad --until");
    assert!(
        format!("{bad:#}").starts_with("invalid --until \"last tuesday\""),
        "{bad:#}"
    );
}
