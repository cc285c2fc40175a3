//! The HTTP contract (`schemas/openapi.json`): it is OpenAPI 3.1; it documents
//! exactly the routes the command and query services mount (no more, no fewer);
//! every `$ref` resolves inside it; the per-operation conventions hold (auth,
//! headers, error codes); and what the real services answer, run against real
//! databases, validates against the documented responses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use actix_web::{App, middleware, web};
use serde_json::{Value, json};
use uuid::Uuid;

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const TAGS: [&str; 3] = ["commands", "queries", "auth"];
/// Operations anyone may call; everything else needs a bearer token.
const PUBLIC: [(&str, &str); 2] = [("POST", "/api/users"), ("POST", "/api/auth/token")];
const AUTH_CODES: [&str; 3] = ["missing_token", "invalid_token", "token_expired"];

// ---------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    })
}

/// `/api/channels/{id}/members/{user_id}` → `/api/channels/{}/members/{}`.
fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The `{name}`s of a path template, in order.
fn path_params(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Follows `$ref` (a local JSON pointer) until a non-reference object.
fn deref<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        value = resolve(doc, r).unwrap_or_else(|| panic!("{r} does not resolve"));
    }
    panic!("$ref chain too long at {value}");
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every operation as ((METHOD, path template), operation object).
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut ops = BTreeMap::new();
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (key, op) in item {
            if HTTP_METHODS.contains(&key.as_str()) {
                ops.insert((key.to_uppercase(), path.clone()), op);
            }
        }
    }
    ops
}

/// The operation documenting `method path` (templates compared normalised).
fn operation(method: &str, path: &str) -> &'static Value {
    let wanted = (method.to_owned(), normalise(path));
    operations(doc())
        .into_iter()
        .find(|((m, p), _)| (m.clone(), normalise(p)) == wanted)
        .map(|(_, op)| op)
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
}

/// Every route the command and query services mount, normalised.
fn mounted_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (service, list) in [
        ("command_service", command_service::ROUTES),
        ("query_service", query_service::ROUTES),
    ] {
        for (method, path) in list {
            assert!(
                routes.insert((method.to_string(), normalise(path))),
                "{method} {path} of {service}::ROUTES is mounted twice"
            );
        }
    }
    routes
}

fn query_route(method: &str, path: &str) -> bool {
    query_service::ROUTES
        .iter()
        .any(|(m, p)| *m == method && normalise(p) == normalise(path))
}

/// The parameters of an operation (path-item level ones included), resolved.
fn parameters<'a>(doc: &'a Value, path: &str, op: &'a Value) -> Vec<&'a Value> {
    let item = &doc["paths"][path];
    let mut params: Vec<&Value> = Vec::new();
    for list in [&op["parameters"], &item["parameters"]] {
        for p in list.as_array().into_iter().flatten() {
            let p = deref(doc, p);
            let duplicate = params
                .iter()
                .any(|q| q["name"] == p["name"] && q["in"] == p["in"]);
            if !duplicate {
                params.push(p);
            }
        }
    }
    params
}

fn has_header(doc: &Value, path: &str, op: &Value, name: &str) -> bool {
    parameters(doc, path, op)
        .iter()
        .any(|p| p["in"] == "header" && p["name"].as_str() == Some(name))
}

/// The error codes a response documents (its `code` enum), if it is an error response.
fn documented_codes(doc: &Value, response: &Value) -> Vec<String> {
    let schema = &deref(doc, response)["content"]["application/json"]["schema"];
    let mut codes = Vec::new();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        for code in part["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
        {
            codes.push(code.as_str().expect("codes are strings").to_owned());
        }
    }
    codes
}

fn collect_refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push((
                        at.to_owned(),
                        v.as_str().unwrap_or("<not a string>").to_owned(),
                    ));
                }
                let escaped = key.replace('~', "~0").replace('/', "~1");
                collect_refs(v, &format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A validator for `schema`, a schema object of the document: it is embedded
/// in a root that carries the document's `components`, so its
/// `#/components/...` references resolve with a real JSON Schema validator.
fn validator(schema: &Value) -> jsonschema::Validator {
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        Value::Bool(b) => return validator(&json!({ "allOf": [b] })),
        other => panic!("not a schema: {other}"),
    };
    assert!(
        !root.contains_key("components"),
        "a schema object must not have a `components` key"
    );
    root.insert("components".into(), doc()["components"].clone());
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

// ---------------------------------------------------------------------------
// The document on its own
// ---------------------------------------------------------------------------

#[test]
fn the_document_is_openapi_3_1_with_bearer_auth_and_the_three_tags() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(
        version.starts_with("3.1."),
        "openapi is {version}, not 3.1.x"
    );
    for key in ["title", "version"] {
        assert!(
            doc["info"][key]
                .as_str()
                .is_some_and(|s| !s.trim().is_empty()),
            "info.{key} is missing"
        );
    }
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"], &scheme["bearerFormat"]),
        (&json!("http"), &json!("bearer"), &json!("JWT")),
        "bearerAuth is HTTP bearer JWT"
    );
    assert_eq!(
        doc["security"],
        json!([{ "bearerAuth": [] }]),
        "bearer auth is the default for every operation"
    );
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().expect("tag name"))
        .collect();
    assert_eq!(tags, TAGS.into_iter().collect());

    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["required"],
        json!(["code", "message"])
    );
}

