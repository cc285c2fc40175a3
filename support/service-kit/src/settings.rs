//! Configuration from the environment (DESIGN.md §9). Defaults point at the
//! local services, so a fresh machine with them running needs no setup.

use std::env;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What holds the log, the read models, the bus and presence (DESIGN §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite files under the data directory, an in-process bus, in-memory
    /// presence and limits: nothing to install.
    Embedded,
    /// PostgreSQL, RabbitMQ and Redis: the production backend, which scales out.
    Services,
}

impl Backend {
    /// The word `chat up` prints and `CHAT_BACKEND` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Services => "services",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "embedded" => Ok(Backend::Embedded),
            "services" => Ok(Backend::Services),
            _ => Err("expected embedded or services"),
        }
    }
}

/// The backend and why it was chosen, for `chat up` to say before it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendChoice {
    pub backend: Backend,
    pub reason: String,
}

/// The variables whose presence selects the services backend.
pub const SERVICE_URL_VARIABLES: [&str; 4] = [
    "CHAT_DATABASE_URL",
    "CHAT_READ_DATABASE_URL",
    "CHAT_AMQP_URL",
    "CHAT_REDIS_URL",
];

/// Every setting of every service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAT_BACKEND`, else `services` as soon as a service URL is set, else `embedded`.
    pub backend: BackendChoice,
    /// `CHAT_DATA_DIR` (`./data`): where the embedded backend keeps its files.
    pub data_dir: std::path::PathBuf,
    pub database_url: String,
    pub read_database_url: String,
    pub amqp_url: String,
    pub redis_url: String,
    /// `None`: not configured (a service then refuses to start, or `chat up` generates one).
    pub jwt_secret: Option<String>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_ttl_secs: i64,
    pub http_addr: String,
    pub admins: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub send_rate_per_sec: u32,
    pub send_burst: u32,
    pub max_message_chars: usize,
    pub banned_words: Vec<String>,
    pub max_body_bytes: usize,
    /// Most connections of the event log's pool (`CHAT_DATABASE_MAX_CONNECTIONS`, 32).
    pub database_max_connections: u32,
    /// Most connections of the read database's pool (`CHAT_READ_DATABASE_MAX_CONNECTIONS`, 32).
    pub read_database_max_connections: u32,
    /// How long a client may take over a request (`CHAT_HTTP_*_SECS`).
    pub client_timeouts: crate::ClientTimeouts,
    pub log_format: LogFormat,
    /// Registrations and logins per minute per username and per client address.
    pub auth_attempts_per_min: u32,
    /// The WebSocket gateway's limits and own origin (`CHAT_WS_*`, `CHAT_PUBLIC_URL`).
    pub ws: WsSettings,
}

/// A setting that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Why no token configuration could be made from the settings.
#[derive(Debug, thiserror::Error)]
pub enum JwtSettingsError {
    #[error("CHAT_JWT_SECRET is not set: set it to a random string of at least 32 bytes")]
    MissingSecret,
    #[error(transparent)]
    Invalid(#[from] auth::JwtConfigError),
}

impl Settings {
    /// The token configuration every service shares (secret, issuer, audience, lifetime).
    pub fn jwt(&self) -> Result<auth::JwtConfig, JwtSettingsError> {
        let secret = self
            .jwt_secret
            .as_deref()
            .ok_or(JwtSettingsError::MissingSecret)?;
        Ok(auth::JwtConfig::new(
            secret.as_bytes(),
            &self.jwt_issuer,
            &self.jwt_audience,
            self.jwt_ttl_secs,
        )?)
    }

