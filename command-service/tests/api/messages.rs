//! Messages over HTTP: gap-free seqs, idempotent sends, edit and delete rights,
//! read pointers, content rules, and bounded state for long channels.

use crate::helpers::*;
use actix_web::test::TestRequest;
use command_service::CommandService;
use domain::MessagePolicy;
use event_store::PgEventStore;
use serde_json::json;

#[actix_web::test]
async fn seqs_are_gap_free_and_sends_are_idempotent() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    for expected in 1..=3 {
        let sent = app.send(&owner, channel, "hi").await;
        assert_eq!(
            (sent.status, sent.body["seq"].as_u64()),
            (201, Some(expected)),
            "{sent:?}"
        );
    }
    let path = format!("/api/channels/{channel}/messages");
    let first = app
        .post(
            &path,
            &owner,
            json!({"content": "once", "type": "text", "client_msg_id": "c-1"}),
        )
        .await;
    let repeat = app
        .post(
            &path,
            &owner,
            json!({"content": "once", "type": "text", "client_msg_id": "c-1"}),
        )
        .await;
    assert_eq!((first.status, repeat.status), (201, 201));
    assert_eq!(first.body, repeat.body);
    assert_eq!(first.body["seq"], 4);

    let keyed = || {
        TestRequest::post()
            .uri(&path)
            .insert_header(bearer(&owner))
            .insert_header(("Idempotency-Key", "k-1"))
            .set_json(json!({"content": "keyed", "type": "text"}))
    };
    let a = app.call(keyed()).await;
    let before = app.event_count().await;
    let b = app.call(keyed()).await;
    assert_eq!(a.body, b.body);
    assert_eq!(a.body["seq"], 5);
    assert_eq!(
        app.event_count().await,
        before,
        "the repeat appended nothing"
    );

    let reused = app
        .call(
            TestRequest::post()
                .uri(&format!("/api/channels/{channel}/read"))
                .insert_header(bearer(&owner))
                .insert_header(("Idempotency-Key", "k-1"))
                .set_json(json!({"seq": 1})),
        )
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (422, "idempotency_key_reused")
    );
}

#[actix_web::test]
async fn another_senders_client_msg_id_is_a_different_message() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let (_, bob) = app.user("bob").await;
    let channel = app.channel(&owner, "public").await;
    app.join(&bob, channel).await;
    let path = format!("/api/channels/{channel}/messages");
    let a = app
        .post(
            &path,
            &owner,
            json!({"content": "x", "client_msg_id": "same"}),
        )
        .await;
    let b = app
        .post(
            &path,
            &bob,
            json!({"content": "x", "client_msg_id": "same"}),
        )
        .await;
    assert_ne!(a.body["message_id"], b.body["message_id"]);
}

#[actix_web::test]
async fn content_rules() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    let before = app.event_count().await;
    let path = format!("/api/channels/{channel}/messages");
    for (body, code) in [
        (json!({"content": "   "}), "validation_failed"),
        (json!({"content": "é".repeat(4001)}), "validation_failed"),
        (
            json!({"content": "x", "type": "hologram"}),
            "validation_failed",
        ),
        (json!({"content": "well DARN it"}), "banned_word"),
    ] {
        let answer = app.post(&path, &owner, body).await;
        assert_eq!((answer.status, answer.code()), (422, code), "{answer:?}");
    }
    assert_eq!(app.event_count().await, before);
    assert_eq!(
        app.post(&path, &owner, json!({"content": "é".repeat(4000)}))
            .await
            .status,
        201
    );
}

#[actix_web::test]
async fn only_the_sender_edits_and_admins_may_delete() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let channel = app.channel(&owner, "public").await;
    app.join(&bob, channel).await;
    app.join(&carol, channel).await;
    let sent = app.send(&bob, channel, "typo").await;
    let message = sent.body["message_id"].as_str().expect("id").to_owned();
    let path = format!("/api/channels/{channel}/messages/{message}");

    let by_other = app
        .call(
            TestRequest::patch()
                .uri(&path)
                .insert_header(bearer(&carol))
                .set_json(json!({"content": "hijack"})),
        )
        .await;
    assert_eq!((by_other.status, by_other.code()), (403, "not_sender"));
    let edited = app
        .call(
            TestRequest::patch()
                .uri(&path)
                .insert_header(bearer(&bob))
                .set_json(json!({"content": "fixed"})),
        )
        .await;
    assert_eq!(
        (edited.status, edited.body["seq"].as_u64()),
        (200, Some(1)),
        "{edited:?}"
    );

    let by_member = app
        .call(
            TestRequest::delete()
                .uri(&path)
                .insert_header(bearer(&carol)),
        )
        .await;
    assert_eq!(
        (by_member.status, by_member.code()),
        (403, "insufficient_role")
    );
    let by_owner = app
        .call(
            TestRequest::delete()
                .uri(&path)
                .insert_header(bearer(&owner)),
        )
        .await;
    assert_eq!(by_owner.status, 204);
    let edit_deleted = app
        .call(
            TestRequest::patch()
                .uri(&path)
                .insert_header(bearer(&bob))
                .set_json(json!({"content": "again"})),
        )
        .await;
    assert_eq!(
        (edit_deleted.status, edit_deleted.code()),
        (422, "message_deleted")
    );
    assert_eq!(
        app.send(&bob, channel, "next").await.body["seq"],
        2,
        "the deleted message keeps its seq"
    );
}