#[test]
fn documented_operations_are_exactly_the_mounted_routes() {
    let documented: BTreeSet<(String, String)> = operations(doc())
        .into_keys()
        .map(|(m, p)| (m, normalise(&p)))
        .collect();
    let mounted = mounted_routes();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty(),
        "routes without docs in openapi.json: {undocumented:?}"
    );
    assert!(
        unmounted.is_empty(),
        "documented operations no service mounts: {unmounted:?}"
    );
    assert_eq!(
        normalise("/api/channels/{id}/members/{user_id}"),
        "/api/channels/{}/members/{}"
    );
}

#[test]
fn every_ref_resolves_inside_the_document_and_every_component_is_used() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(doc, "#", &mut refs);
    assert!(!refs.is_empty());
    for (at, r) in &refs {
        assert!(
            r.starts_with("#/"),
            "{at}: {r} is not a reference inside the document"
        );
        assert!(resolve(doc, r).is_some(), "{at}: {r} does not resolve");
    }
    let used: BTreeSet<&str> = refs.iter().map(|(_, r)| r.as_str()).collect();
    for (section, entries) in doc["components"].as_object().expect("components") {
        if section == "securitySchemes" {
            continue; // used by name in `security`, not by $ref
        }
        for name in entries.as_object().expect("a components section").keys() {
            let pointer = format!("#/components/{section}/{name}");
            assert!(used.contains(pointer.as_str()), "{pointer} is never used");
        }
    }
}

#[test]
fn every_component_schema_is_valid_draft_2020_12_and_compiles() {
    let schemas = doc()["components"]["schemas"].as_object().expect("schemas");
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("components.schemas.{name} is not a valid draft 2020-12 schema: {e}");
        }
        validator(schema);
    }
}

#[test]
fn every_operation_follows_the_conventions() {
    let doc = doc();
    let mut ids = BTreeSet::new();
    for ((method, path), op) in operations(doc) {
        let at = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no operationId"));
        assert!(ids.insert(id), "{at}: operationId {id} used twice");
        for key in ["summary", "description"] {
            assert!(
                op[key].as_str().is_some_and(|s| !s.is_empty()),
                "{at}: no {key}"
            );
        }

        let tags: Vec<&str> = op["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: no tags"))
            .iter()
            .map(|t| t.as_str().expect("tag"))
            .collect();
        assert!(
            !tags.is_empty() && tags.iter().all(|t| TAGS.contains(t)),
            "{at}: tags {tags:?}"
        );
        let public = PUBLIC.iter().any(|(m, p)| *m == method && *p == path);
        let is_query = query_route(&method, &path);
        assert_eq!(
            tags.contains(&"queries"),
            is_query,
            "{at}: tagged queries iff a query"
        );
        assert_eq!(
            tags.contains(&"auth"),
            public,
            "{at}: tagged auth iff public"
        );
        if !is_query && !public {
            assert!(
                tags.contains(&"commands"),
                "{at}: a command is tagged commands"
            );
        }

        // Path parameters match the template.
        let declared: BTreeSet<String> = parameters(doc, &path, op)
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(
                    p["required"], true,
                    "{at}: path parameter {} is required",
                    p["name"]
                );
                p["name"].as_str().expect("name").to_owned()
            })
            .collect();
        assert_eq!(
            declared,
            path_params(&path).into_iter().collect(),
            "{at}: path parameters"
        );

        // Authentication.
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no responses"));
        if public {
            assert_eq!(op["security"], json!([]), "{at}: public, so `security: []`");
        } else {
            assert!(
                op.get("security").is_none(),
                "{at}: keeps the default bearer auth"
            );
            let unauthorized = responses
                .get("401")
                .unwrap_or_else(|| panic!("{at}: no 401"));
            let codes = documented_codes(doc, unauthorized);
            for code in AUTH_CODES {
                assert!(codes.iter().any(|c| c == code), "{at}: 401 lacks {code}");
            }
        }

        // Bodies: malformed and oversized ones are answered.
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        if !body.is_null() {
            let codes = documented_codes(
                doc,
                responses
                    .get("400")
                    .unwrap_or_else(|| panic!("{at}: no 400")),
            );
            let lenient = op["requestBody"]["required"] == false;
            if !lenient {
                for code in ["malformed_json", "invalid_body"] {
                    assert!(codes.iter().any(|c| c == code), "{at}: 400 lacks {code}");
                }
                assert!(responses.contains_key("413"), "{at}: no 413 for its body");
            }
        }

        // Every response has a description; every error one the Error schema.
        for (status, response) in responses {
            let response = deref(doc, response);
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{at} {status}: no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                let codes = documented_codes(doc, response);
                assert!(!codes.is_empty(), "{at} {status}: no error codes");
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["allOf"][0]["$ref"], "#/components/schemas/Error",
                    "{at} {status}: not an Error"
                );
                let examples = response["content"]["application/json"]["examples"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{at} {status}: no examples"));
                let named: BTreeSet<&str> = examples.keys().map(String::as_str).collect();
                let listed: BTreeSet<&str> = codes.iter().map(String::as_str).collect();
                assert_eq!(named, listed, "{at} {status}: one example per code");
            }
        }
        let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert_eq!(success.len(), 1, "{at}: exactly one success status");
        assert!(responses.contains_key("503"), "{at}: no 503");

        // Commands on a channel: conditional, idempotent, versioned.
        let channel_command = !is_query && path.starts_with("/api/channels/{id}");
        if channel_command {
            assert!(has_header(doc, &path, op, "If-Match"), "{at}: no If-Match");
            let conflicts = documented_codes(doc, &responses["409"]);
            assert!(
                conflicts.iter().any(|c| c == "version_conflict"),
                "{at}: no 409 version_conflict"
            );
            let codes = documented_codes(doc, &responses["400"]);
            assert!(
                codes.iter().any(|c| c == "invalid_if_match"),
                "{at}: no 400 invalid_if_match"
            );
        }
        if !is_query && id != "issueToken" {
            assert!(
                has_header(doc, &path, op, "Idempotency-Key"),
                "{at}: no Idempotency-Key"
            );
        }
        let etag = !deref(doc, &responses[success[0].as_str()])["headers"]["ETag"].is_null();
        assert_eq!(
            etag,
            !is_query && !public,
            "{at}: ETag on every channel command's success"
        );
    }
}

