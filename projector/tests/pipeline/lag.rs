//! The lag gauges show a hold-back: while an open transaction anywhere in the
//! cluster keeps whole-log readers from moving on, nothing is published or
//! applied, and `relay_lag_seconds` and `projector_lag_seconds` must grow.

use crate::helpers::Pipeline;
use domain::UserId;
use std::time::Duration;

/// A gauge's value in the Prometheus text (None: not set yet).
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_gauges_grow_while_an_open_transaction_holds_readers_back() {
    held_back_and_released(broker::Partitions::ONE).await;
}

/// With partitions the lag is measured from the furthest checkpoint any
/// partition reached (a lower bound): a hold-back still shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lag_gauges_grow_while_held_back_with_partitions_too() {
    held_back_and_released(broker::Partitions::new(4).expect("4")).await;
}

async fn held_back_and_released(partitions: broker::Partitions) {
    let metrics = service_kit::install_metrics();
    let mut p = Pipeline::new().await;
    p.start_relay_with(partitions);
    p.start_projector_with(|mut c| {
        c.partitions = partitions;
        c
    });
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    p.send(owner, channel, "before").await;
    p.wait_projected().await;
    if partitions.split() {
        // One process alone holds every partition, and says so.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = metrics.render();
            let held = (0..partitions.count())
                .filter(|q| {
                    let name = format!("projector_partition_active{{partition=\"{q}\"}}");
                    gauge(&text, &name) == Some(1.0)
                })
                .count();
            if held == usize::from(partitions.count())
                && gauge(&text, "projector_members") == Some(1.0)
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a lone projector holds {held} of {} partitions",
                partitions.count()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // An open transaction with an xid in the read database (a short one: every
    // whole-log reader in the cluster waits for it).
    let mut holder = p.read.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .expect("take an xid");
    for n in 0..3 {
        p.send(owner, channel, &format!("held back {n}")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let (relay, projector) = loop {
        let text = metrics.render();
        let relay = gauge(&text, "relay_lag_seconds").unwrap_or(0.0);
        let projector = gauge(&text, "projector_lag_seconds").unwrap_or(0.0);
        if (relay > 1.0 && projector > 1.0) || tokio::time::Instant::now() > deadline {
            break (relay, projector);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    holder.rollback().await.expect("release");
    assert!(
        relay > 1.0 && projector > 1.0,
        "held back for seconds, yet relay_lag_seconds = {relay}, projector_lag_seconds = {projector}"
    );

    // Released: everything flows and the gauges fall back.
    p.wait_projected().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics.render();
        let relay = gauge(&text, "relay_lag_seconds").unwrap_or(f64::MAX);
        let projector = gauge(&text, "projector_lag_seconds").unwrap_or(f64::MAX);
        if relay < 1.0 && projector < 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gauges stayed up after the hold-back: relay {relay}, projector {projector}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
