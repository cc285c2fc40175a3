//! An outage never dead-letters an event (DESIGN §4): a projector that dies
//! again and again with a backlog in flight (a deploy loop, a liveness probe,
//! a flapping broker connection) hands its unacked deliveries back each time,
//! and RabbitMQ counts every hand-back towards the queue's delivery limit.

use crate::helpers::Pipeline;
use broker::lapin::options::{BasicConsumeOptions, BasicQosOptions};
use broker::lapin::types::FieldTable;
use domain::UserId;
use futures_util::StreamExt;
use projector::ProjectorConfig;
use std::time::Duration;

/// How many times the projector dies with the backlog in flight.
const KILLS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projector_killed_again_and_again_dead_letters_nothing() {
    let mut p = Pipeline::new().await;
    p.start_relay();
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for n in 0..20 {
        p.send(owner, channel, &format!("backlog {n}")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while p.vhost.queue_depth(broker::PROJECTOR_QUEUE) != Some(21) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not publish the backlog: {:?}",
            p.vhost.queue_depth(broker::PROJECTOR_QUEUE)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A consumer with the projector's prefetch takes deliveries and dies
    // before acking, KILLS times.
    let prefetch = ProjectorConfig::new(p.vhost.amqp_url.clone()).prefetch;
    for kill in 0..KILLS {
        let connection = broker::connect(&p.vhost.amqp_url, "doomed-projector")
            .await
            .expect("connect");
        let ch = connection.create_channel().await.expect("channel");
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .expect("qos");
        let mut consumer = ch
            .basic_consume(
                broker::PROJECTOR_QUEUE.into(),
                format!("doomed-{kill}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let first = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await;
        assert!(
            matches!(first, Ok(Some(Ok(_)))),
            "kill {kill}: nothing left to deliver; dead letters: {:?}",
            p.vhost.queue_depth(broker::DEAD_LETTER_QUEUE)
        );
        // Let the prefetch fill, then die without an ack.
        tokio::time::sleep(Duration::from_millis(200)).await;
        connection.close(0, "killed".into()).await.expect("close");
    }

    p.start_projector();
    p.wait_projected().await;
    assert_eq!(
        p.vhost.queue_depth(broker::DEAD_LETTER_QUEUE),
        Some(0),
        "restarts dead-lettered healthy events"
    );
}
