//! A rebuild beside the running system: the rebuilt model equals the live
//! one row by row; and while a writer keeps sending and a reader keeps
//! querying, no query fails or sees a partial model, and the final model
//! equals a fold of the whole log.

use crate::compare::{assert_same, dump, reference_fold, schemas_like, wait_visible};
use crate::helpers::Pipeline;
use command_service::Intent;
use domain::{ChannelCommand, ChannelId, Role, UserId, UserRegistered};
use event_store::{ExpectedVersion, NewEvent};
use operator_tools::progress::Progress;
use operator_tools::rebuild::{self, RebuildOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Users, three channels, and a varied history in them.
async fn seed(p: &Pipeline) -> (UserId, Vec<ChannelId>, Vec<UserId>) {
    let owner = UserId::new();
    let members: Vec<UserId> = (0..5).map(|_| UserId::new()).collect();
    for user in std::iter::once(&owner).chain(&members) {
        let registered = domain::Event::UserRegistered(UserRegistered {
            user_id: *user,
            username: format!("user{}", &user.0.simple().to_string()[24..]),
            display_name: "someone".into(),
        });
        let stored = registered.to_stored();
        let event = NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            data: stored.data,
            metadata: serde_json::json!({}),
        };
        p.store()
            .append(
                &domain::user_stream(*user),
                ExpectedVersion::NoStream,
                &[event],
            )
            .await
            .expect("register");
    }
    let mut channels = Vec::new();
    for _ in 0..3 {
        let channel = p.create_channel(owner).await;
        for m in &members {
            p.channel_command(*m, channel, ChannelCommand::Join).await;
        }
        channels.push(channel);
    }
    let mut sent = Vec::new();
    for n in 0..150 {
        let channel = channels[n % 3];
        let (id, seq) = p.send(members[n % 5], channel, &format!("hello {n}")).await;
        sent.push((channel, members[n % 5], id));
        if n % 7 == 0 {
            p.channel_command(members[n % 5], channel, ChannelCommand::MarkRead { seq })
                .await;
        }
    }
    let (c, sender, id) = sent[3];
    p.command(
        sender,
        c,
        Intent::Edit {
            message_id: id,
            content: "edited".into(),
        },
    )
    .await;
    let (c, sender, id) = sent[4];
    p.command(sender, c, Intent::Delete { message_id: id })
        .await;
    let c = channels[0];
    p.channel_command(
        owner,
        c,
        ChannelCommand::ChangeRole {
            user_id: members[1],
            role: Role::Admin,
        },
    )
    .await;
    p.channel_command(
        owner,
        c,
        ChannelCommand::Ban {
            user_id: members[2],
        },
    )
    .await;
    p.channel_command(members[3], c, ChannelCommand::Leave)
        .await;
    p.channel_command(members[0], c, ChannelCommand::SetMuted { muted: true })
        .await;
    p.channel_command(owner, channels[2], ChannelCommand::Archive)
        .await;
    (owner, channels, members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_under_load_switches_without_a_failed_or_partial_query() {
    let p = Arc::new(Pipeline::running().await);
    let (_owner, channels, members) = seed(&p).await;
    p.wait_projected().await;
    wait_visible(&p.log.pool).await;
    let projection = rebuild::projection("read-model").expect("known");

    // Quiet: the rebuilt model is the live-built one, row by row.
    let live = dump(&p.read.pool, "rm").await;
    let checkpoints_before: Vec<String> =
        sqlx::query_scalar("SELECT to_jsonb(c)::text FROM rm.checkpoints c")
            .fetch_all(&p.read.pool)
            .await
            .expect("checkpoints");
    let options = RebuildOptions {
        page_size: 16,
        ..RebuildOptions::default()
    };
    rebuild::rebuild(
        &p.read.pool,
        &p.store(),
        projection,
        &options,
        &Progress::hidden(),
    )
    .await
    .expect("rebuild");
    assert_same(
        &dump(&p.read.pool, "rm").await,
        &live,
        "rebuilt vs live-built",
    );
    let checkpoints_after: Vec<String> =
        sqlx::query_scalar("SELECT to_jsonb(c)::text FROM rm.checkpoints c")
            .fetch_all(&p.read.pool)
            .await
            .expect("checkpoints");
    assert_eq!(
        checkpoints_after, checkpoints_before,
        "checkpoints carried over"
    );

    // Under load: a writer sends, a reader checks every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (p, stop, channels, members) =
            (p.clone(), stop.clone(), channels.clone(), members.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (channel, member) = (channels[n % 2], members[n % 5]);
                if member == members[2] || member == members[3] {
                    // Banned or gone from channel 0: rejoin channel 1 instead.
                    p.channel_command(member, channels[1], ChannelCommand::Join)
                        .await;
                } else {
                    let (_, seq) = p.send(member, channel, &format!("load {n}")).await;
                    if n.is_multiple_of(5) {
                        p.channel_command(member, channel, ChannelCommand::MarkRead { seq })
                            .await;
                    }
                }
                n += 1;
            }
            n
        })
    };
    let reader = {
        let (read, stop) = (p.read.pool.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut queries, mut last_messages) = (0u64, 0i64);
            while !stop.load(Ordering::Relaxed) {
                let (messages, channels, ownerless, members): (i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM rm.messages), (SELECT count(*) FROM rm.channels), \
                     (SELECT count(*) FROM rm.channels c WHERE NOT EXISTS \
                        (SELECT 1 FROM rm.members m WHERE m.channel_id = c.channel_id AND m.user_id = c.owner_id)), \
                     (SELECT count(*) FROM rm.members)",
                )
                .fetch_one(&read)
                .await
                .expect("no query fails, during the rebuild or its switch");
                assert!(
                    messages >= last_messages,
                    "messages went back from {last_messages} to {messages}"
                );
                assert_eq!(
                    (channels, ownerless),
                    (3, 0),
                    "every channel, each with its owner"
                );
                assert_eq!(members, 16, "members of the three channels");
                last_messages = messages;
                queries += 1;
            }
            queries
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for page_size in [64, 1000] {
        let options = RebuildOptions {
            page_size,
            ..RebuildOptions::default()
        };
        let report = rebuild::rebuild(
            &p.read.pool,
            &p.store(),
            projection,
            &options,
            &Progress::hidden(),
        )
        .await
        .expect("rebuild under load");
        assert!(
            report.events > 66,
            "the seeded history and some load: {report:?}"
        );
        eprintln!("{}", report.summary());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let sent = writer.await.expect("writer");
    let queries = reader.await.expect("the reader saw nothing wrong");
    assert!(
        sent > 20 && queries > 20,
        "{sent} writes and {queries} reads overlapped the rebuilds"
    );
    eprintln!("{sent} writes and {queries} reads overlapped the rebuilds");
    assert!(
        schemas_like(&p.read.pool, "rm_").await.is_empty(),
        "no rebuild schema left behind"
    );

    // The live projector carried on in the rebuilt tables: all equals a fold.
    p.wait_projected().await;
    reference_fold(&p.store(), &p.read.pool, "expected").await;
    assert_same(
        &dump(&p.read.pool, "rm").await,
        &dump(&p.read.pool, "expected").await,
        "final vs fold of the log",
    );
}
