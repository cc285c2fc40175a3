//! Fuzz target 4: the query parameters of the query routes —
//! `query_service::params::{integer, list}` and the whole path from a raw
//! query string to what a route asks the database for: actix's `Query`
//! extractor with the error contract of `service_kit::configure_extractors`,
//! then `HistoryQuery::page` (`before`, `after`, `limit`),
//! `DirectoryQuery::search` (`q`, `limit`) and `EventsQuery::request`
//! (`after` cursor, `limit`, `stream`, `type`).
//!
//! Properties: nothing panics and nothing answers other than 200 or 400; an
//! integer is absent when blank, saturates at the i64 bounds when out of
//! range, and is otherwise exactly the decimal number written (an optional
//! sign, ASCII digits), else a 400 naming the parameter; page sizes are
//! clamped to 1..=100; a route answers 200 exactly when none of its
//! parameters is invalid (a repeated one included), and a 400 `invalid_query`
//! names one that is (`invalid_cursor` is `after` of the event history); the
//! directory's LIKE pattern matches the search text literally; lists hold
//! exactly the non-blank, trimmed, comma-separated entries.

use actix_web::dev::Service;
use actix_web::test::{TestRequest, init_service};
use actix_web::{App, HttpResponse, web};
use event_store::Cursor;
use futures_util::FutureExt;
use fuzz::{Corpus, fuzz, property, utf8};
use proptest::prelude::*;
use query_service::params::{integer, list};
use query_service::{DirectoryQuery, EventsQuery, HistoryQuery, QueryError};
use serde_json::{Value, json};
use service_kit::ApiError;
use std::sync::LazyLock;

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| Corpus::load("query_params"));

/// What `integer` must give, from the grammar alone (no `str::parse`):
/// `Err` for not an integer.
fn expected_integer(value: Option<&str>) -> Result<Option<i64>, ()> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let (negative, digits) = match text.as_bytes()[0] {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let significant = digits.trim_start_matches('0');
    let bound = if negative {
        "9223372036854775808"
    } else {
        "9223372036854775807"
    };
    let over = significant.len() > bound.len()
        || (significant.len() == bound.len() && significant > bound);
    if over {
        return Ok(Some(if negative { i64::MIN } else { i64::MAX }));
    }
    let magnitude = significant
        .bytes()
        .fold(0i128, |n, b| n * 10 + i128::from(b - b'0'));
    let n = if negative { -magnitude } else { magnitude };
    Ok(Some(i64::try_from(n).map_err(|_| ())?))
}

fn message(err: &QueryError) -> String {
    err.to_string()
}

