//! The set-based rebuild produces exactly the rows `projector::apply_event`
//! produces, event by event, for any page size — including sequences the
//! domain never emits (rejoins, bans and unbans in a row, edits of deleted
//! or unknown messages, clashing seqs and message ids, repeated creations,
//! an old schema version, an undecodable event that blocks its stream).

use crate::compare::{assert_same, dump, reference_fold};
use domain::*;
use event_store::{ExpectedVersion, NewEvent, PgEventStore};
use operator_tools::progress::Progress;
use operator_tools::rebuild::{self, RebuildOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use test_support::TestDb;
use uuid::Uuid;

fn new_event(event: &Event) -> NewEvent {
    let stored = event.to_stored();
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: stored.event_type,
        schema_version: stored.schema_version,
        data: stored.data,
        metadata: serde_json::json!({}),
    }
}

fn raw(event_type: &str, schema_version: u32, data: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.into(),
        schema_version,
        data,
        metadata: serde_json::json!({}),
    }
}

/// A random event of `channel` over small pools of users, messages and seqs.
fn random_event(
    rng: &mut StdRng,
    channel: ChannelId,
    users: &[UserId],
    messages: &[MessageId],
) -> Event {
    let channel_id = channel;
    let user_id = users[rng.random_range(0..users.len())];
    let by = users[rng.random_range(0..users.len())];
    let message_id = messages[rng.random_range(0..messages.len())];
    let seq = rng.random_range(1..=10u64);
    let content = format!("text {}", rng.random_range(0..1000));
    match rng.random_range(0..100) {
        0..30 => Event::MessageSent(MessageSent {
            channel_id,
            message_id,
            seq,
            sender_id: user_id,
            content,
            message_type: "text".into(),
            client_msg_id: None,
        }),
        30..40 => Event::MessageEdited(MessageEdited {
            channel_id,
            message_id,
            seq,
            sender_id: user_id,
            content,
            edited_by: user_id,
        }),
        40..47 => Event::MessageDeleted(MessageDeleted {
            channel_id,
            message_id,
            seq,
            sender_id: user_id,
            deleted_by: by,
        }),
        47..55 => Event::MemberJoined(MemberJoined {
            channel_id,
            user_id,
        }),
        55..58 => Event::MemberInvited(MemberInvited {
            channel_id,
            user_id,
            invited_by: by,
        }),
        58..63 => Event::MemberLeft(MemberLeft {
            channel_id,
            user_id,
        }),
        63..66 => Event::MemberKicked(MemberKicked {
            channel_id,
            user_id,
            kicked_by: by,
        }),
        66..70 => Event::MemberBanned(MemberBanned {
            channel_id,
            user_id,
            banned_by: by,
        }),
        70..73 => Event::MemberUnbanned(MemberUnbanned {
            channel_id,
            user_id,
            unbanned_by: by,
        }),
        73..78 => {
            let role = [Role::Owner, Role::Admin, Role::Member][rng.random_range(0..3)];
            Event::MemberRoleChanged(MemberRoleChanged {
                channel_id,
                user_id,
                role,
                changed_by: by,
            })
        }
        78..81 => Event::ChannelMuted(ChannelMuted {
            channel_id,
            user_id,
        }),
        81..84 => Event::ChannelUnmuted(ChannelUnmuted {
            channel_id,
            user_id,
        }),
        84..92 => Event::ReadUpTo(ReadUpTo {
            channel_id,
            user_id,
            seq,
        }),
        92..94 => Event::ChannelArchived(ChannelArchived {
            channel_id,
            archived_by: by,
        }),
        _ => Event::ChannelCreated(ChannelCreated {
            channel_id,
            name: format!("again {seq}"),
            kind: ChannelKind::Private,
            max_members: Some(seq as u32),
            owner_id: user_id,
        }),
    }
}

