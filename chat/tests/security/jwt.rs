//! Forged, foreign and malformed tokens (OWASP JWT cheat sheet): each is
//! refused with 401 and its §6 code on the command API, the query API and
//! the WebSocket handshake (before any upgrade), and stores nothing.
//! Every test also shows a well-formed token of the same shape is accepted,
//! so a refusal is the check at work, not a broken forgery.

use crate::http::{self, encode};
use crate::server::{self, SECRET, Server, User};
use crate::tokens::{self, claims, hmac, now, signing_input};
use crate::ws;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

struct Target {
    server: Arc<Server>,
    victim: User,
    channel: Uuid,
}

async fn target() -> Target {
    let server = server::server().await;
    let victim = server.user("victim").await;
    let channel = server.channel(&victim, "jwt target").await;
    Target {
        server,
        victim,
        channel,
    }
}

const HS256: fn() -> Value = || json!({"alg": "HS256", "typ": "JWT"});

impl Target {
    /// `token` is refused with 401 `code` on every route that takes one, and
    /// nothing is appended with `actor` as its actor.
    async fn refused_everywhere(&self, what: &str, token: &str, code: &str, actor: Uuid) {
        let before = self.server.events_by(actor).await;
        let channel = self.channel;
        let requests = [
            http::post(
                "/api/channels",
                &json!({"name": "forged", "kind": "public"}),
            ),
            http::post(
                &format!("/api/channels/{channel}/messages"),
                &json!({"content": "forged"}),
            ),
            http::post(&format!("/api/channels/{channel}/members"), &json!({})),
            http::Request::new("PUT", &format!("/api/channels/{channel}/mute"))
                .json(&json!({"muted": true})),
            http::get("/api/channels"),
            http::get("/api/channels/public"),
            http::get(&format!("/api/channels/{channel}")),
            http::get(&format!("/api/channels/{channel}/messages")),
            http::get("/api/events"),
        ];
        for request in requests {
            let target = format!("{} {}", request.method, request.target);
            let reply = self.server.send(&request.token(token)).await;
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (401, code),
                "{what}: {target}: {}",
                reply.text()
            );
            assert!(
                reply.is_error_contract(),
                "{what}: {target}: {}",
                reply.text()
            );
        }
        for (how, request) in [
            ("header", ws::upgrade("/ws").token(token)),
            (
                "query",
                ws::upgrade(&format!("/ws?access_token={}", encode(token))),
            ),
        ] {
            let reply = ws::handshake(self.server.port, &request).await;
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (401, code),
                "{what}: /ws with the token in the {how}: {}",
                reply.text()
            );
        }
        assert_eq!(
            self.server.events_by(actor).await,
            before,
            "{what}: something was appended as {actor}"
        );
    }

    /// `token` opens the command API, the query API and a socket.
    async fn accepted(&self, what: &str, token: &str) {
        let reply = self
            .server
            .send(&http::get("/api/channels").token(token))
            .await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        let reply = self
            .server
            .send(
                &http::Request::new("PUT", &format!("/api/channels/{}/mute", self.channel))
                    .json(&json!({"muted": false}))
                    .token(token),
            )
            .await;
        assert_eq!(reply.status, 204, "{what}: {}", reply.text());
        let reply = ws::handshake(self.server.port, &ws::upgrade("/ws").token(token)).await;
        assert_eq!(reply.status, 101, "{what}: {}", reply.text());
    }

    fn claims(&self) -> Value {
        claims(self.victim.id, &self.victim.username)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_tokens_and_faithful_forgeries_open_every_route() {
    let t = target().await;
    t.accepted("the issued token", &t.victim.token).await;
    let forged = hmac(&HS256(), &t.claims(), Algorithm::HS256, SECRET.as_bytes());
    t.accepted("an HS256 token made here with the secret", &forged)
        .await;
    // And a sent message is appended as its sender: the count below moves.
    let before = t.server.events_by(t.victim.id).await;
    let reply = t
        .server
        .post_message(&t.victim, t.channel, &json!({"content": "real"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(t.server.events_by(t.victim.id).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_is_refused_with_and_without_a_signature() {
    let t = target().await;
    let input = signing_input(&json!({"alg": "none", "typ": "JWT"}), &t.claims());
    let signature = hmac(&HS256(), &t.claims(), Algorithm::HS256, SECRET.as_bytes());
    let signature = signature.rsplit('.').next().unwrap_or_default();
    for (what, token) in [
        ("alg none, empty signature", format!("{input}.")),
        ("alg none, no third part", input.clone()),
        (
            "alg none, a valid HS256 signature",
            format!("{input}.{signature}"),
        ),
        (
            "alg None",
            format!("{}.", signing_input(&json!({"alg": "None"}), &t.claims())),
        ),
        (
            "alg NONE",
            format!("{}.", signing_input(&json!({"alg": "NONE"}), &t.claims())),
        ),
    ] {
        t.refused_everywhere(what, &token, "invalid_token", t.victim.id)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs384_and_hs512_signed_with_the_secret_are_refused() {
    let t = target().await;
    for (name, algorithm) in [("HS384", Algorithm::HS384), ("HS512", Algorithm::HS512)] {
        let token = hmac(
            &json!({"alg": name, "typ": "JWT"}),
            &t.claims(),
            algorithm,
            SECRET.as_bytes(),
        );
        t.refused_everywhere(name, &token, "invalid_token", t.victim.id)
            .await;
    }
}

/// Algorithm confusion: a token that claims RS256 (or ES256, EdDSA) but is
/// an HMAC with the secret, as a server that let the header pick the
/// verification would accept; and HS256 keyed with a public key's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithm_confusion_is_refused() {
    let t = target().await;
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let token = hmac(
            &json!({"alg": alg, "typ": "JWT"}),
            &t.claims(),
            Algorithm::HS256,
            SECRET.as_bytes(),
        );
        t.refused_everywhere(alg, &token, "invalid_token", t.victim.id)
            .await;
    }
    let public_key = "-----BEGIN PUBLIC KEY-----\n\
        MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n\
        4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n\
        -----END PUBLIC KEY-----\n";
    let token = hmac(
        &HS256(),
        &t.claims(),
        Algorithm::HS256,
        public_key.as_bytes(),
    );
    t.refused_everywhere(
        "HS256 keyed by a public key",
        &token,
        "invalid_token",
        t.victim.id,
    )
    .await;
}

/// Keys or key locations in the header (`jwk`, `jku`, `x5u`, `kid`) are
/// never used: a token signed with the attacker's own key stays invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_named_in_the_header_are_ignored() {
    let t = target().await;
    let attacker = b"attacker-key-attacker-key-attacker-key!!";
    for header in [
        json!({"alg": "HS256", "jwk": {"kty": "oct", "k": tokens::b64url(attacker)}}),
        json!({"alg": "HS256", "jku": "http://evil.example/keys.json"}),
        json!({"alg": "HS256", "x5u": "http://evil.example/cert.pem"}),
        json!({"alg": "HS256", "kid": "../../../../dev/null"}),
        json!({"alg": "HS256", "kid": "' UNION SELECT 'attacker-key"}),
    ] {
        let token = hmac(&header, &t.claims(), Algorithm::HS256, attacker);
        t.refused_everywhere(&header.to_string(), &token, "invalid_token", t.victim.id)
            .await;
    }
    // The same headers on a token signed with the right key are harmless.
    let token = hmac(
        &json!({"alg": "HS256", "kid": "whatever"}),
        &t.claims(),
        Algorithm::HS256,
        SECRET.as_bytes(),
    );
    t.accepted("a kid on a properly signed token", &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_issuer_or_audience_is_refused() {
    let t = target().await;
    for (what, field, value) in [
        ("wrong iss", "iss", json!("evil")),
        ("iss differing in case", "iss", json!("Chat")),
        ("wrong aud", "aud", json!("elsewhere")),
        (
            "aud list without ours",
            "aud",
            json!(["elsewhere", "other"]),
        ),
        ("iss missing", "iss", Value::Null),
        ("aud missing", "aud", Value::Null),
    ] {
        let mut claims = t.claims();
        if value.is_null() {
            claims.as_object_mut().map(|c| c.remove(field));
        } else {
            claims[field] = value;
        }
        let token = tokens::valid(&claims);
        t.refused_everywhere(what, &token, "invalid_token", t.victim.id)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_beyond_the_leeway() {
    let t = target().await;
    for (what, exp) in [
        ("expired 30 s ago", now() - 30),
        ("expired an hour ago", now() - 3600),
        ("expired at the epoch", 0),
    ] {
        let mut claims = t.claims();
        claims["exp"] = json!(exp);
        claims["iat"] = json!(exp - 60);
        t.refused_everywhere(what, &tokens::valid(&claims), "token_expired", t.victim.id)
            .await;
    }
}

/// `nbf` in the future: a token not yet valid is refused (RFC 7519 §4.1.5;
/// jsonwebtoken's `validate_nbf`), beyond the same 5 s leeway as `exp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_yet_valid_is_refused() {
    let t = target().await;
    for (what, nbf) in [
        ("nbf in 60 s", now() + 60),
        ("nbf in a year", now() + 365 * 86_400),
    ] {
        let mut claims = t.claims();
        claims["nbf"] = json!(nbf);
        t.refused_everywhere(what, &tokens::valid(&claims), "invalid_token", t.victim.id)
            .await;
    }
    let mut claims = t.claims();
    claims["nbf"] = json!(now() - 60);
    t.accepted("nbf a minute ago", &tokens::valid(&claims))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_claims_are_refused() {
    let t = target().await;
    let base = t.claims();
    let with = |field: &str, value: Value| {
        let mut claims = base.clone();
        if value.is_null() {
            claims.as_object_mut().map(|c| c.remove(field));
        } else {
            claims[field] = value;
        }
        claims
    };
    for (what, claims) in [
        ("exp missing", with("exp", Value::Null)),
        ("exp a string", with("exp", json!("9999999999"))),
        ("exp a float beyond i64", with("exp", json!(1e300))),
        ("sub missing", with("sub", Value::Null)),
        ("sub not a uuid", with("sub", json!("admin"))),
        ("sub an SQL string", with("sub", json!("' OR 1=1 --"))),
        ("sub a number", with("sub", json!(1))),
        ("name missing", with("name", Value::Null)),
    ] {
        t.refused_everywhere(what, &tokens::valid(&claims), "invalid_token", t.victim.id)
            .await;
    }
    for (what, token) in [
        ("not a JWT", "not-a-token".to_owned()),
        ("three dots", "a.b.c.d".to_owned()),
        (
            "claims not JSON",
            format!(
                "{}.{}.",
                tokens::b64url(b"{\"alg\":\"HS256\"}"),
                tokens::b64url(b"{nope")
            ),
        ),
        ("60 KiB of token", "a".repeat(60 * 1024)),
    ] {
        t.refused_everywhere(what, &token, "invalid_token", t.victim.id)
            .await;
    }
}

/// A token signed with the real secret for a user id nobody registered (a
/// leaked secret's forgery, another deployment's token, a test token) opens
/// nothing: no channel, no message, no socket, no read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_token_for_an_unregistered_user_opens_nothing() {
    let t = target().await;
    let ghost = Uuid::new_v4();
    let token = tokens::valid(&claims(ghost, "ghost"));
    t.refused_everywhere("an unregistered user", &token, "invalid_token", ghost)
        .await;
    // A registered user's id with another name is still that user.
    let renamed = tokens::valid(&claims(t.victim.id, "someone_else"));
    t.accepted("a registered id", &renamed).await;
}

/// Registration is immediately followed by everything a user does, with no
/// wait for any projection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_just_registered_is_served_at_once() {
    let server = server::server().await;
    for round in 0..5 {
        let user = server.user(&format!("fresh{round}")).await;
        let reply = server
            .send(
                &http::post("/api/channels", &json!({"name": "fresh", "kind": "public"}))
                    .token(&user.token),
            )
            .await;
        assert_eq!(reply.status, 201, "round {round}: {}", reply.text());
        let reply = server
            .send(&http::get("/api/channels").token(&user.token))
            .await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        let reply = ws::handshake(server.port, &ws::upgrade("/ws").token(&user.token)).await;
        assert_eq!(reply.status, 101, "round {round}: {}", reply.text());
    }
}

/// `/ws` takes the token from `Authorization` or `?access_token=`; the REST
/// API only from `Authorization` (a token in a URL ends up in logs and
/// histories, so the API does not invite it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_in_the_header_or_the_query_string() {
    let t = target().await;
    let port = t.server.port;
    let good = &t.victim.token;
    let bad = tokens::valid(&claims(Uuid::new_v4(), "ghost"));
    let expired = {
        let mut c = t.claims();
        c["exp"] = json!(now() - 3600);
        tokens::valid(&c)
    };
    let cases: Vec<(&str, http::Request, u16, &str)> = vec![
        ("header", ws::upgrade("/ws").token(good), 101, ""),
        (
            "lower-case bearer",
            ws::upgrade("/ws").header("Authorization", format!("bearer {good}")),
            101,
            "",
        ),
        (
            "query",
            ws::upgrade(&format!("/ws?access_token={good}")),
            101,
            "",
        ),
        (
            "query among others",
            ws::upgrade(&format!("/ws?x=1&access_token={good}&y=2")),
            101,
            "",
        ),
        ("nothing", ws::upgrade("/ws"), 401, "missing_token"),
        (
            "empty query token",
            ws::upgrade("/ws?access_token="),
            401,
            "missing_token",
        ),
        (
            "bad header wins over a good query",
            ws::upgrade(&format!("/ws?access_token={good}")).token(&expired),
            401,
            "token_expired",
        ),
        (
            "good header, bad query",
            ws::upgrade(&format!("/ws?access_token={bad}")).token(good),
            101,
            "",
        ),
        (
            "query token of an unregistered user",
            ws::upgrade(&format!("/ws?access_token={bad}")),
            401,
            "invalid_token",
        ),
        (
            "Basic header",
            ws::upgrade("/ws").header("Authorization", "Basic dXNlcjpwYXNz"),
            401,
            "missing_token",
        ),
    ];
    for (what, request, status, code) in cases {
        let reply = ws::handshake(port, &request).await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        if status != 101 {
            assert_eq!(reply.code(), code, "{what}: {}", reply.text());
        }
    }
    // The REST API takes no token from the query string.
    for target in [
        format!("/api/channels?access_token={good}"),
        format!("/api/channels/{}?access_token={good}", t.channel),
    ] {
        let reply = t.server.send(&http::get(&target)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (401, "missing_token"),
            "{target}: {}",
            reply.text()
        );
    }
    for (what, value) in [
        ("Bearer and nothing", "Bearer".to_owned()),
        ("Bearer and a space", "Bearer ".to_owned()),
        ("BEARER", format!("BEARER {good}")),
        ("Basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("token alone", good.to_owned()),
        ("two tokens", format!("Bearer {good} {good}")),
    ] {
        let reply = t
            .server
            .send(&http::get("/api/channels").header("Authorization", &value))
            .await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert!(
            ["invalid_token", "missing_token"].contains(&reply.code().as_str()),
            "{what}: {}",
            reply.text()
        );
    }
}
