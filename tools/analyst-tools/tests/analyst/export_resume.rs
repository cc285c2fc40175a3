//! Over a log of more than 10,000 events (several pages of 5,000), on both
//! backends: the export is the log, a filtered export is the filtered log,
//! resuming `--after` a cursor (at a page boundary too) yields exactly the
//! rest, and exports cut by `--until` cursors add up to the whole.

use crate::helpers::{Log, cursors, export, export_lines, parse_csv};
use analyst_tools::{Category, EventsArgs, Format};
use event_store::{ExpectedVersion, NewEvent};

const EVENTS: usize = 10_050;
const PER_APPEND: usize = 50;

fn raw_event(n: usize) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: if n.is_multiple_of(3) {
            "MessageEdited"
        } else {
            "MemberMuted"
        }
        .into(),
        schema_version: 1,
        data: serde_json::json!({ "n": n, "text": "a \"quoted\", comma" }),
        metadata: serde_json::json!({ "correlation_id": uuid::Uuid::now_v7() }),
    }
}

both!(ten_thousand_events_export_whole_filtered_and_resumed);

async fn ten_thousand_events_export_whole_filtered_and_resumed(log: Log) {
    let streams: Vec<String> = ["channel-", "channel-", "user-"]
        .iter()
        .map(|prefix| format!("{prefix}{}", uuid::Uuid::now_v7()))
        .collect();
    for (i, start) in (0..EVENTS).step_by(PER_APPEND).enumerate() {
        let events: Vec<NewEvent> = (start..start + PER_APPEND).map(raw_event).collect();
        log.port
            .append(&streams[i % streams.len()], ExpectedVersion::Any, &events)
            .await
            .expect("append");
    }
    let all = log.all().await;
    assert_eq!(all.len(), EVENTS);
    let source = log.source();
    let all_cursors: Vec<String> = all.iter().map(|e| e.cursor().to_string()).collect();

    let whole = export_lines(&source, &EventsArgs::default()).await;
    assert_eq!(cursors(&whole), all_cursors, "the export is the log");
    let ids: Vec<&str> = whole
        .iter()
        .map(|l| l["event_id"].as_str().expect("id"))
        .collect();
    let log_ids: Vec<String> = all.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(ids, log_ids);

    for k in [0, 4_998, 4_999, 5_000, 9_999, EVENTS - 2, EVENTS - 1] {
        let rest = export_lines(
            &source,
            &EventsArgs {
                after: Some(all_cursors[k].clone()),
                ..EventsArgs::default()
            },
        )
        .await;
        assert_eq!(cursors(&rest), all_cursors[k + 1..], "after #{k}");
    }

    let mut pieced = Vec::new();
    let mut after = None;
    for cut in [3_333, 6_666, 9_999] {
        let piece = export_lines(
            &source,
            &EventsArgs {
                after: after.clone(),
                until: Some(all_cursors[cut].clone()),
                ..EventsArgs::default()
            },
        )
        .await;
        after = cursors(&piece).last().cloned();
        pieced.extend(cursors(&piece));
    }
    let tail = export_lines(
        &source,
        &EventsArgs {
            after,
            ..EventsArgs::default()
        },
    )
    .await;
    pieced.extend(cursors(&tail));
    assert_eq!(pieced, all_cursors, "resumed pieces add up to the log");

    let edited_in_channels = export_lines(
        &source,
        &EventsArgs {
            category: Some(Category::Channel),
            types: vec!["MessageEdited".into()],
            after: Some(all_cursors[2_000].clone()),
            ..EventsArgs::default()
        },
    )
    .await;
    let expected: Vec<String> = all[2_001..]
        .iter()
        .filter(|e| e.stream_id.starts_with("channel-") && e.event_type == "MessageEdited")
        .map(|e| e.cursor().to_string())
        .collect();
    assert!(expected.len() > 1_500, "{} selected", expected.len());
    assert_eq!(cursors(&edited_in_channels), expected);

    let one_stream = export_lines(
        &source,
        &EventsArgs {
            stream: Some(streams[2].clone()),
            ..EventsArgs::default()
        },
    )
    .await;
    let expected: Vec<String> = all
        .iter()
        .filter(|e| e.stream_id == streams[2])
        .map(|e| e.cursor().to_string())
        .collect();
    assert_eq!(expected.len(), EVENTS / 3);
    assert_eq!(cursors(&one_stream), expected);

    let csv = export(
        &source,
        &EventsArgs {
            format: Format::Csv,
            ..EventsArgs::default()
        },
    )
    .await;
    let records = parse_csv(&csv);
    assert_eq!(records.len(), EVENTS + 1, "a header and a row per event");
    assert_eq!(records[0][0], "cursor");
    let csv_cursors: Vec<&String> = records[1..].iter().map(|r| &r[0]).collect();
    assert_eq!(csv_cursors, all_cursors.iter().collect::<Vec<_>>());
}