/// Fills the log with ~800 events in ~450 appends; returns how many events.
async fn fill_log(log: &PgEventStore) -> usize {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let users: Vec<UserId> = (0..6).map(|_| UserId::new()).collect();
    let messages: Vec<MessageId> = (0..14).map(|_| MessageId::new()).collect();
    let channels: Vec<ChannelId> = (0..3).map(|_| ChannelId::new()).collect();
    let mut appended = 0;
    // An old schema version first (upcast on read), then creations.
    let old = raw(
        "ChannelCreated",
        1,
        serde_json::json!({"channel_id": channels[2], "name": "v1", "private": true, "owner_id": users[0]}),
    );
    log.append(&channel_stream(channels[2]), ExpectedVersion::Any, &[old])
        .await
        .expect("append");
    appended += 1;
    for (i, channel) in channels.iter().take(2).enumerate() {
        let created = Event::ChannelCreated(ChannelCreated {
            channel_id: *channel,
            name: format!("c{i}"),
            kind: ChannelKind::Public,
            max_members: None,
            owner_id: users[i],
        });
        log.append(
            &channel_stream(*channel),
            ExpectedVersion::Any,
            &[new_event(&created)],
        )
        .await
        .expect("append");
        appended += 1;
    }
    for step in 0..450 {
        if rng.random_range(0..100) < 5 {
            let user = users[rng.random_range(0..users.len())];
            let registered = Event::UserRegistered(UserRegistered {
                user_id: user,
                username: format!("u{step}"),
                display_name: format!("U {step}"),
            });
            log.append(
                &user_stream(user),
                ExpectedVersion::Any,
                &[new_event(&registered)],
            )
            .await
            .expect("append");
            appended += 1;
            continue;
        }
        let channel = channels[rng.random_range(0..channels.len())];
        let batch: Vec<NewEvent> = (0..rng.random_range(1..=3))
            .map(|_| new_event(&random_event(&mut rng, channel, &users, &messages)))
            .collect();
        appended += batch.len();
        log.append(&channel_stream(channel), ExpectedVersion::Any, &batch)
            .await
            .expect("append");
        if step == 400 {
            // Undecodable: this channel's stream stops here, live and rebuilt.
            let corrupt = raw("MessageSent", 1, serde_json::json!({"seq": "seven"}));
            log.append(
                &channel_stream(channels[2]),
                ExpectedVersion::Any,
                &[corrupt],
            )
            .await
            .expect("append");
            appended += 1;
        }
    }
    appended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilt_rows_equal_apply_event_for_every_page_size() {
    let log_db = TestDb::new_event_log().await;
    let read_db = TestDb::new_read_model().await;
    let log = PgEventStore::new(log_db.pool.clone());
    let appended = fill_log(&log).await;
    reference_fold(&log, &read_db.pool, "expected").await;
    let expected = dump(&read_db.pool, "expected").await;
    let sizes: Vec<_> = expected.iter().map(|(t, rows)| (*t, rows.len())).collect();
    assert!(
        expected["messages"].len() > 10 && expected["members"].len() > 3,
        "the log exercises the model: {sizes:?}"
    );

    let projection = rebuild::projection("read-model").expect("known");
    let (mut copies, mut exacts) = (0, 0);
    for page_size in [1, 3, 8, 40, 5000] {
        let options = RebuildOptions {
            page_size,
            ..RebuildOptions::default()
        };
        let report = rebuild::rebuild(
            &read_db.pool,
            &log,
            projection,
            &options,
            &Progress::hidden(),
        )
        .await
        .expect("rebuild");
        assert_eq!(
            report.events, appended as u64,
            "page size {page_size}: every event read"
        );
        assert!(
            report.skipped >= 1,
            "page size {page_size}: the undecodable event is skipped"
        );
        copies += report.copy_pages;
        exacts += report.exact_pages;
        assert_same(
            &dump(&read_db.pool, "rm").await,
            &expected,
            &format!("page size {page_size}"),
        );
    }
    assert!(
        copies > 0 && exacts > 0,
        "both write paths ran (copy {copies}, exact {exacts})"
    );
}
