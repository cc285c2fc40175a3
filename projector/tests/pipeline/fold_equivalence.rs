//! Every event appended is projected exactly once in effect: concurrent
//! writers fill the log, then the read model is compared with a fold of it.

use crate::helpers::Pipeline;
use domain::{
    Channel, ChannelCommand, ChannelId, Event, MessageFacts, Role, StoredEvent, UserId,
    channel_stream,
};
use std::collections::BTreeMap;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_read_model_equals_a_fold_of_the_log() {
    let p = Pipeline::running().await;
    let owner = UserId::new();
    let channels = [p.create_channel(owner).await, p.create_channel(owner).await];
    let members: Vec<UserId> = (0..6).map(|_| UserId::new()).collect();
    for channel in channels {
        for m in &members {
            p.command(*m, channel, ChannelCommand::Join).await;
        }
    }
    let writers = members.iter().enumerate().map(|(i, member)| {
        let p = &p;
        async move {
            let channel = channels[i % 2];
            for n in 0..15 {
                let seq = p.send(*member, channel, &format!("m{n} from {i}")).await;
                if n % 5 == 0 {
                    p.command(*member, channel, ChannelCommand::MarkRead { seq })
                        .await;
                }
            }
            if i == 0 {
                p.command(*member, channel, ChannelCommand::SetMuted { muted: true })
                    .await;
            }
        }
    });
    futures_util::future::join_all(writers).await;
    // Edits, deletes and membership changes after the flood.
    let channel = channels[0];
    let stream = channel_stream(channel);
    let sent: Vec<MessageFacts> = message_facts(&p, &stream).await.into_values().collect();
    let edit_target = sent
        .iter()
        .find(|m| m.sender_id == members[0])
        .expect("a message of member 0")
        .clone();
    p.command(
        members[0],
        channel,
        ChannelCommand::EditMessage {
            message: Some(edit_target),
            content: "edited".into(),
        },
    )
    .await;
    let delete_target = sent
        .iter()
        .find(|m| m.sender_id == members[2])
        .expect("a message of member 2")
        .clone();
    p.command(
        owner,
        channel,
        ChannelCommand::DeleteMessage {
            message: Some(delete_target),
        },
    )
    .await;
    p.command(
        owner,
        channel,
        ChannelCommand::ChangeRole {
            user_id: members[1],
            role: Role::Admin,
        },
    )
    .await;
    p.command(
        owner,
        channel,
        ChannelCommand::Ban {
            user_id: members[3],
        },
    )
    .await;
    p.command(members[4], channel, ChannelCommand::Leave).await;
    // Ownership transfer: members[5] becomes owner, the old owner steps down to admin.
    p.command(
        owner,
        channel,
        ChannelCommand::ChangeRole {
            user_id: members[5],
            role: Role::Owner,
        },
    )
    .await;

    p.wait_projected().await;
    for channel in channels {
        assert_channel_matches_log(&p, channel).await;
    }
}

pub async fn assert_channel_matches_log(p: &Pipeline, channel: ChannelId) {
    let stream = channel_stream(channel);
    let events = p.store().read_stream(&stream, 0).await.expect("log");
    let state = events
        .iter()
        .map(decode)
        .fold(None, |s, e| Channel::evolve(s, &e))
        .expect("channel exists");

    let rows: Vec<(Uuid, String, bool, i64)> =
        sqlx::query_as("SELECT user_id, role, muted, read_seq FROM rm.members WHERE channel_id = $1 ORDER BY user_id")
            .bind(channel.0)
            .fetch_all(&p.read.pool)
            .await
            .expect("members");
    let expected: Vec<(Uuid, String, bool, i64)> = state
        .members
        .iter()
        .map(|(id, m)| {
            (
                id.0,
                role_name(m.role).to_owned(),
                m.muted,
                m.read_seq as i64,
            )
        })
        .collect();
    assert_eq!(rows, expected, "members differ from the fold of the log");

    let bans: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM rm.bans WHERE channel_id = $1 ORDER BY user_id")
            .bind(channel.0)
            .fetch_all(&p.read.pool)
            .await
            .expect("bans");
    assert_eq!(bans, state.banned.iter().map(|u| u.0).collect::<Vec<_>>());

    let (last_seq, archived, owner_id): (i64, bool, Uuid) = sqlx::query_as(
        "SELECT last_seq, archived, owner_id FROM rm.channels WHERE channel_id = $1",
    )
    .bind(channel.0)
    .fetch_one(&p.read.pool)
    .await
    .expect("channel row");
    let owners: Vec<Uuid> = state
        .members
        .iter()
        .filter(|(_, m)| m.role == Role::Owner)
        .map(|(id, _)| id.0)
        .collect();
    assert_eq!(owners.len(), 1, "the fold has exactly one owner");
    assert_eq!(
        (last_seq as u64, archived, owner_id),
        (state.last_seq, state.archived, owners[0]),
        "channel row differs from the fold of the log (last_seq, archived, owner_id)"
    );

    // Messages: one row per MessageSent, seqs 1..=last_seq, content as last edited, tombstones.
    let mut expected_messages: BTreeMap<i64, (Uuid, Option<String>, bool)> = BTreeMap::new();
    for event in events.iter().map(decode) {
        match event {
            Event::MessageSent(e) => {
                expected_messages.insert(e.seq as i64, (e.message_id.0, Some(e.content), false));
            }
            Event::MessageEdited(e) => {
                if let Some(m) = expected_messages.get_mut(&(e.seq as i64)) {
                    m.1 = Some(e.content);
                }
            }
            Event::MessageDeleted(e) => {
                if let Some(m) = expected_messages.get_mut(&(e.seq as i64)) {
                    *m = (m.0, None, true);
                }
            }
            _ => {}
        }
    }
    let rows: Vec<(i64, Uuid, Option<String>, bool)> =
        sqlx::query_as("SELECT seq, message_id, content, deleted FROM rm.messages WHERE channel_id = $1 ORDER BY seq")
            .bind(channel.0)
            .fetch_all(&p.read.pool)
            .await
            .expect("messages");
    let rows: BTreeMap<i64, (Uuid, Option<String>, bool)> = rows
        .into_iter()
        .map(|(s, id, c, d)| (s, (id, c, d)))
        .collect();
    assert_eq!(
        rows, expected_messages,
        "messages differ from the fold of the log"
    );
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (1..=state.last_seq as i64).collect::<Vec<_>>(),
        "seqs are gap-free"
    );
}

pub fn decode(recorded: &event_store::RecordedEvent) -> Event {
    Event::from_stored(&StoredEvent {
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        data: recorded.data.clone(),
    })
    .expect("log events decode")
}

async fn message_facts(p: &Pipeline, stream: &str) -> BTreeMap<u64, MessageFacts> {
    let mut facts = BTreeMap::new();
    for event in p
        .store()
        .read_stream(stream, 0)
        .await
        .expect("log")
        .iter()
        .map(decode)
    {
        if let Event::MessageSent(e) = &event {
            facts.insert(e.seq, MessageFacts::evolve(None, &event).expect("facts"));
        }
    }
    facts
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Member => "member",
    }
}