    /// Reads the `CHAT_*` variables, with local defaults.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let text = |name: &str, default: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let list = |name: &str| -> Vec<String> {
            lookup(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        fn number<T: std::str::FromStr>(
            lookup: &dyn Fn(&str) -> Option<String>,
            name: &'static str,
            default: T,
        ) -> Result<T, SettingsError> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| SettingsError {
                    name,
                    value,
                    reason: "not a number",
                }),
            }
        }
        let log_format = match lookup("CHAT_LOG_FORMAT").as_deref() {
            None | Some("" | "text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(SettingsError {
                    name: "CHAT_LOG_FORMAT",
                    value: other.into(),
                    reason: "expected text or json",
                });
            }
        };
        let at_least_one = |name: &'static str, value: u64| {
            if value == 0 {
                Err(SettingsError {
                    name,
                    value: "0".into(),
                    reason: "must be at least 1",
                })
            } else {
                Ok(value)
            }
        };
        let seconds =
            |name: &'static str, default: u64| -> Result<std::time::Duration, SettingsError> {
                let secs = at_least_one(name, number(&lookup, name, default)?)?;
                Ok(std::time::Duration::from_secs(secs))
            };
        let connections = |name: &'static str| -> Result<u32, SettingsError> {
            let n = at_least_one(name, u64::from(number(&lookup, name, 32u32)?))?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        let backend = match lookup("CHAT_BACKEND").filter(|v| !v.trim().is_empty()) {
            Some(value) => BackendChoice {
                backend: value.parse().map_err(|reason| SettingsError {
                    name: "CHAT_BACKEND",
                    value: value.clone(),
                    reason,
                })?,
                reason: format!("CHAT_BACKEND={}", value.trim()),
            },
            None => match SERVICE_URL_VARIABLES
                .into_iter()
                .find(|name| lookup(name).is_some_and(|v| !v.is_empty()))
            {
                Some(name) => BackendChoice {
                    backend: Backend::Services,
                    reason: format!("{name} is set"),
                },
                None => BackendChoice {
                    backend: Backend::Embedded,
                    reason: "none of CHAT_DATABASE_URL, CHAT_READ_DATABASE_URL, CHAT_AMQP_URL, CHAT_REDIS_URL is set".into(),
                },
            },
        };
        Ok(Settings {
            backend,
            data_dir: text("CHAT_DATA_DIR", "./data").into(),
            database_url: text(
                "CHAT_DATABASE_URL",
                "postgres://postgres@localhost:5432/chat",
            ),
            read_database_url: text(
                "CHAT_READ_DATABASE_URL",
                "postgres://postgres@localhost:5432/chat_read",
            ),
            amqp_url: text("CHAT_AMQP_URL", "amqp://guest:guest@localhost:5672/%2f"),
            redis_url: text("CHAT_REDIS_URL", "redis://127.0.0.1:6379"),
            jwt_secret: lookup("CHAT_JWT_SECRET").filter(|s| !s.is_empty()),
            jwt_issuer: text("CHAT_JWT_ISSUER", "chat"),
            jwt_audience: text("CHAT_JWT_AUDIENCE", "chat"),
            jwt_ttl_secs: number(&lookup, "CHAT_JWT_TTL_SECS", 3600)?,
            http_addr: text("CHAT_HTTP_ADDR", "127.0.0.1:8080"),
            admins: list("CHAT_ADMINS"),
            allowed_origins: list("CHAT_ALLOWED_ORIGINS"),
            send_rate_per_sec: number(&lookup, "CHAT_SEND_RATE_PER_SEC", 20)?,
            send_burst: number(&lookup, "CHAT_SEND_BURST", 100)?,
            max_message_chars: number(&lookup, "CHAT_MAX_MESSAGE_CHARS", 4000)?,
            banned_words: list("CHAT_BANNED_WORDS"),
            max_body_bytes: number(&lookup, "CHAT_MAX_BODY_BYTES", 64 * 1024)?,
            database_max_connections: connections("CHAT_DATABASE_MAX_CONNECTIONS")?,
            read_database_max_connections: connections("CHAT_READ_DATABASE_MAX_CONNECTIONS")?,
            client_timeouts: crate::ClientTimeouts {
                head: seconds("CHAT_HTTP_HEAD_TIMEOUT_SECS", 5)?,
                body: seconds("CHAT_HTTP_BODY_TIMEOUT_SECS", 20)?,
                keep_alive: seconds("CHAT_HTTP_KEEP_ALIVE_SECS", 5)?,
            },
            log_format,
            auth_attempts_per_min: number(&lookup, "CHAT_AUTH_ATTEMPTS_PER_MIN", 30)?,
            ws: WsSettings::from_lookup(&lookup)?,
        })
    }
}

/// The WebSocket gateway's settings (DESIGN.md §7, §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// `CHAT_WS_RECOVERY_LIMIT`: most missed messages replayed on resume.
    pub recovery_limit: u64,
    /// `CHAT_WS_PRESENCE_LIMIT`: most user ids in `subscribed.online_users`.
    pub presence_limit: usize,
    /// `CHAT_WS_FRAMES_PER_SEC`: client frames per second per socket (burst 4×).
    pub frames_per_sec: u32,
    /// `CHAT_WS_MAX_SUBSCRIPTIONS`: subscriptions per socket.
    pub max_subscriptions: usize,
    /// `CHAT_WS_MAX_SOCKETS_PER_USER`: sockets per user across instances.
    pub max_sockets_per_user: usize,
    /// `CHAT_PUBLIC_URL`: the server's own origin, as browsers see it.
    pub public_url: Option<String>,
}