#[actix_web::test]
async fn read_pointer_moves_forward_only_and_within_the_channel() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    app.send(&owner, channel, "1").await;
    app.send(&owner, channel, "2").await;
    let path = format!("/api/channels/{channel}/read");
    assert_eq!(app.post(&path, &owner, json!({"seq": 2})).await.status, 204);
    let before = app.event_count().await;
    assert_eq!(app.post(&path, &owner, json!({"seq": 1})).await.status, 204);
    assert_eq!(
        app.event_count().await,
        before,
        "moving backwards is a no-op"
    );
    let beyond = app.post(&path, &owner, json!({"seq": 9})).await;
    assert_eq!((beyond.status, beyond.code()), (422, "seq_out_of_range"));
    let negative = app.post(&path, &owner, json!({"seq": -1})).await;
    assert_eq!(negative.status, 400);
}

/// A process that never saw the channel loads it from the snapshot plus a short
/// tail, not from its whole history.
#[actix_web::test]
async fn long_channels_load_from_a_snapshot() {
    let app = spawn().await;
    let (_, owner) = app.user("owner").await;
    let channel = app.channel(&owner, "public").await;
    for _ in 0..205 {
        assert_eq!(app.send(&owner, channel, "m").await.status, 201);
    }
    let stream = domain::channel_stream(channel.into());
    let (snapshot_version,): (i64,) =
        sqlx::query_as("SELECT stream_version FROM snapshots WHERE stream_id = $1")
            .bind(&stream)
            .fetch_one(&app.db.pool)
            .await
            .expect("a snapshot was taken");
    assert_eq!(snapshot_version, 200);

    let cold = CommandService::new(
        std::sync::Arc::new(PgEventStore::new(app.db.pool.clone())),
        MessagePolicy::default(),
    );
    let tail = cold
        .store()
        .read_stream(&stream, snapshot_version as u64)
        .await
        .expect("tail");
    assert_eq!(
        tail.len(),
        6,
        "a cold load replays only the events after the snapshot"
    );
    let executed = send_as(&cold, owner_id(&owner), channel, "after restart").await;
    assert_eq!(executed.first_event().expect("event").data["seq"], 206);
}

/// Sends `content` into `channel` as `actor` through `service`, bypassing HTTP.
async fn send_as(
    service: &CommandService,
    actor: uuid::Uuid,
    channel: uuid::Uuid,
    content: &str,
) -> command_service::Executed {
    let ctx = command_service::CommandContext {
        actor: domain::UserId(actor),
        correlation_id: uuid::Uuid::new_v4(),
        expected_version: None,
        idempotency_key: None,
        request_fingerprint: None,
    };
    let command = domain::ChannelCommand::SendMessage {
        message_id: domain::MessageId::new(),
        content: content.into(),
        message_type: "text".into(),
        client_msg_id: None,
    };
    service
        .execute(
            channel.into(),
            command_service::Intent::Command(command),
            &ctx,
            "MessageSent",
        )
        .await
        .expect("send")
}

fn owner_id(token: &str) -> uuid::Uuid {
    jwt().verify(token).expect("token").sub
}

/// A channel whose snapshot is unusable (a new snapshot format, or none) is
/// folded from the log in pages, to the right state, however long it is.
#[actix_web::test]
async fn a_long_channel_without_a_usable_snapshot_is_folded_in_pages() {
    let app = spawn().await;
    let (_, token) = app.user("poster").await;
    let channel = app.channel(&token, "public").await;
    let stream = domain::channel_stream(channel.into());
    let head: i64 =
        sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = $1")
            .bind(&stream)
            .fetch_one(&app.db.pool)
            .await
            .expect("head");
    let poster = owner_id(&token);
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata) \
         SELECT $1, $2 + n, gen_random_uuid(), 'MessageSent', 1, \
                jsonb_build_object('channel_id', $3::uuid, 'message_id', gen_random_uuid(), 'seq', n, \
                                   'sender_id', $4::uuid, 'content', 'm', 'message_type', 'text'), '{}' \
         FROM generate_series(1, 2500) AS n",
    )
    .bind(&stream)
    .bind(head)
    .bind(channel)
    .bind(poster)
    .execute(&app.db.pool)
    .await
    .expect("a long history");
    sqlx::query("DELETE FROM snapshots")
        .execute(&app.db.pool)
        .await
        .expect("no snapshot");

    let cold = CommandService::new(
        std::sync::Arc::new(PgEventStore::new(app.db.pool.clone())),
        MessagePolicy::default(),
    );
    let executed = send_as(&cold, poster, channel, "after 2500").await;
    assert_eq!(executed.first_event().expect("event").data["seq"], 2501);
    assert_eq!(executed.version(), head as u64 + 2501);
}
