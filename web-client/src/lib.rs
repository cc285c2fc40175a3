//! The browser chat client of DESIGN.md §11: a page and its JavaScript
//! modules and stylesheet, compiled into the binary so `chat up` serves a
//! working chat at `/` with nothing to install, build or fetch from a CDN.
//!
//! Only a fixed table of embedded files is served: `/` is the page,
//! `/static/{file}` one of [`ASSETS`] by exact name, anything else under
//! `/static/` a 404 — no file system, so no path can reach outside the table.
//! Every answer carries a strict Content-Security-Policy (scripts and styles
//! only from the page's own origin, no inline code, sockets only to the
//! server's own origins), `nosniff`, no referrer and no framing.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError, web};
use service_kit::ApiError;
use std::sync::Arc;

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its name under `/static/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page served at `/`.
pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    body: include_bytes!("../static/index.html"),
};

/// Every file served under `/static/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_bytes!("../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/app.js"),
    },
    Asset {
        name: "channel-view.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/channel-view.js"),
    },
    Asset {
        name: "channels.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/channels.js"),
    },
    Asset {
        name: "composer.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/composer.js"),
    },
    Asset {
        name: "context.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/context.js"),
    },
    Asset {
        name: "api.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/api.js"),
    },
    Asset {
        name: "errors.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/errors.js"),
    },
    Asset {
        name: "frames.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/frames.js"),
    },
    Asset {
        name: "messages.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/messages.js"),
    },
    Asset {
        name: "session.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/session.js"),
    },
    Asset {
        name: "socket.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../static/socket.js"),
    },
];

/// Every route this crate mounts, as (method, path pattern), for the 405 fallback.
pub const ROUTES: &[(&str, &str)] = &[("GET", "/"), ("GET", "/static/{file}")];

/// The web client as mounted by one server: the page's security policy is
/// fixed at start from the server's own origins, never from a request.
#[derive(Debug, Clone)]
pub struct WebClient {
    csp: Arc<HeaderValue>,
}

impl WebClient {
    /// A client for a server whose browser-facing origins are `own_origins`
    /// (e.g. `http://127.0.0.1:8080`, `https://chat.example.com`): the page
    /// may open WebSockets to their `ws:`/`wss:` twins and nothing else.
    pub fn new(own_origins: &[String]) -> Self {
        let csp = content_security_policy(own_origins);
        // A header value refuses only control characters; origins with one
        // fall back to the policy without them, which still allows 'self'.
        let csp = HeaderValue::from_str(&csp).unwrap_or_else(|_| {
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            )
        });
        WebClient { csp: Arc::new(csp) }
    }

    /// The Content-Security-Policy every answer carries.
    pub fn content_security_policy(&self) -> &str {
        self.csp.to_str().unwrap_or_default()
    }

    /// Mounts `/` and `/static/{file}` on `cfg`.
    pub fn configure(self) -> impl FnOnce(&mut web::ServiceConfig) {
        move |cfg| {
            cfg.app_data(web::Data::new(self))
                .route("/", web::get().to(page))
                .route("/static/{file}", web::get().to(asset));
        }
    }

    fn serve(&self, asset: &Asset) -> HttpResponse {
        let mut response = HttpResponse::Ok()
            .content_type(asset.content_type)
            // Small files: always revalidate, so a new binary's client shows at once.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(asset.body);
        self.secure(&mut response);
        response
    }

    fn secure(&self, response: &mut HttpResponse) {
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, (*self.csp).clone());
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        );
    }
}

/// The policy for a page served from one of `own_origins`.
fn content_security_policy(own_origins: &[String]) -> String {
    let mut connect = vec!["'self'".to_owned()];
    for origin in own_origins {
        let socket = if let Some(rest) = origin.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = origin.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            continue;
        };
        let socket = socket.trim_end_matches('/').to_owned();
        if !connect.contains(&socket) {
            connect.push(socket);
        }
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        connect.join(" ")
    )
}

/// The embedded file named `name`, if there is one.
pub fn asset_named(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

async fn page(client: web::Data<WebClient>) -> HttpResponse {
    client.serve(&INDEX)
}

async fn asset(client: web::Data<WebClient>, name: web::Path<String>) -> HttpResponse {
    match asset_named(&name) {
        Some(found) => client.serve(found),
        None => {
            let mut response = ApiError::not_found("not_found", "no such file").error_response();
            client.secure(&mut response);
            response
        }
    }
}

#[cfg(test)]
mod tests;
