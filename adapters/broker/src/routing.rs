//! Routing keys of `chat.exchange`: `chat.channel.{id}.{category}` for channel
//! streams and `chat.user.{id}.{category}` for user streams.

/// The category an event type is routed under (the last routing-key word).
pub fn event_category(event_type: &str) -> &'static str {
    match event_type {
        "ChannelCreated" | "ChannelArchived" => "channel",
        "MemberJoined" | "MemberInvited" | "MemberLeft" | "MemberKicked" | "MemberBanned"
        | "MemberUnbanned" | "MemberRoleChanged" => "member",
        "ChannelMuted" | "ChannelUnmuted" => "mute",
        "MessageSent" | "MessageEdited" | "MessageDeleted" => "message",
        "ReadUpTo" => "read",
        "UserRegistered" => "account",
        _ => "other",
    }
}

/// The routing key of an event of `event_type` in stream `stream_id`
/// (`channel-{uuid}` or `user-{uuid}`; other streams route as `chat.{stream}.{category}`).
pub fn routing_key(stream_id: &str, event_type: &str) -> String {
    let category = event_category(event_type);
    match stream_id.split_once('-') {
        Some(("channel", id)) => format!("chat.channel.{id}.{category}"),
        Some(("user", id)) => format!("chat.user.{id}.{category}"),
        _ => format!("chat.{}.{category}", stream_id.replace('.', "_")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design() {
        let id = "0190c6d2-58e4-7c1e-9f4a-3a1b2c3d4e5f";
        assert_eq!(
            routing_key(&format!("channel-{id}"), "MessageSent"),
            format!("chat.channel.{id}.message")
        );
        assert_eq!(
            routing_key(&format!("channel-{id}"), "MemberBanned"),
            format!("chat.channel.{id}.member")
        );
        assert_eq!(
            routing_key(&format!("user-{id}"), "UserRegistered"),
            format!("chat.user.{id}.account")
        );
    }
}
