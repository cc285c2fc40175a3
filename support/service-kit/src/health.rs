//! `/health` (the process is alive) and `/ready` (every dependency answers).

use actix_web::{HttpResponse, web};
use futures_util::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;

/// A named dependency check.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The dependencies `/ready` checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Check)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check named `name` (e.g. "postgres").
    pub fn with(mut self, name: &str, check: Check) -> Self {
        self.checks.push((name.to_owned(), check));
        self
    }
}

/// Mounts `GET /health` and `GET /ready`.
pub fn health_routes(readiness: Readiness) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(readiness))
            .route(
                "/health",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
            .route("/ready", web::get().to(ready));
    }
}

async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let mut report = serde_json::Map::new();
    let mut all_ok = true;
    for (name, check) in &readiness.checks {
        let result = tokio_timeout(check()).await;
        all_ok &= result.is_ok();
        report.insert(
            name.clone(),
            match result {
                Ok(()) => json!("ok"),
                Err(e) => json!(e),
            },
        );
    }
    let body = json!({ "status": if all_ok { "ready" } else { "not_ready" }, "checks": report });
    if all_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn tokio_timeout(check: BoxFuture<'static, Result<(), String>>) -> Result<(), String> {
    match actix_web::rt::time::timeout(std::time::Duration::from_secs(3), check).await {
        Ok(result) => result,
        Err(_) => Err("timed out".into()),
    }
}
