//! Fuzz target 5: the raw client input of the command routes — the
//! `If-Match` and `Idempotency-Key` headers (`command_service::if_match`,
//! `idempotency_header`) and the JSON bodies, each through the extractor its
//! route uses (actix's `Json` with the error contract of
//! `service_kit::configure_extractors`; `member_body` for the join/invite
//! body, which is read by hand).
//!
//! Properties: nothing panics. `If-Match` is accepted exactly as the OpenAPI
//! pattern `^(\*|(W/)?"?[0-9]+"?)$` says (surrounding blanks aside, the
//! number within u64), `*` meaning any version, and every `ETag` the API
//! writes (`"N"`) reads back as N; `Idempotency-Key` is accepted exactly
//! when it is 1–200 visible ASCII characters, unchanged; a refused header is
//! a 400 with its own code. A body answers 200, 400 or 413, never anything
//! else; a 400 is `malformed_json` or `invalid_body` (never `malformed_json`
//! for well-formed JSON), a 413 `payload_too_large` and only past the limit;
//! text that is not JSON is never accepted; an accepted body is a JSON
//! object, and what the route reads from it is what it says (fields equal,
//! absent ones at their defaults).

use actix_web::dev::Service;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::test::{TestRequest, init_service};
use actix_web::{App, HttpResponse, web};
use command_service::bodies::{
    Ban, ChangeRole, CreateChannel, EditMessage, Json, MarkRead, Mute, SendMessage, member_body,
};
use command_service::{idempotency_header, if_match};
use futures_util::FutureExt;
use fuzz::{Corpus, canonical_ids, fuzz, property};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::LazyLock;

static HEADERS: LazyLock<Corpus> = LazyLock::new(|| Corpus::load("command_headers"));
static BODIES: LazyLock<Corpus> = LazyLock::new(|| Corpus::load("command_bodies"));

/// The body limit of the test app: small, so the fuzzer reaches it.
const LIMIT: usize = 1024;

/// `bytes` as a header value, if a client could send it (no CR, LF, NUL or
/// other controls but tab).
fn header(name: &'static str, bytes: &[u8]) -> Option<HeaderMap> {
    let value = HeaderValue::from_bytes(bytes).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static(name), value);
    Some(headers)
}

/// What `If-Match` must give, from the OpenAPI pattern alone.
fn expected_if_match(bytes: &[u8]) -> Result<Option<u64>, ()> {
    let text = std::str::from_utf8(bytes).map_err(|_| ())?;
    if !text
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(());
    }
    let text = text.trim_matches([' ', '\t']);
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.strip_prefix('"').unwrap_or(text);
    let text = text.strip_suffix('"').unwrap_or(text);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let significant = text.trim_start_matches('0');
    let max = u64::MAX.to_string();
    if significant.len() > max.len()
        || (significant.len() == max.len() && significant > max.as_str())
    {
        return Err(());
    }
    Ok(Some(
        significant
            .bytes()
            .fold(0u64, |n, b| n * 10 + u64::from(b - b'0')),
    ))
}

fn check_headers(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some(headers) = header("if-match", bytes) {
        match (if_match(&headers), expected_if_match(bytes)) {
            (Ok(got), Ok(expected)) => prop_assert_eq!(got, expected),
            (Err(e), Err(())) => {
                prop_assert_eq!((e.status.as_u16(), e.code), (400, "invalid_if_match"));
            }
            (got, expected) => {
                return Err(TestCaseError::fail(format!(
                    "If-Match {:?}: expected {expected:?}, got {got:?}",
                    String::from_utf8_lossy(bytes)
                )));
            }
        }
    }
    if let Some(headers) = header("idempotency-key", bytes) {
        let valid =
            (1..=200).contains(&bytes.len()) && bytes.iter().all(|b| (b'!'..=b'~').contains(b));
        match idempotency_header(&headers) {
            Ok(key) => {
                prop_assert!(valid, "{:?} accepted", String::from_utf8_lossy(bytes));
                prop_assert_eq!(key.as_deref().map(str::as_bytes), Some(bytes));
            }
            Err(e) => {
                prop_assert!(!valid, "{:?} refused", String::from_utf8_lossy(bytes));
                prop_assert_eq!(
                    (e.status.as_u16(), e.code),
                    (400, "invalid_idempotency_key")
                );
            }
        }
    }
    Ok(())
}

#[test]
fn header_corpus_replays() {
    HEADERS.replay(check_headers);
}

#[test]
fn fuzz_headers() {
    fuzz(&HEADERS, "command_headers", check_headers);
}

