//! `GET /api/channels/{id}`: one channel with its members; private channels
//! only for members, public ones for anyone signed in.

use crate::helpers::*;
use serde_json::json;
use uuid::Uuid;

#[actix_web::test]
async fn channel_detail_lists_members_with_user_names() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    // A member whose user row the projector has not written yet.
    let ghost = Uuid::new_v4();
    let ch = app.channel("general", "private", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;
    app.member(ch, ghost, "member", 2, 0).await;
    app.member(ch, bob, "admin", 1, 0).await;
    app.messages(ch, 3, bob).await;

    let answer = app
        .get(&format!("/api/channels/{ch}"), &token(bob, "bob"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({
            "channel_id": ch, "name": "general", "kind": "private", "max_members": 50,
            "owner_id": alice, "archived": false, "created_at": at(0), "last_seq": 3,
            "members": [
                {"user_id": alice, "username": "alice", "display_name": "ALICE", "role": "owner", "joined_at": at(0)},
                {"user_id": bob, "username": "bob", "display_name": "BOB", "role": "admin", "joined_at": at(1)},
                {"user_id": ghost, "username": null, "display_name": null, "role": "member", "joined_at": at(2)}
            ],
            "member_count": 3
        })
    );
}

#[actix_web::test]
async fn private_channels_are_only_for_members() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let eve = app.user("eve").await;
    let ch = app.channel("secret", "private", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;

    let member = app
        .get(&format!("/api/channels/{ch}"), &token(alice, "alice"))
        .await;
    assert_eq!(member.status, 200);
    let outsider = app
        .get(&format!("/api/channels/{ch}"), &token(eve, "eve"))
        .await;
    assert_eq!(
        (outsider.status, outsider.code()),
        (403, "not_a_member"),
        "{outsider:?}"
    );
    assert!(
        outsider.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[actix_web::test]
async fn public_channels_are_readable_by_anyone_signed_in() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("lobby", "public", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;
    // Not even a user row: a token is all it takes.
    let stranger = Uuid::new_v4();
    let answer = app
        .get(&format!("/api/channels/{ch}"), &token(stranger, "stranger"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["members"].as_array().map(Vec::len), Some(1));
}

#[actix_web::test]
async fn unknown_and_malformed_channel_ids_are_404() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let t = token(alice, "alice");
    for id in [Uuid::new_v4().to_string(), "not-a-uuid".into(), "42".into()] {
        for path in [
            format!("/api/channels/{id}"),
            format!("/api/channels/{id}/messages"),
        ] {
            let answer = app.get(&path, &t).await;
            assert_eq!(
                (answer.status, answer.code()),
                (404, "channel_not_found"),
                "{path}: {answer:?}"
            );
        }
    }
}

#[actix_web::test]
async fn a_big_channel_lists_its_first_members_and_counts_them_all() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("crowd", "public", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;
    sqlx::query(
        "INSERT INTO rm.members (channel_id, user_id, role, joined_at) \
         SELECT $1, gen_random_uuid(), 'member', $2 + n * interval '1 second' FROM generate_series(1, 249) AS n",
    )
    .bind(ch)
    .bind(at(1))
    .execute(&app.read.pool)
    .await
    .expect("seed members");

    let answer = app
        .get(&format!("/api/channels/{ch}"), &token(alice, "alice"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["member_count"], 250);
    let members = answer.body["members"].as_array().expect("members");
    assert_eq!(members.len(), 100, "the first 100 only");
    assert_eq!(members[0]["user_id"], json!(alice), "in joining order");
}

#[actix_web::test]
async fn a_banned_user_reads_neither_the_public_channel_nor_its_history() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let ch = app.channel("lobby", "public", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;
    app.messages(ch, 3, alice).await;
    sqlx::query("INSERT INTO rm.bans (channel_id, user_id, banned_at) VALUES ($1, $2, $3)")
        .bind(ch)
        .bind(mallory)
        .bind(at(1))
        .execute(&app.read.pool)
        .await
        .expect("ban");
    for path in [
        format!("/api/channels/{ch}"),
        format!("/api/channels/{ch}/messages"),
    ] {
        let answer = app.get(&path, &token(mallory, "mallory")).await;
        assert_eq!(
            (answer.status, answer.code()),
            (403, "banned"),
            "{path}: {answer:?}"
        );
    }
    let answer = app
        .get(
            &format!("/api/channels/{ch}/messages"),
            &token(alice, "alice"),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}
