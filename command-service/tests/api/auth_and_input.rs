//! Registration, login, tokens, and every kind of bad input: each gets its
//! status and error code, never a 500, and appends nothing.

use crate::helpers::*;
use actix_web::test::TestRequest;
use serde_json::json;

#[actix_web::test]
async fn register_login_and_duplicate_usernames() {
    let app = spawn().await;
    let (_, token) = app.user("alice").await;
    assert!(!token.is_empty());

    let again = app
        .call(
            TestRequest::post()
                .uri("/api/users")
                .set_json(json!({"username": "ALICE", "password": "password123"})),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "username_taken"));

    let wrong = app
        .call(
            TestRequest::post()
                .uri("/api/auth/token")
                .set_json(json!({"username": "alice", "password": "nope-nope"})),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    let unknown = app
        .call(
            TestRequest::post()
                .uri("/api/auth/token")
                .set_json(json!({"username": "zed", "password": "password123"})),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (401, "invalid_credentials")
    );
}

#[actix_web::test]
async fn registration_rules_append_nothing() {
    let app = spawn().await;
    for (body, code) in [
        (
            json!({"username": "bob", "password": "short"}),
            "validation_failed",
        ),
        (
            json!({"username": "b", "password": "password123"}),
            "validation_failed",
        ),
        (
            json!({"username": "bad name!", "password": "password123"}),
            "validation_failed",
        ),
    ] {
        let answer = app
            .call(TestRequest::post().uri("/api/users").set_json(body))
            .await;
        assert_eq!((answer.status, answer.code()), (422, code), "{answer:?}");
    }
    assert_eq!(app.event_count().await, 0);
}

#[actix_web::test]
async fn registration_with_an_idempotency_key_happens_once() {
    let app = spawn().await;
    let request = || {
        TestRequest::post()
            .uri("/api/users")
            .insert_header(("Idempotency-Key", "signup-1"))
            .set_json(json!({"username": "carol", "password": "password123"}))
    };
    let first = app.call(request()).await;
    let second = app.call(request()).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body, second.body);
    assert_eq!(app.event_count().await, 1);
}

#[actix_web::test]
async fn missing_expired_and_forged_tokens_are_401() {
    let app = spawn().await;
    let (user_id, _) = app.user("dave").await;
    let body = json!({"name": "x", "kind": "public"});

    let missing = app
        .call(TestRequest::post().uri("/api/channels").set_json(&body))
        .await;
    assert_eq!((missing.status, missing.code()), (401, "missing_token"));

    let expired = jwt()
        .issue_at(user_id, "dave", chrono::Utc::now().timestamp() - 7200)
        .access_token;
    let answer = app.post("/api/channels", &expired, body.clone()).await;
    assert_eq!((answer.status, answer.code()), (401, "token_expired"));

    let forged = auth::JwtConfig::new(b"some-other-secret-some-other-secret", "chat", "chat", 60)
        .expect("config")
        .issue(user_id, "dave")
        .access_token;
    let answer = app.post("/api/channels", &forged, body.clone()).await;
    assert_eq!((answer.status, answer.code()), (401, "invalid_token"));

    let answer = app
        .call(
            TestRequest::post()
                .uri("/api/channels")
                .insert_header(("Authorization", "Basic abc"))
                .set_json(&body),
        )
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(app.event_count().await, 1, "only the registration");
}

#[actix_web::test]
async fn malformed_wrong_typed_and_oversized_bodies() {
    let app = spawn().await;
    let (_, token) = app.user("erin").await;
    let channel = app.channel(&token, "public").await;
    let before = app.event_count().await;
    let path = format!("/api/channels/{channel}/messages");

    let malformed = app
        .call(
            TestRequest::post()
                .uri(&path)
                .insert_header(bearer(&token))
                .insert_header(("content-type", "application/json"))
                .set_payload("{\"content\": "),
        )
        .await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "malformed_json")
    );

    let wrong_type = app.post(&path, &token, json!({"content": 42})).await;
    assert_eq!(
        (wrong_type.status, wrong_type.code()),
        (400, "invalid_body")
    );

    let missing = app.post(&path, &token, json!({"type": "text"})).await;
    assert_eq!((missing.status, missing.code()), (400, "invalid_body"));

    let huge = app
        .post(&path, &token, json!({"content": "x".repeat(MAX_BODY * 2)}))
        .await;
    assert_eq!((huge.status, huge.code()), (413, "payload_too_large"));

    let bad_kind = app
        .post(
            "/api/channels",
            &token,
            json!({"name": "x", "kind": "secret"}),
        )
        .await;
    assert_eq!((bad_kind.status, bad_kind.code()), (400, "invalid_body"));

    assert_eq!(
        app.event_count().await,
        before,
        "no error appended anything"
    );
}

#[actix_web::test]
async fn unknown_ids_are_404() {
    let app = spawn().await;
    let (_, token) = app.user("fred").await;
    let unknown = uuid::Uuid::new_v4();
    let answer = app.send(&token, unknown, "hi").await;
    assert_eq!((answer.status, answer.code()), (404, "channel_not_found"));
    let answer = app
        .post(
            "/api/channels/not-a-uuid/messages",
            &token,
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(answer.status, 404);

    let channel = app.channel(&token, "private").await;
    let answer = app
        .post(
            &format!("/api/channels/{channel}/members"),
            &token,
            json!({"user_id": unknown}),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (404, "user_not_found"));
    let answer = app
        .call(
            TestRequest::patch()
                .uri(&format!("/api/channels/{channel}/messages/{unknown}"))
                .insert_header(bearer(&token))
                .set_json(json!({"content": "x"})),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (404, "message_not_found"));
}

#[actix_web::test]
async fn bad_if_match_and_idempotency_headers_are_400() {
    let app = spawn().await;
    let (_, token) = app.user("gina").await;
    let channel = app.channel(&token, "public").await;
    let path = format!("/api/channels/{channel}/messages");
    let answer = app
        .call(
            TestRequest::post()
                .uri(&path)
                .insert_header(bearer(&token))
                .insert_header(("If-Match", "\"abc\""))
                .set_json(json!({"content": "x"})),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (400, "invalid_if_match"));
    let answer = app
        .call(
            TestRequest::post()
                .uri(&path)
                .insert_header(bearer(&token))
                .insert_header(("Idempotency-Key", "x".repeat(300)))
                .set_json(json!({"content": "x"})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "invalid_idempotency_key")
    );
}

#[actix_web::test]
async fn a_bad_member_body_is_400_not_a_silent_join() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let (_, bob) = app.user("bob").await;
    let channel = app.channel(&owner, "public").await;
    let before = app.event_count().await;
    let path = format!("/api/channels/{channel}/members");
    let typo = app.post(&path, &bob, json!({"user_id": "typo"})).await;
    assert_eq!((typo.status, typo.code()), (400, "invalid_body"));
    let garbage = app
        .call(
            TestRequest::post()
                .uri(&path)
                .insert_header(bearer(&bob))
                .insert_header(("content-type", "application/json"))
                .set_payload("{oops"),
        )
        .await;
    assert_eq!((garbage.status, garbage.code()), (400, "malformed_json"));
    assert_eq!(app.event_count().await, before, "no join happened");
}