impl WsSettings {
    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        fn number<T: std::str::FromStr>(
            lookup: &dyn Fn(&str) -> Option<String>,
            name: &'static str,
            default: T,
        ) -> Result<T, SettingsError> {
            match lookup(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(value) => value.trim().parse().map_err(|_| SettingsError {
                    name,
                    value,
                    reason: "not a number",
                }),
            }
        }
        let public_url = match lookup("CHAT_PUBLIC_URL").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                let origin_like = url.split_once("://").is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
                });
                if !origin_like {
                    return Err(SettingsError {
                        name: "CHAT_PUBLIC_URL",
                        value: url,
                        reason: "expected an origin such as https://chat.example.com",
                    });
                }
                Some(url)
            }
        };
        Ok(Self {
            recovery_limit: number(lookup, "CHAT_WS_RECOVERY_LIMIT", 10_000)?,
            presence_limit: number(lookup, "CHAT_WS_PRESENCE_LIMIT", 1000)?,
            frames_per_sec: number(lookup, "CHAT_WS_FRAMES_PER_SEC", 50)?,
            max_subscriptions: number(lookup, "CHAT_WS_MAX_SUBSCRIPTIONS", 500)?,
            max_sockets_per_user: number(lookup, "CHAT_WS_MAX_SOCKETS_PER_USER", 20)?,
            public_url,
        })
    }

    /// The server's own origins for a server listening on `addr`:
    /// `CHAT_PUBLIC_URL` if set, else `http://{addr}` and, on loopback,
    /// `http://localhost:{port}` too. Never derived from a request.
    pub fn own_origins(&self, addr: &str) -> Vec<String> {
        if let Some(url) = &self.public_url {
            return vec![url.clone()];
        }
        let mut origins = vec![format!("http://{addr}")];
        if let Ok(socket) = addr.parse::<std::net::SocketAddr>()
            && socket.ip().is_loopback()
        {
            origins.push(format!("http://localhost:{}", socket.port()));
        }
        origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_backend_is_embedded_unless_a_service_url_or_chat_backend_says_otherwise() {
        let choose = |vars: &[(&str, &str)]| {
            let env: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::from_lookup(|name| env.get(name).cloned()).map(|s| s.backend)
        };
        let nothing = choose(&[]).expect("defaults");
        assert_eq!(nothing.backend, Backend::Embedded);
        assert!(nothing.reason.contains("none of CHAT_DATABASE_URL"));
        for name in SERVICE_URL_VARIABLES {
            let chosen = choose(&[(name, "x://y")]).expect("a URL");
            assert_eq!(chosen.backend, Backend::Services, "{name}");
            assert_eq!(chosen.reason, format!("{name} is set"));
        }
        // An empty URL is not set.
        assert_eq!(
            choose(&[("CHAT_REDIS_URL", "")]).expect("empty").backend,
            Backend::Embedded
        );
        let explicit = choose(&[("CHAT_BACKEND", "embedded"), ("CHAT_AMQP_URL", "amqp://h")])
            .expect("explicit");
        assert_eq!(explicit.backend, Backend::Embedded);
        assert_eq!(explicit.reason, "CHAT_BACKEND=embedded");
        assert_eq!(
            choose(&[("CHAT_BACKEND", " services ")])
                .expect("services")
                .backend,
            Backend::Services
        );
        let bad = choose(&[("CHAT_BACKEND", "postgres")]).expect_err("unknown backend");
        assert_eq!(bad.name, "CHAT_BACKEND");
    }

    #[test]
    fn the_data_directory_defaults_to_data_beside_the_process() {
        let s = Settings::from_lookup(|_| None).expect("defaults");
        assert_eq!(s.data_dir, std::path::PathBuf::from("./data"));
        let s = Settings::from_lookup(|n| (n == "CHAT_DATA_DIR").then(|| "/tmp/chat".into()))
            .expect("set");
        assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/chat"));
    }

    #[test]
    fn defaults_point_at_local_services() {
        let s = Settings::from_lookup(|_| None).expect("defaults");
        assert_eq!(s.database_url, "postgres://postgres@localhost:5432/chat");
        assert_eq!(s.http_addr, "127.0.0.1:8080");
        assert_eq!(
            (s.send_rate_per_sec, s.send_burst, s.max_message_chars),
            (20, 100, 4000)
        );
        assert!(s.jwt_secret.is_none());
        assert_eq!(s.auth_attempts_per_min, 30);
    }

    #[test]
    fn pools_and_client_timeouts_have_defaults_and_refuse_zero() {
        use std::time::Duration;
        let s = Settings::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            (s.database_max_connections, s.read_database_max_connections),
            (32, 32)
        );
        assert_eq!(
            s.client_timeouts,
            crate::ClientTimeouts {
                head: Duration::from_secs(5),
                body: Duration::from_secs(20),
                keep_alive: Duration::from_secs(5),
            }
        );
        let env: HashMap<&str, &str> = [
            ("CHAT_DATABASE_MAX_CONNECTIONS", "4"),
            ("CHAT_READ_DATABASE_MAX_CONNECTIONS", "3"),
            ("CHAT_HTTP_HEAD_TIMEOUT_SECS", "2"),
            ("CHAT_HTTP_BODY_TIMEOUT_SECS", "7"),
            ("CHAT_HTTP_KEEP_ALIVE_SECS", "1"),
        ]
        .into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        assert_eq!(
            (s.database_max_connections, s.read_database_max_connections),
            (4, 3)
        );
        assert_eq!(s.client_timeouts.between_requests(), Duration::from_secs(3));
        assert_eq!(s.client_timeouts.body, Duration::from_secs(7));
        for name in [
            "CHAT_DATABASE_MAX_CONNECTIONS",
            "CHAT_HTTP_HEAD_TIMEOUT_SECS",
            "CHAT_HTTP_BODY_TIMEOUT_SECS",
            "CHAT_HTTP_KEEP_ALIVE_SECS",
        ] {
            let err = Settings::from_lookup(|k| (k == name).then(|| "0".to_string()))
                .expect_err("zero is refused");
            assert_eq!(err.name, name);
        }
    }

    #[test]
    fn the_auth_throttle_is_configurable() {
        let s = Settings::from_lookup(|k| {
            (k == "CHAT_AUTH_ATTEMPTS_PER_MIN").then(|| "120".to_string())
        })
        .expect("valid");
        assert_eq!(s.auth_attempts_per_min, 120);
        let err = Settings::from_lookup(|k| {
            (k == "CHAT_AUTH_ATTEMPTS_PER_MIN").then(|| "many".to_string())
        })
        .expect_err("invalid");
        assert_eq!(err.name, "CHAT_AUTH_ATTEMPTS_PER_MIN");
    }

    #[test]
    fn the_token_configuration_needs_a_long_enough_secret() {
        let none = Settings::from_lookup(|_| None).expect("defaults");
        assert!(matches!(none.jwt(), Err(JwtSettingsError::MissingSecret)));
        let short =
            Settings::from_lookup(|k| (k == "CHAT_JWT_SECRET").then(|| "short".to_string()))
                .expect("valid");
        assert!(matches!(short.jwt(), Err(JwtSettingsError::Invalid(_))));
        let long = Settings::from_lookup(|k| (k == "CHAT_JWT_SECRET").then(|| "x".repeat(32)))
            .expect("valid");
        let jwt = long.jwt().expect("config");
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            jwt.verify(&jwt.issue(id, "ann").access_token)
                .expect("valid")
                .sub,
            id
        );
    }

    #[test]
    fn websocket_settings_have_defaults_and_an_own_origin_never_from_a_request() {
        let s = Settings::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            (
                s.ws.recovery_limit,
                s.ws.presence_limit,
                s.ws.frames_per_sec,
                s.ws.max_subscriptions,
                s.ws.max_sockets_per_user
            ),
            (10_000, 1000, 50, 500, 20)
        );
        assert_eq!(
            s.ws.own_origins("127.0.0.1:8080"),
            vec!["http://127.0.0.1:8080", "http://localhost:8080"]
        );
        assert_eq!(s.ws.own_origins("10.0.0.5:80"), vec!["http://10.0.0.5:80"]);
        let public = Settings::from_lookup(|k| {
            (k == "CHAT_PUBLIC_URL").then(|| "https://chat.example.com/".to_string())
        })
        .expect("valid");
        assert_eq!(
            public.ws.own_origins("127.0.0.1:8080"),
            vec!["https://chat.example.com"]
        );
        let bad = Settings::from_lookup(|k| {
            (k == "CHAT_PUBLIC_URL").then(|| "chat.example.com/path".to_string())
        })
        .expect_err("not an origin");
        assert_eq!(bad.name, "CHAT_PUBLIC_URL");
        let bad =
            Settings::from_lookup(|k| (k == "CHAT_WS_FRAMES_PER_SEC").then(|| "fast".to_string()))
                .expect_err("not a number");
        assert_eq!(bad.name, "CHAT_WS_FRAMES_PER_SEC");
    }

    #[test]
    fn values_are_read_and_bad_numbers_refused() {
        let env: HashMap<&str, &str> = [
            ("CHAT_ADMINS", "ann, bob,"),
            ("CHAT_SEND_BURST", "7"),
            ("CHAT_LOG_FORMAT", "json"),
        ]
        .into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).expect("valid");
        assert_eq!(s.admins, vec!["ann", "bob"]);
        assert_eq!(s.send_burst, 7);
        assert_eq!(s.log_format, LogFormat::Json);
        let err = Settings::from_lookup(|k| (k == "CHAT_SEND_BURST").then(|| "lots".to_string()))
            .expect_err("invalid");
        assert_eq!(err.name, "CHAT_SEND_BURST");
    }
}
