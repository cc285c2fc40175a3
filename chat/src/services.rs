//! The services backend (DESIGN §9): PostgreSQL for the log and the read
//! models, RabbitMQ between the relay, the projector and the gateways, Redis
//! for presence, typing and rate limits. Each failure to connect is named in
//! one line with how to start the service.

use crate::up::{Role, Wiring};
use anyhow::Context;
use command_service::CommandService;
use domain::MessagePolicy;
use event_store::PgEventStore;
use futures_util::FutureExt;
use service_kit::{Readiness, Settings};
use std::sync::Arc;

/// The services backend, connected.
pub struct Services {
    log: sqlx::PgPool,
    read: sqlx::PgPool,
    redis: redis_store::RedisStore,
    amqp_url: String,
}

impl Services {
    /// Connects to all three services (creating databases, tables,
    /// exchanges and queues on first start).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Services> {
        let log = event_store::connect(&settings.database_url, settings.database_max_connections)
            .await
            .context("event log (CHAT_DATABASE_URL)")?;
        let read = read_model::connect(
            &settings.read_database_url,
            settings.read_database_max_connections,
        )
        .await
        .context("read model (CHAT_READ_DATABASE_URL)")?;
        let redis = redis_store::RedisStore::connect(&settings.redis_url, "")
            .await
            .context("Redis (CHAT_REDIS_URL)")?;
        declare_broker(&settings.amqp_url)
            .await
            .context("RabbitMQ (CHAT_AMQP_URL)")?;
        Ok(Services {
            log,
            read,
            redis,
            amqp_url: settings.amqp_url.clone(),
        })
    }

    /// Where the data lives, for `chat up` to say.
    pub fn data_location(settings: &Settings) -> String {
        format!(
            "event log {}, read models {}",
            redacted(&settings.database_url),
            redacted(&settings.read_database_url)
        )
    }

    /// The ports on PostgreSQL and Redis; the gateway feeds from RabbitMQ.
    pub fn wire(
        &self,
        settings: &Settings,
        policy: MessagePolicy,
        role: Role,
    ) -> anyhow::Result<Wiring> {
        let store = Arc::new(PgEventStore::new(self.log.clone()));
        // Sends are admitted from local buckets reconciled with Redis in
        // batches: no round trip per send (bounded over-admission, see
        // redis-store's README).
        let limiter = redis_store::BatchedRateLimiter::spawn(
            self.redis.clone(),
            settings.send_rate_per_sec,
            settings.send_burst,
        );
        Ok(Wiring {
            commands: Arc::new(
                CommandService::new(store.clone(), policy).with_rate_limiter(limiter),
            ),
            log: store,
            read: Arc::new(read_model::PgReadModel::new(self.read.clone())),
            live: gateway::LiveState::on_redis(&self.redis, settings.ws.max_sockets_per_user),
            auth_throttle: Arc::new(redis_store::RateLimiter::per_minute(
                self.redis.clone(),
                settings.auth_attempts_per_min,
            )),
            local_feed: None,
            jwt: jwt(settings, role == Role::Everything)?,
        })
    }

    /// The relay, and the projector unless it runs on its own.
    pub fn spawn_workers(
        &self,
        wiring: &Wiring,
        projector: bool,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let relay = command_service::relay::RelayConfig::new(self.amqp_url.clone());
        let mut workers = vec![tokio::spawn(command_service::relay::run(
            self.log.clone(),
            relay,
            shutdown.clone(),
        ))];
        if projector {
            let config = projector::ProjectorConfig::new(self.amqp_url.clone())
                .with_notifications(redis_store::Presence::new(self.redis.clone()));
            let run = projector::run(
                wiring.read.clone(),
                wiring.log.clone(),
                config,
                shutdown.clone(),
            );
            workers.push(tokio::spawn(async move {
                if let Err(e) = run.await {
                    tracing::error!(error = %e, "projector stopped");
                }
            }));
        }
        workers
    }

    /// Readiness of every dependency. Answers carry fixed words, never a
    /// backend's error text (logged instead); RabbitMQ is judged by the
    /// gateway's own feed connection, so a probe never opens a broker
    /// connection.
    pub fn readiness(&self, gateway: &Arc<gateway::Gateway>) -> Readiness {
        let (log, read, redis, feed) = (
            self.log.clone(),
            self.read.clone(),
            self.redis.clone(),
            gateway.clone(),
        );
        Readiness::new()
            .with("event_log", Arc::new(move || ping_pg(log.clone()).boxed()))
            .with(
                "read_model",
                Arc::new(move || ping_pg(read.clone()).boxed()),
            )
            .with(
                "redis",
                Arc::new(move || {
                    let redis = redis.clone();
                    async move {
                        redis.ping().await.map_err(|e| {
                            tracing::warn!(error = %e, "readiness: Redis");
                            "unreachable".to_owned()
                        })
                    }
                    .boxed()
                }),
            )
            .with(
                "rabbitmq",
                Arc::new(move || {
                    let connected = feed.feed_connected();
                    async move {
                        if connected {
                            Ok(())
                        } else {
                            Err("the gateway's broker feed is not connected".to_owned())
                        }
                    }
                    .boxed()
                }),
            )
    }
}

/// Checks RabbitMQ answers and declares the whole topology once.
async fn declare_broker(amqp_url: &str) -> anyhow::Result<()> {
    let connection = broker::connect(amqp_url, "chat-setup").await?;
    let channel = connection.create_channel().await?;
    // A malformed CHAT_PROJECTOR_PARTITIONS stops `chat up` here, with its name.
    broker::declare_partitioned(&channel, broker::Partitions::from_env()?).await?;
    broker::declare_projections(&channel).await?;
    let _ = connection.close(0, "declared".into()).await;
    Ok(())
}

async fn ping_pg(pool: sqlx::PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness: Postgres");
            "unreachable".to_owned()
        })
}

/// A URL without its password, safe to print.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The JWT configuration; `generate` makes up a secret when none is set.
fn jwt(settings: &Settings, generate: bool) -> anyhow::Result<auth::JwtConfig> {
    if settings.jwt_secret.is_some() || !generate {
        return Ok(settings.jwt()?);
    }
    use rand::Rng;
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    tracing::warn!(
        "CHAT_JWT_SECRET is not set: generated a random one; tokens will not survive a restart or work across instances"
    );
    Ok(Settings {
        jwt_secret: Some(secret),
        ..settings.clone()
    }
    .jwt()?)
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn printed_urls_carry_no_password() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/chat"),
            "postgres://app@db:5432/chat"
        );
        assert_eq!(
            redacted("postgres://postgres@localhost:5432/chat"),
            "postgres://postgres@localhost:5432/chat"
        );
        assert_eq!(redacted("sqlite:/x"), "sqlite:/x");
    }
}