#[test]
fn every_etag_reads_back() {
    property(
        "command_etags",
        (any::<u64>(), 0..4usize, "[ \t]{0,2}"),
        |(version, form, blank)| {
            let text = match form {
                0 => format!("\"{version}\""),
                1 => format!("{version}"),
                2 => format!("W/\"{version}\""),
                _ => format!("{blank}\"{version}\"{blank}"),
            };
            let headers = header("if-match", text.as_bytes())
                .ok_or_else(|| TestCaseError::fail("not a header value"))?;
            prop_assert_eq!(if_match(&headers).ok(), Some(Some(version)));
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// JSON bodies
// ---------------------------------------------------------------------------

/// Answers what the route read from the body, through the routes' extractor.
async fn read<T: serde::Serialize>(body: Json<T>) -> HttpResponse {
    HttpResponse::Ok().json(&*body)
}

async fn member(body: web::Bytes) -> Result<HttpResponse, service_kit::ApiError> {
    member_body(&body).map(|b| HttpResponse::Ok().json(b))
}

/// Each body route's path in the test app.
const ROUTES: [&str; 8] = [
    "/channels",
    "/role",
    "/bans",
    "/mute",
    "/send",
    "/edit",
    "/read",
    "/members",
];

/// Whether `read` (what the route took from the body) says what `sent` does.
fn same_fields(sent: &Value, read: &Value) -> Result<(), TestCaseError> {
    let (Some(sent), Some(read)) = (sent.as_object(), read.as_object()) else {
        return Err(TestCaseError::fail(format!("{read} read from {sent}")));
    };
    for (key, value) in read {
        let value = &canonical_ids(value.clone());
        match sent.get(key).cloned().map(canonical_ids).as_ref() {
            Some(Value::Number(n)) => prop_assert_eq!(n.as_f64(), value.as_f64(), "{}", key),
            Some(sent_value) => prop_assert_eq!(sent_value, value, "{}", key),
            None => prop_assert!(
                value.is_null() || value == "text",
                "{} = {} was not sent",
                key,
                value
            ),
        }
    }
    Ok(())
}

fn check_body<S>(app: &S, bytes: &[u8]) -> Result<(), TestCaseError>
where
    S: Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let json = serde_json::from_slice::<Value>(bytes).ok();
    for route in ROUTES {
        let request = TestRequest::post()
            .uri(route)
            .insert_header(("content-type", "application/json"))
            .set_payload(bytes.to_vec())
            .to_request();
        let Some(response) = app.call(request).now_or_never() else {
            return Err(TestCaseError::fail("the route did not answer at once"));
        };
        let response = response.map_err(|e| TestCaseError::fail(format!("service error: {e}")))?;
        let status = response.status().as_u16();
        let body = actix_web::body::to_bytes(response.into_body())
            .now_or_never()
            .and_then(Result::ok)
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or("");
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        match status {
            200 if route == "/members" && blank => {}
            200 => {
                let sent = json.as_ref().ok_or_else(|| {
                    TestCaseError::fail(format!("{route} accepted text that is not JSON"))
                })?;
                prop_assert!(
                    sent.is_object(),
                    "{} accepted {}, not an object",
                    route,
                    sent
                );
                same_fields(sent, &body)?;
            }
            400 => {
                prop_assert!(
                    code == "invalid_body" || (code == "malformed_json" && json.is_none()),
                    "{}: {} for {:?}",
                    route,
                    code,
                    String::from_utf8_lossy(bytes)
                );
            }
            413 => {
                prop_assert_eq!(code, "payload_too_large");
                prop_assert!(bytes.len() > LIMIT);
            }
            other => return Err(TestCaseError::fail(format!("{route}: status {other}"))),
        }
    }
    Ok(())
}

fn with_app(test: impl FnOnce(&dyn Fn(&[u8]) -> Result<(), TestCaseError>)) {
    actix_web::rt::System::new().block_on(async {
        let app = init_service(
            App::new()
                .configure(|cfg| service_kit::configure_extractors(cfg, LIMIT))
                .route("/channels", web::post().to(read::<CreateChannel>))
                .route("/role", web::post().to(read::<ChangeRole>))
                .route("/bans", web::post().to(read::<Ban>))
                .route("/mute", web::post().to(read::<Mute>))
                .route("/send", web::post().to(read::<SendMessage>))
                .route("/edit", web::post().to(read::<EditMessage>))
                .route("/read", web::post().to(read::<MarkRead>))
                .route("/members", web::post().to(member)),
        )
        .await;
        test(&|bytes: &[u8]| check_body(&app, bytes));
    });
}

#[test]
fn body_corpus_replays() {
    with_app(|check| BODIES.replay(check));
}

#[test]
fn fuzz_bodies() {
    with_app(|check| fuzz(&BODIES, "command_bodies", check));
}
