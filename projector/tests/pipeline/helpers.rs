//! A write database, a read database, a vhost, and the relay and projector
//! running against them.

use crate::commands;
use command_service::CommandService;
use command_service::relay::{self, RelayConfig};
use domain::{ChannelCommand, ChannelId, MessagePolicy, UserId};
use event_store::PgEventStore;
use projector::ProjectorConfig;
use std::time::Duration;
use test_support::{TestDb, TestVhost};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Pipeline {
    pub log: TestDb,
    pub read: TestDb,
    pub vhost: TestVhost,
    pub commands: CommandService,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Databases and vhost only; start the workers with `start_relay` / `start_projector`.
    pub async fn new() -> Pipeline {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let log = TestDb::new_event_log().await;
        let read = TestDb::new_read_model().await;
        let vhost = TestVhost::new();
        let commands = CommandService::new(
            std::sync::Arc::new(PgEventStore::new(log.pool.clone())),
            MessagePolicy::default(),
        );
        let (stop, _) = watch::channel(false);
        Pipeline {
            log,
            read,
            vhost,
            commands,
            stop,
            tasks: Vec::new(),
        }
    }

    /// Relay and projector both running.
    pub async fn running() -> Pipeline {
        let mut p = Pipeline::new().await;
        p.start_relay();
        p.start_projector();
        p
    }

    pub fn start_relay(&mut self) {
        self.start_relay_with(broker::Partitions::ONE);
    }

    /// The relay, stamping `partitions` partitions.
    pub fn start_relay_with(&mut self, partitions: broker::Partitions) {
        let config = RelayConfig {
            poll_interval: Duration::from_millis(50),
            partitions,
            ..RelayConfig::new(self.vhost.amqp_url.clone())
        };
        self.tasks.push(tokio::spawn(relay::run(
            self.log.pool.clone(),
            config,
            self.stop.subscribe(),
        )));
    }

    pub fn start_projector(&mut self) {
        self.start_projector_with(|c| c);
    }

    pub fn start_projector_with(&mut self, tune: impl FnOnce(ProjectorConfig) -> ProjectorConfig) {
        let task = self.spawn_projector(tune(ProjectorConfig::new(self.vhost.amqp_url.clone())));
        self.tasks.push(task);
    }

    /// A projector with its own connection; aborting the task kills it
    /// (its connection drops with its deliveries unacked).
    pub fn spawn_projector(&self, config: ProjectorConfig) -> JoinHandle<()> {
        let read = std::sync::Arc::new(read_model::PgReadModel::new(self.read.pool.clone()));
        let log = std::sync::Arc::new(PgEventStore::new(self.log.pool.clone()));
        let shutdown = self.stop.subscribe();
        tokio::spawn(async move {
            projector::run(read, log, config, shutdown)
                .await
                .expect("projector runs");
        })
    }

    pub fn store(&self) -> PgEventStore {
        PgEventStore::new(self.log.pool.clone())
    }

    /// Runs a channel command as `actor`.
    pub async fn command(
        &self,
        actor: UserId,
        channel: ChannelId,
        command: ChannelCommand,
    ) -> command_service::Executed {
        commands::command(&self.commands, actor, channel, command).await
    }

    pub async fn create_channel(&self, owner: UserId) -> ChannelId {
        commands::create_channel(&self.commands, owner).await
    }

    pub async fn send(&self, sender: UserId, channel: ChannelId, content: &str) -> u64 {
        commands::send(&self.commands, sender, channel, content).await
    }

    /// Waits until the read model has applied every event of the log.
    pub async fn wait_projected(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let head: Vec<(String, i64)> = sqlx::query_as(
                "SELECT stream_id, max(stream_version) FROM events GROUP BY stream_id",
            )
            .fetch_all(&self.log.pool)
            .await
            .expect("log heads");
            let applied: Vec<(String, i64)> =
                sqlx::query_as("SELECT stream_id, version FROM rm.stream_positions")
                    .fetch_all(&self.read.pool)
                    .await
                    .expect("read positions");
            let applied: std::collections::HashMap<_, _> = applied.into_iter().collect();
            if head.iter().all(|(s, v)| applied.get(s) == Some(v)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the read model did not catch up with the log in 30 s: log {head:?}, applied {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes raw bytes to `chat.exchange` as if the relay had (duplicates,
    /// reordering, poison), after declaring the topology.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        use broker::lapin::BasicProperties;
        use broker::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let connection = broker::connect(&self.vhost.amqp_url, "test-publisher")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        broker::declare_events(&channel).await.expect("declare");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let confirm = channel
            .basic_publish(
                broker::EVENTS_EXCHANGE.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
        let _ = connection.close(0, "done".into()).await;
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}
