//! Connecting to the three backing services, each failure named in one line
//! with how to start the service.

use anyhow::Context;
use service_kit::Settings;

/// The write database (event log), created and migrated if needed.
pub async fn event_log(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    event_store::connect(&settings.database_url, settings.database_max_connections)
        .await
        .context("event log (CHAT_DATABASE_URL)")
}

/// The read database, created if needed.
pub async fn read_model(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    read_model::connect(
        &settings.read_database_url,
        settings.read_database_max_connections,
    )
    .await
    .context("read model (CHAT_READ_DATABASE_URL)")
}

/// Redis.
pub async fn redis(settings: &Settings) -> anyhow::Result<redis_store::RedisStore> {
    redis_store::RedisStore::connect(&settings.redis_url, "")
        .await
        .context("Redis (CHAT_REDIS_URL)")
}

/// Checks RabbitMQ answers and declares the whole topology once.
pub async fn broker(settings: &Settings) -> anyhow::Result<()> {
    let connection = broker::connect(&settings.amqp_url, "chat-setup")
        .await
        .context("RabbitMQ (CHAT_AMQP_URL)")?;
    let channel = connection.create_channel().await?;
    broker::declare_events(&channel).await?;
    broker::declare_projections(&channel).await?;
    let _ = connection.close(0, "declared".into()).await;
    Ok(())
}

/// The JWT configuration; `generate` makes up a secret when none is set.
pub fn jwt(settings: &Settings, generate: bool) -> anyhow::Result<auth::JwtConfig> {
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
