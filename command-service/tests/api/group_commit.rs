//! Group commit per stream: commands that arrive together on one channel are
//! appended in one transaction, and each caller still gets its own answer.

use crate::helpers::*;
use command_service::{CommandContext, CommandError, CommandService, Executed, Intent};
use domain::{ChannelCommand, DomainError, MessageId, MessagePolicy, UserId};
use event_store::PgEventStore;
use futures_util::future::join_all;
use std::collections::HashSet;
use uuid::Uuid;

fn service(app: &TestApp<impl Sized>) -> CommandService {
    CommandService::new(
        std::sync::Arc::new(PgEventStore::new(app.db.pool.clone())),
        MessagePolicy::default(),
    )
}

fn ctx(actor: Uuid, key: Option<String>, expected_version: Option<u64>) -> CommandContext {
    CommandContext {
        actor: UserId(actor),
        correlation_id: Uuid::new_v4(),
        expected_version,
        idempotency_key: key,
        request_fingerprint: None,
    }
}

fn send(message_id: MessageId, content: &str, client_msg_id: Option<&str>) -> Intent {
    Intent::Command(ChannelCommand::SendMessage {
        message_id,
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: client_msg_id.map(str::to_owned),
    })
}

/// The transactions that wrote `channel`'s events, in the log's order.
async fn transactions(app: &TestApp<impl Sized>, channel: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT transaction_id::text FROM events WHERE stream_id = $1 ORDER BY stream_version",
    )
    .bind(domain::channel_stream(channel.into()))
    .fetch_all(&app.db.pool)
    .await
    .expect("transactions")
}

#[actix_web::test]
async fn two_hundred_concurrent_sends_share_few_appends_and_each_gets_its_own_event() {
    const SENDS: usize = 201;
    let app = spawn().await;
    let (owner_id, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    let before = transactions(&app, channel).await.len();
    let commands = service(&app);
    let sends = (0..SENDS).map(|i| {
        let (commands, ctx) = (&commands, ctx(owner_id, None, None));
        let intent = send(MessageId::new(), &format!("message {i}"), None);
        async move {
            let executed = commands
                .execute(channel.into(), intent, &ctx, "MessageSent")
                .await
                .expect("every send is accepted");
            (i, executed)
        }
    });
    let mut seqs = Vec::new();
    for (i, executed) in join_all(sends).await {
        let Executed::Appended { events, .. } = &executed else {
            panic!("send {i} appended nothing: {executed:?}");
        };
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].data["content"],
            format!("message {i}"),
            "its own event"
        );
        seqs.push(events[0].data["seq"].as_u64().expect("seq"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=SENDS as u64).collect::<Vec<_>>());
    let written = transactions(&app, channel).await;
    let sent: HashSet<&String> = written[before..].iter().collect();
    assert_eq!(written.len() - before, SENDS);
    assert!(
        sent.len() <= SENDS / 10,
        "{} sends took {} transactions: they were not grouped",
        SENDS,
        sent.len()
    );
}

