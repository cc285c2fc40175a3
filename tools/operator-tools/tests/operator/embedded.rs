//! What only the embedded backend has: its status lines (no relay, the
//! dead letters' table), a missing data directory, `dlq retry` applying a
//! letter to the live model, and the rebuild's switch by replacing rows:
//! under a writer and a reader, interrupted, and on 10,000+ events.

use crate::backends::{answers, assert_same_answers, reference_fold};
use crate::files::{Files, raw};
use crate::helpers::{channel_command, create_channel, send};
use domain::{
    ChannelCommand, ChannelCreated, ChannelId, ChannelKind, Event, MessageId, MessageSent, UserId,
};
use event_store::{Cursor, EventLog, ExpectedVersion, LogFilter, NewEvent};
use operator_tools::embedded::rebuild::{self, MODEL_TABLES, RebuildError};
use operator_tools::progress::Progress;
use operator_tools::rebuild::{RebuildOptions, projection};
use read_model::ReadModel;
use service_kit::DataDir;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn new_event(event: &Event) -> NewEvent {
    let stored = event.to_stored();
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: stored.event_type,
        schema_version: stored.schema_version,
        data: stored.data,
        metadata: serde_json::json!({}),
    }
}

fn poison() -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: serde_json::json!({"content": "no channel, no seq"}),
        metadata: serde_json::json!({}),
    }
}

/// Every row of every model table of the live file, as text, sorted.
async fn dump(f: &Files) -> BTreeMap<&'static str, Vec<String>> {
    let pool = f.raw_read().await;
    let mut out = BTreeMap::new();
    for table in MODEL_TABLES {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(&pool)
                .await
                .expect("columns");
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {row} FROM \"{table}\" ORDER BY 1"
        )))
        .fetch_all(&pool)
        .await
        .expect("rows");
        out.insert(table, rows);
    }
    pool.close().await;
    out
}

