//! The Prometheus `/metrics` endpoint. One recorder per process, shared by every
//! service mounted in it.

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install_metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already global (a test harness): render an unattached one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            register_families();
            handle
        })
        .clone()
}

/// Mounts `GET /metrics`.
pub fn metrics_route(cfg: &mut web::ServiceConfig) {
    let handle = install_metrics();
    cfg.app_data(web::Data::new(handle))
        .route("/metrics", web::get().to(render));
}

async fn render(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

/// Every metric family of every service, so a scrape right after start lists
/// them all (at zero) whatever this process hosts.
const COUNTERS: &[(&str, &str)] = &[
    (
        "http_requests_total",
        "HTTP requests by method, route and status",
    ),
    (
        "event_store_appended_events_total",
        "events appended to the log",
    ),
    (
        "event_store_append_conflicts_total",
        "appends refused because the stream moved (expected-version conflicts)",
    ),
    ("commands_total", "commands by outcome"),
    (
        "command_retries_total",
        "command attempts retried after a conflict",
    ),
    (
        "rate_limit_checks_total",
        "send rate-limit checks by outcome",
    ),
    (
        "relay_published_total",
        "events published by the relay and confirmed by RabbitMQ",
    ),
    (
        "relay_restarts_total",
        "relay terms ended by an error (reconnects)",
    ),
    (
        "projector_applied_total",
        "events applied to the read model",
    ),
    (
        "projector_skipped_duplicates_total",
        "deliveries skipped as already applied",
    ),
    (
        "projector_healed_gap_events_total",
        "events read from the log to heal a gap",
    ),
    (
        "projector_dead_lettered_total",
        "deliveries sent to the dead letters",
    ),
    (
        "projector_notifications_total",
        "offline-member notifications published",
    ),
    ("projector_restarts_total", "projector reconnects"),
    ("ws_connections_total", "WebSocket connections accepted"),
    ("ws_frames_in_total", "WebSocket frames received"),
    ("ws_frames_out_total", "WebSocket frames queued to sockets"),
    (
        "ws_slow_consumer_disconnects_total",
        "sockets closed as slow consumers (4001)",
    ),
    (
        "ws_gap_repairs_total",
        "live seq gaps repaired from the read model",
    ),
];
const GAUGES: &[(&str, &str)] = &[
    (
        "relay_leader",
        "1 while this process's relay holds the publishing lock",
    ),
    (
        "relay_checkpoint_position",
        "global position of the relay checkpoint",
    ),
    (
        "relay_lag_seconds",
        "age of the last event the relay published, when published",
    ),
    (
        "projector_lag_seconds",
        "age of the last event the projector applied, when applied",
    ),
    ("ws_connections", "open WebSocket connections"),
    ("ws_subscriptions", "open channel subscriptions"),
];
const HISTOGRAMS: &[(&str, &str)] = &[
    (
        "http_request_duration_seconds",
        "HTTP request latency by method, route and status",
    ),
    ("projector_batch_size", "events per projector transaction"),
    (
        "ws_push_latency_seconds",
        "from a message's commit in the log to its push to this gateway's sockets",
    ),
];

fn register_families() {
    for (name, help) in COUNTERS {
        metrics::describe_counter!(*name, *help);
        metrics::counter!(*name).absolute(0);
    }
    for (name, help) in GAUGES {
        metrics::describe_gauge!(*name, *help);
        metrics::gauge!(*name).set(0.0);
    }
    for (name, help) in HISTOGRAMS {
        metrics::describe_histogram!(*name, *help);
        let _registered = metrics::histogram!(*name);
    }
}

/// Names of every registered family (for tests and docs).
pub fn metric_families() -> impl Iterator<Item = &'static str> {
    COUNTERS
        .iter()
        .chain(GAUGES)
        .chain(HISTOGRAMS)
        .map(|(name, _)| *name)
}
