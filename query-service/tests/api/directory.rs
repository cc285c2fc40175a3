//! `GET /api/channels/public`: public, unarchived channels whose name contains
//! `q` literally, newest first, with member counts and whether I am in each.

use crate::helpers::*;
use serde_json::{Value, json};
use uuid::Uuid;

fn names(answer: &Answer) -> Vec<String> {
    answer.body["channels"]
        .as_array()
        .expect("channels array")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

#[actix_web::test]
async fn lists_public_unarchived_channels_newest_first() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let old = app.channel("old town", "public", alice, -60).await;
    app.member(old, alice, "owner", -60, 0).await;
    app.member(old, bob, "member", -50, 0).await;
    let newer = app.channel("newer", "public", bob, -10).await;
    app.member(newer, bob, "owner", -10, 0).await;
    let hidden = app.channel("secret", "private", alice, 0).await;
    app.member(hidden, alice, "owner", 0, 0).await;
    let gone = app.channel("gone", "public", alice, 5).await;
    sqlx::query("UPDATE rm.channels SET archived = true WHERE channel_id = $1")
        .bind(gone)
        .execute(&app.read.pool)
        .await
        .expect("archive");

    let answer = app
        .get("/api/channels/public", &token(alice, "alice"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.content_type.starts_with("application/json"));
    assert_eq!(
        answer.body,
        json!({"channels": [
            {"channel_id": newer, "name": "newer", "created_at": at(-10),
             "member_count": 1, "is_member": false},
            {"channel_id": old, "name": "old town", "created_at": at(-60),
             "member_count": 2, "is_member": true},
        ], "has_more": false})
    );
}

#[actix_web::test]
async fn q_matches_a_literal_part_of_the_name_without_regard_to_case() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    for (minute, name) in [
        "General",
        "general-2",
        "random",
        "50% off",
        "5000 off",
        "a_b",
        "axb",
        "back\\slash",
        "backslash",
    ]
    .into_iter()
    .enumerate()
    {
        app.channel(name, "public", alice, minute as i64).await;
    }
    let t = token(alice, "alice");
    for (q, expected) in [
        ("gEnEr", vec!["general-2", "General"]),
        ("%20%20general%20", vec!["general-2", "General"]),
        ("%25", vec!["50% off"]),
        ("0%25%20", vec!["50% off"]),
        ("_", vec!["a_b"]),
        ("a_", vec!["a_b"]),
        ("%5C", vec!["back\\slash"]),
        ("nothing", vec![]),
        ("'%20OR%201=1;%20DROP%20TABLE%20rm.channels;--", vec![]),
    ] {
        let answer = app.get(&format!("/api/channels/public?q={q}"), &t).await;
        assert_eq!(answer.status, 200, "{q}: {answer:?}");
        assert_eq!(names(&answer), expected, "q={q}");
    }
    // The injection attempt above left the table alone.
    let all = app.get("/api/channels/public?q=", &t).await;
    assert_eq!(names(&all).len(), 9, "{all:?}");
}

#[actix_web::test]
async fn limit_pages_are_clamped_and_say_whether_more_exist() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    for minute in 0..120 {
        app.channel(&format!("room {minute:03}"), "public", alice, minute)
            .await;
    }
    let t = token(alice, "alice");
    let count = |answer: &Answer| answer.body["channels"].as_array().map(Vec::len);

    let default = app.get("/api/channels/public", &t).await;
    assert_eq!(
        (count(&default), &default.body["has_more"]),
        (Some(50), &json!(true))
    );
    assert_eq!(names(&default)[0], "room 119", "newest first");

    let two = app.get("/api/channels/public?limit=2", &t).await;
    assert_eq!(names(&two), vec!["room 119", "room 118"]);
    assert_eq!(two.body["has_more"], true);

    for (limit, expected) in [("100000", 100), ("0", 1), ("-5", 1), ("", 50)] {
        let answer = app
            .get(&format!("/api/channels/public?limit={limit}"), &t)
            .await;
        assert_eq!(answer.status, 200, "limit={limit}");
        assert_eq!(count(&answer), Some(expected), "limit={limit}");
    }

    let narrow = app
        .get("/api/channels/public?q=room%2011&limit=100", &t)
        .await;
    assert_eq!(count(&narrow), Some(10), "room 110..=119");
    assert_eq!(narrow.body["has_more"], false);
}

#[actix_web::test]
async fn bad_parameters_are_400_invalid_query() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let t = token(alice, "alice");
    let too_long = "x".repeat(101);
    for query in [
        "limit=ten".to_owned(),
        "limit=1.5".to_owned(),
        "q=a%00b".to_owned(),
        format!("q={too_long}"),
    ] {
        let answer = app.get(&format!("/api/channels/public?{query}"), &t).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_query"),
            "{query}: {answer:?}"
        );
        assert!(answer.body["error"]["message"].is_string());
    }
}

#[actix_web::test]
async fn the_directory_is_not_taken_for_a_channel_id() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("public", "public", alice, 0).await;
    let t = token(alice, "alice");
    let directory = app.get("/api/channels/public", &t).await;
    assert_eq!(directory.body["channels"][0]["channel_id"], json!(ch));
    let one = app.get(&format!("/api/channels/{ch}"), &t).await;
    assert_eq!(
        (one.status, &one.body["name"]),
        (200, &Value::from("public"))
    );
    let unknown = app
        .get(&format!("/api/channels/{}", Uuid::new_v4()), &t)
        .await;
    assert_eq!(unknown.code(), "channel_not_found");
}
