//! A whole stack per test (own databases, vhost and Redis prefix): relay,
//! projector and any number of gateway instances on real ports; and a small
//! WebSocket client that checks every frame against `schemas/ws/`.

use actix_web::{App, HttpServer, web};
use command_service::relay::{self, RelayConfig};
use command_service::{CommandContext, CommandService, Intent};
use domain::{ChannelCommand, ChannelId, ChannelKind, MessageId, MessagePolicy, UserId};
use event_store::PgEventStore;
use futures_util::{SinkExt, StreamExt};
use gateway::{Gateway, GatewayConfig};
use redis_store::{RateLimiter, RedisStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use test_support::{TestDb, TestVhost};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &[u8] = b"gateway-test-secret-gateway-test-secret";

pub fn jwt() -> auth::JwtConfig {
    auth::JwtConfig::new(SECRET, "chat", "chat", 3600).expect("jwt")
}

pub struct Stack {
    /// The event log; held so it lives as long as the test.
    _log: TestDb,
    pub read: TestDb,
    pub vhost: TestVhost,
    pub redis: RedisStore,
    pub commands: Arc<CommandService>,
    stop: watch::Sender<bool>,
}

impl Stack {
    pub async fn new() -> Stack {
        Self::with_limits(1000, 1000).await
    }

    /// A stack whose send rate limit is `rate` per second with `burst`.
    pub async fn with_limits(rate: u32, burst: u32) -> Stack {
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
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let redis = RedisStore::connect(&test_support::redis_url(), &prefix)
            .await
            .expect("redis");
        let commands = Arc::new(
            CommandService::new(
                Arc::new(PgEventStore::new(log.pool.clone())),
                MessagePolicy::default(),
            )
            .with_rate_limiter(RateLimiter::new(redis.clone(), rate, burst)),
        );
        let (stop, shutdown) = watch::channel(false);
        let config = RelayConfig {
            poll_interval: Duration::from_millis(20),
            ..RelayConfig::new(vhost.amqp_url.clone())
        };
        tokio::spawn(relay::run(log.pool.clone(), config, shutdown.clone()));
        let (read_pool, log_store, amqp) = (
            Arc::new(read_model::PgReadModel::new(read.pool.clone())),
            Arc::new(PgEventStore::new(log.pool.clone())),
            vhost.amqp_url.clone(),
        );
        tokio::spawn(async move {
            projector::run(
                read_pool,
                log_store,
                projector::ProjectorConfig::new(amqp),
                shutdown,
            )
            .await
            .expect("projector");
        });
        Stack {
            _log: log,
            read,
            vhost,
            redis,
            commands,
            stop,
        }
    }

    /// Starts a gateway instance on a free port; returns its address and handle.
    pub async fn gateway(&self, tune: impl FnOnce(&mut GatewayConfig)) -> (String, Arc<Gateway>) {
        let mut config = GatewayConfig::new(self.vhost.amqp_url.clone());
        tune(&mut config);
        let live = gateway::LiveState::on_redis(&self.redis, config.max_sockets_per_user);
        let gateway = Gateway::new(
            config,
            Arc::new(read_model::PgReadModel::new(self.read.pool.clone())),
            self.commands.clone(),
            live,
        );
        gateway.start(self.stop.subscribe());
        let data = web::Data::new(gateway.clone());
        let jwt = web::Data::new(jwt());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(jwt.clone())
                .configure(gateway::configure)
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind");
        let addr = server.addrs()[0].to_string();
        tokio::spawn(server.run());
        // Let the gateway's queue bind before anything is announced.
        tokio::time::sleep(Duration::from_millis(300)).await;
        (addr, gateway)
    }

    pub async fn command(&self, actor: UserId, channel: ChannelId, command: ChannelCommand) {
        let ctx = CommandContext {
            actor,
            correlation_id: uuid::Uuid::now_v7(),
            expected_version: None,
            idempotency_key: None,
            request_fingerprint: None,
        };
        self.commands
            .execute(channel, Intent::Command(command), &ctx, "any")
            .await
            .expect("command");
    }

    pub async fn channel(&self, owner: UserId, kind: ChannelKind, members: &[UserId]) -> ChannelId {
        let channel_id = ChannelId::new();
        self.command(
            owner,
            channel_id,
            ChannelCommand::Create {
                channel_id,
                name: "c".into(),
                kind,
                max_members: None,
            },
        )
        .await;
        for m in members {
            let command = if kind == ChannelKind::Public {
                ChannelCommand::Join
            } else {
                ChannelCommand::Invite { user_id: *m }
            };
            let actor = if kind == ChannelKind::Public {
                *m
            } else {
                owner
            };
            self.command(actor, channel_id, command).await;
        }
        channel_id
    }

    pub async fn send(&self, sender: UserId, channel: ChannelId, content: &str) {
        let command = ChannelCommand::SendMessage {
            message_id: MessageId::new(),
            content: content.into(),
            message_type: "text".into(),
            client_msg_id: None,
        };
        self.command(sender, channel, command).await;
    }

    /// Waits until the read model has the channel's `seq`.
    pub async fn wait_seq(&self, channel: ChannelId, seq: u64) {
        for _ in 0..600 {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT last_seq FROM rm.channels WHERE channel_id = $1")
                    .bind(channel.0)
                    .fetch_optional(&self.read.pool)
                    .await
                    .expect("read");
            if last.unwrap_or(0) as u64 >= seq {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("seq {seq} never reached the read model");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A test client.
pub struct Client {
    pub socket: Socket,
}

pub fn token(user: UserId) -> String {
    jwt()
        .issue(user.0, &format!("u{}", &user.0.simple().to_string()[..8]))
        .access_token
}

impl Client {
    /// Connects as `user` and reads the `welcome`.
    pub async fn connect(addr: &str, user: UserId) -> Client {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", token(user)).parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        let mut client = Client { socket };
        let welcome = client.next_frame().await;
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["user_id"], json!(user.0));
        client
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    /// The next text frame (pings are answered by the library), checked
    /// against its schema; panics after 10 s.
    pub async fn next_frame(&mut self) -> Value {
        self.try_next_frame(Duration::from_secs(10))
            .await
            .expect("a frame within 10 s")
    }

    pub async fn try_next_frame(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()??
                .ok()?;
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).expect("server frames are JSON");
                check_schema(&frame);
                return Some(frame);
            }
        }
    }

    /// Frames until one of `type` arrives (the others are returned too).
    pub async fn until(&mut self, frame_type: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.next_frame().await;
            if frame["type"] == frame_type {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    pub async fn subscribe(&mut self, channel: ChannelId, after_seq: Option<u64>) -> Value {
        let mut frame = json!({"type": "subscribe", "id": "s", "channel_id": channel.0});
        if let Some(after) = after_seq {
            frame["after_seq"] = json!(after);
        }
        self.send_json(frame).await;
        self.until("subscribed").await.0
    }
}

/// Every server frame must validate against `schemas/ws/server.{type}.json`
/// (the schemas crate's own test insists there is one per frame type).
pub fn check_schema(frame: &Value) {
    let Some(frame_type) = frame["type"].as_str() else {
        panic!("frame without type: {frame}")
    };
    let path = format!(
        "{}/../schemas/ws/server.{frame_type}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no schema for {frame_type} frames at {path}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    if let Some(error) = validator.iter_errors(frame).next() {
        panic!("{frame} violates {path}: {error}");
    }
}
