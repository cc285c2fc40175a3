//! Commands through the real command service, on whichever log it holds:
//! what the projector's tests write before they watch it apply.

use command_service::{CommandContext, CommandService, Executed, Intent};
use domain::{ChannelCommand, ChannelId, ChannelKind, MessageId, UserId};

/// Runs a channel command as `actor`.
pub async fn command(
    commands: &CommandService,
    actor: UserId,
    channel: ChannelId,
    command: ChannelCommand,
) -> Executed {
    let ctx = CommandContext {
        actor,
        correlation_id: uuid::Uuid::now_v7(),
        expected_version: None,
        idempotency_key: None,
        request_fingerprint: None,
    };
    commands
        .execute(channel, Intent::Command(command), &ctx, "any")
        .await
        .expect("command succeeds")
}

/// A public channel named `general`, owned by `owner`.
pub async fn create_channel(commands: &CommandService, owner: UserId) -> ChannelId {
    let channel_id = ChannelId::new();
    let create = ChannelCommand::Create {
        channel_id,
        name: "general".into(),
        kind: ChannelKind::Public,
        max_members: None,
    };
    command(commands, owner, channel_id, create).await;
    channel_id
}

/// Sends `content` to `channel`; returns its seq.
pub async fn send(
    commands: &CommandService,
    sender: UserId,
    channel: ChannelId,
    content: &str,
) -> u64 {
    let send = ChannelCommand::SendMessage {
        message_id: MessageId::new(),
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: None,
    };
    command(commands, sender, channel, send)
        .await
        .first_event()
        .and_then(|e| e.data["seq"].as_u64())
        .expect("seq")
}