#[test]
fn documented_examples_validate_against_their_schemas() {
    let doc = doc();
    let mut checked = 0;
    for ((method, path), op) in operations(doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let response = deref(doc, response);
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                let compiled = validator(&content["schema"]);
                for (name, example) in content["examples"].as_object().into_iter().flatten() {
                    let value = &deref(doc, example)["value"];
                    let found = errors(&compiled, value);
                    assert!(
                        found.is_empty(),
                        "{method} {path} {status} {media} example {name}: {found:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} examples");
}

// ---------------------------------------------------------------------------
// The real command service against the document
// ---------------------------------------------------------------------------

const SECRET: &[u8] = b"openapi-test-secret-openapi-test-secret";
const MAX_BODY: usize = 16 * 1024;

fn jwt() -> auth::JwtConfig {
    auth::JwtConfig::new(SECRET, "chat", "chat", 3600).expect("jwt config")
}

fn auth_gate() -> web::Data<command_service::AuthGate> {
    web::Data::new(command_service::AuthGate::unthrottled().expect("hashing pool"))
}

/// A response as the checks see it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    async fn read<B: MessageBody>(res: ServiceResponse<B>) -> Answer {
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or("<binary>").to_owned(),
                )
            })
            .collect();
        let body = test::read_body(res).await.to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// What a request sends.
enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

struct Call {
    method: &'static str,
    /// The documented path template.
    template: &'static str,
    uri: String,
    token: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

impl Call {
    fn new(method: &'static str, template: &'static str, uri: impl Into<String>) -> Self {
        Call {
            method,
            template,
            uri: uri.into(),
            token: None,
            headers: Vec::new(),
            body: Body::None,
        }
    }
    fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    fn raw(mut self, body: &'static str) -> Self {
        self.body = Body::Raw(body);
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn request(&self) -> TestRequest {
        let method = Method::from_bytes(self.method.as_bytes()).expect("method");
        let mut req = TestRequest::default().method(method).uri(&self.uri);
        if let Some(token) = &self.token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in &self.headers {
            req = req.insert_header((*name, value.clone()));
        }
        match &self.body {
            Body::None => req,
            Body::Json(v) => req.set_json(v),
            Body::Raw(s) => req
                .insert_header(("content-type", "application/json"))
                .set_payload(*s),
        }
    }
}

/// Checks answers against the document and remembers what was covered.
#[derive(Default)]
struct Checker {
    seen: BTreeSet<(String, String, u16)>,
}

impl Checker {
    /// Validates the request body (when it should be accepted) and the answer
    /// against the operation's documentation; returns the answer's JSON.
    fn check(&mut self, call: &Call, answer: &Answer, expected: u16) -> Value {
        let at = format!("{} {} → {}", call.method, call.uri, answer.status);
        assert_eq!(
            answer.status,
            expected,
            "{at}: expected {expected}; body {}",
            String::from_utf8_lossy(&answer.body)
        );
        let doc = doc();
        let op = operation(call.method, call.template);
        if let (Body::Json(body), true) = (&call.body, (200..300).contains(&answer.status)) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                !schema.is_null(),
                "{at}: a body was accepted but none is documented"
            );
            let found = errors(&validator(schema), body);
            assert!(
                found.is_empty(),
                "{at}: an accepted request body breaks its schema: {found:?}\n{body}"
            );
        }

        let status = answer.status.to_string();
        let response = op["responses"]
            .get(&status)
            .map(|r| deref(doc, r))
            .unwrap_or_else(|| {
                panic!("{at}: status {status} is not documented for this operation")
            });

