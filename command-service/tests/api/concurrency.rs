//! Many members sending into one channel at once: every send succeeds and
//! the seqs are exactly 1..=n.

use crate::helpers::*;
use futures_util::future::join_all;

#[actix_web::test]
async fn sixty_four_members_sending_at_once_all_succeed_with_distinct_seqs() {
    const MEMBERS: usize = 64;
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    let mut tokens = Vec::new();
    for i in 0..MEMBERS {
        let (_, token) = app.user(&format!("member{i}")).await;
        assert_eq!(app.join(&token, channel).await.status, 204);
        tokens.push(token);
    }
    let answers = join_all(tokens.iter().map(|t| app.send(t, channel, "at once"))).await;
    let mut seqs: Vec<u64> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 201, "{a:?}");
            a.body["seq"].as_u64().expect("seq")
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=MEMBERS as u64).collect::<Vec<_>>());
}

/// Two service instances (two processes' worth of caches and locks) on one
/// database: their appends race for real and retries resolve it.
#[actix_web::test]
async fn two_instances_racing_on_one_channel_lose_nothing() {
    use command_service::{CommandContext, CommandService, Intent};
    use domain::{ChannelCommand, MessageId, MessagePolicy, UserId};
    use event_store::PgEventStore;

    let app = spawn().await;
    let (owner_id, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    let a = CommandService::new(
        std::sync::Arc::new(PgEventStore::new(app.db.pool.clone())),
        MessagePolicy::default(),
    );
    let b = CommandService::new(
        std::sync::Arc::new(PgEventStore::new(app.db.pool.clone())),
        MessagePolicy::default(),
    );
    let runs = (0..40).map(|i| {
        let service = if i % 2 == 0 { &a } else { &b };
        let ctx = CommandContext {
            actor: UserId(owner_id),
            correlation_id: uuid::Uuid::new_v4(),
            expected_version: None,
            idempotency_key: None,
            request_fingerprint: None,
        };
        let command = ChannelCommand::SendMessage {
            message_id: MessageId::new(),
            content: "x".into(),
            message_type: "text".into(),
            client_msg_id: None,
        };
        async move {
            service
                .execute(
                    channel.into(),
                    Intent::Command(command),
                    &ctx,
                    "MessageSent",
                )
                .await
        }
    });
    let results = join_all(runs).await;
    let mut seqs: Vec<u64> = results
        .into_iter()
        .map(|r| {
            r.expect("every send succeeds")
                .first_event()
                .and_then(|e| e.data["seq"].as_u64())
                .expect("seq")
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
}
