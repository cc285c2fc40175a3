//! `GET /api/events`: the log as NDJSON in commit order, resumable by cursor,
//! filterable by stream and type, admins only, complete for large exports.

use crate::helpers::*;
use crate::seed::new_events;
use actix_web::body::BodySize;
use event_store::{Cursor, ExpectedVersion, LogFilter};
use serde_json::Value;
use uuid::Uuid;

/// Seeds events whose commit order differs from their position order: a
/// transaction takes its id first, another appends and commits, then the first
/// appends (a higher position) and commits.
async fn seed_interleaved<S>(app: &TestApp<S>) {
    app.append("user-1", &["UserRegistered"]).await;
    app.append("channel-a", &["ChannelCreated", "MemberJoined"])
        .await;
    let store = app.store();
    let mut early = app.log.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *early)
        .await
        .expect("take an xid");
    app.append("channel-b", &["ChannelCreated"]).await;
    store
        .append_in(
            &mut early,
            "channel-a",
            ExpectedVersion::Any,
            &new_events(&["MessageSent", "MessageSent"]),
        )
        .await
        .expect("append in tx");
    early.commit().await.expect("commit");
    app.append("channel-a", &["MessageEdited"]).await;
    app.append(
        "channel-b",
        &["MemberJoined", "MessageSent", "MessageDeleted"],
    )
    .await;
    app.append("user-2", &["UserRegistered"]).await;
    app.settle().await;
}

fn cursor(line: &Value) -> String {
    line["cursor"].as_str().expect("cursor").to_owned()
}

#[actix_web::test]
async fn the_log_comes_in_commit_order_with_a_cursor_per_line() {
    let app = spawn().await;
    seed_interleaved(&app).await;
    let admin = token(Uuid::new_v4(), ADMIN);

    let answer = app.get("/api/events", &admin).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.content_type, "application/x-ndjson");
    let lines = answer.lines();
    let expected = app.commit_order().await;
    assert_eq!(ids(&lines), expected);
    // The seed really does order commits differently from positions.
    let positions: Vec<i64> = lines
        .iter()
        .map(|l| l["global_position"].as_i64().expect("pos"))
        .collect();
    assert!(positions.windows(2).any(|w| w[0] > w[1]), "{positions:?}");

    // Each line is the stored envelope plus its cursor, nothing else.
    let recorded = app
        .store()
        .read_all(Cursor::START, 1000, &LogFilter::default())
        .await
        .expect("read_all");
    assert_eq!(recorded.len(), lines.len());
    for (line, event) in lines.iter().zip(&recorded) {
        let mut envelope = serde_json::to_value(event).expect("envelope");
        envelope["cursor"] = Value::String(event.cursor().to_string());
        assert_eq!(line, &envelope);
        for field in [
            "event_id",
            "event_type",
            "schema_version",
            "stream_id",
            "stream_version",
            "global_position",
            "recorded_at",
            "data",
            "metadata",
            "cursor",
        ] {
            assert!(line.get(field).is_some(), "{field} missing from {line}");
        }
        assert!(cursor(line).parse::<Cursor>().is_ok());
    }
}

#[actix_web::test]
async fn resuming_after_any_cursor_returns_exactly_the_rest() {
    let app = spawn().await;
    seed_interleaved(&app).await;
    let admin = token(Uuid::new_v4(), ADMIN);
    let all = app.get("/api/events", &admin).await.lines();
    assert_eq!(all.len(), 11);
    for (k, line) in all.iter().enumerate() {
        let rest = app
            .get(&format!("/api/events?after={}", cursor(line)), &admin)
            .await;
        assert_eq!(rest.status, 200);
        assert_eq!(rest.lines(), all[k + 1..].to_vec(), "after line {k}");
    }
    let empty_after = app.get("/api/events?after=", &admin).await;
    assert_eq!(empty_after.lines(), all);
}

