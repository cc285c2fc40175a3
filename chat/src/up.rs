//! `chat up` and `chat gateway`: the services hosted in one actix server on
//! one port, with the relay and projector as background tasks.

use crate::services;
use crate::tls::{self, TlsFiles};
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context;
use command_service::CommandService;
use domain::MessagePolicy;
use event_store::PgEventStore;
use futures_util::FutureExt;
use gateway::{Gateway, GatewayConfig};
use query_service::QueryService;
use service_kit::{Readiness, Settings};
use std::process::ExitCode;
use std::sync::Arc;

/// Options of `chat up` / `chat gateway`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Address to listen on (overrides CHAT_HTTP_ADDR), e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub addr: Option<String>,
    /// Host everything but the projector (`chat up` only), for a deployment
    /// that runs the `projector` binary on its own beside it.
    #[arg(long)]
    pub no_projector: bool,
    /// PEM certificate chain: with --tls-key, serve HTTPS and WSS (rustls)
    /// instead of plain HTTP and WS.
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// What this process hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Everything,
    GatewayOnly,
}

pub async fn run(settings: Settings, args: UpArgs, role: Role) -> anyhow::Result<ExitCode> {
    let addr = args.addr.unwrap_or_else(|| settings.http_addr.clone());
    // Read the certificate before anything else starts: a bad path fails fast.
    let tls = TlsFiles::from_options(args.tls_cert, args.tls_key)?;
    let tls_config = tls.as_ref().map(TlsFiles::server_config).transpose()?;
    // Bound before any service is reached: a taken port is one clear line,
    // not a half-started process tearing its broker connections down.
    let listener =
        std::net::TcpListener::bind(&addr).with_context(|| format!("cannot listen on {addr}"))?;
    let jwt = web::Data::new(services::jwt(&settings, role == Role::Everything)?);
    let log = services::event_log(&settings).await?;
    let read = services::read_model(&settings).await?;
    let read_model: Arc<dyn read_model::ReadModel> =
        Arc::new(read_model::PgReadModel::new(read.clone()));
    let redis = services::redis(&settings).await?;
    services::broker(&settings).await?;

    let policy = MessagePolicy::new(settings.max_message_chars, &settings.banned_words);
    let limiter = redis_store::RateLimiter::new(
        redis.clone(),
        settings.send_rate_per_sec,
        settings.send_burst,
    );
    let commands = Arc::new(
        CommandService::new(Arc::new(PgEventStore::new(log.clone())), policy)
            .with_rate_limiter(limiter),
    );
    // Only the API that registers and logs in hashes passwords: a gateway
    // alone holds no hash pool (two threads with 19 MiB buffers each).
    let auth_gate = match role {
        Role::Everything => Some(web::Data::new(command_service::AuthGate::for_server(
            redis.clone(),
            settings.auth_attempts_per_min,
        )?)),
        Role::GatewayOnly => None,
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);

    let mut workers = Vec::new();
    if role == Role::Everything {
        let relay = command_service::relay::RelayConfig::new(settings.amqp_url.clone());
        workers.push(tokio::spawn(command_service::relay::run(
            log.clone(),
            relay,
            shutdown.clone(),
        )));
    }
    if role == Role::Everything && !args.no_projector {
        let projector_config = projector::ProjectorConfig::new(settings.amqp_url.clone())
            .with_notifications(redis_store::Presence::new(redis.clone()));
        let (read2, log2, shutdown2) = (
            read_model.clone(),
            Arc::new(PgEventStore::new(log.clone())),
            shutdown.clone(),
        );
        workers.push(tokio::spawn(async move {
            if let Err(e) = projector::run(read2, log2, projector_config, shutdown2).await {
                tracing::error!(error = %e, "projector stopped");
            }
        }));
    }
    let ws = &settings.ws;
    let own_origins = match tls {
        Some(_) => tls::secure_origins(ws.own_origins(&addr), ws.public_url.is_some()),
        None => ws.own_origins(&addr),
    };
    let web_client = web_client::WebClient::new(&own_origins);
    let gateway_config = GatewayConfig {
        own_origins,
        allowed_origins: settings.allowed_origins.clone(),
        recovery_limit: ws.recovery_limit,
        presence_limit: ws.presence_limit,
        frames_per_sec: ws.frames_per_sec,
        frames_burst: ws.frames_per_sec.saturating_mul(4),
        max_subscriptions: ws.max_subscriptions,
        max_sockets_per_user: ws.max_sockets_per_user,
        ..GatewayConfig::new(settings.amqp_url.clone())
    };
    let gateway = Gateway::new(
        gateway_config,
        read_model.clone(),
        commands.clone(),
        redis.clone(),
    );
    gateway.start(shutdown.clone());

    let readiness = readiness(&log, &read, &redis, &gateway);
    let commands = web::Data::from(commands);
    let queries = web::Data::new(QueryService::new(
        read_model,
        Arc::new(PgEventStore::new(log.clone())),
        settings.admins.clone(),
    ));
    let gateway = web::Data::new(gateway);
    // A valid signature is not enough: the token's user must be registered.
    let known_users = web::Data::new(service_kit::KnownUsers::in_log(Arc::new(
        PgEventStore::new(log.clone()),
    )));
    let max_body = settings.max_body_bytes;
    let timeouts = settings.client_timeouts;
    let client_timeouts = web::Data::new(timeouts);
    let known_routes = match role {
        Role::Everything => service_kit::KnownRoutes::new(&[
            service_kit::METRICS_ROUTES,
            service_kit::HEALTH_ROUTES,
            gateway::ROUTES,
            command_service::ROUTES,
            query_service::ROUTES,
            web_client::ROUTES,
        ]),
        Role::GatewayOnly => service_kit::KnownRoutes::new(&[
            service_kit::METRICS_ROUTES,
            service_kit::HEALTH_ROUTES,
            gateway::ROUTES,
        ]),
    };
    let server = HttpServer::new(move || {
        let app = App::new()
            .default_service(known_routes.default_service())
            .wrap(middleware::from_fn(service_kit::observe_requests))
            // Outermost: bodies get their deadline, the connection watch its marks.
            .wrap(middleware::from_fn(service_kit::guard_slow_clients))
            .app_data(client_timeouts.clone())
            .app_data(jwt.clone())
            .app_data(known_users.clone())
            .app_data(commands.clone())
            .app_data(gateway.clone())
            .configure(|cfg| service_kit::configure_extractors(cfg, max_body))
            .configure(service_kit::metrics_route)
            .configure(service_kit::health_routes(readiness.clone()))
            .configure(gateway::configure);
        match &auth_gate {
            Some(auth_gate) => app
                .app_data(queries.clone())
                .app_data(auth_gate.clone())
                .configure(command_service::configure)
                .configure(query_service::configure)
                .configure(web_client.clone().configure()),
            None => app,
        }
    })
    // actix bounds only the first request's head; the watch bounds the rest.
    .client_request_timeout(timeouts.head)
    .keep_alive(timeouts.keep_alive)
    .on_connect(crate::connections::watch(timeouts));
    let server = match (&tls, tls_config) {
        (Some(files), Some(config)) => {
            tracing::info!(cert = %files.cert.display(), "TLS on: serving HTTPS and WSS");
            server.listen_rustls_0_23(listener, config)
        }
        _ => server.listen(listener),
    }
    .with_context(|| format!("cannot listen on {addr}"))?
    .run();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, ?role, url = %format!("{scheme}://{addr}/"), "chat is up: web client at /, HTTP API, WebSocket at /ws, metrics at /metrics");
    server.await?;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Readiness of every dependency. Answers carry fixed words, never a
/// backend's error text (logged instead); RabbitMQ is judged by the gateway's
/// own feed connection, so a probe never opens a broker connection.
fn readiness(
    log: &sqlx::PgPool,
    read: &sqlx::PgPool,
    redis: &redis_store::RedisStore,
    gateway: &Arc<Gateway>,
) -> Readiness {
    let (log, read, redis, feed) = (log.clone(), read.clone(), redis.clone(), gateway.clone());
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
