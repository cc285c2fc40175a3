//! `GET /api/channels`: the caller's channels with role, mute, read pointer,
//! unread count and last message, newest activity first.

use crate::helpers::*;
use serde_json::json;

#[actix_web::test]
async fn my_channels_with_unread_counts_and_last_message() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;

    // general: messages 1..5, 3 deleted; alice has read up to 1, bob up to 4.
    let general = app.channel("general", "public", alice, 0).await;
    app.member(general, alice, "owner", 0, 1).await;
    app.member(general, bob, "member", 0, 4).await;
    app.message(general, 1, alice).await;
    app.message(general, 2, bob).await;
    app.message(general, 3, bob).await;
    app.message(general, 4, bob).await;
    let last = app.message(general, 5, alice).await;
    app.delete_message(general, 3).await;

    // quiet: no messages, created long before; alice muted it.
    let quiet = app.channel("quiet", "private", alice, -1000).await;
    app.member(quiet, alice, "owner", -1000, 0).await;
    app.mute(quiet, alice).await;

    // recent: its only message (the newest activity of all) is a tombstone.
    let recent = app.channel("recent", "private", bob, -10).await;
    app.member(recent, bob, "owner", -10, 0).await;
    app.member(recent, alice, "admin", -10, 0).await;
    let tombstone = app.message_at(recent, 1, bob, 30).await;
    app.delete_message(recent, 1).await;

    // Not alice's: never listed.
    let other = app.channel("other", "public", carol, 0).await;
    app.member(other, carol, "owner", 0, 0).await;
    app.message(other, 1, carol).await;

    let mine = app.get("/api/channels", &token(alice, "alice")).await;
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(
        mine.body,
        json!({"channels": [
            {
                "channel_id": recent, "name": "recent", "kind": "private", "archived": false,
                "role": "admin", "muted": false, "read_seq": 0, "last_seq": 1,
                "unread_count": 0,
                "last_message": {
                    "message_id": tombstone, "seq": 1, "sender_id": bob, "content": null,
                    "type": "text", "created_at": at(30), "edited_at": null, "deleted": true
                }
            },
            {
                "channel_id": general, "name": "general", "kind": "public", "archived": false,
                "role": "owner", "muted": false, "read_seq": 1, "last_seq": 5,
                // 2 and 4 from bob; 3 is deleted, 5 is alice's own.
                "unread_count": 2,
                "last_message": {
                    "message_id": last, "seq": 5, "sender_id": alice, "content": "m5",
                    "type": "text", "created_at": at(5), "edited_at": null, "deleted": false
                }
            },
            {
                "channel_id": quiet, "name": "quiet", "kind": "private", "archived": false,
                "role": "owner", "muted": true, "read_seq": 0, "last_seq": 0,
                "unread_count": 0, "last_message": null
            }
        ]})
    );

    // bob has read up to 4: only alice's 5 is unread; 2-4 are his own or read.
    let bobs = app.get("/api/channels", &token(bob, "bob")).await;
    assert_eq!(bobs.status, 200);
    let channels = bobs.body["channels"].as_array().expect("array");
    let ids: Vec<_> = channels.iter().map(|c| c["channel_id"].clone()).collect();
    assert_eq!(ids, vec![json!(recent), json!(general)]);
    assert_eq!(channels[1]["unread_count"], 1);
    assert_eq!(channels[1]["role"], "member");
    // bob's own tombstone in recent does not count either.
    assert_eq!(channels[0]["unread_count"], 0);
}

#[actix_web::test]
async fn unread_counts_follow_the_read_pointer() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let ch = app.channel("busy", "public", bob, 0).await;
    app.member(ch, bob, "owner", 0, 0).await;
    app.member(ch, alice, "member", 0, 0).await;
    app.messages(ch, 30, bob).await;
    let unread = |body: &serde_json::Value| body["channels"][0]["unread_count"].clone();

    let before = app.get("/api/channels", &token(alice, "alice")).await;
    assert_eq!(unread(&before.body), 30);

    sqlx::query("UPDATE rm.members SET read_seq = 25 WHERE user_id = $1")
        .bind(alice)
        .execute(&app.read.pool)
        .await
        .expect("read");
    app.delete_message(ch, 27).await;
    let after = app.get("/api/channels", &token(alice, "alice")).await;
    assert_eq!(unread(&after.body), 4);
    assert_eq!(after.body["channels"][0]["read_seq"], 25);
    assert_eq!(after.body["channels"][0]["last_message"]["seq"], 30);
}

#[actix_web::test]
async fn a_user_without_channels_gets_an_empty_list() {
    let app = spawn().await;
    let owner = app.user("owner").await;
    let ch = app.channel("general", "public", owner, 0).await;
    app.member(ch, owner, "owner", 0, 0).await;
    let loner = app.user("loner").await;
    let answer = app.get("/api/channels", &token(loner, "loner")).await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (200, json!({"channels": []}))
    );
    assert!(answer.content_type.starts_with("application/json"));
}

#[actix_web::test]
async fn an_unread_count_stops_at_a_thousand() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let busy = app.channel("busy", "public", bob, 0).await;
    app.member(busy, bob, "owner", 0, 0).await;
    app.member(busy, alice, "member", 0, 0).await;
    app.messages(busy, 1500, bob).await;

    let answer = app.get("/api/channels", &token(alice, "alice")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let channels = answer.body["channels"].as_array().expect("array");
    assert_eq!(channels[0]["last_seq"], 1500);
    assert_eq!(
        channels[0]["unread_count"], 1000,
        "capped: 1000 means 1000 or more"
    );
}
