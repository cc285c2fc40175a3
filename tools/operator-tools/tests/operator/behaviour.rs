//! The tools' behaviour on both backends, each test written once
//! (`backends::both!`): status lag and exit codes, dead letters listed,
//! shown and dropped by event id, and a rebuild of a damaged read model
//! that answers exactly as a fold of the log.

use crate::backends::{Backend, answers, assert_same_answers, both, reference_fold};
use crate::helpers::{channel_command, create_channel, send};
use domain::{ChannelCommand, UserId};
use event_store::{ExpectedVersion, NewEvent};
use std::process::ExitCode;
use std::time::Duration;

both!(
    status_reports_the_lag_and_its_exit_code_follows_the_thresholds,
    a_poison_event_is_listed_shown_and_dropped_by_its_event_id,
    a_rebuild_of_a_damaged_model_answers_as_the_fold_of_the_log,
);

async fn status_reports_the_lag_and_its_exit_code_follows_the_thresholds(mut b: Backend) {
    let owner = UserId::new();
    let channel = create_channel(b.commands(), owner).await;
    for n in 0..5 {
        send(b.commands(), owner, channel, &format!("m{n}")).await;
    }
    b.wait_projected().await;
    b.wait_delivered().await;
    let (code, json) = b.status(&["--max-lag-events", "3"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{json}");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["projections"][0]["name"], "read-model");
    assert_eq!(json["projections"][0]["lag_events"], 0, "{json}");
    assert_eq!(json["projections"][0]["lag_seconds"], 0.0, "{json}");
    assert_eq!(json["dead_letters"]["depth"], 0, "{json}");
    assert_eq!(json["log"]["global_position"], 6);
    assert!(json["log"]["head_cursor"].is_string(), "{json}");
    let (code, table) = b.chat(&["status"]).await;
    assert_eq!(code.expect("status runs"), ExitCode::SUCCESS);
    for expected in [
        "EVENT LOG",
        "RELAY",
        "PROJECTIONS",
        "read-model",
        "STATUS  ok",
    ] {
        assert!(table.contains(expected), "{expected:?} missing in\n{table}");
    }

    // The projector stops; six more events.
    b.stop_projector().await;
    for n in 0..6 {
        send(b.commands(), owner, channel, &format!("late {n}")).await;
    }
    b.wait_delivered().await;
    let (code, json) = b.status(&["--max-lag-events", "3"]).await;
    assert_eq!(code, ExitCode::from(2), "{json}");
    assert_eq!(json["healthy"], false);
    assert_eq!(json["projections"][0]["lag_events"], 6, "{json}");
    assert!(
        json["projections"][0]["lag_seconds"]
            .as_f64()
            .is_some_and(|s| s > 0.0 && s < 600.0),
        "{json}"
    );
    let problems = json["problems"].as_array().expect("problems");
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .is_some_and(|p| p.contains("read-model lags 6 events"))),
        "{problems:?}"
    );
    let (code, table) = b.chat(&["status", "--max-lag-events", "3"]).await;
    assert_eq!(code.expect("status runs"), ExitCode::from(2));
    assert!(
        table.contains("STATUS  lagging: projection read-model lags 6 events"),
        "{table}"
    );
    let (code, _) = b.status(&["--max-lag-seconds", "3600"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "young events are within an hour");
    let (code, _) = b.status(&["--max-lag-events", "6"]).await;
    assert_eq!(
        code,
        ExitCode::SUCCESS,
        "a lag equal to the threshold is healthy"
    );
    let (code, _) = b.status(&["--max-lag-seconds", "0.001"]).await;
    assert_eq!(code, ExitCode::from(2), "older than a millisecond");
}

async fn a_poison_event_is_listed_shown_and_dropped_by_its_event_id(b: Backend) {
    // In the log, but not what its schema says a MessageSent is.
    let poison_id = uuid::Uuid::now_v7();
    let poison = NewEvent {
        event_id: poison_id,
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: serde_json::json!({"content": "no channel, no seq"}),
        metadata: serde_json::json!({}),
    };
    let stream = format!("channel-{}", uuid::Uuid::new_v4());
    b.log()
        .append(&stream, ExpectedVersion::NoStream, &[poison])
        .await
        .expect("append");
    // Behind it, events that apply: the poison blocks nothing.
    let owner = UserId::new();
    let channel = create_channel(b.commands(), owner).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let letters = loop {
        let (code, out) = b.chat(&["dlq", "list", "--json"]).await;
        assert_eq!(code.expect("list runs"), ExitCode::SUCCESS);
        let letters: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("NDJSON"))
            .collect();
        if !letters.is_empty() {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["id"], poison_id.to_string());
    assert_eq!(letter["event_type"], "MessageSent");
    assert!(
        letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{letter}"
    );
    assert!(letter["failed_at"].is_string(), "{letter}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while b
        .read()
        .channel_for(channel.0, owner.0)
        .await
        .expect("query")
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "blocked behind the poison"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, status) = b.status(&[]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(status["dead_letters"]["depth"], 1, "{status}");

    let (code, table) = b.chat(&["dlq", "list"]).await;
    assert_eq!(code.expect("list"), ExitCode::SUCCESS);
    assert!(
        table.contains("ROUTING KEY") && table.contains(&poison_id.to_string()),
        "{table}"
    );
    let (code, shown) = b
        .chat(&["dlq", "show", &poison_id.to_string(), "--json"])
        .await;
    assert_eq!(code.expect("show"), ExitCode::SUCCESS);
    let shown: serde_json::Value = serde_json::from_str(shown.trim()).expect("json");
    assert_eq!(shown["dead_letter"]["id"], poison_id.to_string());
    assert_eq!(shown["body"]["event_id"], poison_id.to_string());
    assert_eq!(shown["body"]["data"]["content"], "no channel, no seq");
    assert_eq!(shown["properties"]["message_id"], poison_id.to_string());
    let (code, text) = b.chat(&["dlq", "show", &poison_id.to_string()]).await;
    assert_eq!(code.expect("show"), ExitCode::SUCCESS);
    for section in ["dead letter\n", "properties\n", "headers\n", "body\n"] {
        assert!(text.contains(section), "{section:?} missing in\n{text}");
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let error = b
        .chat(&["dlq", "show", &unknown])
        .await
        .0
        .expect_err("unknown id");
    assert!(error.to_string().contains("no dead letter"), "{error}");

    let (code, _) = b.chat(&["dlq", "drop", &poison_id.to_string()]).await;
    assert_eq!(code.expect("drop"), ExitCode::SUCCESS);
    let (_, out) = b.chat(&["dlq", "list", "--json"]).await;
    assert!(out.trim().is_empty(), "{out}");
    let error = b
        .chat(&["dlq", "drop", &poison_id.to_string()])
        .await
        .0
        .expect_err("gone");
    assert!(error.to_string().contains("no dead letter"), "{error}");
}

async fn a_rebuild_of_a_damaged_model_answers_as_the_fold_of_the_log(b: Backend) {
    let owner = UserId::new();
    let members: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    let mut channels = Vec::new();
    for _ in 0..2 {
        let channel = create_channel(b.commands(), owner).await;
        for m in &members {
            channel_command(b.commands(), *m, channel, ChannelCommand::Join).await;
        }
        channels.push(channel);
    }
    for n in 0..40 {
        let (channel, sender) = (channels[n % 2], members[n % 3]);
        let (_, seq) = send(b.commands(), sender, channel, &format!("hello {n}")).await;
        if n % 5 == 0 {
            channel_command(
                b.commands(),
                sender,
                channel,
                ChannelCommand::MarkRead { seq },
            )
            .await;
        }
    }
    channel_command(
        b.commands(),
        owner,
        channels[0],
        ChannelCommand::Ban {
            user_id: members[2],
        },
    )
    .await;
    channel_command(b.commands(), members[1], channels[1], ChannelCommand::Leave).await;
    channel_command(
        b.commands(),
        members[0],
        channels[1],
        ChannelCommand::SetMuted { muted: true },
    )
    .await;
    b.wait_projected().await;
    let (log, read) = (b.log(), b.read());
    let before = answers(read.as_ref(), log.as_ref()).await;

    for sql in [
        "DELETE FROM rm.messages WHERE seq % 3 = 0",
        "UPDATE rm.messages SET content = 'tampered' WHERE seq = 1",
        "UPDATE rm.channels SET name = 'damaged', last_seq = 0",
        "DELETE FROM rm.members WHERE role = 'member'",
        "DELETE FROM rm.bans",
        "DELETE FROM rm.stream_positions WHERE stream_id LIKE 'channel-%'",
    ] {
        b.damage(sql).await;
    }
    let damaged = answers(read.as_ref(), log.as_ref()).await;
    assert_ne!(damaged, before, "the damage shows");

    let (code, _) = b
        .chat(&["rebuild", "read-model", "--page-size", "16"])
        .await;
    assert_eq!(code.expect("rebuild"), ExitCode::SUCCESS);
    let (reference, _keep) = b.fresh_read_model().await;
    reference_fold(log.as_ref(), reference.as_ref()).await;
    let expected = answers(reference.as_ref(), log.as_ref()).await;
    assert_same_answers(&expected, &before, "the live-built model vs the fold");
    assert_same_answers(
        &answers(read.as_ref(), log.as_ref()).await,
        &expected,
        "rebuilt vs the fold",
    );
    let (code, _) = b.chat(&["rebuild", "--all"]).await;
    assert_eq!(code.expect("a second rebuild"), ExitCode::SUCCESS);
    assert_same_answers(
        &answers(read.as_ref(), log.as_ref()).await,
        &expected,
        "rebuilt twice vs the fold",
    );
}
