//! The WebSocket gateway (DESIGN.md §7, §8): `GET /ws` authenticates at the
//! handshake, then each socket subscribes to channels, sends through the same
//! command path as HTTP, and receives live pushes. Pushes come from the
//! projector's `chat.projections` announcements through one exclusive queue
//! per instance, fanned out in process; presence and typing go through Redis.

mod commands;
mod feed;
pub mod frames;
mod history;
mod hub;
mod session;
mod upgrade;

pub use history::MAX_RECOVERY;

use command_service::CommandService;
use history::History;
use hub::Hub;
use redis_store::{Presence, RedisStore};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Limits and timings of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub amqp_url: String,
    /// Server pings this often; announced in `welcome`.
    pub heartbeat: Duration,
    /// A socket silent this long is closed (4002).
    pub client_timeout: Duration,
    /// Frames queued for one socket before it counts as a slow consumer (4001).
    pub outbound_capacity: usize,
    /// Largest accepted frame, in bytes.
    pub max_frame_bytes: usize,
    /// Browser origins allowed besides the server's own.
    pub allowed_origins: Vec<String>,
}

impl GatewayConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            heartbeat: Duration::from_secs(20),
            client_timeout: Duration::from_secs(50),
            outbound_capacity: 256,
            max_frame_bytes: 64 * 1024,
            allowed_origins: Vec::new(),
        }
    }
}

/// One gateway instance: register it as `web::Data<Gateway>` and mount `configure`.
pub struct Gateway {
    pub instance_id: Uuid,
    config: GatewayConfig,
    hub: Arc<Hub>,
    commands: Arc<CommandService>,
    presence: Presence,
    redis: RedisStore,
    sockets: AtomicUsize,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        read: PgPool,
        commands: Arc<CommandService>,
        redis: RedisStore,
    ) -> Arc<Self> {
        Arc::new(Self {
            instance_id: Uuid::now_v7(),
            config,
            hub: Hub::new(History::new(read)),
            commands,
            presence: Presence::new(redis.clone()),
            redis,
            sockets: AtomicUsize::new(0),
        })
    }

    /// Connected sockets of this instance.
    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Starts the background work: the broker feed, the Redis live feed, the
    /// presence sweeper and the socket-count report. Runs until `shutdown`.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(feed::projections(self.clone(), shutdown.clone()));
        tokio::spawn(feed::live_events(self.clone(), shutdown.clone()));
        tokio::spawn(feed::housekeeping(self.clone(), shutdown));
    }
}

/// Mounts `GET /ws`.
/// Every route this crate mounts, as (method, path pattern).
pub const ROUTES: &[(&str, &str)] = &[("GET", "/ws")];

pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.route("/ws", actix_web::web::get().to(upgrade::websocket));
}
