//! Two projector processes split four partitions, two each; one dies in the
//! middle of a flood with deliveries unacked (its task aborted, so its
//! connection drops; or a `projector` binary killed with SIGKILL) and the
//! other takes every partition, with nothing lost, applied twice or
//! dead-lettered.

use super::{
    N, assert_all_applied_once, channels_on_every_partition, flood_while, four, member, settle,
    since,
};
use crate::helpers::Pipeline;
use domain::{ChannelId, UserId};
use std::time::Duration;

/// One message into each channel, then which partitions took deliveries in
/// `view` (those the process holds).
async fn partitions_used(
    p: &Pipeline,
    owner: UserId,
    channels: &[ChannelId],
    view: &projector::PartitionView,
) -> Vec<u64> {
    let before = view.delivered();
    for channel in channels {
        p.send(owner, *channel, "hello").await;
    }
    p.wait_projected().await;
    since(view, &before)
}

/// Rounds of one message per channel until `split` holds of the deliveries
/// `a` took in one round (a view says what its process should hold; the
/// broker's consumers follow within a member check or two).
async fn until_split(
    p: &Pipeline,
    owner: UserId,
    channels: &[ChannelId],
    a: &projector::PartitionView,
    split: impl Fn(&[u64]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let da = partitions_used(p, owner, channels, a).await;
        if split(&da) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the partitions did not split as expected: a took {da:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn held(delivered: &[u64]) -> usize {
    delivered.iter().filter(|n| **n > 0).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_takeover_two_projectors_split_the_partitions_and_a_killed_ones_move_to_the_other()
 {
    let mut p = Pipeline::new().await;
    p.start_relay_with(four());
    let (a, a_task) = member(&p);
    let (b, b_task) = member(&p);
    settle(&[&a, &b], &[2, 2]).await;

    // Traffic on every partition goes to the one process that holds it.
    let owner = UserId::new();
    let channels = channels_on_every_partition(&p, owner, 1).await;
    let b0 = std::sync::Mutex::new(b.delivered());
    until_split(&p, owner, &channels, &a, |da| {
        let mut b0 = b0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let db = since(&b, &b0);
        *b0 = b.delivered();
        // Each partition consumed by exactly one of them, half each.
        (0..usize::from(N)).all(|q| (da[q] > 0) != (db[q] > 0)) && (held(da), held(&db)) == (2, 2)
    })
    .await;

    let b1: u64 = b.delivered().iter().sum();
    // Killed once it has taken some of the flood (however slow the machine).
    let b_at_kill = flood_while(&p, &channels, async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while b.delivered().iter().sum::<u64>() <= b1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b_task.abort();
        b.delivered().iter().sum::<u64>()
    })
    .await;
    assert!(
        b_at_kill > b1,
        "b was consuming the flood when it was killed ({b1} before, {b_at_kill} at the kill)"
    );
    settle(&[&a], &[usize::from(N)]).await;
    assert_all_applied_once(&p, &channels).await;
    a_task.abort();
}

/// A `projector` process of its own, killed when dropped.
struct ProjectorProcess(std::process::Child);

impl ProjectorProcess {
    fn spawn(p: &Pipeline) -> ProjectorProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
            .env("CHAT_BACKEND", "services")
            .env("CHAT_DATABASE_URL", &p.log.url)
            .env("CHAT_READ_DATABASE_URL", &p.read.url)
            .env("CHAT_AMQP_URL", &p.vhost.amqp_url)
            .env("CHAT_REDIS_URL", test_support::redis_url())
            .env("CHAT_HTTP_ADDR", "127.0.0.1:0")
            .env(
                "CHAT_JWT_SECRET",
                "a test secret of at least thirty-two bytes",
            )
            .env("CHAT_PROJECTOR_PARTITIONS", N.to_string())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the projector binary starts");
        ProjectorProcess(child)
    }

    /// SIGKILL: no shutdown path runs, the kernel closes its sockets.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ProjectorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_takeover_a_projector_process_killed_with_sigkill_hands_its_partitions_over() {
    let mut p = Pipeline::new().await;
    p.start_relay_with(four());
    let (a, a_task) = member(&p);
    let mut other = ProjectorProcess::spawn(&p);
    // The other process holds the partitions `a` gave up.
    settle(&[&a], &[2]).await;

    let owner = UserId::new();
    let channels = channels_on_every_partition(&p, owner, 1).await;
    // `a` consumes exactly its half; the log says the other half was applied.
    until_split(&p, owner, &channels, &a, |da| held(da) == 2).await;
    let theirs: Vec<uuid::Uuid> = channels
        .iter()
        .filter(|c| {
            !a.active()
                .contains(&four().of_stream(&domain::channel_stream(**c)))
        })
        .map(|c| c.0)
        .collect();

    let applied_by_them = || async {
        let flood: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rm.messages WHERE channel_id = ANY($1) AND content LIKE 'flood%'",
        )
        .bind(&theirs)
        .fetch_one(&p.read.pool)
        .await
        .expect("count");
        flood
    };
    // Killed once it has applied some of the flood (however slow the machine).
    let applied_by_other_at_kill = flood_while(&p, &channels, async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while applied_by_them().await == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        other.kill();
        applied_by_them().await
    })
    .await;
    assert!(
        applied_by_other_at_kill > 0,
        "the other process was applying the flood when it was killed"
    );
    settle(&[&a], &[usize::from(N)]).await;
    assert_all_applied_once(&p, &channels).await;
    a_task.abort();
}
