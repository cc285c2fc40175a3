//! Writes a small, real history into an event log through the command service
//! in process — three users, a channel, messages, a role change, a kick, a
//! ban, a deletion — and prints the moments between its steps, so the
//! commands in README.md can be tried on something:
//! `cargo run -p analyst-tools --example demo-log -- postgres://postgres@localhost:5432/chat_demo`

use command_service::{CommandContext, CommandService, Intent};
use domain::{
    ChannelCommand, ChannelId, ChannelKind, MessageFacts, MessageId, MessagePolicy, RegisterUser,
    Role, User, UserId, user_stream,
};
use event_store::{ExpectedVersion, NewEvent, PgEventStore};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@localhost:5432/chat_demo".into());
    let pool = event_store::connect(&url, 4).await?;
    let store = PgEventStore::new(pool.clone());
    let commands =
        CommandService::new(std::sync::Arc::new(store.clone()), MessagePolicy::default());
    let [ann, bob, cat] = [
        register(&store, "ann").await?,
        register(&store, "bob").await?,
        register(&store, "cat").await?,
    ];
    let general = ChannelId::new();
    let run = |actor: UserId, command: ChannelCommand| {
        let commands = &commands;
        async move {
            let ctx = CommandContext {
                actor,
                correlation_id: uuid::Uuid::now_v7(),
                expected_version: None,
                idempotency_key: None,
                request_fingerprint: None,
            };
            commands
                .execute(general, Intent::Command(command), &ctx, "any")
                .await
        }
    };
    let create = ChannelCommand::Create {
        channel_id: general,
        name: "general".into(),
        kind: ChannelKind::Public,
        max_members: None,
    };
    run(ann, create).await?;
    run(bob, ChannelCommand::Join).await?;
    run(cat, ChannelCommand::Join).await?;
    let hello = MessageId::new();
    for (sender, id, content) in [
        (ann, hello, "hello, \"world\""),
        (bob, MessageId::new(), "hi ann"),
        (cat, MessageId::new(), "spam spam"),
    ] {
        let send = ChannelCommand::SendMessage {
            message_id: id,
            content: content.into(),
            message_type: "text".into(),
            client_msg_id: None,
        };
        run(sender, send).await?;
    }
    moment(&pool, "after the first messages").await?;
    run(
        ann,
        ChannelCommand::ChangeRole {
            user_id: bob,
            role: Role::Admin,
        },
    )
    .await?;
    run(bob, ChannelCommand::Kick { user_id: cat }).await?;
    run(ann, ChannelCommand::Ban { user_id: cat }).await?;
    let facts = MessageFacts {
        channel_id: general,
        message_id: hello,
        seq: 1,
        sender_id: ann,
        deleted: false,
    };
    run(
        ann,
        ChannelCommand::DeleteMessage {
            message: Some(facts),
        },
    )
    .await?;
    moment(&pool, "after the kick, the ban and the deletion").await?;
    println!("channel {general}");
    Ok(())
}

async fn register(store: &PgEventStore, username: &str) -> anyhow::Result<UserId> {
    let user_id = UserId::new();
    let events = User::decide(
        None,
        RegisterUser {
            user_id,
            username: username.into(),
            display_name: None,
        },
    )?;
    let new: Vec<NewEvent> = events
        .iter()
        .map(|e| {
            let stored = e.to_stored();
            NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: stored.event_type,
                schema_version: stored.schema_version,
                data: stored.data,
                metadata: serde_json::json!({"correlation_id": uuid::Uuid::now_v7(), "actor_id": user_id}),
            }
        })
        .collect();
    store
        .append(&user_stream(user_id), ExpectedVersion::NoStream, &new)
        .await?;
    Ok(user_id)
}

/// Prints the database's clock between two steps.
async fn moment(pool: &sqlx::PgPool, label: &str) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    println!(
        "{label}: {}",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Ok(())
}
