//! Bounded reads of one stream: a reader of a gap gets exactly the gap, in
//! pages, never the rest of a long stream.

use event_store::{ExpectedVersion, NewEvent, PgEventStore};
use serde_json::json;
use test_support::TestDb;
use uuid::Uuid;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: json!({ "n": n }),
        metadata: json!({}),
    }
}

#[tokio::test]
async fn a_stream_range_is_bounded_on_both_sides_and_pages() {
    let db = TestDb::new_event_log().await;
    let store = PgEventStore::new(db.pool.clone());
    let events: Vec<NewEvent> = (1..=50).map(event).collect();
    store
        .append("s-range", ExpectedVersion::NoStream, &events)
        .await
        .expect("append");
    store
        .append("s-other", ExpectedVersion::NoStream, &[event(1), event(2)])
        .await
        .expect("append");

    let versions = |page: &[event_store::RecordedEvent]| {
        page.iter().map(|e| e.stream_version).collect::<Vec<_>>()
    };
    let gap = store
        .read_stream_range("s-range", 10, 14, 100)
        .await
        .expect("range");
    assert_eq!(versions(&gap), vec![11, 12, 13], "exclusive on both sides");
    assert!(gap.iter().all(|e| e.stream_id == "s-range"));

    let first = store
        .read_stream_range("s-range", 0, 51, 20)
        .await
        .expect("page");
    assert_eq!(versions(&first), (1..=20).collect::<Vec<_>>());
    let second = store
        .read_stream_range("s-range", 20, 51, 20)
        .await
        .expect("page");
    assert_eq!(versions(&second), (21..=40).collect::<Vec<_>>());

    for (after, before) in [(10, 11), (10, 10), (12, 3)] {
        assert!(
            store
                .read_stream_range("s-range", after, before, 100)
                .await
                .expect("empty range")
                .is_empty(),
            "({after}, {before}) holds no version"
        );
    }
    assert!(
        store
            .read_stream_range("s-range", 0, 51, 0)
            .await
            .expect("limit 0")
            .is_empty()
    );
}
