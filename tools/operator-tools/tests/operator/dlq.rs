//! `chat dlq`: poison lands with its reason; `list` and `show` browse
//! without consuming; after the cause is fixed `retry` applies the message
//! exactly once (a second retry finds nothing); `drop` removes one. A crash
//! loop dead-lettered by RabbitMQ itself is read from `x-death`.

use crate::helpers::Pipeline;
use broker::lapin::BasicProperties;
use broker::lapin::options::{
    BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use broker::lapin::types::FieldTable;
use domain::{ChannelId, Event, MessageId, MessageSent, UserId, channel_stream};
use event_store::RecordedEvent;
use futures_util::StreamExt;
use std::process::ExitCode;
use std::time::Duration;
use uuid::Uuid;

/// Publishes like the relay: message id, JSON, persistent, with confirms.
async fn publish(p: &Pipeline, routing_key: &str, message_id: &str, body: &[u8]) {
    let connection = broker::connect(&p.vhost.amqp_url, "test-publisher")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    broker::declare_events(&channel).await.expect("declare");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let properties = BasicProperties::default()
        .with_message_id(message_id.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    let confirm = channel
        .basic_publish(
            broker::EVENTS_EXCHANGE.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
    let _ = connection.close(200, "done".into()).await;
}

async fn wait_depth(p: &Pipeline, queue: &str, depth: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while p.vhost.queue_depth(queue) != Some(depth) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} never held {depth}: {:?}",
            p.vhost.queue_depth(queue)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn list(p: &Pipeline) -> Vec<serde_json::Value> {
    let (code, out) = p.chat(&["dlq", "list", "--json"]).await;
    assert_eq!(code.expect("list runs"), ExitCode::SUCCESS);
    out.lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect()
}

async fn read_model_of(p: &Pipeline, channel: ChannelId) -> (i64, Option<i64>) {
    let messages: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm.messages WHERE channel_id = $1")
            .bind(channel.0)
            .fetch_one(&p.read.pool)
            .await
            .expect("messages");
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM rm.stream_positions WHERE stream_id = $1")
            .bind(channel_stream(channel))
            .fetch_optional(&p.read.pool)
            .await
            .expect("position");
    (messages, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_is_listed_shown_retried_once_after_a_fix_and_dropped() {
    let mut p = Pipeline::new().await;
    p.start_projector();
    // Version 2 of a channel whose version 1 is not in the log yet: unhealable.
    let (channel, owner, event_id) = (ChannelId::new(), UserId::new(), Uuid::now_v7());
    let sent = Event::MessageSent(MessageSent {
        channel_id: channel,
        message_id: MessageId::new(),
        seq: 1,
        sender_id: owner,
        content: "early".into(),
        message_type: "text".into(),
        client_msg_id: None,
    });
    let envelope = RecordedEvent {
        event_id,
        event_type: "MessageSent".into(),
        schema_version: 1,
        stream_id: channel_stream(channel),
        stream_version: 2,
        global_position: 1_000,
        transaction_id: 0,
        recorded_at: chrono::Utc::now(),
        data: sent.to_stored().data,
        metadata: serde_json::json!({"actor_id": owner}),
    };
    let key = broker::routing_key(&envelope.stream_id, "MessageSent");
    publish(
        &p,
        &key,
        &event_id.to_string(),
        &serde_json::to_vec(&envelope).expect("json"),
    )
    .await;
    publish(&p, &key, "poison-2", b"{not json").await;
    wait_depth(&p, broker::DEAD_LETTER_QUEUE, 2).await;

    let letters = list(&p).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let by_id = |id: &str| {
        letters
            .iter()
            .find(|l| l["id"] == id)
            .cloned()
            .expect("listed")
    };
    let unhealable = &by_id(&event_id.to_string());
    assert_eq!(unhealable["id"], event_id.to_string());
    assert_eq!(unhealable["event_type"], "MessageSent");
    assert_eq!(unhealable["routing_key"], key.as_str());
    assert!(
        unhealable["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot heal")),
        "{unhealable}"
    );
    assert!(unhealable["failed_at"].is_string());
    let not_json = by_id("poison-2");
    assert!(
        not_json["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not JSON")),
        "{not_json}"
    );
    assert_eq!(
        list(&p).await,
        letters,
        "browsing consumes nothing and keeps the order"
    );
    let (code, table) = p.chat(&["dlq", "list"]).await;
    assert_eq!(code.expect("list"), ExitCode::SUCCESS);
    assert!(
        table.contains("ROUTING KEY")
            && table.contains("poison-2")
            && table.contains("cannot heal"),
        "{table}"
    );

    let (code, shown) = p
        .chat(&["dlq", "show", &event_id.to_string(), "--json"])
        .await;
    assert_eq!(code.expect("show"), ExitCode::SUCCESS);
    let shown: serde_json::Value = serde_json::from_str(shown.trim()).expect("json");
    assert_eq!(shown["body"]["data"]["content"], "early");
    assert!(shown["headers"]["x-chat-reason"].is_string(), "{shown}");
    let (code, text) = p.chat(&["dlq", "show", "poison-2"]).await;
    assert_eq!(code.expect("show"), ExitCode::SUCCESS);
    assert!(
        text.contains("{not json") && text.contains("x-chat-routing-key"),
        "{text}"
    );

    // The fix: the channel's first event is now in the log.
    let create = domain::ChannelCommand::Create {
        channel_id: channel,
        name: "late".into(),
        kind: domain::ChannelKind::Public,
        max_members: None,
    };
    p.channel_command(owner, channel, create).await;
    assert_eq!(read_model_of(&p, channel).await, (0, None));
    let (code, _) = p.chat(&["dlq", "retry", &event_id.to_string()]).await;
    assert_eq!(code.expect("retry"), ExitCode::SUCCESS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while read_model_of(&p, channel).await != (1, Some(2)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retried event was not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_depth(&p, broker::DEAD_LETTER_QUEUE, 1).await;
    let (again, _) = p.chat(&["dlq", "retry", &event_id.to_string()]).await;
    let again = again.expect_err("nothing left to retry");
    assert!(again.to_string().contains("no dead letter"), "{again}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        read_model_of(&p, channel).await,
        (1, Some(2)),
        "applied exactly once"
    );
    assert_eq!(list(&p).await.len(), 1);

    let (code, _) = p.chat(&["dlq", "drop", "poison-2"]).await;
    assert_eq!(code.expect("drop"), ExitCode::SUCCESS);
    assert!(list(&p).await.is_empty());
    assert!(
        p.chat(&["dlq", "drop", "poison-2"]).await.0.is_err(),
        "gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loop_dead_lettered_by_rabbitmq_is_read_from_x_death() {
    let p = Pipeline::new().await;
    let key = format!("chat.channel.{}.message", Uuid::new_v4());
    publish(&p, &key, "crash-1", br#"{"event_type": "MessageSent"}"#).await;
    // A consumer that keeps failing: every delivery handed back until the limit.
    let connection = broker::connect(&p.vhost.amqp_url, "test-crasher")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let mut consumer = channel
        .basic_consume(
            broker::PROJECTOR_QUEUE.into(),
            "crasher".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    // Handed back until RabbitMQ stops delivering it (the limit, broker::DELIVERY_LIMIT).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut deliveries = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered after {deliveries} deliveries"
        );
        match tokio::time::timeout(Duration::from_millis(500), consumer.next()).await {
            Ok(Some(delivery)) => {
                deliveries += 1;
                let delivery = delivery.expect("delivery");
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
                    .expect("nack");
            }
            _ if p.vhost.queue_depth(broker::DEAD_LETTER_QUEUE) == Some(1) => break,
            _ => {}
        }
    }
    wait_depth(&p, broker::DEAD_LETTER_QUEUE, 1).await;
    let letters = list(&p).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["id"], "crash-1");
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("delivery_limit")),
        "{letter}"
    );
    assert_eq!(letter["routing_key"], key.as_str());
    assert!(letter["failed_at"].is_string(), "{letter}");

    // Retry puts it back on its way, without the dead-lettering headers.
    let (code, _) = p.chat(&["dlq", "retry", "--all"]).await;
    assert_eq!(code.expect("retry"), ExitCode::SUCCESS);
    let got = tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await
        .expect("the retried message arrives")
        .expect("a delivery")
        .expect("ok");
    assert_eq!(
        got.properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .as_deref(),
        Some("crash-1")
    );
    let headers = got.properties.headers().clone().unwrap_or_default();
    assert!(!headers.contains_key("x-death"), "{headers:?}");
    assert!(list(&p).await.is_empty());
}