fn rebuild_file_exists(f: &Files) -> bool {
    f.dir.path().join("read-rm_rebuild.db").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_says_what_the_embedded_backend_has_and_counts_dead_letters() {
    let f = Files::running().await;
    let owner = UserId::new();
    let channel = create_channel(&f.commands, owner).await;
    send(&f.commands, owner, channel, "one").await;
    f.log
        .append(
            &format!("channel-{}", uuid::Uuid::new_v4()),
            ExpectedVersion::NoStream,
            &[poison()],
        )
        .await
        .expect("append");
    send(&f.commands, owner, channel, "two").await;
    f.wait_projected().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let json = loop {
        let (code, out) = f.chat(&["status", "--json", "--max-lag-events", "0"]).await;
        let json: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        if json["dead_letters"]["depth"] == 1 {
            assert_eq!(code.expect("status"), ExitCode::SUCCESS, "{json}");
            break json;
        }
        assert!(tokio::time::Instant::now() < deadline, "{json}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(json["dead_letters"]["queue"], "rm.dead_letters");
    assert_eq!(
        json["projections"][0]["lag_events"], 0,
        "past its dead letters: {json}"
    );
    assert_eq!(json["projections"][0]["checkpoint"], 4, "{json}");
    assert_eq!(json["log"]["global_position"], 4);
    assert_eq!(json["log"]["events_estimate"], 4);
    assert_eq!(json["log"]["head_cursor"], "4-4");
    assert!(
        json["relay"].is_null() && json["gateways"].is_null(),
        "{json}"
    );
    assert!(json["projections"][0]["applied_at"].is_string(), "{json}");

    let (code, table) = f.chat(&["status"]).await;
    assert_eq!(code.expect("status"), ExitCode::SUCCESS);
    eprintln!("{table}");
    for expected in [
        "head cursor       4-4",
        "RELAY\n  none (embedded: the projector reads the log)",
        "read-model  4           0           0.0",
        "rm.dead_letters   1",
        "GATEWAYS\n  in the `chat up` process",
        "STATUS  ok",
    ] {
        assert!(table.contains(expected), "{expected:?} missing in\n{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_data_directory_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("nothing-here");
    let settings = service_kit::Settings::from_lookup(|name| match name {
        "CHAT_BACKEND" => Some("embedded".into()),
        "CHAT_DATA_DIR" => Some(missing.display().to_string()),
        _ => None,
    })
    .expect("settings");
    for args in [
        &["status"][..],
        &["dlq", "list"],
        &["rebuild", "read-model"],
    ] {
        let error = crate::helpers::chat(&settings, args)
            .await
            .0
            .expect_err("nothing to open");
        let line = format!("{error:#}");
        assert!(
            line.contains("no embedded data") && line.contains("chat up"),
            "{line}"
        );
        assert!(!line.contains('\n'), "one line: {line}");
    }
    assert!(!missing.exists(), "the tools make no data directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_applies_a_dead_letter_once_and_a_poison_one_stays() {
    let mut f = Files::running().await;
    let owner = UserId::new();
    let channel = create_channel(&f.commands, owner).await;
    send(&f.commands, owner, channel, "first").await;
    f.wait_projected().await;
    f.stop_projector().await;
    // A good event the projector gave up on (a bug since fixed), the last
    // of its stream so nothing heals it in.
    let (_, seq) = send(&f.commands, owner, channel, "given up on").await;
    let head = f.log.head().await.expect("head");
    let recorded = f
        .log
        .read_all(
            Cursor {
                transaction_id: 0,
                global_position: head.global_position - 1,
            },
            1,
            &LogFilter::default(),
        )
        .await
        .expect("read")
        .pop()
        .expect("the event");
    f.read
        .dead_letter(&recorded, "test: the projector had a bug")
        .await
        .expect("dead-letter");
    f.log
        .append(
            &format!("channel-{}", uuid::Uuid::new_v4()),
            ExpectedVersion::NoStream,
            &[poison()],
        )
        .await
        .expect("append");
    f.start_projector();
    f.wait_projected().await;
    let messages = |f: &Files| {
        let read = f.read.clone();
        async move {
            read.messages_between(channel.0, 0, i64::MAX, 100)
                .await
                .expect("messages")
                .len()
        }
    };
    assert_eq!(messages(&f).await, 1, "the dead letter is not applied");

    let (code, out) = f.chat(&["dlq", "list", "--json"]).await;
    assert_eq!(code.expect("list"), ExitCode::SUCCESS);
    let letters: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let good = recorded.event_id.to_string();
    assert_eq!(letters[0]["id"], good.as_str(), "oldest first");
    assert_eq!(letters[0]["reason"], "test: the projector had a bug");
    assert!(
        letters[0]["routing_key"].is_null(),
        "no broker, no routing key"
    );
    let bad = letters[1]["id"].as_str().expect("id").to_owned();

    let (code, _) = f.chat(&["dlq", "retry", &good]).await;
    assert_eq!(code.expect("retry"), ExitCode::SUCCESS);
    assert_eq!(messages(&f).await, 2, "applied at once, by the retry");
    let latest = f
        .read
        .messages_between(channel.0, 0, i64::MAX, 1)
        .await
        .expect("messages");
    assert_eq!(latest[0].seq, seq as i64);
    assert_eq!(latest[0].content.as_deref(), Some("given up on"));
    let error = f.chat(&["dlq", "retry", &good]).await.0.expect_err("gone");
    assert!(error.to_string().contains("no dead letter"), "{error}");
    assert_eq!(messages(&f).await, 2, "applied exactly once");

    for args in [&["dlq", "retry", &bad][..], &["dlq", "retry", "--all"]] {
        let (code, _) = f.chat(args).await;
        assert_eq!(code.expect("retry runs"), ExitCode::FAILURE, "{args:?}");
    }
    let (_, out) = f.chat(&["dlq", "list", "--json"]).await;
    assert_eq!(out.lines().count(), 1, "the poison stays: {out}");
    let (code, _) = f.chat(&["dlq", "drop", &bad.to_uppercase()]).await;
    assert_eq!(code.expect("drop"), ExitCode::SUCCESS, "ids are case-blind");
    let (_, out) = f.chat(&["dlq", "list"]).await;
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_beside_a_writer_and_a_reader_never_shows_them_an_empty_channel() {
    let f = Arc::new(Files::running().await);
    let owner = UserId::new();
    let members: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    let channel = create_channel(&f.commands, owner).await;
    for m in &members {
        channel_command(&f.commands, *m, channel, ChannelCommand::Join).await;
    }
    for n in 0..60 {
        send(&f.commands, members[n % 3], channel, &format!("seed {n}")).await;
    }
    f.wait_projected().await;
    // Damage first: the rebuild puts it right while the reader reads.
    let pool = f.raw_read().await;
    sqlx::query("UPDATE messages SET content = 'tampered'")
        .execute(&pool)
        .await
        .expect("damage");
    pool.close().await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (f, stop, members) = (f.clone(), stop.clone(), members.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                send(&f.commands, members[n % 3], channel, &format!("load {n}")).await;
                n += 1;
            }
            n
        })
    };
    let reader = {
        // Its own pools on the files, as a `chat up` beside the tool has.
        let path = f.dir.path().join("read.db");
        let stop = stop.clone();
        tokio::spawn(async move {
            let read = read_model::SqliteReadModel::open(&path)
                .await
                .expect("open");
            let (mut queries, mut last_seq) = (0u64, 0i64);
            while !stop.load(Ordering::Relaxed) {
                let access = read
                    .channel_for(channel.0, owner.0)
                    .await
                    .expect("no query fails")
                    .expect("the channel is there");
                assert!(access.is_member, "the owner is a member");
                let page = read
                    .messages_between(channel.0, 0, i64::MAX, 50)
                    .await
                    .expect("no query fails");
                assert_eq!(page.len(), 50, "a full page of the channel");
                let newest = page[0].seq;
                assert!(
                    newest >= last_seq,
                    "went back from seq {last_seq} to {newest}"
                );
                assert_eq!(read.member_count(channel.0).await.expect("count"), 4);
                last_seq = newest;
                queries += 1;
            }
            read.close().await;
            queries
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for page_size in ["16", "1000"] {
        let (code, _) = f
            .chat(&["rebuild", "read-model", "--page-size", page_size])
            .await;
        assert_eq!(code.expect("rebuild under load"), ExitCode::SUCCESS);
        assert!(!rebuild_file_exists(&f), "the rebuild's file is removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let sent = writer.await.expect("writer");
    let queries = reader.await.expect("the reader saw nothing wrong");
    eprintln!("{sent} writes and {queries} reads overlapped the rebuilds");
    assert!(sent > 5 && queries > 20, "{sent} writes, {queries} reads");

    // The live projector carried on in the rebuilt rows: all is the fold.
    f.wait_projected().await;
    let (reference, _keep) = {
        let dir = tempfile::tempdir().expect("dir");
        let read = read_model::SqliteReadModel::open(&dir.path().join("read.db"))
            .await
            .expect("open");
        (read, dir)
    };
    reference_fold(f.log.as_ref(), &reference).await;
    assert_same_answers(
        &answers(&f.read, f.log.as_ref()).await,
        &answers(&reference, f.log.as_ref()).await,
        "final vs the fold of the log",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_rebuild_leaves_the_live_model_as_it_was_and_a_rerun_starts_clean() {
    let mut f = Files::running().await;
    let owner = UserId::new();
    let channel = create_channel(&f.commands, owner).await;
    for n in 0..40 {
        send(&f.commands, owner, channel, &format!("m{n}")).await;
    }
    f.wait_projected().await;
    f.stop_projector().await;
    let pool = f.raw_read().await;
    sqlx::query("DELETE FROM messages WHERE seq > 20")
        .execute(&pool)
        .await
        .expect("damage");
    pool.close().await;
    let damaged = dump(&f).await;
    let data = DataDir::existing(f.dir.path()).expect("data dir");
    let p = projection("read-model").expect("known");
    let stopped = rebuild::rebuild(
        &data,
        f.log.as_ref(),
        p,
        &RebuildOptions {
            page_size: 8,
            stop_after_pages: Some(2),
            ..RebuildOptions::default()
        },
        &Progress::hidden(),
    )
    .await;
    assert!(
        matches!(stopped, Err(RebuildError::Stopped(2))),
        "{stopped:?}"
    );
    assert_eq!(dump(&f).await, damaged, "the live model is untouched");
    assert!(
        rebuild_file_exists(&f),
        "the partial rebuild stays until the next run"
    );

    let report = rebuild::rebuild(
        &data,
        f.log.as_ref(),
        p,
        &RebuildOptions {
            page_size: 8,
            ..RebuildOptions::default()
        },
        &Progress::hidden(),
    )
    .await
    .expect("a rerun");
    assert_eq!(report.events, 41, "{report:?}");
    assert_eq!(
        report.applied, 41,
        "a clean start applies everything: {report:?}"
    );
    assert_eq!(dump(&f).await["messages"].len(), 40);
    assert!(!rebuild_file_exists(&f));
    // The live checkpoint is the projector's own, kept.
    let at = f
        .read
        .checkpoint(read_model::LIVE_PROJECTION)
        .await
        .expect("checkpoint")
        .expect("one");
    assert_eq!(at.global_position, 41);
    f.start_projector();
    f.wait_projected().await;
    assert_eq!(dump(&f).await["messages"].len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_of_ten_thousand_events_equals_the_live_built_model() {
    let f = Files::running().await;
    let owner = UserId::new();
    let channel = ChannelId::new();
    let stream = domain::channel_stream(channel);
    let created = Event::ChannelCreated(ChannelCreated {
        channel_id: channel,
        name: "big".into(),
        kind: ChannelKind::Public,
        max_members: None,
        owner_id: owner,
    });
    f.log
        .append(&stream, ExpectedVersion::NoStream, &[new_event(&created)])
        .await
        .expect("create");
    const MESSAGES: u64 = 10_200;
    for first in (1..=MESSAGES).step_by(600) {
        let batch: Vec<NewEvent> = (first..(first + 600).min(MESSAGES + 1))
            .map(|seq| {
                new_event(&Event::MessageSent(MessageSent {
                    channel_id: channel,
                    message_id: MessageId::new(),
                    seq,
                    sender_id: owner,
                    content: format!("message {seq}"),
                    message_type: "text".into(),
                    client_msg_id: None,
                }))
            })
            .collect();
        f.log
            .append(&stream, ExpectedVersion::Any, &batch)
            .await
            .expect("append");
    }
    f.wait_projected().await;
    let live = dump(&f).await;
    assert_eq!(live["messages"].len() as u64, MESSAGES);

    let (code, _) = f.chat(&["rebuild", "--all"]).await;
    assert_eq!(code.expect("rebuild"), ExitCode::SUCCESS);
    assert_eq!(
        dump(&f).await,
        live,
        "rebuilt (default pages) vs live-built"
    );

    let pool = raw(&f.dir.path().join("read.db")).await;
    sqlx::query("DELETE FROM messages WHERE seq % 2 = 0")
        .execute(&pool)
        .await
        .expect("damage");
    pool.close().await;
    let data = DataDir::existing(f.dir.path()).expect("data dir");
    let report = rebuild::rebuild(
        &data,
        f.log.as_ref(),
        projection("read-model").expect("known"),
        &RebuildOptions {
            page_size: 1000,
            ..RebuildOptions::default()
        },
        &Progress::hidden(),
    )
    .await
    .expect("rebuild");
    eprintln!("{}", report.summary());
    assert_eq!(report.events, MESSAGES + 1);
    assert_eq!(report.applied, MESSAGES + 1);
    assert_eq!((report.duplicates, report.skipped), (0, 0));
    assert!(report.pages >= 11, "{report:?}");
    assert_eq!(dump(&f).await, live, "rebuilt (1,000 a page) vs live-built");
    let last = f.read.last_seq(channel.0).await.expect("last seq");
    assert_eq!(last, MESSAGES);
}
