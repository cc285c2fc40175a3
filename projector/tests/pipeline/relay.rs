//! The relay: commit order to the broker, checkpoints, one publisher among
//! several instances, and a RabbitMQ restart under load.

use crate::helpers::Pipeline;
use command_service::relay;
use domain::UserId;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checkpoint_reaches_the_head_after_publishing() {
    let p = Pipeline::running().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for _ in 0..20 {
        p.send(owner, channel, "x").await;
    }
    p.wait_projected().await;
    let head = p
        .store()
        .read_all(event_store::Cursor::START, 10_000, &Default::default())
        .await
        .expect("log");
    let last = head.last().expect("events").cursor();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while relay::checkpoint(&p.log.pool).await.expect("checkpoint") != last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay checkpoint did not reach the head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two relays: one publishes; when it dies the other takes over from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_relay_takes_over_when_the_first_dies() {
    let mut p = Pipeline::new().await;
    p.start_projector();
    let first = tokio::spawn(relay::run(
        p.log.pool.clone(),
        relay::RelayConfig {
            poll_interval: Duration::from_millis(50),
            ..relay::RelayConfig::new(p.vhost.amqp_url.clone())
        },
        tokio::sync::watch::channel(false).1,
    ));
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    p.send(owner, channel, "before").await;
    p.wait_projected().await;

    p.start_relay();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.abort();
    let _ = first.await;
    for _ in 0..5 {
        p.send(owner, channel, "after").await;
    }
    p.wait_projected().await;
}

/// RabbitMQ's app stopped and started while events are being written: the relay
/// reconnects, re-declares and resumes from its checkpoint; nothing is lost.
/// Runs alone (`exclusive_`): it takes the shared broker down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusive_rabbitmq_restart_loses_nothing() {
    let p = Pipeline::running().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for _ in 0..10 {
        p.send(owner, channel, "before").await;
    }
    p.wait_projected().await;

    let stopped = Command::new("rabbitmqctl")
        .args(["-q", "stop_app"])
        .status()
        .expect("rabbitmqctl");
    assert!(stopped.success());
    let restart = tokio::task::spawn_blocking(|| {
        std::thread::sleep(Duration::from_secs(2));
        let started = Command::new("rabbitmqctl")
            .args(["-q", "start_app"])
            .status();
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "await_startup"])
            .status();
        started
    });
    for _ in 0..30 {
        p.send(owner, channel, "during").await;
    }
    assert!(restart.await.expect("join").expect("rabbitmqctl").success());
    for _ in 0..10 {
        p.send(owner, channel, "after").await;
    }
    p.wait_projected().await;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM rm.messages")
        .fetch_one(&p.read.pool)
        .await
        .expect("count");
    assert_eq!(count, 50);
}

/// PostgreSQL restarted under the relay and projector: both reconnect, the
/// relay resumes from its checkpoint, nothing is lost. Runs alone (`exclusive_`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exclusive_postgres_restart_loses_nothing() {
    let p = Pipeline::running().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for _ in 0..10 {
        p.send(owner, channel, "before").await;
    }
    p.wait_projected().await;

    test_support::restart_test_cluster().await;

    // Writes right after the restart: the first ones may meet dead pooled connections.
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sent < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "PostgreSQL did not come back"
        );
        let ctx = command_service::CommandContext {
            actor: owner,
            correlation_id: uuid::Uuid::now_v7(),
            expected_version: None,
            idempotency_key: None,
            request_fingerprint: None,
        };
        let command = domain::ChannelCommand::SendMessage {
            message_id: domain::MessageId::new(),
            content: "after".into(),
            message_type: "text".into(),
            client_msg_id: None,
        };
        match p
            .commands
            .execute(
                channel,
                command_service::Intent::Command(command),
                &ctx,
                "MessageSent",
            )
            .await
        {
            Ok(_) => sent += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    p.wait_projected().await;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM rm.messages")
        .fetch_one(&p.read.pool)
        .await
        .expect("count");
    assert_eq!(count, 20);
}

/// Waits until the relay's checkpoint stands at the last event of the log.
async fn wait_relay_at_head(p: &Pipeline) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // The head as whole-log readers will see it once nothing holds them back.
    let last = loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
        )
        .fetch_one(&p.log.pool)
        .await
        .expect("held back events");
        if held == 0 {
            let head = p
                .store()
                .read_all(event_store::Cursor::START, 100_000, &Default::default())
                .await
                .expect("log");
            break head.last().expect("events").cursor();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events stayed held back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while relay::checkpoint(&p.log.pool).await.expect("checkpoint") < last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay checkpoint did not reach the head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An operator deletes the projector's queue while the relay runs: what the
/// relay publishes meanwhile is unroutable, so it must not count as
/// delivered; the relay declares the queue again and publishes it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unroutable_events_do_not_move_the_relay_checkpoint() {
    use broker::lapin::options::QueueDeleteOptions;
    let mut p = Pipeline::new().await;
    p.start_relay();
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    p.send(owner, channel, "before").await;
    wait_relay_at_head(&p).await;

    let connection = broker::connect(&p.vhost.amqp_url, "test-operator")
        .await
        .expect("connect");
    let operator = connection.create_channel().await.expect("channel");
    operator
        .queue_delete(
            broker::PROJECTOR_QUEUE.into(),
            QueueDeleteOptions::default(),
        )
        .await
        .expect("delete the projector queue");
    for _ in 0..5 {
        p.send(owner, channel, "while the queue is gone").await;
    }
    wait_relay_at_head(&p).await;
    // Only now does a projector look: every event must be in its queue.
    p.start_projector();
    p.wait_projected().await;
    let _ = connection.close(0, "done".into()).await;
}
