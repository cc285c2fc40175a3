//! Channel membership over HTTP: join, invite, kick, ban, roles, archive, mute,
//! and conditional commands with `ETag` / `If-Match`.

use crate::helpers::*;
use actix_web::test::TestRequest;
use serde_json::json;

#[actix_web::test]
async fn private_channels_need_an_invite_from_an_owner_or_admin() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let (bob_id, bob) = app.user("bob").await;
    let (carol_id, carol) = app.user("carol").await;
    let channel = app.channel(&owner, "private").await;

    let answer = app.join(&bob, channel).await;
    assert_eq!((answer.status, answer.code()), (403, "private_channel"));

    let invited = app
        .post(
            &format!("/api/channels/{channel}/members"),
            &owner,
            json!({"user_id": bob_id}),
        )
        .await;
    assert_eq!(invited.status, 204, "{invited:?}");
    let by_member = app
        .post(
            &format!("/api/channels/{channel}/members"),
            &bob,
            json!({"user_id": carol_id}),
        )
        .await;
    assert_eq!(
        (by_member.status, by_member.code()),
        (403, "insufficient_role")
    );

    let promoted = app
        .call(
            TestRequest::put()
                .uri(&format!("/api/channels/{channel}/members/{bob_id}/role"))
                .insert_header(bearer(&owner))
                .set_json(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promoted.status, 204, "{promoted:?}");
    let by_admin = app
        .post(
            &format!("/api/channels/{channel}/members"),
            &bob,
            json!({"user_id": carol_id}),
        )
        .await;
    assert_eq!(by_admin.status, 204, "{by_admin:?}");
    assert_eq!(app.send(&carol, channel, "hello").await.status, 201);
}

#[actix_web::test]
async fn kicked_members_can_rejoin_but_banned_ones_cannot() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let (bob_id, bob) = app.user("bob").await;
    let channel = app.channel(&owner, "public").await;
    assert_eq!(app.join(&bob, channel).await.status, 204);

    let kick = app
        .call(
            TestRequest::delete()
                .uri(&format!("/api/channels/{channel}/members/{bob_id}"))
                .insert_header(bearer(&owner)),
        )
        .await;
    assert_eq!(kick.status, 204);
    let answer = app.send(&bob, channel, "still here?").await;
    assert_eq!((answer.status, answer.code()), (403, "not_a_member"));
    assert_eq!(
        app.join(&bob, channel).await.status,
        204,
        "a kick is not a ban"
    );

    let ban = app
        .post(
            &format!("/api/channels/{channel}/bans"),
            &owner,
            json!({"user_id": bob_id}),
        )
        .await;
    assert_eq!(ban.status, 204);
    let before = app.event_count().await;
    let answer = app.join(&bob, channel).await;
    assert_eq!((answer.status, answer.code()), (403, "banned"));
    let answer = app.send(&bob, channel, "let me in").await;
    assert_eq!((answer.status, answer.code()), (403, "banned"));
    assert_eq!(app.event_count().await, before);

    let unban = app
        .call(
            TestRequest::delete()
                .uri(&format!("/api/channels/{channel}/bans/{bob_id}"))
                .insert_header(bearer(&owner)),
        )
        .await;
    assert_eq!(unban.status, 204);
    assert_eq!(app.join(&bob, channel).await.status, 204);
}

#[actix_web::test]
async fn members_leave_and_owners_cannot() {
    let app = spawn().await;
    let (owner_id, owner) = app.user("owner").await;
    let (bob_id, bob) = app.user("bob").await;
    let channel = app.channel(&owner, "public").await;
    app.join(&bob, channel).await;
    let leave = app
        .call(
            TestRequest::delete()
                .uri(&format!("/api/channels/{channel}/members/{bob_id}"))
                .insert_header(bearer(&bob)),
        )
        .await;
    assert_eq!(leave.status, 204);
    let owner_leaves = app
        .call(
            TestRequest::delete()
                .uri(&format!("/api/channels/{channel}/members/{owner_id}"))
                .insert_header(bearer(&owner)),
        )
        .await;
    assert_eq!(
        (owner_leaves.status, owner_leaves.code()),
        (422, "owner_cannot_leave")
    );
}

#[actix_web::test]
async fn archived_channels_take_no_messages() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    assert_eq!(
        app.post(
            &format!("/api/channels/{channel}/archive"),
            &owner,
            json!({})
        )
        .await
        .status,
        204
    );
    let before = app.event_count().await;
    let answer = app.send(&owner, channel, "anyone?").await;
    assert_eq!((answer.status, answer.code()), (422, "channel_archived"));
    assert_eq!(app.event_count().await, before);
}

#[actix_web::test]
async fn mute_is_for_oneself_and_idempotent() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let (_, stranger) = app.user("stranger").await;
    let channel = app.channel(&owner, "public").await;
    let mute = |token: String, muted: bool| {
        TestRequest::put()
            .uri(&format!("/api/channels/{channel}/mute"))
            .insert_header(bearer(&token))
            .set_json(json!({"muted": muted}))
    };
    assert_eq!(app.call(mute(owner.clone(), true)).await.status, 204);
    let before = app.event_count().await;
    assert_eq!(app.call(mute(owner.clone(), true)).await.status, 204);
    assert_eq!(
        app.event_count().await,
        before,
        "muting a muted channel changes nothing"
    );
    let answer = app.call(mute(stranger, true)).await;
    assert_eq!((answer.status, answer.code()), (403, "not_a_member"));
}

#[actix_web::test]
async fn if_match_applies_only_at_the_current_version() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let created = app
        .post(
            "/api/channels",
            &owner,
            json!({"name": "c", "kind": "public"}),
        )
        .await;
    let channel = created.body["channel_id"].as_str().expect("id").to_owned();
    assert_eq!(created.etag.as_deref(), Some("\"1\""));

    let send = |etag: &str| {
        TestRequest::post()
            .uri(&format!("/api/channels/{channel}/messages"))
            .insert_header(bearer(&owner))
            .insert_header(("If-Match", etag.to_owned()))
            .set_json(json!({"content": "x", "type": "text"}))
    };
    let ok = app.call(send("\"1\"")).await;
    assert_eq!((ok.status, ok.etag.as_deref()), (201, Some("\"2\"")));
    let before = app.event_count().await;
    let stale = app.call(send("\"1\"")).await;
    assert_eq!((stale.status, stale.code()), (409, "version_conflict"));
    assert_eq!(app.event_count().await, before);
}