        let body = match response["content"].as_object() {
            None => {
                assert!(
                    answer.body.is_empty(),
                    "{at}: documented without a body, but got one"
                );
                Value::Null
            }
            Some(content) => {
                assert_eq!(content.len(), 1, "{at}: one media type per response");
                let (media_type, media) = content.iter().next().expect("one media type");
                let content_type = answer
                    .headers
                    .get("content-type")
                    .map(String::as_str)
                    .unwrap_or("");
                assert!(
                    content_type.starts_with(media_type.as_str()),
                    "{at}: content-type {content_type}, documented {media_type}"
                );
                let compiled = validator(&media["schema"]);
                // NDJSON: the schema describes each line.
                let values: Vec<Value> = match media_type.as_str() {
                    "application/json" => vec![
                        serde_json::from_slice(&answer.body)
                            .unwrap_or_else(|e| panic!("{at}: body is not JSON: {e}")),
                    ],
                    "application/x-ndjson" => String::from_utf8(answer.body.clone())
                        .expect("UTF-8")
                        .lines()
                        .map(|line| {
                            serde_json::from_str(line)
                                .unwrap_or_else(|e| panic!("{at}: line is not JSON: {e}\n{line}"))
                        })
                        .collect(),
                    other => panic!("{at}: no check for {other}"),
                };
                for value in &values {
                    let found = errors(&compiled, value);
                    assert!(
                        found.is_empty(),
                        "{at}: the answer breaks the documented schema:\n  {}\n{value:#}",
                        found.join("\n  ")
                    );
                }
                match media_type.as_str() {
                    "application/json" => values.into_iter().next().unwrap_or_default(),
                    _ => Value::Array(values),
                }
            }
        };

        let documented = response["headers"].as_object().cloned().unwrap_or_default();
        for (name, header) in &documented {
            let header = deref(doc, header);
            match answer.headers.get(&name.to_lowercase()) {
                Some(value) => {
                    let found = errors(&validator(&header["schema"]), &json!(value));
                    assert!(
                        found.is_empty(),
                        "{at}: header {name}: {value:?} breaks its schema: {found:?}"
                    );
                }
                None => assert!(
                    header["required"] != true,
                    "{at}: documented header {name} is missing"
                ),
            }
        }
        for name in ["etag", "location"] {
            if answer.headers.contains_key(name) {
                assert!(
                    documented.keys().any(|k| k.eq_ignore_ascii_case(name)),
                    "{at}: sends {name}, which is not documented"
                );
            }
        }
        self.seen.insert((
            call.method.to_owned(),
            normalise(call.template),
            answer.status,
        ));
        body
    }
}

/// Sends `call` to `app`, checks the answer against the document with
/// `checker`, expecting `status`; evaluates to the answer and its JSON.
macro_rules! roundtrip {
    ($app:expr, $checker:expr, $call:expr, $status:expr) => {{
        let call = $call;
        let res = test::call_service(&$app, call.request().to_request()).await;
        let answer = Answer::read(res).await;
        let body = $checker.check(&call, &answer, $status);
        (answer, body)
    }};
}