#[test]
fn fuzz_integer() {
    let text = prop_oneof![
        2 => "[ \t+-]{0,2}[0-9]{0,45}[ \t]{0,2}",
        1 => "[+-]?[0-9]{15,25}[^0-9]{1,2}[0-9]{0,3}",
        1 => "[+-]?0*(9223372036854775|18446744073709551)[0-9]{2,4}",
        1 => utf8(),
    ];
    property(
        "query_integer",
        (proptest::option::of(text), "[a-z_]{1,8}"),
        |(value, name)| {
            let got = integer(&name, value.as_deref());
            match (expected_integer(value.as_deref()), got) {
                (Ok(expected), Ok(got)) => prop_assert_eq!(got, expected),
                (Err(()), Err(e)) => {
                    prop_assert!(matches!(e, QueryError::InvalidQuery(_)));
                    prop_assert!(
                        message(&e).contains(&format!("`{name}`")),
                        "{}",
                        message(&e)
                    );
                }
                (expected, got) => {
                    return Err(TestCaseError::fail(format!(
                        "{value:?}: expected {expected:?}, got {got:?}"
                    )));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_list() {
    let text = prop_oneof!["[a-zA-Z, \t]{0,40}", utf8()];
    property("query_list", proptest::option::of(text), |value| {
        let entries = list(value.as_deref());
        let mut rest = value.as_deref().unwrap_or("");
        for entry in &entries {
            prop_assert!(!entry.is_empty() && !entry.contains(','));
            prop_assert_eq!(entry.trim(), entry.as_str());
            // The entries appear in the text, in order.
            let at = rest.find(entry.as_str());
            prop_assert!(at.is_some(), "{:?} not in {:?}", entry, rest);
            rest = &rest[at.unwrap_or(0) + entry.len()..];
        }
        prop_assert_eq!(list(Some(&entries.join(","))), entries.clone());
        // Only blanks between the entries' commas were dropped.
        let kept: usize = value
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|piece| !piece.trim().is_empty())
            .count();
        prop_assert_eq!(kept, entries.len());
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Raw query strings through the routes' extractors
// ---------------------------------------------------------------------------

/// A 200 with what the route would ask the database for, or its error.
fn answer(result: Result<Value, QueryError>) -> Result<HttpResponse, ApiError> {
    result
        .map(|v| HttpResponse::Ok().json(v))
        .map_err(ApiError::from)
}

async fn history(query: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    answer(
        query
            .page()
            .map(|p| json!({"before": p.before, "after": p.after, "limit": p.limit})),
    )
}

async fn directory(query: web::Query<DirectoryQuery>) -> Result<HttpResponse, ApiError> {
    answer(
        query
            .search()
            .map(|s| json!({"text": s.text, "pattern": s.pattern, "limit": s.limit})),
    )
}

async fn events(query: web::Query<EventsQuery>) -> Result<HttpResponse, ApiError> {
    answer(query.into_inner().request().map(|r| {
        json!({
            "after": r.after.to_string(),
            "limit": r.limit,
            "stream": r.filter.stream_id,
            "types": r.filter.event_types,
        })
    }))
}

/// The three routes, each mounted as the query service mounts it.
const ROUTES: [(&str, &[&str]); 3] = [
    ("/history", &["before", "after", "limit"]),
    ("/directory", &["q", "limit"]),
    ("/events", &["after", "limit", "stream", "type"]),
];

/// The query string's pairs, decoded as the extractor decodes them.
fn pairs(query: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// Which of `route`'s parameters are invalid in `query`, and the answer the
/// route must give when none is.
fn oracle(route: &str, params: &[&str], query: &str) -> (Vec<&'static str>, Value) {
    let pairs = pairs(query);
    let get = |name: &str| -> Option<String> {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut invalid: Vec<&'static str> = Vec::new();
    let known: [&'static str; 6] = ["before", "after", "limit", "q", "stream", "type"];
    for name in known.iter().filter(|n| params.contains(n)) {
        if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
            invalid.push(name);
        }
    }
    let int = |name: &'static str, invalid: &mut Vec<&'static str>| {
        expected_integer(get(name).as_deref()).unwrap_or_else(|()| {
            invalid.push(name);
            None
        })
    };
    let expected = match route {
        "/history" => {
            let before = int("before", &mut invalid).unwrap_or(i64::MAX);
            let after = int("after", &mut invalid).unwrap_or(i64::MIN);
            let limit = int("limit", &mut invalid).unwrap_or(50).clamp(1, 100);
            json!({"before": before, "after": after, "limit": limit})
        }
        "/directory" => {
            let q = get("q").unwrap_or_default();
            if q.contains('\0') || q.chars().count() > 100 {
                invalid.push("q");
            }
            let limit = int("limit", &mut invalid).unwrap_or(50).clamp(1, 100);
            json!({"text": q.trim(), "limit": limit})
        }
        _ => {
            let stream = get("stream");
            let types = get("type");
            if stream.as_deref().is_some_and(|s| s.contains('\0')) {
                invalid.push("stream");
            }
            if types.as_deref().is_some_and(|s| s.contains('\0')) {
                invalid.push("type");
            }
            let after = match get("after").as_deref().map(str::trim) {
                None | Some("") => Some(Cursor::START),
                Some(text) => text.parse::<Cursor>().ok(),
            };
            if after.is_none() {
                invalid.push("after");
            }
            let limit = int("limit", &mut invalid);
            json!({
                "after": after.unwrap_or_default().to_string(),
                "limit": limit,
                "stream": stream.filter(|s| !s.is_empty()),
                "types": list(types.as_deref()),
            })
        }
    };
    (invalid, expected)
}

/// `text` with every `\`, `%` and `_` escaped, as a LIKE pattern between `%`s.
fn literal_of(pattern: &str) -> Option<String> {
    let inner = pattern.strip_prefix('%')?.strip_suffix('%')?;
    let mut literal = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.push(chars.next()?),
            '%' | '_' => return None,
            c => literal.push(c),
        }
    }
    Some(literal)
}

/// `raw` as a request target: bytes a URI cannot hold are percent-encoded,
/// the rest (`%`, `&`, `=`, `+` included) are sent as they are.
fn target(path: &str, raw: &[u8]) -> String {
    let mut uri = format!("{path}?");
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

fn check_route<S>(app: &S, path: &str, params: &[&str], raw: &[u8]) -> Result<(), TestCaseError>
where
    S: Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let uri = target(path, raw);
    let Ok(parsed) = uri.parse::<actix_web::http::Uri>() else {
        return Ok(()); // no client can send it
    };
    let query = parsed.query().unwrap_or("").to_owned();
    let request = TestRequest::get().uri(&uri).to_request();
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
    let (invalid, expected) = oracle(path, params, &query);
    match status {
        200 => {
            prop_assert!(
                invalid.is_empty(),
                "{} accepted with invalid {:?}",
                uri,
                invalid
            );
            if path == "/directory" {
                let pattern = body["pattern"].as_str().unwrap_or("");
                let literal = literal_of(pattern);
                prop_assert_eq!(literal.as_deref(), body["text"].as_str());
                let mut body = body.clone();
                body.as_object_mut().map(|o| o.remove("pattern"));
                prop_assert_eq!(body, expected, "{}", uri);
            } else {
                prop_assert_eq!(body, expected, "{}", uri);
            }
        }
        400 => {
            let code = body["error"]["code"].as_str().unwrap_or("");
            let message = body["error"]["message"].as_str().unwrap_or("");
            prop_assert!(
                !invalid.is_empty(),
                "{} refused ({}: {})",
                uri,
                code,
                message
            );
            match code {
                "invalid_cursor" => {
                    prop_assert!(path == "/events" && invalid.contains(&"after"));
                }
                "invalid_query" => {
                    let names = |name: &&str| {
                        message
                            .split(|c: char| !c.is_ascii_alphabetic() && c != '_')
                            .any(|word| word == *name)
                    };
                    prop_assert!(
                        invalid.iter().any(names),
                        "{}: {} names none of {:?}",
                        uri,
                        message,
                        invalid
                    );
                }
                other => return Err(TestCaseError::fail(format!("{uri}: code {other:?}"))),
            }
        }
        other => return Err(TestCaseError::fail(format!("{uri}: status {other}"))),
    }
    // The same text straight into the extractor never panics either.
    let _ = web::Query::<HistoryQuery>::from_query(&String::from_utf8_lossy(raw)).map(|q| q.page());
    Ok(())
}

fn with_app(test: impl FnOnce(&dyn Fn(&[u8]) -> Result<(), TestCaseError>)) {
    actix_web::rt::System::new().block_on(async {
        let app = init_service(
            App::new()
                .configure(|cfg| service_kit::configure_extractors(cfg, 16 * 1024))
                .route("/history", web::get().to(history))
                .route("/directory", web::get().to(directory))
                .route("/events", web::get().to(events)),
        )
        .await;
        let check = |raw: &[u8]| {
            for (path, params) in ROUTES {
                check_route(&app, path, params, raw)?;
            }
            Ok(())
        };
        test(&check);
    });
}

#[test]
fn corpus_replays() {
    with_app(|check| CORPUS.replay(check));
}

#[test]
fn fuzz_query_strings() {
    with_app(|check| fuzz(&CORPUS, "query_strings", check));
}
