//! `chat state channel ID --as-of T` shows the members, roles and bans of
//! that moment, before and after a role change, a kick and a ban, on both
//! backends.

use crate::helpers::Log;
use analyst_tools::state::{ChannelState, channel_as_of};
use analyst_tools::{Aggregate, AnalystError, ChannelStateArgs, StateArgs};
use domain::{ChannelCommand, ChannelId, MessageFacts, Role};

fn roles(state: &ChannelState) -> Vec<(String, Role)> {
    state
        .members
        .iter()
        .map(|m| (m.username.clone().unwrap_or_default(), m.role))
        .collect()
}

fn banned(state: &ChannelState) -> Vec<String> {
    state
        .banned
        .iter()
        .map(|b| b.username.clone().unwrap_or_default())
        .collect()
}

both!(
    state_as_of_follows_role_changes_kicks_and_bans,
    state_prints_text_and_json_and_refuses_bad_input
);

async fn state_as_of_follows_role_changes_kicks_and_bans(log: Log) {
    let ann = log.register("ann").await;
    let bob = log.register("bob").await;
    let cat = log.register("cat").await;
    let dan = log.register("dan").await;
    let before = log.now().await;
    let channel = log.create_channel(ann, "general").await;
    for user in [bob, cat, dan] {
        log.command(user, channel, ChannelCommand::Join).await;
    }
    let first = log.send(bob, channel, "one").await;
    log.send(cat, channel, "two").await;
    log.send(dan, channel, "three").await;
    let t1 = log.now().await;
    log.command(
        ann,
        channel,
        ChannelCommand::ChangeRole {
            user_id: bob,
            role: Role::Admin,
        },
    )
    .await;
    let t2 = log.now().await;
    log.command(bob, channel, ChannelCommand::Kick { user_id: cat })
        .await;
    let t3 = log.now().await;
    log.command(ann, channel, ChannelCommand::Ban { user_id: dan })
        .await;
    let facts = MessageFacts {
        channel_id: channel,
        message_id: first,
        seq: 1,
        sender_id: bob,
        deleted: false,
    };
    log.command(
        ann,
        channel,
        ChannelCommand::DeleteMessage {
            message: Some(facts),
        },
    )
    .await;
    let t4 = log.now().await;

    let source = log.source();
    let at = |t| channel_as_of(&source, channel, t);
    let s1 = at(t1).await.expect("t1");
    assert_eq!(
        roles(&s1),
        [
            ("ann".into(), Role::Owner),
            ("bob".into(), Role::Member),
            ("cat".into(), Role::Member),
            ("dan".into(), Role::Member)
        ]
    );
    assert_eq!((s1.message_count, s1.deleted_count, s1.last_seq), (3, 0, 3));
    assert!(banned(&s1).is_empty());
    assert_eq!(s1.name, "general");

    let s2 = at(t2).await.expect("t2");
    assert_eq!(
        roles(&s2),
        [
            ("ann".into(), Role::Owner),
            ("bob".into(), Role::Admin),
            ("cat".into(), Role::Member),
            ("dan".into(), Role::Member)
        ]
    );
    let s3 = at(t3).await.expect("t3");
    assert_eq!(
        roles(&s3),
        [
            ("ann".into(), Role::Owner),
            ("bob".into(), Role::Admin),
            ("dan".into(), Role::Member)
        ]
    );
    let s4 = at(t4).await.expect("t4");
    assert_eq!(
        roles(&s4),
        [("ann".into(), Role::Owner), ("bob".into(), Role::Admin)]
    );
    assert_eq!(banned(&s4), ["dan"]);
    assert_eq!((s4.message_count, s4.deleted_count, s4.last_seq), (3, 1, 3));
    assert_eq!(
        s4.stream_version, 11,
        "create, 3 joins, 3 messages, role, kick, ban, delete"
    );

    let not_yet = at(before).await;
    assert!(
        matches!(not_yet, Err(AnalystError::NotYetCreated { .. })),
        "{not_yet:?}"
    );
    let unknown = channel_as_of(&source, ChannelId::new(), t4).await;
    assert!(
        matches!(unknown, Err(AnalystError::UnknownChannel(_))),
        "{unknown:?}"
    );
}

async fn state_prints_text_and_json_and_refuses_bad_input(log: Log) {
    let ann = log.register("ann").await;
    let channel = log.create_channel(ann, "general").await;
    log.send(ann, channel, "hello").await;
    let settings = log.settings("postgres://postgres@localhost:5432/unused_read");
    let state = |id: String, as_of: Option<String>, json: bool| StateArgs {
        aggregate: Aggregate::Channel(ChannelStateArgs { id, as_of, json }),
    };

    let mut out = Vec::new();
    analyst_tools::run_state(
        &state(format!("channel-{channel}"), None, true),
        &settings,
        &mut out,
    )
    .await
    .expect("json");
    let json: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
    assert_eq!(json["name"], "general");
    assert_eq!(json["kind"], "public");
    assert_eq!(json["message_count"], 1);
    assert_eq!(json["members"][0]["username"], "ann");
    assert_eq!(json["members"][0]["role"], "owner");

    let mut out = Vec::new();
    let now = chrono::Utc::now().to_rfc3339();
    analyst_tools::run_state(
        &state(channel.to_string(), Some(now), false),
        &settings,
        &mut out,
    )
    .await
    .expect("text");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.contains("\"general\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("owner") && l.contains("ann")),
        "{text}"
    );
    assert!(
        text.contains("1 sent, 0 edited, 0 deleted; last seq 1"),
        "{text}"
    );

    for (id, as_of, expected) in [
        ("not-a-uuid".to_owned(), None, "invalid channel ID"),
        (
            channel.to_string(),
            Some("soon".to_owned()),
            "invalid --as-of \"soon\"",
        ),
        (ChannelId::new().to_string(), None, "no channel"),
        (
            channel.to_string(),
            Some("2001-01-01T00:00:00Z".into()),
            "channel ",
        ),
    ] {
        let err = analyst_tools::run_state(&state(id, as_of, false), &settings, &mut Vec::new())
            .await
            .expect_err("fails");
        let line = err.to_string();
        assert!(line.starts_with(expected) && !line.contains('\n'), "{line}");
    }
}
