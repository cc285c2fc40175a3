//! `query-service`: the query API and the event-history API alone on `CHAT_HTTP_ADDR`.

use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context;
use event_store::PgEventStore;
use query_service::QueryService;
use service_kit::Settings;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    service_kit::init_tracing(settings.log_format);
    let jwt = settings.jwt()?;
    let read = read_model::connect(
        &settings.read_database_url,
        settings.read_database_max_connections,
    )
    .await?;
    let log =
        event_store::connect(&settings.database_url, settings.database_max_connections).await?;
    let known_users = web::Data::new(service_kit::KnownUsers::in_log(std::sync::Arc::new(
        PgEventStore::new(log.clone()),
    )));
    let service = web::Data::new(QueryService::new(
        std::sync::Arc::new(read_model::PgReadModel::new(read)),
        std::sync::Arc::new(PgEventStore::new(log)),
        settings.admins.clone(),
    ));
    let jwt = web::Data::new(jwt);
    let max_body = settings.max_body_bytes;
    let timeouts = settings.client_timeouts;
    let client_timeouts = web::Data::new(timeouts);
    tracing::info!(addr = %settings.http_addr, "query-service listening");
    let known_routes =
        service_kit::KnownRoutes::new(&[service_kit::METRICS_ROUTES, query_service::ROUTES]);
    HttpServer::new(move || {
        App::new()
            .default_service(known_routes.default_service())
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .wrap(middleware::from_fn(service_kit::guard_slow_clients))
            .app_data(client_timeouts.clone())
            .app_data(service.clone())
            .app_data(jwt.clone())
            .app_data(known_users.clone())
            .configure(|cfg| service_kit::configure_extractors(cfg, max_body))
            .configure(service_kit::metrics_route)
            .configure(query_service::configure)
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
    Ok(())
}
