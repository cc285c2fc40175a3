//! Deployment files (`docker-compose.yml`, `Dockerfile`): the services exist, are buildable or pulled, carry the `CHAT_*` settings they need, and start only after healthy dependencies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const INFRASTRUCTURE: [&str; 4] = ["postgres", "postgres-read", "rabbitmq", "redis"];
const APPS: [&str; 4] = ["command-service", "projector", "query-service", "gateway"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the schemas crate sits in the workspace")
        .to_path_buf()
}

fn compose() -> Value {
    let path = root().join("docker-compose.yml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"]
        .as_object()
        .expect("`services` is a mapping")
}

/// A service's environment, whether written as a mapping or as `KEY=value` items.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let item = item.as_str().expect("environment items are strings");
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment is neither a mapping nor a list: {other}"),
    }
}

/// `depends_on` as (name, condition); the short list form has no condition.
fn depends_on(service: &Value) -> Vec<(String, Option<String>)> {
    match &service["depends_on"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v["condition"].as_str().map(str::to_owned)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                (
                    i.as_str().expect("depends_on items are names").to_owned(),
                    None,
                )
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("depends_on is neither a mapping nor a list: {other}"),
    }
}

fn has_healthcheck(service: &Value) -> bool {
    let check = &service["healthcheck"];
    if check["disable"] == Value::Bool(true) {
        return false;
    }
    match &check["test"] {
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(items) => {
            let words: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            words.len() >= 2
                && words[0] != "NONE"
                && words[1..].iter().any(|w| !w.trim().is_empty())
        }
        _ => false,
    }
}

/// The host of a URL such as `postgres://user:pw@host:5432/db`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.split(':').next().unwrap_or(host_port)
}

#[test]
fn all_services_exist_and_are_pulled_or_built() {
    let compose = compose();
    let services = services(&compose);
    for name in INFRASTRUCTURE.into_iter().chain(APPS) {
        assert!(
            services.contains_key(name),
            "docker-compose.yml has no service {name}"
        );
    }
    for (name, service) in services {
        let image = service["image"]
            .as_str()
            .is_some_and(|i| !i.trim().is_empty());
        let build = &service["build"];
        assert!(
            image || !build.is_null(),
            "{name} has neither image nor build"
        );
        if build.is_null() {
            continue;
        }
        let (context, dockerfile) = match build {
            Value::String(context) => (context.as_str(), "Dockerfile"),
            Value::Object(b) => (
                b.get("context").and_then(Value::as_str).unwrap_or("."),
                b.get("dockerfile")
                    .and_then(Value::as_str)
                    .unwrap_or("Dockerfile"),
            ),
            other => panic!("{name}: build is neither a path nor a mapping: {other}"),
        };
        let path = root().join(context).join(dockerfile);
        assert!(path.is_file(), "{name}: {} does not exist", path.display());
        let dockerfile_text = std::fs::read_to_string(&path).expect("readable Dockerfile");
        if dockerfile_text.lines().any(|l| l.trim() == "ARG BIN") {
            let bin = build["args"]["BIN"].as_str().unwrap_or_default();
            assert!(
                !bin.trim().is_empty(),
                "{name}: build arg BIN is missing or empty"
            );
            assert!(
                bin.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name}: BIN {bin:?} is not a binary name"
            );
        }
    }
}

#[test]
fn app_services_build_the_right_binaries() {
    let compose = compose();
    let services = services(&compose);
    for (name, bin) in [
        ("command-service", "command-service"),
        ("projector", "projector"),
        ("query-service", "query-service"),
        ("gateway", "chat"),
    ] {
        assert_eq!(services[name]["build"]["args"]["BIN"], bin, "{name}: BIN");
    }
    assert_eq!(
        services["gateway"]["command"],
        serde_json::json!(["gateway"]),
        "the gateway runs `chat gateway`"
    );
}

#[test]
fn app_services_have_their_settings() {
    let compose = compose();
    let services = services(&compose);
    for name in APPS {
        let env = environment(&services[name]);
        let mut required = vec!["CHAT_DATABASE_URL", "CHAT_JWT_SECRET", "CHAT_HTTP_ADDR"];
        if name != "command-service" {
            required.push("CHAT_READ_DATABASE_URL");
        }
        if name != "query-service" {
            required.push("CHAT_AMQP_URL");
        }
        if matches!(name, "projector" | "gateway") {
            required.push("CHAT_REDIS_URL");
        }
        for key in required {
            let value = env.get(key).map(String::as_str).unwrap_or_default();
            assert!(
                !value.trim().is_empty(),
                "{name}: {key} is missing or empty"
            );
        }
        for (key, value) in &env {
            assert!(
                key.starts_with("CHAT_"),
                "{name}: unexpected variable {key}"
            );
            // Every URL points at a service of this file that this one waits for.
            if key.ends_with("_URL") {
                let host = url_host(value);
                assert!(
                    services.contains_key(host),
                    "{name}: {key} points at {host:?}, not a service"
                );
                assert!(
                    depends_on(&services[name]).iter().any(|(d, _)| d == host),
                    "{name}: {key} uses {host} but does not depend on it"
                );
            }
        }
        // The secret comes from the caller's environment, required, never a literal.
        let secret = &env["CHAT_JWT_SECRET"];
        assert!(
            secret.starts_with("${CHAT_JWT_SECRET:?") && secret.ends_with('}'),
            "{name}: CHAT_JWT_SECRET must be `${{CHAT_JWT_SECRET:?message}}`, not {secret:?}"
        );
        assert!(
            env["CHAT_HTTP_ADDR"].starts_with("0.0.0.0:"),
            "{name}: inside a container CHAT_HTTP_ADDR must listen on all interfaces"
        );
    }
    let db = |service: &str, key: &str| environment(&services[service])[key].clone();
    assert!(db("command-service", "CHAT_DATABASE_URL").ends_with("/chat"));
    assert!(db("query-service", "CHAT_READ_DATABASE_URL").ends_with("/chat_read"));
}

