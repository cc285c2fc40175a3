//! Every route refuses missing, malformed, forged and expired tokens with 401,
//! and bad query parameters with 400 — never a 500.

use crate::helpers::*;
use actix_web::test::TestRequest;
use uuid::Uuid;

#[actix_web::test]
async fn every_route_needs_a_valid_token() {
    let app = spawn().await;
    let alice = app.user(ADMIN).await;
    let ch = app.channel("lobby", "public", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;

    let forged = auth::JwtConfig::new(b"another-secret-another-secret-xx", "chat", "chat", 60)
        .expect("config")
        .issue(alice, ADMIN)
        .access_token;
    let foreign_audience = auth::JwtConfig::new(SECRET, "chat", "elsewhere", 60)
        .expect("config")
        .issue(alice, ADMIN)
        .access_token;
    let expired = expired_token(alice, ADMIN);

    assert_eq!(query_service::ROUTES.len(), 5);
    for (method, pattern) in query_service::ROUTES {
        assert_eq!(*method, "GET");
        let path = pattern.replace("{id}", &ch.to_string());
        // The route is mounted and works with a good token...
        let ok = app.get(&path, &token(alice, ADMIN)).await;
        assert_eq!(ok.status, 200, "{path}: {ok:?}");
        // ...and refuses everything else.
        let missing = app.call(TestRequest::get().uri(&path)).await;
        assert_eq!(
            (missing.status, missing.code()),
            (401, "missing_token"),
            "{path}"
        );
        for (header, code) in [
            (format!("Bearer {expired}"), "token_expired"),
            (format!("Bearer {forged}"), "invalid_token"),
            (format!("Bearer {foreign_audience}"), "invalid_token"),
            ("Bearer not.a.token".to_owned(), "invalid_token"),
            (format!("Basic {}", token(alice, ADMIN)), "invalid_token"),
        ] {
            let answer = app
                .call(
                    TestRequest::get()
                        .uri(&path)
                        .insert_header(("Authorization", header.as_str())),
                )
                .await;
            assert_eq!(
                (answer.status, answer.code()),
                (401, code),
                "{path} with {header}"
            );
            assert!(answer.body["error"]["message"].is_string());
        }
    }
}

#[actix_web::test]
async fn the_token_is_checked_before_the_query() {
    let app = spawn().await;
    let answer = app
        .call(TestRequest::get().uri(&format!(
            "/api/channels/{}/messages?limit=abc",
            Uuid::new_v4()
        )))
        .await;
    assert_eq!((answer.status, answer.code()), (401, "missing_token"));
}

#[actix_web::test]
async fn non_integer_paging_parameters_are_400() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("lobby", "public", alice, 0).await;
    app.messages(ch, 3, alice).await;
    let t = token(alice, "alice");
    for query in [
        "limit=abc",
        "before=x",
        "after=1.5",
        "after=1&before=%20y",
        "limit=1e3",
    ] {
        let answer = app
            .get(&format!("/api/channels/{ch}/messages?{query}"), &t)
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_query"),
            "{query}: {answer:?}"
        );
        assert!(answer.body["error"]["message"].is_string());
    }
}
