//! What a request that no route took gets: 405 with `Allow` when its path is
//! a known one asked with another method, else 404 — both in the error
//! contract. Each route is registered with its method as a guard (so services
//! can share a path in one process), which makes actix answer 404 for a known
//! path with an unserved method; this default service tells the two apart.

use crate::ApiError;
use actix_web::dev::ResourceDef;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use std::sync::Arc;

/// The routes a process serves, as (method, path pattern) lists.
#[derive(Clone)]
pub struct KnownRoutes(Arc<Vec<(ResourceDef, &'static str)>>);

/// The route [`metrics_route`](crate::metrics_route) mounts.
pub const METRICS_ROUTES: &[(&str, &str)] = &[("GET", "/metrics")];
/// The routes [`health_routes`](crate::health_routes) mounts.
pub const HEALTH_ROUTES: &[(&str, &str)] = &[("GET", "/health"), ("GET", "/ready")];

impl KnownRoutes {
    pub fn new(lists: &[&[(&'static str, &'static str)]]) -> Self {
        let routes = lists
            .iter()
            .flat_map(|list| list.iter())
            .map(|(method, pattern)| (ResourceDef::new(*pattern), *method))
            .collect();
        KnownRoutes(Arc::new(routes))
    }

    /// The methods served at `path`, in registration order, without repeats.
    pub fn allowed(&self, path: &str) -> Vec<&'static str> {
        let mut methods = Vec::new();
        for (def, method) in self.0.iter() {
            if def.is_match(path) && !methods.contains(method) {
                methods.push(*method);
            }
        }
        methods
    }

    /// The app's default service.
    pub fn default_service(&self) -> actix_web::Route {
        let known = self.clone();
        web::to(move |req: HttpRequest| {
            let known = known.clone();
            async move { known.answer(&req) }
        })
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        let allowed = self.allowed(req.path());
        if allowed.is_empty() {
            return ApiError::not_found("not_found", "no such endpoint").error_response();
        }
        let mut response = ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not served here; allowed: {}",
                req.method(),
                allowed.join(", ")
            ),
        )
        .error_response();
        if let Ok(value) = header::HeaderValue::from_str(&allowed.join(", ")) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_of_every_list_are_merged_per_path() {
        let known = KnownRoutes::new(&[
            &[
                ("POST", "/api/channels"),
                ("POST", "/api/channels/{id}/read"),
            ],
            &[("GET", "/api/channels"), ("GET", "/api/channels/{id}")],
        ]);
        assert_eq!(known.allowed("/api/channels"), ["POST", "GET"]);
        assert_eq!(known.allowed("/api/channels/abc"), ["GET"]);
        assert_eq!(known.allowed("/api/channels/abc/read"), ["POST"]);
        assert!(known.allowed("/api/nothing").is_empty());
    }
}
