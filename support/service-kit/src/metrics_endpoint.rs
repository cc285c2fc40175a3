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
                Ok(handle) => {
                    spawn_upkeep(handle.clone());
                    handle
                }
                // Another recorder is already global (a test harness): render an unattached one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            register_families();
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the recorded histogram samples into their buckets now and then. The
/// recorder keeps every sample until that happens, and `install_recorder`
/// leaves it to the caller: without it a server nobody scrapes grew by about
/// 700 bytes per message (12.5 MiB a minute at 300 msg/s; BENCHMARKS.md).
/// A thread, not a task: the recorder outlives any one runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "metrics upkeep thread not started: histograms grow until scraped");
    }
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
        "http_slow_clients_closed_total",
        "connections shut down because their next request did not arrive in time (slowloris)",
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
        "command groups retried after a conflict",
    ),
    (
        "projector_rebalances_total",
        "times this projector saw the member slots change and handed over partitions it does not prefer",
    ),
    (
        "projector_handovers_total",
        "partitions this projector handed over to the member that prefers them",
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
    (
        "ws_frames_refused_total",
        "WebSocket frames refused by the per-connection frame budget",
    ),
    (
        "ws_typing_dropped_total",
        "typing frames dropped by the per-channel throttle",
    ),
    (
        "ws_refused_sockets_total",
        "sockets closed at once: the user has too many (4005)",
    ),
    (
        "ws_evictions_total",
        "subscriptions ended by a leave, kick or ban",
    ),
    (
        "ws_history_reads_total",
        "read-model queries for replays and gap repairs",
    ),
    (
        "ws_feed_lagged_announcements_total",
        "announcements a gateway lost by falling behind the in-process bus (repaired from the read model)",
    ),
    (
        "local_bus_announcements_total",
        "announcements published on the embedded backend's in-process bus",
    ),
    (
        "ws_resyncs_total",
        "subscriptions too far behind to replay (recovered: false)",
    ),
    (
        "ws_message_changes_total",
        "edits and deletes fanned out (each once, from the feed or the log watch)",
    ),
    (
        "auth_throttled_total",
        "registrations and logins refused by the per-address or per-username throttle",
    ),
    (
        "auth_hash_refused_total",
        "password hashes refused because the hash pool was full (503)",
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
    (
        "projector_partition_active",
        "1 for each partition this projector holds (by partition)",
    ),
    (
        "projector_members",
        "projector processes holding a member slot, as this one last saw them",
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
        "command_group_size",
        "commands decided and appended together on one stream",
    ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the code records is a registered family, so `/metrics`
    /// lists it (with HELP) before its first use and dashboards can rely on it.
    #[test]
    fn every_recorded_metric_is_registered() {
        let registered: std::collections::HashSet<&str> = metric_families().collect();
        // support/service-kit: the workspace is two levels up; crates sit at
        // its top or one folder down (adapters/, tools/, support/).
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("workspace root");
        let mut crate_dirs = Vec::new();
        for entry in std::fs::read_dir(workspace).expect("workspace").flatten() {
            let path = entry.path();
            if path.join("src").is_dir() {
                crate_dirs.push(path);
            } else if path.is_dir() {
                crate_dirs.extend(
                    std::fs::read_dir(&path)
                        .expect("a folder of crates")
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.join("src").is_dir()),
                );
            }
        }
        assert!(
            crate_dirs
                .iter()
                .any(|d| d.ends_with("adapters/event-store")),
            "the walk found the crates one folder down: {crate_dirs:?}"
        );
        let mut missing = Vec::new();
        for crate_dir in crate_dirs {
            let src = crate_dir.join("src");
            if crate_dir.ends_with("loadgen") {
                continue;
            }
            for name in recorded_names(&src) {
                if !registered.contains(name.as_str()) {
                    missing.push(name);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "recorded but not registered: {missing:?}"
        );
    }

    fn recorded_names(dir: &std::path::Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                names.extend(recorded_names(&path));
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                for piece in text.split(macro_name).skip(1) {
                    let piece = piece.trim_start();
                    if let Some(rest) = piece.strip_prefix('"')
                        && let Some(end) = rest.find('"')
                        && is_metric_name(&rest[..end])
                    {
                        names.push(rest[..end].to_owned());
                    }
                }
            }
        }
        names
    }

    fn is_metric_name(name: &str) -> bool {
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn installing_the_recorder_starts_its_upkeep() {
        install_metrics();
        let thread_names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("/proc/self/task")
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread carries its parent's name until it has named itself.
        let mut threads = thread_names();
        for _ in 0..100 {
            if threads.iter().any(|name| name == "metrics-upkeep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            threads = thread_names();
        }
        assert!(
            threads.iter().any(|name| name == "metrics-upkeep"),
            "no upkeep thread among {threads:?}: histogram samples would pile up"
        );
    }
}
