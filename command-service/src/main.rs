//! `command-service`: the command API alone on `CHAT_HTTP_ADDR`.

use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context;
use command_service::CommandService;
use domain::MessagePolicy;
use event_store::PgEventStore;
use service_kit::Settings;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    service_kit::init_tracing(settings.log_format);
    let jwt = settings.jwt()?;
    let pool =
        event_store::connect(&settings.database_url, settings.database_max_connections).await?;
    let policy = MessagePolicy::new(settings.max_message_chars, &settings.banned_words);
    let (stop_relay, shutdown) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(command_service::relay::run(
        pool.clone(),
        command_service::relay::RelayConfig::new(settings.amqp_url.clone()),
        shutdown,
    ));
    let redis = redis_store::RedisStore::connect(&settings.redis_url, "").await?;
    let gate = web::Data::new(command_service::AuthGate::for_server(
        redis.clone(),
        settings.auth_attempts_per_min,
    )?);
    // No Redis round trip per send: local buckets reconciled in batches.
    let limiter = redis_store::BatchedRateLimiter::spawn(
        redis,
        settings.send_rate_per_sec,
        settings.send_burst,
    );
    let store = std::sync::Arc::new(PgEventStore::new(pool));
    let known_users = web::Data::new(service_kit::KnownUsers::in_log(store.clone()));
    let service = web::Data::new(CommandService::new(store, policy).with_rate_limiter(limiter));
    let jwt = web::Data::new(jwt);
    let max_body = settings.max_body_bytes;
    let timeouts = settings.client_timeouts;
    let client_timeouts = web::Data::new(timeouts);
    tracing::info!(addr = %settings.http_addr, "command-service listening");
    let known_routes =
        service_kit::KnownRoutes::new(&[service_kit::METRICS_ROUTES, command_service::ROUTES]);
    HttpServer::new(move || {
        App::new()
            .default_service(known_routes.default_service())
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .wrap(middleware::from_fn(service_kit::guard_slow_clients))
            .app_data(client_timeouts.clone())
            .app_data(service.clone())
            .app_data(jwt.clone())
            .app_data(known_users.clone())
            .app_data(gate.clone())
            .configure(|cfg| service_kit::configure_extractors(cfg, max_body))
            .configure(service_kit::metrics_route)
            .configure(command_service::configure)
    })
    .client_request_timeout(timeouts.head)
    .keep_alive(timeouts.keep_alive)
    .on_connect(move |io, extensions| {
        service_kit::watch_tcp(io, timeouts, extensions);
    })
    .bind(&settings.http_addr)
    .with_context(|| format!("cannot listen on {}", settings.http_addr))?
    .run()
    .await?;
    let _ = stop_relay.send(true);
    let _ = relay.await;
    Ok(())
}
