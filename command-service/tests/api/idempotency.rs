//! What each idempotency key means (DESIGN §3): a `client_msg_id` names one
//! message of one sender in one channel; an `Idempotency-Key` is bound to the
//! request it came with.

use crate::helpers::{bearer, spawn};
use actix_web::test::TestRequest;
use serde_json::{Value, json};

#[actix_web::test]
async fn the_same_client_msg_id_in_another_channel_is_another_message() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let one = app.channel(&ann, "public").await;
    let two = app.channel(&ann, "public").await;
    let body = json!({"content": "hello", "client_msg_id": "same"});
    let in_one = app
        .post(&format!("/api/channels/{one}/messages"), &ann, body.clone())
        .await;
    let in_two = app
        .post(&format!("/api/channels/{two}/messages"), &ann, body)
        .await;
    assert_eq!((in_one.status, in_two.status), (201, 201), "{in_two:?}");
    assert_ne!(in_one.body["message_id"], in_two.body["message_id"]);
    assert_eq!(
        in_two.body["seq"], 1,
        "channel two got its own first message"
    );
    let in_two_stream: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'MessageSent'",
    )
    .bind(format!("channel-{two}"))
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    assert_eq!(in_two_stream, 1);
}

#[actix_web::test]
async fn a_client_msg_id_retried_in_its_channel_answers_the_first_result_whatever_the_content() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let channel = app.channel(&ann, "public").await;
    let path = format!("/api/channels/{channel}/messages");
    let first = app
        .post(&path, &ann, json!({"content": "v1", "client_msg_id": "c"}))
        .await;
    let before = app.event_count().await;
    let retry = app
        .post(&path, &ann, json!({"content": "v2", "client_msg_id": "c"}))
        .await;
    assert_eq!((first.status, retry.status), (201, 201));
    assert_eq!(first.body, retry.body);
    assert_eq!(first.etag, retry.etag);
    assert_eq!(
        app.event_count().await,
        before,
        "the retry appended nothing"
    );
}

#[actix_web::test]
async fn an_idempotency_key_with_another_body_or_path_is_refused_and_appends_nothing() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let one = app.channel(&ann, "public").await;
    let two = app.channel(&ann, "public").await;
    let keyed = |channel, body: Value| {
        TestRequest::post()
            .uri(&format!("/api/channels/{channel}/messages"))
            .insert_header(bearer(&ann))
            .insert_header(("Idempotency-Key", "k-1"))
            .set_json(body)
    };
    let first = app.call(keyed(one, json!({"content": "hello"}))).await;
    assert_eq!(first.status, 201, "{first:?}");
    let before = app.event_count().await;

    // The same request, spelled differently (defaults, field order): a replay.
    let same = app
        .call(keyed(one, json!({"type": "text", "content": "hello"})))
        .await;
    assert_eq!((same.status, &same.body), (201, &first.body));

    let other_body = app.call(keyed(one, json!({"content": "goodbye"}))).await;
    assert_eq!(
        (other_body.status, other_body.code()),
        (422, "idempotency_key_reused"),
        "{other_body:?}"
    );
    let other_channel = app.call(keyed(two, json!({"content": "hello"}))).await;
    assert_eq!(
        (other_channel.status, other_channel.code()),
        (422, "idempotency_key_reused"),
        "{other_channel:?}"
    );
    assert_eq!(app.event_count().await, before, "nothing was appended");
}

#[actix_web::test]
async fn an_idempotency_key_on_a_command_without_body_is_bound_to_its_path() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let one = app.channel(&ann, "public").await;
    let two = app.channel(&ann, "public").await;
    let archive = |channel| {
        TestRequest::post()
            .uri(&format!("/api/channels/{channel}/archive"))
            .insert_header(bearer(&ann))
            .insert_header(("Idempotency-Key", "arch"))
    };
    assert_eq!(app.call(archive(one)).await.status, 204);
    assert_eq!(app.call(archive(one)).await.status, 204, "a replay");
    let elsewhere = app.call(archive(two)).await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (422, "idempotency_key_reused")
    );
    let two_archived: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'ChannelArchived'",
    )
    .bind(format!("channel-{two}"))
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    assert_eq!(two_archived, 0, "channel two was not archived by a replay");
}

/// A retry with `If-Match` that arrives while its first attempt is in flight
/// answers the first result, not 409 (the first moved the version it named).
#[actix_web::test]
async fn concurrent_retries_with_if_match_and_one_key_all_get_the_first_result() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let channel = app.channel(&ann, "public").await;
    let etag = app.send(&ann, channel, "first").await.etag.expect("etag");
    let attempt = || {
        app.call(
            TestRequest::post()
                .uri(&format!("/api/channels/{channel}/messages"))
                .insert_header(bearer(&ann))
                .insert_header(("If-Match", etag.clone()))
                .insert_header(("Idempotency-Key", "retry-me"))
                .set_json(json!({"content": "once"})),
        )
    };
    let answers = futures_util::future::join_all((0..8).map(|_| attempt())).await;
    for answer in &answers {
        assert_eq!(answer.status, 201, "{answer:?}");
        assert_eq!(answer.body, answers[0].body);
        assert_eq!(answer.etag, answers[0].etag);
    }
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'MessageSent' AND data->>'content' = 'once'",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    assert_eq!(sent, 1);
}

/// A command that appends several events (an ownership transfer) answers the
/// same `ETag` on a replay as the first time: the version it left the stream at.
#[actix_web::test]
async fn a_replayed_multi_event_command_answers_the_first_etag() {
    let app = spawn().await;
    let (_, ann) = app.user("ann").await;
    let (bob_id, bob) = app.user("bob").await;
    let channel = app.channel(&ann, "public").await;
    assert_eq!(app.join(&bob, channel).await.status, 204);
    let transfer = || {
        TestRequest::put()
            .uri(&format!("/api/channels/{channel}/members/{bob_id}/role"))
            .insert_header(bearer(&ann))
            .insert_header(("Idempotency-Key", "hand-over"))
            .set_json(json!({"role": "owner"}))
    };
    let first = app.call(transfer()).await;
    assert_eq!(first.status, 204, "{first:?}");
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'MemberRoleChanged'")
            .fetch_one(&app.db.pool)
            .await
            .expect("count");
    assert_eq!(events, 2, "a transfer is two role changes");
    let replay = app.call(transfer()).await;
    assert_eq!(replay.status, 204);
    assert_eq!(replay.etag, first.etag);
}