#[actix_web::test]
async fn command_service_answers_validate_against_the_documented_responses() {
    let db = test_support::TestDb::new_event_log().await;
    let service = web::Data::new(command_service::CommandService::new(
        std::sync::Arc::new(event_store::PgEventStore::new(db.pool.clone())),
        domain::MessagePolicy::new(4000, ["darn"]),
    ));
    let app = test::init_service(
        App::new()
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .app_data(service)
            .app_data(web::Data::new(jwt()))
            .app_data(auth_gate())
            .configure(|cfg| service_kit::configure_extractors(cfg, MAX_BODY))
            .configure(command_service::configure),
    )
    .await;
    let mut checker = Checker::default();
    macro_rules! exchange {
        ($call:expr, $status:expr) => {
            roundtrip!(app, checker, $call, $status)
        };
    }

    // --- auth
    let register = |name: &str| {
        Call::new("POST", "/api/users", "/api/users")
            .json(json!({ "username": name, "password": "password123", "display_name": format!("{name} A.") }))
    };
    let (_, alice) = exchange!(register("alice"), 201);
    let alice_id = alice["user_id"].as_str().expect("user_id").to_owned();
    let (_, bob) = exchange!(register("bob"), 201);
    let bob_id = bob["user_id"].as_str().expect("user_id").to_owned();
    let (_, carol) = exchange!(register("carol"), 201);
    let carol_id = carol["user_id"].as_str().expect("user_id").to_owned();
    let (taken, _) = exchange!(register("ALICE"), 409);
    assert_eq!(taken.code(), "username_taken");
    let (short, _) = exchange!(
        Call::new("POST", "/api/users", "/api/users")
            .json(json!({ "username": "dave", "password": "short" })),
        422
    );
    assert_eq!(short.code(), "validation_failed");
    let keyed = || register("erin").header("Idempotency-Key", "signup-1");
    let (first, first_body) = exchange!(keyed(), 201);
    let (repeat, repeat_body) = exchange!(keyed(), 201);
    assert_eq!(first_body, repeat_body);
    assert!(first.headers.contains_key("location") && !repeat.headers.contains_key("location"));

    let login = |name: &str, password: &str| {
        Call::new("POST", "/api/auth/token", "/api/auth/token")
            .json(json!({ "username": name, "password": password }))
    };
    let token = |body: &Value| body["access_token"].as_str().expect("token").to_owned();
    let alice_token = token(&exchange!(login("alice", "password123"), 200).1);
    let bob_token = token(&exchange!(login("BOB", "password123"), 200).1);
    let carol_token = token(&exchange!(login("carol", "password123"), 200).1);
    let (wrong, _) = exchange!(login("alice", "password124"), 401);
    assert_eq!(wrong.code(), "invalid_credentials");
    let (malformed, _) = exchange!(
        Call::new("POST", "/api/auth/token", "/api/auth/token").raw("{\"username\": "),
        400
    );
    assert_eq!(malformed.code(), "malformed_json");
    let (nul, _) = exchange!(login("alice\u{0}", "password123"), 422);
    assert_eq!(nul.code(), "validation_failed");

    // --- channels
    let create = || {
        Call::new("POST", "/api/channels", "/api/channels")
            .json(json!({ "name": "general", "kind": "public", "max_members": 10 }))
    };
    let (missing, _) = exchange!(create(), 401);
    assert_eq!(missing.code(), "missing_token");
    let (expired, _) = exchange!(
        create().token(
            &jwt()
                .issue_at(Uuid::new_v4(), "x", chrono::Utc::now().timestamp() - 7200)
                .access_token
        ),
        401
    );
    assert_eq!(expired.code(), "token_expired");
    let (created, channel) = exchange!(create().token(&alice_token), 201);
    assert_eq!(
        created.headers.get("etag").map(String::as_str),
        Some("\"1\"")
    );
    let channel = channel["channel_id"]
        .as_str()
        .expect("channel_id")
        .to_owned();
    let (bad_kind, _) = exchange!(
        Call::new("POST", "/api/channels", "/api/channels")
            .token(&alice_token)
            .json(json!({ "name": "x", "kind": "secret" })),
        400
    );
    assert_eq!(bad_kind.code(), "invalid_body");
    let (blank, _) = exchange!(
        Call::new("POST", "/api/channels", "/api/channels")
            .token(&alice_token)
            .json(json!({ "name": "  ", "kind": "private" })),
        422
    );
    assert_eq!(blank.code(), "validation_failed");

    let c = |suffix: &str| format!("/api/channels/{channel}{suffix}");
    const MEMBERS: &str = "/api/channels/{id}/members";
    const MEMBER: &str = "/api/channels/{id}/members/{user_id}";
    const ROLE: &str = "/api/channels/{id}/members/{user_id}/role";
    const BANS: &str = "/api/channels/{id}/bans";
    const BAN: &str = "/api/channels/{id}/bans/{user_id}";
    const MESSAGES: &str = "/api/channels/{id}/messages";
    const MESSAGE: &str = "/api/channels/{id}/messages/{message_id}";

    exchange!(
        Call::new("POST", MEMBERS, c("/members"))
            .token(&bob_token)
            .json(json!({})),
        204
    );
    exchange!(
        Call::new("POST", MEMBERS, c("/members"))
            .token(&alice_token)
            .json(json!({ "user_id": carol_id })),
        204
    );
    let (unknown_user, _) = exchange!(
        Call::new("POST", MEMBERS, c("/members"))
            .token(&alice_token)
            .json(json!({ "user_id": Uuid::new_v4() })),
        404
    );
    assert_eq!(unknown_user.code(), "user_not_found");
    exchange!(
        Call::new("PUT", ROLE, c(&format!("/members/{bob_id}/role")))
            .token(&alice_token)
            .json(json!({ "role": "admin" })),
        204
    );
    let (outranked, _) = exchange!(
        Call::new("PUT", ROLE, c(&format!("/members/{alice_id}/role")))
            .token(&bob_token)
            .json(json!({ "role": "member" })),
        403
    );
    assert_eq!(outranked.code(), "outranked");

    // --- messages
    let send = |content: &str| {
        Call::new("POST", MESSAGES, c("/messages"))
            .json(json!({ "content": content, "type": "text" }))
    };
    let (sent, message) = exchange!(send("hello").token(&alice_token), 201);
    let version = sent.headers.get("etag").expect("etag").clone();
    let message_id = message["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    let dedupe = || {
        Call::new("POST", MESSAGES, c("/messages"))
            .token(&bob_token)
            .json(json!({ "content": "once", "client_msg_id": "c-1" }))
    };
    let (_, once) = exchange!(dedupe(), 201);
    let (_, again) = exchange!(dedupe(), 201);
    assert_eq!(once, again);
    let (stale, _) = exchange!(
        send("late")
            .token(&alice_token)
            .header("If-Match", version.clone()),
        409
    );
    assert_eq!(stale.code(), "version_conflict");
    let (bad_etag, _) = exchange!(
        send("x").token(&alice_token).header("If-Match", "\"abc\""),
        400
    );
    assert_eq!(bad_etag.code(), "invalid_if_match");
    let (bad_key, _) = exchange!(
        send("x")
            .token(&alice_token)
            .header("Idempotency-Key", "k".repeat(201)),
        400
    );
    assert_eq!(bad_key.code(), "invalid_idempotency_key");
    let (empty, _) = exchange!(send("   ").token(&alice_token), 422);
    assert_eq!(empty.code(), "validation_failed");
    let (banned_word, _) = exchange!(send("well darn").token(&alice_token), 422);
    assert_eq!(banned_word.code(), "banned_word");
    let (huge, _) = exchange!(send(&"x".repeat(MAX_BODY * 2)).token(&alice_token), 413);
    assert_eq!(huge.code(), "payload_too_large");
    let (no_content, _) = exchange!(
        Call::new("POST", MESSAGES, c("/messages"))
            .token(&alice_token)
            .json(json!({ "type": "text" })),
        400
    );
    assert_eq!(no_content.code(), "invalid_body");
    let (no_channel, _) = exchange!(
        Call::new(
            "POST",
            MESSAGES,
            format!("/api/channels/{}/messages", Uuid::new_v4())
        )
        .token(&alice_token)
        .json(json!({ "content": "hi" })),
        404
    );
    assert_eq!(no_channel.code(), "channel_not_found");
    let (not_uuid, _) = exchange!(
        Call::new("POST", MESSAGES, "/api/channels/not-a-uuid/messages")
            .token(&alice_token)
            .json(json!({ "content": "hi" })),
        404
    );
    assert_eq!(not_uuid.code(), "not_found");
    let (reused, _) = exchange!(
        Call::new("POST", "/api/channels/{id}/read", c("/read"))
            .token(&bob_token)
            .header("Idempotency-Key", "k-1")
            .json(json!({ "seq": 1 })),
        204
    );
    assert!(reused.body.is_empty());
    let (reused, _) = exchange!(
        send("keyed")
            .token(&bob_token)
            .header("Idempotency-Key", "k-1"),
        422
    );
    assert_eq!(reused.code(), "idempotency_key_reused");

    let edit = |token: &str| {
        Call::new("PATCH", MESSAGE, c(&format!("/messages/{message_id}")))
            .token(token)
            .json(json!({ "content": "hello, edited" }))
    };
    let (_, edited) = exchange!(edit(&alice_token), 200);
    assert_eq!(edited["message_id"], json!(message_id));
    let (not_sender, _) = exchange!(edit(&bob_token), 403);
    assert_eq!(not_sender.code(), "not_sender");
    let (no_message, _) = exchange!(
        Call::new(
            "PATCH",
            MESSAGE,
            c(&format!("/messages/{}", Uuid::new_v4()))
        )
        .token(&alice_token)
        .json(json!({ "content": "x" })),
        404
    );
    assert_eq!(no_message.code(), "message_not_found");
    exchange!(
        Call::new("PUT", "/api/channels/{id}/mute", c("/mute"))
            .token(&carol_token)
            .json(json!({ "muted": true })),
        204
    );
    let (beyond, _) = exchange!(
        Call::new("POST", "/api/channels/{id}/read", c("/read"))
            .token(&carol_token)
            .json(json!({ "seq": 99 })),
        422
    );
    assert_eq!(beyond.code(), "seq_out_of_range");
    exchange!(
        Call::new("DELETE", MESSAGE, c(&format!("/messages/{message_id}"))).token(&bob_token),
        204
    );
    let (deleted, _) = exchange!(edit(&alice_token), 422);
    assert_eq!(deleted.code(), "message_deleted");

    // --- membership
    let (owner_leaves, _) = exchange!(
        Call::new("DELETE", MEMBER, c(&format!("/members/{alice_id}"))).token(&alice_token),
        422
    );
    assert_eq!(owner_leaves.code(), "owner_cannot_leave");
    exchange!(
        Call::new("DELETE", MEMBER, c(&format!("/members/{carol_id}"))).token(&bob_token),
        204
    );
    let (not_member, _) = exchange!(send("still here?").token(&carol_token), 403);
    assert_eq!(not_member.code(), "not_a_member");
    exchange!(
        Call::new("POST", BANS, c("/bans"))
            .token(&alice_token)
            .json(json!({ "user_id": carol_id })),
        204
    );
    let (banned, _) = exchange!(
        Call::new("POST", MEMBERS, c("/members")).token(&carol_token),
        403
    );
    assert_eq!(banned.code(), "banned");
    exchange!(
        Call::new("DELETE", BAN, c(&format!("/bans/{carol_id}"))).token(&alice_token),
        204
    );
    exchange!(
        Call::new("DELETE", MEMBER, c(&format!("/members/{bob_id}"))).token(&bob_token),
        204
    );
    let (not_admin, _) = exchange!(
        Call::new("POST", "/api/channels/{id}/archive", c("/archive")).token(&carol_token),
        403
    );
    assert_eq!(not_admin.code(), "not_a_member");
    exchange!(
        Call::new("POST", "/api/channels/{id}/archive", c("/archive")).token(&alice_token),
        204
    );
    let (archived, _) = exchange!(send("anyone?").token(&alice_token), 422);
    assert_eq!(archived.code(), "channel_archived");

    // Every command route answered its documented success at least once, and
    // every kind of error the contract names was seen.
    for (method, path) in command_service::ROUTES {
        let op = operation(method, path);
        let success: u16 = op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .find(|s| s.starts_with('2'))
            .and_then(|s| s.parse().ok())
            .expect("a success status");
        assert!(
            checker
                .seen
                .contains(&(method.to_string(), normalise(path), success)),
            "{method} {path} never answered {success} in this scenario"
        );
    }
    let statuses: BTreeSet<u16> = checker.seen.iter().map(|(_, _, s)| *s).collect();
    for status in [400, 401, 403, 404, 409, 413, 422] {
        assert!(statuses.contains(&status), "no {status} was checked");
    }
}

