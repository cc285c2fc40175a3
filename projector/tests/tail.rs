//! The embedded backend's projector: the SQLite log read from the
//! projection's own checkpoint into the SQLite read model, announcements on
//! the in-process bus, and what can never apply in the dead-letter table.

#[path = "common/commands.rs"]
mod commands;

use command_service::CommandService;
use domain::{ChannelId, MessagePolicy, UserId};
use event_store::{EventLog, ExpectedVersion, NewEvent, SqliteEventStore};
use projector::LogTailConfig;
use read_model::{LIVE_PROJECTION, ReadModel, SqliteReadModel};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Embedded {
    _dir: tempfile::TempDir,
    log: SqliteEventStore,
    read: SqliteReadModel,
    bus: local_bus::Announcements,
    commands: CommandService,
}

impl Embedded {
    async fn open() -> Embedded {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = SqliteEventStore::open(&dir.path().join("events.db"), 4)
            .await
            .expect("log");
        let read = SqliteReadModel::open(&dir.path().join("read.db"))
            .await
            .expect("read model");
        let commands = CommandService::new(Arc::new(log.clone()), MessagePolicy::default());
        Embedded {
            _dir: dir,
            log,
            read,
            bus: local_bus::Announcements::default(),
            commands,
        }
    }

    /// Starts the projector; it stops when the returned sender says so.
    fn start(&self) -> (watch::Sender<bool>, JoinHandle<()>) {
        let (stop, shutdown) = watch::channel(false);
        let read = Arc::new(self.read.clone());
        let run = projector::run_from_log(
            read.clone(),
            Arc::new(self.log.clone()),
            read,
            self.bus.clone(),
            self.log.appended(),
            LogTailConfig {
                max_batch: 100,
                poll_interval: Duration::from_millis(100),
            },
            shutdown,
        );
        let task = tokio::spawn(async move { run.await.expect("projector runs") });
        (stop, task)
    }

    async fn create_channel(&self, owner: UserId) -> ChannelId {
        commands::create_channel(&self.commands, owner).await
    }

    async fn send(&self, sender: UserId, channel: ChannelId, n: usize) {
        for i in 0..n {
            commands::send(&self.commands, sender, channel, &format!("message {i}")).await;
        }
    }

    /// Waits until the live checkpoint stands at the log's head.
    async fn wait_caught_up(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let head = self.log.head().await.expect("head");
            let at = self
                .read
                .checkpoint(LIVE_PROJECTION)
                .await
                .expect("checkpoint");
            if at == Some(head) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the projector did not reach the head {head:?} in 30 s (at {at:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn seqs(&self, channel: ChannelId) -> Vec<i64> {
        self.read
            .messages_after(channel.0, 0, 100_000)
            .await
            .expect("messages")
            .into_iter()
            .map(|m| m.seq)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_projected_from_the_checkpoint_and_a_restart_applies_nothing_twice() {
    let e = Embedded::open().await;
    let owner = UserId::new();
    let channel = e.create_channel(owner).await;
    e.send(owner, channel, 1_001).await;
    let (stop, task) = e.start();
    e.wait_caught_up().await;
    assert_eq!(e.seqs(channel).await, (1..=1_001).collect::<Vec<_>>());
    stop.send(true).expect("stop");
    task.await.expect("stopped");

    // Written while no projector runs: the next one starts where this one stopped.
    e.send(owner, channel, 300).await;
    let (stop, task) = e.start();
    e.wait_caught_up().await;
    assert_eq!(e.seqs(channel).await, (1..=1_301).collect::<Vec<_>>());
    assert_eq!(e.read.last_seq(channel.0).await.expect("last seq"), 1_301);
    // Live: an append wakes it (no poll is due within the wait's first steps).
    e.send(owner, channel, 1).await;
    e.wait_caught_up().await;
    assert_eq!(e.read.last_seq(channel.0).await.expect("last seq"), 1_302);
    stop.send(true).expect("stop");
    task.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_change_is_announced_once_in_order() {
    let e = Embedded::open().await;
    let mut heard = e.bus.subscribe();
    let (stop, task) = e.start();
    let owner = UserId::new();
    let channel = e.create_channel(owner).await;
    e.send(owner, channel, 50).await;
    e.wait_caught_up().await;
    let mut versions = Vec::new();
    while versions.len() < 51 {
        let received = tokio::time::timeout(Duration::from_secs(5), heard.next())
            .await
            .expect("an announcement within 5 s");
        let local_bus::Received::Announcement(body) = received else {
            panic!("the bus lagged or closed: {received:?}");
        };
        assert_eq!(body["channel_id"], channel.0.to_string());
        versions.push(body["event"]["stream_version"].as_u64().expect("version"));
    }
    assert_eq!(versions, (1..=51).collect::<Vec<_>>());
    stop.send(true).expect("stop");
    task.await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_breaks_its_schema_is_dead_lettered_once_and_the_rest_applies() {
    let e = Embedded::open().await;
    let owner = UserId::new();
    let channel = e.create_channel(owner).await;
    e.send(owner, channel, 10).await;
    // A stream of its own, so the channel's commands still fold their stream.
    let poison = NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: serde_json::json!({ "seq": "seven" }),
        metadata: serde_json::json!({}),
    };
    let broken = format!("channel-{}", uuid::Uuid::now_v7());
    e.log
        .append(
            &broken,
            ExpectedVersion::NoStream,
            std::slice::from_ref(&poison),
        )
        .await
        .expect("the log takes any JSON");
    e.send(owner, channel, 10).await;
    let (stop, task) = e.start();
    e.wait_caught_up().await;
    assert_eq!(e.seqs(channel).await, (1..=20).collect::<Vec<_>>());
    let letters = e.read.dead_letters(10).await.expect("dead letters");
    assert_eq!(
        letters.iter().map(|l| l.event_id).collect::<Vec<_>>(),
        vec![poison.event_id]
    );
    assert!(
        letters[0].reason.contains("violates its schema"),
        "{}",
        letters[0].reason
    );
    stop.send(true).expect("stop");
    task.await.expect("stopped");

    // A restart reads on from the checkpoint past it: no second letter.
    let (stop, task) = e.start();
    e.send(owner, channel, 1).await;
    e.wait_caught_up().await;
    assert_eq!(
        e.read.dead_letters(10).await.expect("dead letters").len(),
        1
    );
    stop.send(true).expect("stop");
    task.await.expect("stopped");
}
