//! `GET /api/channels/{id}/messages`: newest first, paged by seq with
//! exclusive `before`/`after`, clamped limits, tombstones and `has_more`.

use crate::helpers::*;
use serde_json::json;
use uuid::Uuid;

#[actix_web::test]
async fn history_has_the_exact_shape_with_edits_and_tombstones() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let ch = app.channel("general", "private", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;
    let first = app.message(ch, 1, alice).await;
    let second = app.message(ch, 2, bob).await;
    let third = app.message(ch, 3, alice).await;
    app.edit_message(ch, 1, "m1 (edited)", 10).await;
    app.delete_message(ch, 2).await;

    let answer = app
        .get(
            &format!("/api/channels/{ch}/messages"),
            &token(alice, "alice"),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"messages": [
            {"message_id": third, "seq": 3, "sender_id": alice, "content": "m3", "type": "text",
             "created_at": at(3), "edited_at": null, "deleted": false},
            {"message_id": second, "seq": 2, "sender_id": bob, "content": null, "type": "text",
             "created_at": at(2), "edited_at": null, "deleted": true},
            {"message_id": first, "seq": 1, "sender_id": alice, "content": "m1 (edited)", "type": "text",
             "created_at": at(1), "edited_at": at(10), "deleted": false}
        ], "has_more": false})
    );
}

#[actix_web::test]
async fn default_limit_pages_back_with_before() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("general", "public", alice, 0).await;
    app.member(ch, alice, "owner", 0, 0).await;
    app.messages(ch, 120, alice).await;
    let t = token(alice, "alice");
    let path = format!("/api/channels/{ch}/messages");

    let page = app.get(&path, &t).await;
    assert_eq!(seqs(&page), (71..=120).rev().collect::<Vec<_>>());
    assert_eq!(page.body["has_more"], true);
    let page = app.get(&format!("{path}?before=71"), &t).await;
    assert_eq!(seqs(&page), (21..=70).rev().collect::<Vec<_>>());
    assert_eq!(page.body["has_more"], true);
    let page = app.get(&format!("{path}?before=21"), &t).await;
    assert_eq!(seqs(&page), (1..=20).rev().collect::<Vec<_>>());
    assert_eq!(page.body["has_more"], false);
    let page = app.get(&format!("{path}?before=1"), &t).await;
    assert_eq!(
        (seqs(&page), page.body["has_more"].clone()),
        (vec![], json!(false))
    );
}

#[actix_web::test]
async fn limits_are_clamped_never_refused() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("general", "public", alice, 0).await;
    app.messages(ch, 120, alice).await;
    let t = token(alice, "alice");
    let path = format!("/api/channels/{ch}/messages");

    for (limit, expected, more) in [
        ("0", vec![120], true),
        ("-5", vec![120], true),
        ("3", vec![120, 119, 118], true),
        ("1000", (21..=120).rev().collect(), true),
        ("99999999999999999999", (21..=120).rev().collect(), true),
        ("", (71..=120).rev().collect(), true),
    ] {
        let page = app.get(&format!("{path}?limit={limit}"), &t).await;
        assert_eq!(page.status, 200, "limit={limit}: {page:?}");
        assert_eq!(seqs(&page), expected, "limit={limit}");
        assert_eq!(page.body["has_more"], more, "limit={limit}");
    }
    // Exactly the rest fits: no more.
    let page = app.get(&format!("{path}?before=101&limit=1000"), &t).await;
    assert_eq!(seqs(&page), (1..=100).rev().collect::<Vec<_>>());
    assert_eq!(page.body["has_more"], false);
}

#[actix_web::test]
async fn after_and_before_bound_the_interval_exclusively() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("general", "public", alice, 0).await;
    app.messages(ch, 120, alice).await;
    let t = token(alice, "alice");
    let path = format!("/api/channels/{ch}/messages");

    let cases: [(&str, Vec<i64>, bool); 6] = [
        ("after=115", vec![120, 119, 118, 117, 116], false),
        ("after=10&before=20&limit=5", vec![19, 18, 17, 16, 15], true),
        (
            "after=10&before=20&limit=9",
            (11..=19).rev().collect(),
            false,
        ),
        ("after=10&before=11", vec![], false),
        ("after=120", vec![], false),
        ("after=-7&before=4", vec![3, 2, 1], false),
    ];
    for (query, expected, more) in cases {
        let page = app.get(&format!("{path}?{query}"), &t).await;
        assert_eq!(page.status, 200, "{query}: {page:?}");
        assert_eq!(seqs(&page), expected, "{query}");
        assert_eq!(page.body["has_more"], more, "{query}");
    }
}

#[actix_web::test]
async fn pages_stay_stable_while_messages_arrive() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let ch = app.channel("general", "public", alice, 0).await;
    app.messages(ch, 30, alice).await;
    let t = token(alice, "alice");
    let path = format!("/api/channels/{ch}/messages");

    let first = app.get(&format!("{path}?limit=10"), &t).await;
    assert_eq!(seqs(&first), (21..=30).rev().collect::<Vec<_>>());
    for seq in 31..=35 {
        app.message(ch, seq, alice).await;
    }
    let older = app.get(&format!("{path}?limit=10&before=21"), &t).await;
    assert_eq!(seqs(&older), (11..=20).rev().collect::<Vec<_>>());
    let newer = app.get(&format!("{path}?after=30"), &t).await;
    assert_eq!(seqs(&newer), (31..=35).rev().collect::<Vec<_>>());
    assert_eq!(newer.body["has_more"], false);
}

#[actix_web::test]
async fn private_history_is_only_for_members_public_for_anyone() {
    let app = spawn().await;
    let alice = app.user("alice").await;
    let eve = Uuid::new_v4();
    let secret = app.channel("secret", "private", alice, 0).await;
    app.member(secret, alice, "owner", 0, 0).await;
    app.messages(secret, 2, alice).await;
    let lobby = app.channel("lobby", "public", alice, 0).await;
    app.member(lobby, alice, "owner", 0, 0).await;
    app.messages(lobby, 2, alice).await;

    let denied = app
        .get(
            &format!("/api/channels/{secret}/messages"),
            &token(eve, "eve"),
        )
        .await;
    assert_eq!((denied.status, denied.code()), (403, "not_a_member"));
    let member = app
        .get(
            &format!("/api/channels/{secret}/messages"),
            &token(alice, "alice"),
        )
        .await;
    assert_eq!(seqs(&member), vec![2, 1]);
    let public = app
        .get(
            &format!("/api/channels/{lobby}/messages"),
            &token(eve, "eve"),
        )
        .await;
    assert_eq!((public.status, seqs(&public)), (200, vec![2, 1]));
}