/// One group holding a send, its retry under the same key, a key used before
/// the group, a refusal, a stale `If-Match`, an edit, and a delete of a message
/// sent earlier in the same group: each answer is its own, and the log holds
/// exactly the commands that were accepted, in one transaction.
#[actix_web::test]
async fn one_group_answers_every_command_on_its_own() {
    let app = spawn().await;
    let (owner_id, owner) = app.user("owner").await;
    let (member_id, member) = app.user("member").await;
    let (outsider_id, _) = app.user("outsider").await;
    let channel = app.channel(&owner, "public").await;
    assert_eq!(app.join(&member, channel).await.status, 204);
    let commands = service(&app);
    let key = |id: &str| {
        command_service::client_msg_key(member_id.into(), channel.into(), id).expect("key")
    };
    let run = |actor, intent, key, expected| {
        let commands = &commands;
        async move {
            commands
                .execute(
                    channel.into(),
                    intent,
                    &ctx(actor, key, expected),
                    "MessageSent",
                )
                .await
        }
    };
    let earlier = MessageId::new();
    let sent_before = run(
        member_id,
        send(earlier, "earlier", Some("k0")),
        Some(key("k0")),
        None,
    )
    .await
    .expect("sent");
    let version_before = sent_before.version();
    let (doomed, edited) = (MessageId::new(), MessageId::new());
    assert!(
        run(member_id, send(edited, "to edit", None), None, None)
            .await
            .is_ok()
    );

    let opener = run(
        owner_id,
        send(MessageId::new(), "opens the turn", None),
        None,
        None,
    );
    let first = run(
        member_id,
        send(MessageId::new(), "a", Some("k1")),
        Some(key("k1")),
        None,
    );
    let retry = run(
        member_id,
        send(MessageId::new(), "b", Some("k1")),
        Some(key("k1")),
        None,
    );
    let old_key = run(
        member_id,
        send(MessageId::new(), "c", Some("k0")),
        Some(key("k0")),
        None,
    );
    let outsider = run(outsider_id, send(MessageId::new(), "d", None), None, None);
    let stale = run(owner_id, send(MessageId::new(), "e", None), None, Some(1));
    let edit = run(
        member_id,
        Intent::Edit {
            message_id: edited,
            content: "edited".into(),
        },
        None,
        None,
    );
    let to_delete = run(member_id, send(doomed, "f", None), None, None);
    let delete = run(member_id, Intent::Delete { message_id: doomed }, None, None);
    let (opener, first, retry, old_key, outsider, stale, edit, to_delete, delete) = tokio::join!(
        opener, first, retry, old_key, outsider, stale, edit, to_delete, delete
    );

    let first = first.expect("first");
    let Executed::Appended { events, .. } = &first else {
        panic!("the first send appends: {first:?}");
    };
    let Ok(Executed::Replayed {
        first: replayed,
        version,
    }) = &retry
    else {
        panic!("the retry in the same group replays: {retry:?}");
    };
    assert_eq!(replayed.event_id, events[0].event_id);
    assert_eq!(*version, first.version());
    let Ok(Executed::Replayed {
        first: old,
        version,
    }) = &old_key
    else {
        panic!("a key used before the group replays: {old_key:?}");
    };
    assert_eq!(old.data["message_id"], earlier.0.to_string());
    assert_eq!(*version, version_before);
    assert!(
        matches!(
            outsider,
            Err(CommandError::Rejected(DomainError::NotAMember))
        ),
        "{outsider:?}"
    );
    assert!(
        matches!(stale, Err(CommandError::StaleVersion { expected: 1, .. })),
        "{stale:?}"
    );
    for (what, result) in [
        ("opener", &opener),
        ("edit", &edit),
        ("send", &to_delete),
        ("delete", &delete),
    ] {
        assert!(
            matches!(result, Ok(Executed::Appended { .. })),
            "{what}: {result:?}"
        );
    }

    let logged: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, transaction_id::text FROM events WHERE stream_id = $1 \
         AND stream_version > $2 ORDER BY stream_version",
    )
    .bind(domain::channel_stream(channel.into()))
    .bind(version_before as i64 + 1)
    .fetch_all(&app.db.pool)
    .await
    .expect("log");
    let types: Vec<&str> = logged.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "MessageSent",
            "MessageSent",
            "MessageEdited",
            "MessageSent",
            "MessageDeleted"
        ],
        "exactly the accepted commands, in their order"
    );
    let grouped: HashSet<&String> = logged[1..].iter().map(|(_, tx)| tx).collect();
    assert_eq!(
        grouped.len(),
        1,
        "the group after the opener is one transaction"
    );
}

/// Two keyed ownership transfers (two events each) in one group, the second
/// by the owner the first made: a replay of either answers the version its
/// own command left, not the group's.
#[actix_web::test]
async fn a_replay_answers_its_own_commands_version_inside_a_group() {
    let app = spawn().await;
    let (owner_id, owner) = app.user("owner").await;
    let (a_id, a) = app.user("alice").await;
    let (b_id, b) = app.user("bob").await;
    let channel = app.channel(&owner, "public").await;
    for token in [&a, &b] {
        assert_eq!(app.join(token, channel).await.status, 204);
    }
    let transfer = |by: Uuid, to: Uuid, key: &str| {
        let intent = Intent::Command(ChannelCommand::ChangeRole {
            user_id: UserId(to),
            role: domain::Role::Owner,
        });
        (ctx(by, Some(key.to_owned()), None), intent)
    };
    let commands = service(&app);
    let (ctx_a, to_a) = transfer(owner_id, a_id, "to-a");
    let (ctx_b, to_b) = transfer(a_id, b_id, "to-b");
    let opener_ctx = ctx(owner_id, None, None);
    let opener = commands.execute(
        channel.into(),
        send(MessageId::new(), "opens the turn", None),
        &opener_ctx,
        "MessageSent",
    );
    let first = commands.execute(channel.into(), to_a.clone(), &ctx_a, "MemberRoleChanged");
    let second = commands.execute(channel.into(), to_b.clone(), &ctx_b, "MemberRoleChanged");
    let (opener, first, second) = tokio::join!(opener, first, second);
    assert!(opener.is_ok(), "{opener:?}");
    let (first, second) = (first.expect("to a"), second.expect("to b"));
    let (
        Executed::Appended {
            events: a_events, ..
        },
        Executed::Appended {
            events: b_events, ..
        },
    ) = (&first, &second)
    else {
        panic!("both transfers append: {first:?} {second:?}");
    };
    assert_eq!(
        (a_events.len(), b_events.len()),
        (2, 2),
        "a transfer is two role changes"
    );
    assert_eq!(
        a_events[0].transaction_id, b_events[0].transaction_id,
        "one group"
    );
    let again = service(&app);
    for (ctx, intent, first) in [(ctx_a, to_a, &first), (ctx_b, to_b, &second)] {
        let replay = again
            .execute(channel.into(), intent, &ctx, "MemberRoleChanged")
            .await
            .expect("replay");
        assert!(matches!(replay, Executed::Replayed { .. }), "{replay:?}");
        assert_eq!(replay.version(), first.version());
    }
}
