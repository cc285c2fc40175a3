//! CSV parses back (RFC 4180) into the same rows as the NDJSON export; the
//! CLI entry point writes `--output` files and refuses bad cursors and times
//! with one line; on both backends. An embedded data directory that is not
//! there is one line too.

use crate::helpers::{Log, export, export_lines, parse_csv};
use analyst_tools::{AnalystCommand, EventsArgs, Format};
use domain::ChannelCommand;

async fn tricky_log(log: Log) -> Log {
    let owner = log.register("ann").await;
    let bob = log.register("bob").await;
    let channel = log.create_channel(owner, "general, \"quoted\"").await;
    log.command(bob, channel, ChannelCommand::Join).await;
    for content in [
        "plain",
        "a, comma",
        "say \"hi\"",
        "two\r\nlines\nand a bare LF",
        "ünïcödé ✓ 日本語",
        "\"\"",
    ] {
        log.send(bob, channel, content).await;
    }
    log
}

both!(
    csv_parses_back_to_the_ndjson_rows,
    the_cli_entry_writes_the_output_file_and_refuses_bad_input
);

async fn csv_parses_back_to_the_ndjson_rows(log: Log) {
    let log = tricky_log(log).await;
    let source = log.source();
    let lines = export_lines(&source, &EventsArgs::default()).await;
    let csv = export(
        &source,
        &EventsArgs {
            format: Format::Csv,
            ..EventsArgs::default()
        },
    )
    .await;
    let records = parse_csv(&csv);
    assert_eq!(
        records[0].join(","),
        "cursor,global_position,recorded_at,stream_id,stream_version,event_id,event_type,schema_version,data,metadata"
    );
    let rows = &records[1..];
    assert_eq!(rows.len(), lines.len());
    assert_eq!(rows.len(), 10, "2 registrations, create, join, 6 messages");
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(row.len(), 10, "{row:?}");
        let text = |k: &str| match &line[k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for (i, key) in [
            "cursor",
            "global_position",
            "recorded_at",
            "stream_id",
            "stream_version",
            "event_id",
            "event_type",
            "schema_version",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(row[i], text(key), "{key}");
        }
        let data: serde_json::Value = serde_json::from_str(&row[8]).expect("data is JSON");
        let metadata: serde_json::Value = serde_json::from_str(&row[9]).expect("metadata is JSON");
        assert_eq!(data, line["data"]);
        assert_eq!(metadata, line["metadata"]);
    }
    let contents: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["data"]["content"].as_str())
        .collect();
    assert!(contents.contains(&"two\r\nlines\nand a bare LF"));

    let no_header = export(
        &source,
        &EventsArgs {
            format: Format::Csv,
            no_header: true,
            after: Some(rows[3][0].clone()),
            ..EventsArgs::default()
        },
    )
    .await;
    assert_eq!(
        parse_csv(&no_header),
        rows[4..].to_vec(),
        "resumed, headerless"
    );
}

async fn the_cli_entry_writes_the_output_file_and_refuses_bad_input(log: Log) {
    let log = tricky_log(log).await;
    let settings = log.settings("postgres://postgres@localhost:5432/unused_read");
    let dir = std::env::temp_dir().join(format!("analyst-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("events.ndjson");
    let code = analyst_tools::run(
        AnalystCommand::Events(EventsArgs {
            output: Some(file.clone()),
            ..EventsArgs::default()
        }),
        &settings,
    )
    .await
    .expect("exports");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let written = std::fs::read_to_string(&file).expect("output file");
    assert_eq!(written, export(&log.source(), &EventsArgs::default()).await);
    let _ = std::fs::remove_dir_all(&dir);

    for (after, until, expected) in [
        (Some("garbage"), None, "invalid --after \"garbage\""),
        (Some("12-"), None, "invalid --after \"12-\""),
        (None, Some("yesterday"), "invalid --until \"yesterday\""),
        (None, Some("2026-02-30T00:00:00Z"), "invalid --until"),
    ] {
        let err = analyst_tools::run(
            AnalystCommand::Events(EventsArgs {
                after: after.map(String::from),
                until: until.map(String::from),
                ..EventsArgs::default()
            }),
            &settings,
        )
        .await
        .expect_err("bad input fails");
        let line = format!("{err:#}");
        assert!(line.starts_with(expected), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}

#[tokio::test]
async fn a_missing_data_directory_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("nothing-here");
    let shown = missing.display().to_string();
    let settings = service_kit::Settings::from_lookup(|name| match name {
        "CHAT_BACKEND" => Some("embedded".into()),
        "CHAT_DATA_DIR" => Some(shown.clone()),
        _ => None,
    })
    .expect("settings");
    let state = analyst_tools::StateArgs {
        aggregate: analyst_tools::Aggregate::Channel(analyst_tools::ChannelStateArgs {
            id: uuid::Uuid::now_v7().to_string(),
            as_of: None,
            json: false,
        }),
    };
    let replay = analyst_tools::ReplayArgs {
        projection: analyst_tools::Projection::ReadModel,
        until: "1".into(),
        into: dir.path().join("asof.db").display().to_string(),
        force: false,
        batch: 10,
        jobs: 1,
    };
    for command in [
        AnalystCommand::Events(EventsArgs::default()),
        AnalystCommand::State(state),
        AnalystCommand::Replay(replay),
    ] {
        let err = analyst_tools::run(command, &settings)
            .await
            .expect_err("no data directory");
        let line = format!("{err:#}");
        assert_eq!(
            line,
            format!("no embedded data in {shown} (run `chat up` first, or set CHAT_DATA_DIR)")
        );
    }
    assert!(!missing.exists(), "the tools create nothing");
    assert!(
        !dir.path().join("asof.db").exists(),
        "nor the replay target"
    );
}
