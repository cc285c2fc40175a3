//! `chat dlq retry` with projector partitions (issue #14): a dead letter
//! keeps the `chat-partition` header of the count it was first published
//! with. After the count changed, the retry must route by the current count
//! (the stream's partition now), and a copy no queue takes must fail loudly
//! and leave the letter in the dead letters, never vanish.

use broker::Partitions;
use broker::lapin::BasicProperties;
use broker::lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use broker::lapin::types::{AMQPValue, FieldTable, LongString};
use operator_tools::dlq::{Dlq, DlqError};
use std::time::Duration;
use test_support::TestVhost;
use uuid::Uuid;

const NOW: u16 = 4;
/// The count the letter was first published under: its header names a
/// partition that no longer exists.
const THEN: u16 = 8;

/// A stream whose partition under `THEN` is one `NOW` has no queue for.
fn stream_beyond_now() -> String {
    let then = Partitions::new(THEN).expect("count");
    (0..)
        .map(|_| format!("channel-{}", Uuid::now_v7()))
        .find(|s| then.of_stream(s) >= NOW)
        .expect("some stream hashes past the current count")
}

/// Puts a dead letter into `projector.dlq` as the projector leaves one: the
/// original headers (the old partition) plus its own reason and routing key.
async fn dead_letter(vhost: &TestVhost, stream: &str, id: &str) -> String {
    let connection = broker::connect(&vhost.amqp_url, "test-dead-letter")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let key = broker::routing_key(stream, "MessageSent");
    let old = Partitions::new(THEN).expect("count").of_stream(stream);
    let mut headers = FieldTable::default();
    for (name, value) in [
        (broker::PARTITION_HEADER, old.to_string()),
        ("x-chat-reason", "cannot heal".to_owned()),
        ("x-chat-routing-key", key.clone()),
    ] {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
    let body =
        serde_json::json!({"event_id": id, "event_type": "MessageSent", "stream_id": stream});
    let confirm = channel
        .basic_publish(
            broker::DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&body).expect("json"),
            BasicProperties::default()
                .with_message_id(id.into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
    let _ = connection.close(200, "done".into()).await;
    key
}

async fn wait_depth(vhost: &TestVhost, queue: &str, depth: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while vhost.queue_depth(queue) != Some(depth) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} never held {depth}: {:?}",
            vhost.queue_depth(queue)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_the_partition_count_changed_lands_in_the_streams_partition_now() {
    let vhost = TestVhost::new();
    let now = Partitions::new(NOW).expect("count");
    let dlq = Dlq::open(&vhost.amqp_url, now).await.expect("open");
    let stream = stream_beyond_now();
    let id = Uuid::now_v7().to_string();
    dead_letter(&vhost, &stream, &id).await;
    wait_depth(&vhost, broker::DEAD_LETTER_QUEUE, 1).await;

    let (retried, failed) = dlq.retry(Some(&id)).await.expect("retry");
    assert_eq!((retried.len(), failed.len()), (1, 0), "{failed:?}");
    wait_depth(&vhost, broker::DEAD_LETTER_QUEUE, 0).await;
    let home = now.of_stream(&stream);
    wait_depth(&vhost, &now.queue(home), 1).await;
    for partition in (0..NOW).filter(|p| *p != home) {
        assert_eq!(
            vhost.queue_depth(&now.queue(partition)),
            Some(0),
            "partition {partition}"
        );
    }
    dlq.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_no_queue_takes_fails_and_the_letter_stays() {
    let vhost = TestVhost::new();
    let now = Partitions::new(NOW).expect("count");
    let dlq = Dlq::open(&vhost.amqp_url, now).await.expect("open");
    let stream = stream_beyond_now();
    let id = Uuid::now_v7().to_string();
    dead_letter(&vhost, &stream, &id).await;
    wait_depth(&vhost, broker::DEAD_LETTER_QUEUE, 1).await;
    // The stream's partition queue is gone (deleted by hand, or not yet
    // declared): nothing would take the copy.
    let connection = broker::connect(&vhost.amqp_url, "test-admin")
        .await
        .expect("connect");
    let admin = connection.create_channel().await.expect("channel");
    admin
        .queue_delete(
            now.queue(now.of_stream(&stream)).as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .expect("delete");

    let (retried, failed) = dlq.retry(Some(&id)).await.expect("retry");
    assert!(retried.is_empty(), "{retried:?}");
    assert!(
        matches!(failed.as_slice(), [DlqError::Unroutable(failed_id, _)] if *failed_id == id),
        "{failed:?}"
    );
    dlq.close().await;
    wait_depth(&vhost, broker::DEAD_LETTER_QUEUE, 1).await;
    let _ = connection.close(200, "done".into()).await;
}
