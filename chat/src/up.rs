//! `chat up` and `chat gateway`: the services hosted in one actix server on
//! one port, with the relay and projector as background tasks, on the
//! backend DESIGN §9 selects (`embedded` or `services`).

use crate::embedded::Embedded;
use crate::services::Services;
use crate::tls::{self, TlsFiles};
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context;
use command_service::CommandService;
use domain::MessagePolicy;
use event_store::EventLog;
use gateway::{Gateway, GatewayConfig};
use live_state::Throttle;
use query_service::QueryService;
use read_model::ReadModel;
use service_kit::{Backend, BackendChoice, Settings};
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
    /// embedded (SQLite files under CHAT_DATA_DIR, nothing to install) or
    /// services (PostgreSQL, RabbitMQ, Redis); overrides CHAT_BACKEND. The
    /// default is services as soon as a service URL is set, else embedded.
    #[arg(long, value_name = "BACKEND", value_parser = parse_backend)]
    pub backend: Option<Backend>,
    /// PEM certificate chain: with --tls-key, serve HTTPS and WSS (rustls)
    /// instead of plain HTTP and WS.
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<std::path::PathBuf>,
}

fn parse_backend(value: &str) -> Result<Backend, String> {
    value.parse().map_err(|e: &str| e.to_owned())
}

/// What this process hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Everything,
    GatewayOnly,
}

/// What the services of one process are built from, whichever backend
/// holds it.
pub struct Wiring {
    pub commands: Arc<CommandService>,
    pub log: Arc<dyn EventLog>,
    pub read: Arc<dyn ReadModel>,
    pub live: gateway::LiveState,
    pub auth_throttle: Arc<dyn Throttle>,
    /// The in-process projections bus (None: RabbitMQ's `chat.projections`).
    pub local_feed: Option<local_bus::Announcements>,
    pub jwt: auth::JwtConfig,
}

/// The backend this process runs on, open.
enum Engine {
    Services(Services),
    Embedded(Embedded),
}

pub async fn run(settings: Settings, args: UpArgs, role: Role) -> anyhow::Result<ExitCode> {
    let addr = args.addr.unwrap_or_else(|| settings.http_addr.clone());
    let choice = match args.backend {
        Some(backend) => BackendChoice {
            backend,
            reason: format!("--backend {}", backend.as_str()),
        },
        None => settings.backend.clone(),
    };
    if role == Role::GatewayOnly && choice.backend == Backend::Embedded {
        anyhow::bail!(
            "`chat gateway` runs beside other instances, on the services backend only ({}); set the service URLs or CHAT_BACKEND=services",
            choice.reason
        );
    }
    // Read the certificate before anything else starts: a bad path fails fast.
    let tls = TlsFiles::from_options(args.tls_cert, args.tls_key)?;
    let tls_config = tls.as_ref().map(TlsFiles::server_config).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let data = match choice.backend {
        Backend::Embedded => std::path::absolute(&settings.data_dir)
            .unwrap_or_else(|_| settings.data_dir.clone())
            .display()
            .to_string(),
        Backend::Services => Services::data_location(&settings),
    };
    // Said before anything else happens, so a failure below is read in its light.
    eprintln!(
        "chat: backend {} ({})\nchat: data in {data}\nchat: open {scheme}://{addr}/",
        choice.backend.as_str(),
        choice.reason
    );
    if args.no_projector && choice.backend == Backend::Embedded {
        anyhow::bail!(
            "--no-projector is for the services backend: on the embedded one the projector runs in this process"
        );
    }
    // Bound before any service is reached: a taken port is one clear line,
    // not a half-started process tearing its broker connections down.
    let listener =
        std::net::TcpListener::bind(&addr).with_context(|| format!("cannot listen on {addr}"))?;
    let policy = MessagePolicy::new(settings.max_message_chars, &settings.banned_words);
    let (engine, wiring) = match choice.backend {
        Backend::Services => {
            let services = Services::connect(&settings).await?;
            let wiring = services.wire(&settings, policy, role)?;
            (Engine::Services(services), wiring)
        }
        Backend::Embedded => {
            let embedded = Embedded::open(&settings).await?;
            let wiring = embedded.wire(&settings, policy)?;
            (Engine::Embedded(embedded), wiring)
        }
    };
    let jwt = web::Data::new(wiring.jwt.clone());
    let commands = wiring.commands.clone();
    // Only the API that registers and logs in hashes passwords: a gateway
    // alone holds no hash pool (two threads with 19 MiB buffers each).
    let auth_gate = match role {
        Role::Everything => Some(web::Data::new(
            command_service::AuthGate::unthrottled()?.with_throttle(wiring.auth_throttle.clone()),
        )),
        Role::GatewayOnly => None,
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let workers = match (&engine, role) {
        (_, Role::GatewayOnly) => Vec::new(),
        (Engine::Services(services), Role::Everything) => {
            services.spawn_workers(&wiring, !args.no_projector, &shutdown)
        }
        (Engine::Embedded(embedded), Role::Everything) => embedded.spawn_workers(&shutdown),
    };
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
        local_feed: wiring.local_feed.clone(),
        ..GatewayConfig::new(settings.amqp_url.clone())
    };
    let gateway = Gateway::new(
        gateway_config,
        wiring.read.clone(),
        commands.clone(),
        wiring.live.clone(),
    );
    gateway.start(shutdown.clone());

    let readiness = match &engine {
        Engine::Services(services) => services.readiness(&gateway),
        Engine::Embedded(embedded) => embedded.readiness(),
    };
    let commands = web::Data::from(commands);
    let queries = web::Data::new(QueryService::new(
        wiring.read.clone(),
        wiring.log.clone(),
        settings.admins.clone(),
    ));
    let gateway = web::Data::new(gateway);
    // A valid signature is not enough: the token's user must be registered.
    let known_users = web::Data::new(service_kit::KnownUsers::in_log(wiring.log.clone()));
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
    tracing::info!(%addr, ?role, url = %format!("{scheme}://{addr}/"), "chat is up: web client at /, HTTP API, WebSocket at /ws, metrics at /metrics");
    server.await?;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    if let Engine::Embedded(embedded) = &engine {
        embedded.close().await;
    }
    Ok(ExitCode::SUCCESS)
}
