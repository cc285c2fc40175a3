//! A command service in front of a fresh database, and a small client for it.

use actix_http::Request;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, middleware, test, web};
use command_service::{AuthGate, CommandService};
use domain::MessagePolicy;
use event_store::PgEventStore;
use redis_store::{RateLimiter, RedisStore};
use serde_json::{Value, json};
use test_support::TestDb;
use uuid::Uuid;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub const MAX_BODY: usize = 16 * 1024;

pub fn jwt() -> auth::JwtConfig {
    auth::JwtConfig::new(SECRET, "chat", "chat", 3600).expect("jwt config")
}

pub struct TestApp<S> {
    pub db: TestDb,
    pub app: S,
    /// The hashing pool and throttle (its counter proves what was hashed).
    pub gate: web::Data<AuthGate>,
}

pub async fn spawn()
-> TestApp<impl Service<Request, Response = ServiceResponse, Error = actix_web::Error>> {
    spawn_with(AuthGate::unthrottled().expect("hashing pool")).await
}

/// An app whose registrations and logins go through `gate`.
pub async fn spawn_with(
    gate: AuthGate,
) -> TestApp<impl Service<Request, Response = ServiceResponse, Error = actix_web::Error>> {
    let db = TestDb::new_event_log().await;
    let policy = MessagePolicy::new(4000, ["darn"]);
    let service = web::Data::new(CommandService::new(
        std::sync::Arc::new(PgEventStore::new(db.pool.clone())),
        policy,
    ));
    let gate = web::Data::new(gate);
    let app = test::init_service(
        App::new()
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .app_data(service)
            .app_data(web::Data::new(jwt()))
            .app_data(gate.clone())
            .configure(|cfg| service_kit::configure_extractors(cfg, MAX_BODY))
            .configure(command_service::configure),
    )
    .await;
    TestApp { db, app, gate }
}

/// A throttle of `per_minute` attempts on a Redis key prefix of this test's own.
pub async fn throttle(per_minute: u32) -> RateLimiter {
    let prefix = format!("test:{}:", Uuid::new_v4().simple());
    let redis = RedisStore::connect(&test_support::redis_url(), &prefix)
        .await
        .expect("redis");
    RateLimiter::per_minute(redis, per_minute)
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl<S> TestApp<S>
where
    S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    pub async fn call(&self, req: test::TestRequest) -> Answer {
        let res = test::call_service(&self.app, req.to_request()).await;
        let status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let (etag, retry_after) = (header("etag"), header("retry-after"));
        let bytes = test::read_body(res).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            etag,
            retry_after,
            body,
        }
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(
            test::TestRequest::post()
                .uri(path)
                .insert_header(bearer(token))
                .set_json(body),
        )
        .await
    }

    /// Registers a user and returns (user_id, token).
    pub async fn user(&self, name: &str) -> (Uuid, String) {
        let created = self
            .call(
                test::TestRequest::post()
                    .uri("/api/users")
                    .set_json(json!({"username": name, "password": "password123"})),
            )
            .await;
        assert_eq!(created.status, 201, "{created:?}");
        let token = self
            .call(
                test::TestRequest::post()
                    .uri("/api/auth/token")
                    .set_json(json!({"username": name, "password": "password123"})),
            )
            .await;
        assert_eq!(token.status, 200, "{token:?}");
        let id = created.body["user_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user_id");
        (
            id,
            token.body["access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        )
    }

    /// Creates a channel owned by `token`'s user.
    pub async fn channel(&self, token: &str, kind: &str) -> Uuid {
        let created = self
            .post(
                "/api/channels",
                token,
                json!({"name": "general", "kind": kind}),
            )
            .await;
        assert_eq!(created.status, 201, "{created:?}");
        created.body["channel_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("channel_id")
    }

    pub async fn join(&self, token: &str, channel: Uuid) -> Answer {
        self.post(
            &format!("/api/channels/{channel}/members"),
            token,
            json!({}),
        )
        .await
    }

    pub async fn send(&self, token: &str, channel: Uuid, content: &str) -> Answer {
        self.post(
            &format!("/api/channels/{channel}/messages"),
            token,
            json!({"content": content, "type": "text"}),
        )
        .await
    }

    /// Number of events in the log (to prove an error appended nothing).
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}
