//! A poison message (not JSON, unknown type, schema violation) lands in
//! `projector.dlq` and the good events behind it are still projected.

use crate::helpers::Pipeline;
use domain::{UserId, channel_stream};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_goes_to_the_dead_letters_and_does_not_block() {
    let mut p = Pipeline::new().await;
    p.start_projector();
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    p.send(owner, channel, "good").await;
    let events = p
        .store()
        .read_stream(&channel_stream(channel), 0)
        .await
        .expect("log");
    let key = broker::routing_key(&events[0].stream_id, "MessageSent");

    let mut unknown_type = serde_json::to_value(&events[1]).expect("json");
    unknown_type["event_type"] = "MessageTeleported".into();
    let mut schema_violation = serde_json::to_value(&events[1]).expect("json");
    schema_violation["data"]["seq"] = "seven".into();
    p.publish_raw(&key, b"{not json").await;
    p.publish_raw(&key, unknown_type.to_string().as_bytes())
        .await;
    p.publish_raw(&key, schema_violation.to_string().as_bytes())
        .await;
    for e in &events {
        p.publish_raw(&key, &serde_json::to_vec(e).expect("json"))
            .await;
    }

    p.wait_projected().await;
    let content: Option<String> =
        sqlx::query_scalar("SELECT content FROM rm.messages WHERE channel_id = $1 AND seq = 1")
            .bind(channel.0)
            .fetch_one(&p.read.pool)
            .await
            .expect("the good message is projected");
    assert_eq!(content.as_deref(), Some("good"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let depth = p.vhost.queue_depth(broker::DEAD_LETTER_QUEUE);
        if depth == Some(3) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected 3 dead letters, found {depth:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
