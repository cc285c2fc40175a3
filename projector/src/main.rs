//! `projector`: consumes `projector.events` (or its partitions, shared with
//! the other projector processes) and builds the read model; serves
//! `/metrics` and `/health` on `CHAT_HTTP_ADDR`.

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use event_store::{EventLog, PgEventStore};
use projector::ProjectorConfig;
use read_model::{PgReadModel, ReadModel};
use service_kit::Settings;
use std::sync::Arc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    service_kit::init_tracing(settings.log_format);
    let read: Arc<dyn ReadModel> = Arc::new(PgReadModel::new(
        read_model::connect(&settings.read_database_url, 8).await?,
    ));
    let log: Arc<dyn EventLog> = Arc::new(PgEventStore::new(
        event_store::connect(&settings.database_url, 4).await?,
    ));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let redis = redis_store::RedisStore::connect(&settings.redis_url, "").await?;
    let mut config = ProjectorConfig::new(settings.amqp_url.clone())
        .with_notifications(redis_store::Presence::new(redis));
    // A malformed count refuses to start rather than run with another split.
    config.partitions = broker::Partitions::from_env()?;
    let worker = tokio::spawn(projector::run(read, log, config, shutdown));
    let server = HttpServer::new(|| {
        App::new().configure(service_kit::metrics_route).route(
            "/health",
            web::get()
                .to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
        )
    })
    .bind(&settings.http_addr)
    .with_context(|| format!("cannot listen on {}", settings.http_addr))?
    .run();
    tracing::info!(addr = %settings.http_addr, "projector running");
    server.await?;
    let _ = stop.send(true);
    worker.await?.map_err(anyhow::Error::msg)?;
    Ok(())
}
