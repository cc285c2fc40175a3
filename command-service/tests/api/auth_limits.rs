//! What stands before a password hash: the text rules, the throttle per
//! client address and per username (shared through Redis), and the bounded
//! hashing queue. "Before any hash" is proven with the pool's own counter.

use crate::helpers::*;
use actix_web::test::TestRequest;
use command_service::AuthGate;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

fn from(addr: &str) -> SocketAddr {
    SocketAddr::new(addr.parse().expect("an IP address"), 40000)
}

fn register(body: Value, peer: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/users")
        .peer_addr(from(peer))
        .set_json(body)
}

fn login(username: &str, password: &str, peer: &str) -> TestRequest {
    TestRequest::post()
        .uri("/api/auth/token")
        .peer_addr(from(peer))
        .set_json(json!({"username": username, "password": password}))
}

fn is_rate_limited(answer: &Answer) -> bool {
    answer.status == 429 && answer.code() == "rate_limited"
}

/// This process's resident memory, in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

#[actix_web::test]
async fn nul_and_control_characters_are_refused_before_the_database_or_a_hash() {
    let app = spawn().await;
    for body in [
        json!({"username": "ann\u{0}", "password": "password123"}),
        json!({"username": "ann\u{7}x", "password": "password123"}),
        json!({"username": "ann", "password": "password\u{0}123"}),
        json!({"username": "ann", "password": "password123", "display_name": "Ann\u{0}"}),
        json!({"username": "ann", "password": "password123", "display_name": "Ann\u{1b}[31m"}),
        json!({"username": "ann", "password": "password123", "display_name": "A\u{85}nn"}),
    ] {
        let answer = app.call(register(body.clone(), "192.0.2.1")).await;
        assert_eq!(
            (answer.status, answer.code()),
            (422, "validation_failed"),
            "{body} → {answer:?}"
        );
    }
    // Login: a NUL in either field was a 503 (Postgres refuses NUL in text).
    for (username, password) in [
        ("ann\u{0}", "password123"),
        ("ann\u{1}", "password123"),
        ("ann", "password\u{0}123"),
    ] {
        let answer = app.call(login(username, password, "192.0.2.1")).await;
        assert_eq!(
            (answer.status, answer.code()),
            (422, "validation_failed"),
            "{username:?} → {answer:?}"
        );
    }
    assert_eq!(app.event_count().await, 0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM user_credentials")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(stored, 0);
    assert_eq!(app.gate.hashes().hashes_computed(), 0, "nothing was hashed");

    // Tabs and newlines are control characters too, but a password may hold them.
    let tabbed = app
        .call(register(
            json!({"username": "ann", "password": "pass\tword 123"}),
            "192.0.2.1",
        ))
        .await;
    assert_eq!(tabbed.status, 201, "{tabbed:?}");
}

#[actix_web::test]
async fn registration_is_throttled_per_address_before_any_hash() {
    let app = spawn_with(
        AuthGate::unthrottled()
            .expect("pool")
            .with_throttle(throttle(3).await),
    )
    .await;
    for name in ["reg1", "reg2", "reg3"] {
        let answer = app
            .call(register(
                json!({"username": name, "password": "password123"}),
                "192.0.2.10",
            ))
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let hashed = app.gate.hashes().hashes_computed();
    assert_eq!(hashed, 3);
    let fourth = app
        .call(register(
            json!({"username": "reg4", "password": "password123"}),
            "192.0.2.10",
        ))
        .await;
    assert!(is_rate_limited(&fourth), "{fourth:?}");
    let retry: u64 = fourth
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    // 3 a minute: the next attempt is due in about 20 s.
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        app.gate.hashes().hashes_computed(),
        hashed,
        "no hash for it"
    );
    assert_eq!(app.event_count().await, 3);

    // Another address is not held back by the first one's attempts.
    let elsewhere = app
        .call(register(
            json!({"username": "reg4", "password": "password123"}),
            "192.0.2.11",
        ))
        .await;
    assert_eq!(elsewhere.status, 201, "{elsewhere:?}");
}

#[actix_web::test]
async fn login_is_throttled_per_username_from_any_address_and_across_instances() {
    // Two instances (two pools, two databases) sharing one throttle in Redis.
    let limiter = throttle(3).await;
    let app = spawn_with(
        AuthGate::unthrottled()
            .expect("pool")
            .with_throttle(limiter.clone()),
    )
    .await;
    let other = spawn_with(
        AuthGate::unthrottled()
            .expect("pool")
            .with_throttle(limiter),
    )
    .await;
    let created = app
        .call(register(
            json!({"username": "Victim", "password": "password123"}),
            "198.51.100.1",
        ))
        .await;
    assert_eq!(created.status, 201, "{created:?}");

    // Three guesses from three addresses, the first two here, one on the other instance.
    for (instance, peer) in [(&app, "203.0.113.1"), (&app, "203.0.113.2")] {
        let answer = instance.call(login("victim", "guess-guess", peer)).await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    let answer = other
        .call(login("VICTIM", "guess-guess", "203.0.113.3"))
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");

    let before = app.gate.hashes().hashes_computed();
    // The fourth, from yet another address and with the right password: refused unhashed.
    let fourth = app
        .call(login("victim", "password123", "203.0.113.4"))
        .await;
    assert!(is_rate_limited(&fourth), "{fourth:?}");
    assert!(fourth.retry_after.is_some(), "{fourth:?}");
    assert_eq!(app.gate.hashes().hashes_computed(), before);

    // That address may still try another username.
    let answer = app
        .call(login("someone", "password123", "203.0.113.4"))
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
}

#[actix_web::test]
async fn login_is_throttled_per_address_whatever_the_username() {
    let app = spawn_with(
        AuthGate::unthrottled()
            .expect("pool")
            .with_throttle(throttle(3).await),
    )
    .await;
    for name in ["spray1", "spray2", "spray3"] {
        let answer = app
            .call(login(name, "password123", "2001:db8:7:7::1"))
            .await;
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    // Unknown users cost a (decoy) hash each, like known ones.
    assert_eq!(app.gate.hashes().hashes_computed(), 3);
    // Another address of the same /64 is the same client.
    let answer = app
        .call(login("spray4", "password123", "2001:db8:7:7::99"))
        .await;
    assert!(is_rate_limited(&answer), "{answer:?}");
    assert_eq!(app.gate.hashes().hashes_computed(), 3);
    let answer = app
        .call(login("spray4", "password123", "2001:db8:7:8::1"))
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
}

#[actix_web::test]
async fn a_burst_of_logins_is_answered_in_bounded_memory() {
    let app = spawn().await;
    let created = app
        .call(register(
            json!({"username": "crowd", "password": "password123"}),
            "192.0.2.20",
        ))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    // The pool's buffers were allocated when it started, so they are in here.
    let before = rss_kib();
    let answers = tokio::time::timeout(
        // Not a speed target: only that no caller waits for ever.
        Duration::from_secs(300),
        futures_util::future::join_all(
            (0..200).map(|_| app.call(login("crowd", "password123", "192.0.2.21"))),
        ),
    )
    .await
    .expect("every login was answered");
    let after = rss_kib();

    assert_eq!(answers.len(), 200);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for answer in &answers {
        *statuses.entry(answer.status).or_default() += 1;
        match answer.status {
            200 => assert!(answer.body["access_token"].is_string(), "{answer:?}"),
            503 => assert!(answer.retry_after.is_some(), "{answer:?}"),
            _ => panic!("unexpected answer {answer:?}"),
        }
    }
    assert!(statuses.get(&200).is_some_and(|n| *n > 0), "{statuses:?}");
    // One argon2 buffer is 19 MiB; each hash allocating its own (the old way)
    // on a fresh thread shows up here as tens of MiB per concurrent hash.
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 40,
        "RSS grew by {grown_mib} MiB ({before} → {after} KiB) over 200 logins; answers {statuses:?}"
    );
    assert_eq!(
        app.gate.hashes().hashes_computed(),
        1 + statuses.get(&200).copied().unwrap_or(0) as u64,
        "one hash per registration and per login that got a token"
    );
}