#[test]
fn dependencies_wait_for_healthy_services() {
    let compose = compose();
    let services = services(&compose);
    for name in INFRASTRUCTURE {
        assert!(
            has_healthcheck(&services[name]),
            "{name} has no healthcheck"
        );
    }
    for (name, service) in services {
        for (dependency, condition) in depends_on(service) {
            assert_ne!(&dependency, name, "{name} depends on itself");
            let target = services.get(&dependency).unwrap_or_else(|| {
                panic!("{name} depends on {dependency}, which is not a service")
            });
            assert!(
                has_healthcheck(target),
                "{name} waits for {dependency}, which has no healthcheck"
            );
            assert_eq!(
                condition.as_deref(),
                Some("service_healthy"),
                "{name} must wait for {dependency} with condition: service_healthy"
            );
        }
    }
    let expected: [(&str, &[&str]); 4] = [
        ("command-service", &["postgres", "rabbitmq"]),
        (
            "projector",
            &["postgres", "postgres-read", "rabbitmq", "redis"],
        ),
        ("query-service", &["postgres", "postgres-read"]),
        (
            "gateway",
            &["postgres", "postgres-read", "rabbitmq", "redis"],
        ),
    ];
    for (name, wanted) in expected {
        let got: BTreeSet<String> = depends_on(&services[name])
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let wanted: BTreeSet<String> = wanted.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, wanted, "{name} depends on the wrong services");
    }
    // No cycles: every service can be started after its dependencies.
    let mut started: BTreeSet<&str> = BTreeSet::new();
    while started.len() < services.len() {
        let ready: Vec<&str> = services
            .iter()
            .filter(|(n, s)| {
                !started.contains(n.as_str())
                    && depends_on(s)
                        .iter()
                        .all(|(d, _)| started.contains(d.as_str()))
            })
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(
            !ready.is_empty(),
            "dependency cycle among {:?}",
            services
                .keys()
                .filter(|n| !started.contains(n.as_str()))
                .collect::<Vec<_>>()
        );
        started.extend(ready);
    }
}

#[test]
fn databases_keep_their_data_in_named_volumes() {
    let compose = compose();
    let services = services(&compose);
    let declared: BTreeSet<&str> = compose["volumes"]
        .as_object()
        .map(|v| v.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for name in ["postgres", "postgres-read"] {
        let volumes = services[name]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named: Vec<String> = volumes
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|v| v.ends_with(":/var/lib/postgresql/data"))
            .map(|v| v.split(':').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            named.len(),
            1,
            "{name}: no volume at /var/lib/postgresql/data"
        );
        assert!(
            declared.contains(named[0].as_str()),
            "{name}: volume {} is not declared",
            named[0]
        );
    }
    // Every volume a service names (not a host path) is declared.
    for (name, service) in services {
        for volume in service["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let source = volume.split(':').next().unwrap_or_default();
            if volume.contains(':') && !source.starts_with(['.', '/', '~', '$']) {
                assert!(
                    declared.contains(source),
                    "{name}: volume {source} is not declared"
                );
            }
        }
    }
    assert_ne!(
        services["postgres"]["volumes"], services["postgres-read"]["volumes"],
        "the write and read databases must not share a volume"
    );
}

#[test]
fn published_host_ports_do_not_collide() {
    let compose = compose();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, service) in services(&compose) {
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = match port {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let parts: Vec<&str> = port.split(':').collect();
            assert!(
                parts.len() >= 2,
                "{name}: port {port:?} publishes no fixed host port"
            );
            let host = parts[..parts.len() - 1].join(":");
            if let Some(other) = seen.insert(host.clone(), name.clone()) {
                panic!("{name} and {other} both publish host port {host}");
            }
        }
    }
    assert!(
        seen.values().any(|s| s == "gateway"),
        "the gateway publishes no port"
    );
}

