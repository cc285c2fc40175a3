//! A write database, a read database, a vhost, the relay and projector
//! running against them (after `projector/tests/pipeline/helpers.rs`).

use command_service::relay::{self, RelayConfig};
use command_service::{CommandContext, CommandService, Intent};
use domain::{ChannelCommand, ChannelId, ChannelKind, MessageId, MessagePolicy, UserId};
use event_store::PgEventStore;
use operator_tools::OperatorCommand;
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
    stop_projector: watch::Sender<bool>,
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
        Pipeline {
            log,
            read,
            vhost,
            commands,
            stop: watch::channel(false).0,
            stop_projector: watch::channel(false).0,
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
        let config = RelayConfig {
            poll_interval: Duration::from_millis(50),
            ..RelayConfig::new(self.vhost.amqp_url.clone())
        };
        self.tasks.push(tokio::spawn(relay::run(
            self.log.pool.clone(),
            config,
            self.stop.subscribe(),
        )));
    }

    pub fn start_projector(&mut self) {
        let config = ProjectorConfig::new(self.vhost.amqp_url.clone());
        let (read, log) = (
            std::sync::Arc::new(read_model::PgReadModel::new(self.read.pool.clone())),
            std::sync::Arc::new(self.store()),
        );
        let shutdown = self.stop_projector.subscribe();
        self.tasks.push(tokio::spawn(async move {
            projector::run(read, log, config, shutdown)
                .await
                .expect("projector runs");
        }));
    }

    /// Stops the projector (the relay goes on).
    pub fn stop_projector(&self) {
        let _ = self.stop_projector.send(true);
    }

    pub fn store(&self) -> PgEventStore {
        PgEventStore::new(self.log.pool.clone())
    }

    /// Settings pointing at this pipeline's services.
    pub fn settings(&self) -> service_kit::Settings {
        let (log, read, amqp) = (
            self.log.url.clone(),
            self.read.url.clone(),
            self.vhost.amqp_url.clone(),
        );
        service_kit::Settings::from_lookup(move |name| match name {
            "CHAT_DATABASE_URL" => Some(log.clone()),
            "CHAT_READ_DATABASE_URL" => Some(read.clone()),
            "CHAT_AMQP_URL" => Some(amqp.clone()),
            "CHAT_REDIS_URL" => Some(test_support::redis_url()),
            _ => None,
        })
        .expect("settings")
    }

    /// Runs a `chat ...` command line; returns its exit code (or error) and stdout.
    pub async fn chat(&self, args: &[&str]) -> (anyhow::Result<std::process::ExitCode>, String) {
        chat(&self.settings(), args).await
    }

    /// Runs a channel command as `actor`.
    pub async fn command(
        &self,
        actor: UserId,
        channel: ChannelId,
        intent: Intent,
    ) -> command_service::Executed {
        command(&self.commands, actor, channel, intent).await
    }

    pub async fn channel_command(
        &self,
        actor: UserId,
        channel: ChannelId,
        command: ChannelCommand,
    ) {
        channel_command(&self.commands, actor, channel, command).await;
    }

    pub async fn create_channel(&self, owner: UserId) -> ChannelId {
        create_channel(&self.commands, owner).await
    }

    /// Sends a message; returns its id and seq.
    pub async fn send(
        &self,
        sender: UserId,
        channel: ChannelId,
        content: &str,
    ) -> (MessageId, u64) {
        send(&self.commands, sender, channel, content).await
    }

    /// Waits until the live read model has applied every event of the log.
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
                "the read model did not catch up in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.stop_projector.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs a `chat ...` command line with `settings`; returns its exit code (or
/// error) and stdout.
pub async fn chat(
    settings: &service_kit::Settings,
    args: &[&str],
) -> (anyhow::Result<std::process::ExitCode>, String) {
    let command = parse(args).expect("the command line parses");
    let mut out = Vec::new();
    let code = operator_tools::run_with_output(command, settings, &mut out).await;
    (code, String::from_utf8(out).expect("utf-8 output"))
}

/// Runs a channel command as `actor` (on either backend's command side).
pub async fn command(
    commands: &CommandService,
    actor: UserId,
    channel: ChannelId,
    intent: Intent,
) -> command_service::Executed {
    let ctx = CommandContext {
        actor,
        correlation_id: uuid::Uuid::now_v7(),
        expected_version: None,
        idempotency_key: None,
        request_fingerprint: None,
    };
    commands
        .execute(channel, intent, &ctx, "any")
        .await
        .expect("command succeeds")
}

pub async fn channel_command(
    commands: &CommandService,
    actor: UserId,
    channel: ChannelId,
    command: ChannelCommand,
) {
    self::command(commands, actor, channel, Intent::Command(command)).await;
}

/// Creates a public channel named `general` owned by `owner`.
pub async fn create_channel(commands: &CommandService, owner: UserId) -> ChannelId {
    let channel_id = ChannelId::new();
    let create = ChannelCommand::Create {
        channel_id,
        name: "general".into(),
        kind: ChannelKind::Public,
        max_members: None,
    };
    channel_command(commands, owner, channel_id, create).await;
    channel_id
}

/// Sends a message; returns its id and seq.
pub async fn send(
    commands: &CommandService,
    sender: UserId,
    channel: ChannelId,
    content: &str,
) -> (MessageId, u64) {
    let message_id = MessageId::new();
    let send = ChannelCommand::SendMessage {
        message_id,
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: None,
    };
    let executed = command(commands, sender, channel, Intent::Command(send)).await;
    let seq = executed
        .first_event()
        .and_then(|e| e.data["seq"].as_u64())
        .expect("seq");
    (message_id, seq)
}

/// Parses a `chat ...` command line the way the `chat` binary mounts the tools.
pub fn parse(args: &[&str]) -> Result<OperatorCommand, clap::Error> {
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: OperatorCommand,
    }
    use clap::Parser;
    Cli::try_parse_from(std::iter::once("chat").chain(args.iter().copied())).map(|c| c.command)
}