#[actix_web::test]
async fn stream_type_and_limit_filters() {
    let app = spawn().await;
    seed_interleaved(&app).await;
    let admin = token(Uuid::new_v4(), ADMIN);
    let all = app.get("/api/events", &admin).await.lines();
    let pick = |keep: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        all.iter().filter(|l| keep(l)).cloned().collect()
    };

    let stream = app
        .get("/api/events?stream=channel-a", &admin)
        .await
        .lines();
    assert_eq!(stream, pick(&|l| l["stream_id"] == "channel-a"));
    assert_eq!(stream.len(), 5);

    let types = app
        .get("/api/events?type=MessageSent,%20UserRegistered", &admin)
        .await
        .lines();
    assert_eq!(
        types,
        pick(&|l| l["event_type"] == "MessageSent" || l["event_type"] == "UserRegistered")
    );
    assert_eq!(types.len(), 5);

    let both = app
        .get(
            "/api/events?stream=channel-b&type=MessageSent,MemberJoined",
            &admin,
        )
        .await
        .lines();
    assert_eq!(
        both,
        pick(&|l| l["stream_id"] == "channel-b"
            && (l["event_type"] == "MessageSent" || l["event_type"] == "MemberJoined"))
    );
    assert_eq!(both.len(), 2);

    let none = app.get("/api/events?stream=channel-zzz", &admin).await;
    assert_eq!((none.status, none.text.as_str()), (200, ""));

    for (limit, n) in [("3", 3), ("0", 0), ("-4", 0), ("11", 11), ("500", 11)] {
        let page = app.get(&format!("/api/events?limit={limit}"), &admin).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.lines(), all[..n].to_vec(), "limit={limit}");
    }
    let middle = app
        .get(
            &format!("/api/events?after={}&limit=2", cursor(&all[4])),
            &admin,
        )
        .await
        .lines();
    assert_eq!(middle, all[5..7].to_vec());
}

#[actix_web::test]
async fn only_admins_and_only_valid_cursors() {
    let app = spawn().await;
    seed_interleaved(&app).await;
    let user = app
        .get("/api/events", &token(Uuid::new_v4(), "alice"))
        .await;
    assert_eq!((user.status, user.code()), (403, "forbidden"), "{user:?}");
    // Usernames are case-insensitive, so is the admin list.
    let shouting = app
        .get("/api/events?limit=1", &token(Uuid::new_v4(), "ROOT"))
        .await;
    assert_eq!(shouting.lines().len(), 1);

    let admin = token(Uuid::new_v4(), ADMIN);
    for bad in ["garbage", "12", "1-x", "-1-2", "1-2-3"] {
        let answer = app.get(&format!("/api/events?after={bad}"), &admin).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_cursor"),
            "{bad}: {answer:?}"
        );
    }
    let answer = app.get("/api/events?limit=abc", &admin).await;
    assert_eq!((answer.status, answer.code()), (400, "invalid_query"));
    let forbidden_first = app
        .get("/api/events?after=garbage", &token(Uuid::new_v4(), "alice"))
        .await;
    assert_eq!(forbidden_first.status, 403);
}

#[actix_web::test]
async fn an_empty_log_is_an_empty_200() {
    let app = spawn().await;
    let answer = app.get("/api/events", &token(Uuid::new_v4(), ADMIN)).await;
    assert_eq!((answer.status, answer.text.as_str()), (200, ""));
    assert_eq!(answer.content_type, "application/x-ndjson");
}

#[actix_web::test]
async fn a_large_export_is_complete_and_in_order() {
    let app = spawn().await;
    let store = app.store();
    for batch in 0..20 {
        let stream = format!("channel-{}", batch % 7);
        let types = vec!["MessageSent"; 250];
        store
            .append(&stream, ExpectedVersion::Any, &new_events(&types))
            .await
            .expect("append batch");
    }
    app.settle().await;
    let expected = app.commit_order().await;
    assert_eq!(expected.len(), 5000);
    let admin = token(Uuid::new_v4(), ADMIN);

    let all = app.get("/api/events", &admin).await.lines();
    assert_eq!(ids(&all), expected);
    let cursors: std::collections::HashSet<_> = all.iter().map(cursor).collect();
    assert_eq!(cursors.len(), 5000);

    // Streamed, not buffered: no length up front, one chunk per line.
    let (size, chunks) = app.chunks("/api/events", &admin).await;
    assert_eq!(size, BodySize::Stream);
    assert_eq!(chunks.len(), 5000);
    assert!(
        chunks
            .iter()
            .all(|c| c.ends_with(b"\n") && c.iter().filter(|b| **b == b'\n').count() == 1)
    );

    // A limit that crosses page boundaries, resumed from the middle of a page.
    let part = app
        .get(
            &format!("/api/events?after={}&limit=2500", cursor(&all[1499])),
            &admin,
        )
        .await
        .lines();
    assert_eq!(ids(&part), expected[1500..4000].to_vec());

    let one_stream = app
        .get("/api/events?stream=channel-3", &admin)
        .await
        .lines();
    let versions: Vec<u64> = one_stream
        .iter()
        .map(|l| l["stream_version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, (1..=750).collect::<Vec<_>>());
}
