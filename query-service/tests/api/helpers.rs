//! A query service in front of two fresh databases (event log and read model)
//! and a small client for it; seeding lives in `seed.rs`.

use actix_http::Request;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::web::Bytes;
use actix_web::{App, middleware, test, web};
use chrono::{DateTime, Duration, TimeZone, Utc};
use event_store::PgEventStore;
use query_service::QueryService;
use serde_json::Value;
use std::pin::Pin;
use test_support::TestDb;
use uuid::Uuid;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub const ADMIN: &str = "root";

pub fn jwt() -> auth::JwtConfig {
    auth::JwtConfig::new(SECRET, "chat", "chat", 3600).expect("jwt config")
}

/// A valid token for `user_id` named `name`.
pub fn token(user_id: Uuid, name: &str) -> String {
    jwt().issue(user_id, name).access_token
}

/// A token that expired an hour ago.
pub fn expired_token(user_id: Uuid, name: &str) -> String {
    jwt()
        .issue_at(user_id, name, Utc::now().timestamp() - 7200)
        .access_token
}

/// A fixed instant the seeded rows are stamped relative to.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("valid instant")
}

/// `t0` plus `minutes`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

pub struct TestApp<S> {
    pub log: TestDb,
    pub read: TestDb,
    pub app: S,
}

pub async fn spawn()
-> TestApp<impl Service<Request, Response = ServiceResponse, Error = actix_web::Error>> {
    let log = TestDb::new_event_log().await;
    let read = TestDb::new_read_model().await;
    let service = web::Data::new(QueryService::new(
        std::sync::Arc::new(read_model::PgReadModel::new(read.pool.clone())),
        std::sync::Arc::new(PgEventStore::new(log.pool.clone())),
        vec![ADMIN.to_owned()],
    ));
    let app = test::init_service(
        App::new()
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .app_data(service)
            .app_data(web::Data::new(jwt()))
            .configure(|cfg| service_kit::configure_extractors(cfg, 16 * 1024))
            .configure(query_service::configure),
    )
    .await;
    TestApp { log, read, app }
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub text: String,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The body as NDJSON: one JSON value per line, every line terminated.
    pub fn lines(&self) -> Vec<Value> {
        assert!(
            self.text.is_empty() || self.text.ends_with('\n'),
            "unterminated NDJSON: {:?}",
            self.text.chars().rev().take(80).collect::<String>()
        );
        self.text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }
}

impl<S> TestApp<S>
where
    S: Service<Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    pub async fn call(&self, req: test::TestRequest) -> Answer {
        let res = test::call_service(&self.app, req.to_request()).await;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = test::read_body(res).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            text,
            body,
        }
    }

    /// GETs `path` and reads the body chunk by chunk: (body size hint, chunks).
    pub async fn chunks(&self, path: &str, token: &str) -> (BodySize, Vec<Bytes>) {
        let req = test::TestRequest::get()
            .uri(path)
            .insert_header(bearer(token));
        let res = test::call_service(&self.app, req.to_request()).await;
        assert_eq!(res.status().as_u16(), 200);
        let mut body = res.into_body();
        let size = body.size();
        let mut chunks = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
            chunks.push(chunk.expect("body chunk"));
        }
        (size, chunks)
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(
            test::TestRequest::get()
                .uri(path)
                .insert_header(bearer(token)),
        )
        .await
    }
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// The `seq`s of a message page.
pub fn seqs(answer: &Answer) -> Vec<i64> {
    answer.body["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect()
}

/// The `event_id`s of NDJSON lines.
pub fn ids(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}
