//! Text the database cannot store, or that a name must not hold, is refused
//! with 400/422 before anything reaches the database (DESIGN §6 "Text input"),
//! never 503 "retry later".

use crate::helpers::{bearer, spawn};
use actix_web::test::TestRequest;
use serde_json::json;

#[actix_web::test]
async fn nul_in_any_command_field_is_a_client_error_and_writes_nothing() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let channel = app.channel(&ann, "public").await;
    let sent = app.send(&ann, channel, "hello").await;
    let message = sent.body["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    let before = app.event_count().await;

    let cases = [
        (
            TestRequest::post().uri(&format!("/api/channels/{channel}/messages")),
            json!({"content": "a\u{0}b"}),
        ),
        (
            TestRequest::post().uri(&format!("/api/channels/{channel}/messages")),
            json!({"content": "fine", "client_msg_id": "c\u{0}"}),
        ),
        (
            TestRequest::post().uri(&format!("/api/channels/{channel}/messages")),
            json!({"content": "fine", "type": "te\u{0}xt"}),
        ),
        (
            TestRequest::patch().uri(&format!("/api/channels/{channel}/messages/{message}")),
            json!({"content": "edited\u{0}"}),
        ),
        (
            TestRequest::post().uri("/api/channels"),
            json!({"name": "a\u{0}b", "kind": "public"}),
        ),
    ];
    for (request, body) in cases {
        let answer = app
            .call(request.insert_header(bearer(&ann)).set_json(&body))
            .await;
        assert!(matches!(answer.status, 400 | 422), "{body}: {answer:?}");
        assert!(answer.body["error"]["code"].is_string(), "{answer:?}");
    }
    assert_eq!(app.event_count().await, before, "nothing was appended");
}

#[actix_web::test]
async fn names_refuse_control_characters() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let before = app.event_count().await;
    for name in ["line\nbreak", "bell\u{7}", "tab\tname", "c1\u{85}"] {
        let answer = app
            .post(
                "/api/channels",
                &ann,
                json!({"name": name, "kind": "public"}),
            )
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (422, "validation_failed"),
            "{name:?}: {answer:?}"
        );
    }
    assert_eq!(app.event_count().await, before);
    // Content is text, not a name: newlines and tabs stay allowed there.
    let channel = app.channel(&ann, "public").await;
    let sent = app.send(&ann, channel, "two\nlines\tand a tab").await;
    assert_eq!(sent.status, 201, "{sent:?}");
}

/// A join body far past its limit (and past actix's own 256 KiB payload limit)
/// is a 413 in the error contract, and joins nobody.
#[actix_web::test]
async fn an_oversized_member_body_is_413_in_the_error_contract() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let channel = app.channel(&ann, "public").await;
    let before = app.event_count().await;
    for size in [5_000, 300 * 1024] {
        let answer = app
            .call(
                TestRequest::post()
                    .uri(&format!("/api/channels/{channel}/members"))
                    .insert_header(bearer(&bob))
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(format!("{{\"pad\": \"{}\"}}", "x".repeat(size))),
            )
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (413, "payload_too_large"),
            "{size} bytes"
        );
    }
    assert_eq!(app.event_count().await, before, "nobody joined");
}
