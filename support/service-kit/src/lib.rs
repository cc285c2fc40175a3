//! Plumbing every HTTP service shares: settings from `CHAT_*` variables, the
//! error contract (`{"error":{"code","message"}}`), request extractors
//! (bearer auth with the registered-user check, JSON bodies, request ids),
//! tracing and Prometheus metrics.

mod data_dir;
mod error;
mod extract;
mod fallback;
mod health;
pub mod integer;
mod known_users;
mod metrics_endpoint;
mod settings;
mod slow_clients;
mod telemetry;

pub use data_dir::{DataDir, DataDirError};
pub use error::ApiError;
pub use extract::{AuthUser, RequestId, configure_extractors};
pub use fallback::{HEALTH_ROUTES, KnownRoutes, METRICS_ROUTES};
pub use health::{Check, Readiness, health_routes};
pub use known_users::{KnownUsers, Lookup, require_registered};
pub use metrics_endpoint::{install_metrics, metric_families, metrics_route};
pub use settings::{
    Backend, BackendChoice, JwtSettingsError, LogFormat, SERVICE_URL_VARIABLES, Settings,
    SettingsError,
};
pub use slow_clients::{
    ClientTimeouts, guard_slow_clients, payload_error, watch_socket, watch_tcp,
};
pub use telemetry::{init_tracing, observe_requests};
