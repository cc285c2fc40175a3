//! Membership holds on every instance whatever the broker does: a member
//! kicked while their gateway's broker connection is down is unsubscribed
//! anyway (from the log), receives nothing more, and once the feed is back
//! the gap it left is repaired for the others.

use crate::helpers::*;
use domain::{ChannelCommand, ChannelKind, UserId};
use serde_json::json;
use std::time::Duration;

/// A RabbitMQ user of the test's own, so its gateway can be kept out of the
/// broker without touching anyone else's connections.
struct BrokerUser {
    name: String,
    vhost: String,
}

impl BrokerUser {
    fn new(vhost: &str) -> BrokerUser {
        let name = format!("gw_{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_user", &name, "secret"]);
        let user = BrokerUser {
            name,
            vhost: vhost.to_owned(),
        };
        user.allow();
        user
    }

    fn allow(&self) {
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.vhost,
            &self.name,
            ".*",
            ".*",
            ".*",
        ]);
    }

    fn deny(&self) {
        rabbitmqctl(&["clear_permissions", "-p", &self.vhost, &self.name]);
    }

    fn url(&self) -> String {
        format!("amqp://{}:secret@127.0.0.1:5672/{}", self.name, self.vhost)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.name])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Closes the one broker connection named `name` (its client-provided name).
fn close_connection(name: &str) {
    let listing = rabbitmqctl(&[
        "list_connections",
        "--no-table-headers",
        "pid",
        "client_properties",
    ]);
    let pid = listing
        .lines()
        .find(|line| line.contains(name))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no broker connection named {name} in {listing}"))
        .to_owned();
    rabbitmqctl(&["close_connection", &pid, "test cuts the gateway's feed"]);
}

/// Waits (at most 10 s) until `gateway`'s broker feed is `connected`.
async fn feed_becomes(gateway: &gateway::Gateway, connected: bool) {
    for _ in 0..200 {
        if gateway.feed_connected() == connected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway's feed never became connected = {connected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_kicked_while_their_gateways_broker_link_is_cut_is_unsubscribed() {
    let stack = Stack::new().await;
    let user = BrokerUser::new(&stack.vhost.name);
    let (first, _) = stack.gateway(|_| {}).await;
    let amqp = user.url();
    let (second, b_gateway) = stack.gateway(|c| c.amqp_url = amqp).await;
    feed_becomes(&b_gateway, true).await;
    let (owner, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(owner, ChannelKind::Private, &[bob]).await;
    let mut kicked = Client::connect(&second, bob).await;
    kicked.subscribe(channel, None).await;
    let mut watcher = Client::connect(&second, owner).await;
    watcher.subscribe(channel, None).await;
    let mut owner_a = Client::connect(&first, owner).await;
    owner_a.subscribe(channel, None).await;

    // Cut B off the broker and keep it off.
    user.deny();
    close_connection(&format!("chat-gateway-{}", b_gateway.instance_id));
    feed_becomes(&b_gateway, false).await;

    stack
        .command(owner, channel, ChannelCommand::Kick { user_id: bob })
        .await;
    let (ended, _) = kicked.until("unsubscribed").await;
    assert_eq!(
        (ended["channel_id"].clone(), ended["reason"].clone()),
        (json!(channel.0), json!("kicked"))
    );
    stack.send(owner, channel, "after the kick").await;
    stack.wait_seq(channel, 1).await;
    // Instance A got it live.
    assert_eq!(owner_a.until("message").await.0["seq"], 1);

    // B comes back: its remaining subscriber gets what it missed, then live.
    user.allow();
    feed_becomes(&b_gateway, true).await;
    stack.send(owner, channel, "back").await;
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        let (message, _) = watcher.until("message").await;
        seqs.push(message["seq"].as_u64().expect("seq"));
    }
    assert_eq!(seqs, vec![1, 2]);
    // The kicked member saw none of it, and can no longer type there.
    while let Some(frame) = kicked.try_next_frame(Duration::from_millis(300)).await {
        assert_ne!(frame["type"], "message", "a kicked member received {frame}");
    }
    kicked
        .send_json(json!({"type": "typing", "channel_id": channel.0}))
        .await;
    assert_eq!(kicked.until("error").await.0["code"], "not_subscribed");
}

/// Edits and deletes are not seqs: a gap repair cannot find them. While B's
/// feed is cut they still reach B's subscribers (from the log), and A's
/// subscribers, who get them live too, see each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_and_deletes_while_a_gateways_feed_is_cut_still_arrive_once() {
    let stack = Stack::new().await;
    let user = BrokerUser::new(&stack.vhost.name);
    let (first, _) = stack.gateway(|_| {}).await;
    let amqp = user.url();
    let (second, b_gateway) = stack.gateway(|c| c.amqp_url = amqp).await;
    feed_becomes(&b_gateway, true).await;
    let (owner, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(owner, ChannelKind::Public, &[bob]).await;
    let mut on_b = Client::connect(&second, bob).await;
    on_b.subscribe(channel, None).await;
    let mut on_a = Client::connect(&first, owner).await;
    on_a.subscribe(channel, None).await;
    stack.send(owner, channel, "one").await;
    stack.send(owner, channel, "two").await;
    let mut ids = Vec::new();
    while ids.len() < 2 {
        ids.push(on_b.until("message").await.0["message_id"].clone());
    }
    while on_a.until("message").await.0["seq"] != 2 {}

    user.deny();
    close_connection(&format!("chat-gateway-{}", b_gateway.instance_id));
    feed_becomes(&b_gateway, false).await;

    let edits = ["one, edited", "one, edited again"];
    for content in edits {
        on_a.send_json(json!({"type": "edit", "channel_id": channel.0,
            "message_id": ids[0], "content": content}))
            .await;
    }
    on_a.send_json(json!({"type": "delete", "channel_id": channel.0, "message_id": ids[1]}))
        .await;

    // B's subscriber: both edits in order, then the delete, with the feed down.
    let (edited, _) = on_b.until("message_edited").await;
    assert_eq!(edited["content"], edits[0]);
    let (edited, _) = on_b.until("message_edited").await;
    assert_eq!(edited["content"], edits[1]);
    let (deleted, _) = on_b.until("message_deleted").await;
    assert_eq!(deleted["message_id"], ids[1]);
    assert!(
        !b_gateway.feed_connected(),
        "the feed came back too early to prove anything"
    );

    // A's subscriber got them live; the log watch's copies are not repeated.
    let mut changes = Vec::new();
    while let Some(frame) = on_a.try_next_frame(Duration::from_millis(1500)).await {
        if frame["type"] == "message_edited" {
            changes.push(frame["content"].as_str().expect("content").to_owned());
        } else if frame["type"] == "message_deleted" {
            changes.push("deleted".into());
        }
    }
    assert_eq!(changes, vec![edits[0], edits[1], "deleted"]);

    // B's feed back: nothing of it comes again.
    user.allow();
    feed_becomes(&b_gateway, true).await;
    while let Some(frame) = on_b.try_next_frame(Duration::from_millis(1500)).await {
        assert!(
            !matches!(
                frame["type"].as_str(),
                Some("message_edited" | "message_deleted")
            ),
            "a change came twice: {frame}"
        );
    }
}