/// Projects every event of `streams` into the read model the way the
/// projector does with a delivery: the envelope as JSON, checked, decoded,
/// applied in global order.
async fn project_everything(
    log: &test_support::TestDb,
    read: &test_support::TestDb,
    streams: &[String],
) {
    let store = event_store::PgEventStore::new(log.pool.clone());
    let schemas = projector::EventSchemas::load().expect("the projector's schemas load");
    let mut appended = 0;
    for stream in streams {
        appended += store.stream_version(stream).await.expect("stream version");
    }
    // The log shows an event to global readers only once no older transaction
    // anywhere in the cluster is open (DESIGN.md §3), so wait for them all.
    let mut events = Vec::new();
    for _ in 0..600 {
        events = store
            .read_all(
                event_store::Cursor::START,
                10_000,
                &event_store::LogFilter::default(),
            )
            .await
            .expect("read the log");
        if events.len() as u64 >= appended {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        events.len() as u64,
        appended,
        "the log shows every appended event in time"
    );
    for recorded in events {
        let body = serde_json::to_vec(&recorded).expect("serialises");
        let (recorded, event) =
            projector::decode_delivery(&body, &schemas).expect("a valid delivery");
        let mut tx = read.pool.begin().await.expect("begin");
        projector::apply_event(
            &mut read_model::PgReadWrites::new(&mut tx, read_model::LIVE_SCHEMA),
            &store,
            &recorded,
            &event,
        )
        .await
        .expect("applies");
        tx.commit().await.expect("commit");
    }
}

#[actix_web::test]
async fn query_service_answers_validate_against_the_documented_responses() {
    let log = test_support::TestDb::new_event_log().await;
    let read = test_support::TestDb::new_read_model().await;
    let commands = web::Data::new(command_service::CommandService::new(
        std::sync::Arc::new(event_store::PgEventStore::new(log.pool.clone())),
        domain::MessagePolicy::default(),
    ));
    let queries = web::Data::new(query_service::QueryService::new(
        std::sync::Arc::new(read_model::PgReadModel::new(read.pool.clone())),
        std::sync::Arc::new(event_store::PgEventStore::new(log.pool.clone())),
        vec!["alice".to_owned()],
    ));
    // Both services on one app, as `chat up` mounts them.
    let app = test::init_service(
        App::new()
            .wrap(middleware::from_fn(service_kit::observe_requests))
            .app_data(commands)
            .app_data(queries)
            .app_data(web::Data::new(jwt()))
            .app_data(auth_gate())
            .configure(|cfg| service_kit::configure_extractors(cfg, MAX_BODY))
            .configure(command_service::configure)
            .configure(query_service::configure),
    )
    .await;
    let mut checker = Checker::default();
    macro_rules! exchange {
        ($call:expr, $status:expr) => {
            roundtrip!(app, checker, $call, $status)
        };
    }

    // Some history, written through the command API.
    let mut tokens = BTreeMap::new();
    let mut streams = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let body = json!({ "username": name, "password": "password123" });
        let (_, user) = exchange!(
            Call::new("POST", "/api/users", "/api/users").json(body.clone()),
            201
        );
        streams.push(format!(
            "user-{}",
            user["user_id"].as_str().expect("user_id")
        ));
        let (_, token) = exchange!(
            Call::new("POST", "/api/auth/token", "/api/auth/token").json(body),
            200
        );
        tokens.insert(
            name,
            token["access_token"].as_str().expect("token").to_owned(),
        );
    }
    let (alice, bob, carol) = (&tokens["alice"], &tokens["bob"], &tokens["carol"]);
    let create = |kind: &str| {
        Call::new("POST", "/api/channels", "/api/channels")
            .token(alice)
            .json(json!({ "name": format!("{kind} room"), "kind": kind }))
    };
    let public = exchange!(create("public"), 201).1["channel_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let private = exchange!(create("private"), 201).1["channel_id"]
        .as_str()
        .expect("id")
        .to_owned();
    streams.extend([format!("channel-{public}"), format!("channel-{private}")]);
    let c = |suffix: &str| format!("/api/channels/{public}{suffix}");
    exchange!(
        Call::new("POST", "/api/channels/{id}/members", c("/members"))
            .token(bob)
            .json(json!({})),
        204
    );
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let (_, body) = exchange!(
            Call::new("POST", "/api/channels/{id}/messages", c("/messages"))
                .token(alice)
                .json(json!({ "content": text })),
            201
        );
        sent.push(body["message_id"].as_str().expect("message_id").to_owned());
    }
    exchange!(
        Call::new(
            "PATCH",
            "/api/channels/{id}/messages/{message_id}",
            c(&format!("/messages/{}", sent[1]))
        )
        .token(alice)
        .json(json!({ "content": "two, edited" })),
        200
    );
    exchange!(
        Call::new(
            "DELETE",
            "/api/channels/{id}/messages/{message_id}",
            c(&format!("/messages/{}", sent[2]))
        )
        .token(alice),
        204
    );
    exchange!(
        Call::new("POST", "/api/channels/{id}/read", c("/read"))
            .token(bob)
            .json(json!({ "seq": 1 })),
        204
    );
    exchange!(
        Call::new("PUT", "/api/channels/{id}/mute", c("/mute"))
            .token(bob)
            .json(json!({ "muted": true })),
        204
    );
    project_everything(&log, &read, &streams).await;

    // GET /api/channels
    let (_, mine) = exchange!(
        Call::new("GET", "/api/channels", "/api/channels").token(alice),
        200
    );
    assert_eq!(
        mine["channels"].as_array().map(Vec::len),
        Some(2),
        "{mine:#}"
    );
    let (_, bobs) = exchange!(
        Call::new("GET", "/api/channels", "/api/channels").token(bob),
        200
    );
    let summary = &bobs["channels"][0];
    assert_eq!(
        (
            &summary["muted"],
            &summary["read_seq"],
            &summary["last_seq"]
        ),
        (&json!(true), &json!(1), &json!(3))
    );
    assert_eq!(summary["last_message"]["deleted"], true, "{bobs:#}");
    let (_, none) = exchange!(
        Call::new("GET", "/api/channels", "/api/channels").token(carol),
        200
    );
    assert_eq!(none, json!({ "channels": [] }));
    let (unauthenticated, _) = exchange!(Call::new("GET", "/api/channels", "/api/channels"), 401);
    assert_eq!(unauthenticated.code(), "missing_token");

    // GET /api/channels/{id}
    let (_, detail) = exchange!(
        Call::new("GET", "/api/channels/{id}", c("")).token(carol),
        200
    );
    assert_eq!(
        detail["members"].as_array().map(Vec::len),
        Some(2),
        "{detail:#}"
    );
    let (hidden, _) = exchange!(
        Call::new(
            "GET",
            "/api/channels/{id}",
            format!("/api/channels/{private}")
        )
        .token(bob),
        403
    );
    assert_eq!(hidden.code(), "not_a_member");
    let (unknown, _) = exchange!(
        Call::new(
            "GET",
            "/api/channels/{id}",
            format!("/api/channels/{}", Uuid::new_v4())
        )
        .token(bob),
        404
    );
    assert_eq!(unknown.code(), "channel_not_found");

    // GET /api/channels/{id}/messages
    const HISTORY: &str = "/api/channels/{id}/messages";
    let (_, page) = exchange!(
        Call::new("GET", HISTORY, c("/messages?limit=2")).token(bob),
        200
    );
    assert_eq!(page["has_more"], true);
    let seqs: Vec<&Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["seq"])
        .collect();
    assert_eq!(seqs, [&json!(3), &json!(2)], "newest first");
    assert!(
        page["messages"][0]["content"].is_null() && page["messages"][1]["edited_at"].is_string(),
        "{page:#}"
    );
    let (_, older) = exchange!(
        Call::new("GET", HISTORY, c("/messages?before=2&limit=1000")).token(bob),
        200
    );
    assert_eq!(
        (
            older["messages"].as_array().map(Vec::len),
            &older["has_more"]
        ),
        (Some(1), &json!(false))
    );
    let (bad_limit, _) = exchange!(
        Call::new("GET", HISTORY, c("/messages?limit=abc")).token(bob),
        400
    );
    assert_eq!(bad_limit.code(), "invalid_query");
    let (private_history, _) = exchange!(
        Call::new("GET", HISTORY, format!("/api/channels/{private}/messages")).token(carol),
        403
    );
    assert_eq!(private_history.code(), "not_a_member");

    // GET /api/channels/public
    const DIRECTORY: &str = "/api/channels/public";
    let (_, directory) = exchange!(
        Call::new("GET", DIRECTORY, "/api/channels/public?q=PUBLIC").token(carol),
        200
    );
    assert_eq!(
        (
            &directory["channels"][0]["channel_id"],
            &directory["has_more"]
        ),
        (&json!(public), &json!(false)),
        "only the public room: {directory:#}"
    );
    assert_eq!(directory["channels"].as_array().map(Vec::len), Some(1));
    let (bad_directory, _) = exchange!(
        Call::new("GET", DIRECTORY, "/api/channels/public?limit=x").token(carol),
        400
    );
    assert_eq!(bad_directory.code(), "invalid_query");
    let (unauthenticated, _) = exchange!(Call::new("GET", DIRECTORY, DIRECTORY), 401);
    assert_eq!(unauthenticated.code(), "missing_token");

    // GET /api/events: every line is an envelope valid against its own event schema too.
    let (_, lines) = exchange!(
        Call::new("GET", "/api/events", "/api/events").token(alice),
        200
    );
    let lines = lines.as_array().expect("lines");
    assert!(lines.len() >= 13, "{} lines", lines.len());
    for line in lines {
        let (event_type, version) = (
            line["event_type"].as_str().expect("type"),
            &line["schema_version"],
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("events/{event_type}.v{version}.json"));
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
                .expect("JSON");
        let own = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("compiles");
        let found = errors(&own, line);
        assert!(
            found.is_empty(),
            "{event_type} line breaks {}: {found:?}",
            path.display()
        );
    }
    let cursor = lines[lines.len() - 2]["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let (_, rest) = exchange!(
        Call::new(
            "GET",
            "/api/events",
            format!("/api/events?after={cursor}&limit=5")
        )
        .token(alice),
        200
    );
    assert_eq!(
        rest.as_array().map(Vec::len),
        Some(1),
        "resumes after the cursor"
    );
    let (not_admin, _) = exchange!(
        Call::new("GET", "/api/events", "/api/events").token(bob),
        403
    );
    assert_eq!(not_admin.code(), "forbidden");
    let (bad_cursor, _) = exchange!(
        Call::new("GET", "/api/events", "/api/events?after=nonsense").token(alice),
        400
    );
    assert_eq!(bad_cursor.code(), "invalid_cursor");
    let (bad_query, _) = exchange!(
        Call::new("GET", "/api/events", "/api/events?limit=ten").token(alice),
        400
    );
    assert_eq!(bad_query.code(), "invalid_query");

    for (method, path) in query_service::ROUTES {
        assert!(
            checker
                .seen
                .contains(&(method.to_string(), normalise(path), 200)),
            "{method} {path} never answered 200 in this scenario"
        );
    }
}