#[test]
fn dockerfile_builds_one_binary_and_runs_it_unprivileged() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile exists");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(
        froms[0].starts_with("FROM rust:1.95-bookworm AS "),
        "builder: {}",
        froms[0]
    );
    assert_eq!(froms[1], "FROM debian:bookworm-slim", "runtime");
    let runtime = text
        .split("FROM debian:bookworm-slim")
        .nth(1)
        .expect("runtime stage");
    assert_eq!(
        lines.iter().filter(|l| **l == "ARG BIN").count(),
        2,
        "ARG BIN in both stages"
    );
    assert!(
        text.contains("cargo build --release --locked --bin \"$BIN\""),
        "builds only $BIN"
    );
    assert!(
        runtime.contains("ca-certificates"),
        "runtime installs ca-certificates"
    );
    let user = runtime
        .lines()
        .map(str::trim)
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("runtime sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "runs as root: {user}"
    );
    let entrypoint = runtime
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("runtime sets ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoint).expect("ENTRYPOINT in exec form");
    assert_eq!(
        entrypoint.len(),
        1,
        "ENTRYPOINT is the binary alone, so `command` adds its arguments"
    );
    // The entrypoint must be the binary built from BIN.
    let link = format!("ln -s \"/usr/local/bin/$BIN\" {}", entrypoint[0]);
    assert!(
        runtime.contains("COPY --from=builder /out/$BIN /usr/local/bin/$BIN")
            && runtime.contains(&link),
        "ENTRYPOINT {} does not run /usr/local/bin/$BIN",
        entrypoint[0]
    );
}

/// A bind mount's host path (`./deploy/x:/in/container:ro` → `deploy/x`).
fn host_path(volume: &str) -> Option<PathBuf> {
    let source = volume.split(':').next()?;
    source
        .strip_prefix("./")
        .map(|relative| root().join(relative))
}

#[test]
fn monitoring_is_wired_to_files_that_exist() {
    let compose = compose();
    let services = services(&compose);
    let mounts = |name: &str| -> Vec<PathBuf> {
        services[name]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(host_path)
            .collect()
    };
    let prometheus = mounts("prometheus");
    let config = root().join("deploy/prometheus/prometheus.yml");
    assert!(
        prometheus.contains(&config),
        "prometheus mounts {}",
        config.display()
    );
    let scrape: Value = serde_norway::from_str(
        &std::fs::read_to_string(&config).expect("the scrape config exists"),
    )
    .expect("the scrape config is YAML");
    let mut targets = BTreeSet::new();
    for job in scrape["scrape_configs"].as_array().expect("scrape_configs") {
        for group in job["static_configs"].as_array().expect("static_configs") {
            for target in group["targets"].as_array().expect("targets") {
                let host = target.as_str().expect("host:port").split(':').next();
                targets.insert(host.expect("a host").to_owned());
            }
        }
    }
    for name in APPS {
        assert!(targets.contains(name), "Prometheus does not scrape {name}");
    }
    for target in &targets {
        assert!(
            services.contains_key(target),
            "scrape target {target} is not a service"
        );
    }

    let grafana = mounts("grafana");
    for dir in ["deploy/grafana/provisioning", "deploy/grafana/dashboards"] {
        assert!(grafana.contains(&root().join(dir)), "grafana mounts {dir}");
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/dashboards/chat.json"))
            .expect("the dashboard exists"),
    )
    .expect("the dashboard is JSON");
    let titles: BTreeSet<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Send rate",
        "Command latency",
        "Relay and projector lag",
        "Dead letters",
        "Sockets",
        "Send-to-push latency",
    ] {
        assert!(titles.contains(wanted), "no panel {wanted}: {titles:?}");
    }
    let datasource: Value = serde_norway::from_str(
        &std::fs::read_to_string(
            root().join("deploy/grafana/provisioning/datasources/prometheus.yml"),
        )
        .expect("the data source exists"),
    )
    .expect("YAML");
    assert_eq!(datasource["datasources"][0]["uid"], "prometheus");
    assert_eq!(dashboard["panels"][0]["datasource"]["uid"], "prometheus");
}

#[test]
fn the_web_service_serves_tls_from_mounted_files() {
    let compose = compose();
    let web = &services(&compose)["web"];
    let env = environment(web);
    assert_eq!(web["command"], serde_json::json!(["up"]));
    let mounted: Vec<&str> = web["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for key in ["CHAT_TLS_CERT", "CHAT_TLS_KEY"] {
        let path = env.get(key).map(String::as_str).unwrap_or_default();
        assert!(
            mounted.iter().any(|m| {
                // `${VAR:-./host}:/container:ro`: the container path is the last
                // part before the mode (the host part may hold a colon itself).
                let m = m.trim_end_matches(":ro").trim_end_matches(":rw");
                m.rsplit(':')
                    .next()
                    .is_some_and(|dir| path.starts_with(dir))
            }),
            "web: {key}={path} is not inside a mounted volume"
        );
    }
    assert!(env["CHAT_PUBLIC_URL"].contains("https://"));
}
