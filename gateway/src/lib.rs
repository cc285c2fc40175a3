//! The WebSocket gateway (DESIGN.md §7, §8): `GET /ws` authenticates at the
//! handshake, then each socket subscribes to channels, sends through the same
//! command path as HTTP, and receives live pushes. Pushes come from the
//! projector's `chat.projections` announcements through one exclusive queue
//! per instance, fanned out in process; presence and typing go through Redis.
//! Membership is also enforced from the log itself (`membership`), so a lost
//! announcement never leaves a removed member subscribed.

mod catch_up;
mod changes;
mod commands;
mod connection;
mod feed;
mod frame_guard;
pub mod frames;
mod history;
mod hub;
mod limits;
mod log_watch;
mod session;
mod subscribe;
mod upgrade;

pub use history::DEFAULT_RECOVERY_LIMIT;

use command_service::CommandService;
use history::History;
use hub::Hub;
use live_state::{PresenceStore, SocketCensus, SocketLimit};
use read_model::ReadModel;
use redis_store::{Presence, RedisStore, SocketSlots};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Limits and timings of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub amqp_url: String,
    /// Server pings this often; announced in `welcome`.
    pub heartbeat: Duration,
    /// A socket silent this long, or whose writer is stuck this long, is closed.
    pub client_timeout: Duration,
    /// Frames queued for one socket before it counts as a slow consumer (4001).
    pub outbound_capacity: usize,
    /// Largest accepted frame, in bytes.
    pub max_frame_bytes: usize,
    /// The server's own origins (`CHAT_PUBLIC_URL`), always allowed.
    pub own_origins: Vec<String>,
    /// Browser origins allowed besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Most missed messages replayed (`CHAT_WS_RECOVERY_LIMIT`).
    pub recovery_limit: u64,
    /// Most user ids in `subscribed.online_users` (`CHAT_WS_PRESENCE_LIMIT`).
    pub presence_limit: usize,
    /// Client frames per second per socket (`CHAT_WS_FRAMES_PER_SEC`)...
    pub frames_per_sec: u32,
    /// ...with this burst.
    pub frames_burst: u32,
    /// One `typing` per channel per socket this often; extra ones are dropped.
    pub typing_interval: Duration,
    /// Subscriptions per socket (`CHAT_WS_MAX_SUBSCRIPTIONS`).
    pub max_subscriptions: usize,
    /// Sockets per user across instances (`CHAT_WS_MAX_SOCKETS_PER_USER`).
    pub max_sockets_per_user: usize,
    /// How often the log is checked for members who left, were kicked or banned.
    pub membership_interval: Duration,
    /// The embedded backend's in-process projections bus, consumed in place
    /// of RabbitMQ's `chat.projections` when set.
    pub local_feed: Option<local_bus::Announcements>,
}

impl GatewayConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            heartbeat: Duration::from_secs(20),
            client_timeout: Duration::from_secs(50),
            outbound_capacity: 256,
            max_frame_bytes: 64 * 1024,
            own_origins: Vec::new(),
            allowed_origins: Vec::new(),
            recovery_limit: DEFAULT_RECOVERY_LIMIT,
            presence_limit: 1000,
            frames_per_sec: 50,
            frames_burst: 200,
            typing_interval: Duration::from_secs(2),
            max_subscriptions: 500,
            max_sockets_per_user: 20,
            membership_interval: Duration::from_millis(500),
            local_feed: None,
        }
    }
}

/// What a gateway keeps outside itself, shared with the other instances:
/// on Redis for the services backend, in memory for the embedded one.
#[derive(Debug, Clone)]
pub struct LiveState {
    pub presence: Arc<dyn PresenceStore>,
    /// Sockets per user, capped at `GatewayConfig::max_sockets_per_user`.
    pub slots: Arc<dyn SocketLimit>,
    pub census: Arc<dyn SocketCensus>,
}

impl LiveState {
    /// Presence, socket slots and the census on one Redis.
    pub fn on_redis(redis: &RedisStore, max_sockets_per_user: usize) -> Self {
        Self {
            presence: Arc::new(Presence::new(redis.clone())),
            slots: Arc::new(SocketSlots::new(redis.clone(), max_sockets_per_user)),
            census: Arc::new(redis.clone()),
        }
    }
}

/// One gateway instance: register it as `web::Data<Gateway>` and mount `configure`.
pub struct Gateway {
    pub instance_id: Uuid,
    config: GatewayConfig,
    hub: Arc<Hub>,
    commands: Arc<CommandService>,
    presence: Arc<dyn PresenceStore>,
    slots: Arc<dyn SocketLimit>,
    census: Arc<dyn SocketCensus>,
    sockets: AtomicUsize,
    feed_up: AtomicBool,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        read: Arc<dyn ReadModel>,
        commands: Arc<CommandService>,
        live: LiveState,
    ) -> Arc<Self> {
        let LiveState {
            presence,
            slots,
            census,
        } = live;
        Arc::new(Self {
            instance_id: Uuid::now_v7(),
            hub: Hub::new(
                History::new(read),
                presence.clone(),
                config.recovery_limit,
                config.presence_limit,
            ),
            slots,
            config,
            commands,
            presence,
            census,
            sockets: AtomicUsize::new(0),
            feed_up: AtomicBool::new(false),
        })
    }

    /// Connected sockets of this instance.
    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Whether the broker feed is consuming right now (for readiness probes:
    /// no connection is opened to answer).
    pub fn feed_connected(&self) -> bool {
        self.feed_up.load(Ordering::Relaxed)
    }

    /// Starts the background work: the broker feed, the Redis live feed, the
    /// membership watch, the presence sweeper and the socket-count report.
    /// Runs until `shutdown`.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(feed::projections(self.clone(), shutdown.clone()));
        tokio::spawn(feed::live_events(self.clone(), shutdown.clone()));
        tokio::spawn(log_watch::watch(self.clone(), shutdown.clone()));
        tokio::spawn(feed::housekeeping(self.clone(), shutdown));
    }
}

/// Mounts `GET /ws`.
/// Every route this crate mounts, as (method, path pattern).
pub const ROUTES: &[(&str, &str)] = &[("GET", "/ws")];

pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::{guard, middleware, web};
    // Guarded by method like `cfg.route`, so another method falls through to
    // the host's 405; the frame guard sees the client's bytes first.
    cfg.service(
        web::resource("/ws")
            .guard(guard::Get())
            .wrap(middleware::from_fn(frame_guard::guard_frames))
            .route(web::get().to(upgrade::websocket)),
    );
}
