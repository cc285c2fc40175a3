//! `chat status`: lag in events and seconds, the exit code as a health probe
//! (0 caught up, 2 past a threshold), `--json` that parses, gateway sockets
//! from Redis, and one clear line naming a service that cannot be reached.

use crate::helpers::Pipeline;
use domain::UserId;
use std::process::ExitCode;
use std::time::Duration;

async fn status_json(p: &Pipeline, extra: &[&str]) -> (ExitCode, serde_json::Value) {
    let args: Vec<&str> = ["status", "--json"].iter().chain(extra).copied().collect();
    let (code, out) = p.chat(&args).await;
    let code = code.expect("status runs");
    let json = serde_json::from_str(out.trim()).expect("--json prints one JSON object");
    (code, json)
}

/// Waits until the relay has published everything (its lag is 0).
async fn wait_relay(p: &Pipeline) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while status_json(p, &[]).await.1["relay"]["lag_events"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_exit_code_follows_the_lag_thresholds() {
    let p = Pipeline::running().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    for n in 0..5 {
        p.send(owner, channel, &format!("m{n}")).await;
    }
    p.wait_projected().await;
    wait_relay(&p).await;
    let instance = format!("test-{}", uuid::Uuid::new_v4());
    let key = format!("gateway:{instance}:sockets");
    let client = redis::Client::open(test_support::redis_url()).expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    redis::cmd("SET")
        .arg(&key)
        .arg(5)
        .arg("EX")
        .arg(60)
        .query_async::<()>(&mut redis)
        .await
        .expect("set");

    let (code, json) = status_json(&p, &["--max-lag-events", "3"]).await;
    assert_eq!(code, ExitCode::SUCCESS, "{json}");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["relay"]["lag_events"], 0);
    assert_eq!(json["projections"][0]["name"], "read-model");
    assert_eq!(json["projections"][0]["lag_events"], 0, "{json}");
    assert_eq!(json["dead_letters"]["depth"], 0);
    assert_eq!(json["log"]["global_position"], 6);
    assert!(json["log"]["head_cursor"].is_string());
    let gateways = json["gateways"].as_array().expect("gateways");
    assert!(
        gateways
            .iter()
            .any(|g| g["instance"] == instance.as_str() && g["sockets"] == 5),
        "{gateways:?}"
    );
    let (code, table) = p.chat(&["status"]).await;
    assert_eq!(code.expect("status runs"), ExitCode::SUCCESS);
    for expected in [
        "EVENT LOG",
        "RELAY",
        "read-model",
        "projector.dlq",
        &instance,
        "STATUS  ok",
    ] {
        assert!(table.contains(expected), "{expected:?} missing in\n{table}");
    }

    // The projector stops; the relay goes on; six more events.
    p.stop_projector();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..6 {
        p.send(owner, channel, &format!("late {n}")).await;
    }
    wait_relay(&p).await;
    let (code, json) = status_json(&p, &["--max-lag-events", "3"]).await;
    assert_eq!(code, ExitCode::from(2), "{json}");
    assert_eq!(json["healthy"], false);
    assert_eq!(json["projections"][0]["lag_events"], 6, "{json}");
    assert!(
        json["projections"][0]["lag_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0)
    );
    let problems = json["problems"].as_array().expect("problems");
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .is_some_and(|p| p.contains("read-model lags 6 events"))),
        "{problems:?}"
    );
    let (code, _) = status_json(&p, &["--max-lag-seconds", "3600"]).await;
    assert_eq!(
        code,
        ExitCode::SUCCESS,
        "six seconds-young events are within an hour"
    );
    let (code, _) = status_json(&p, &["--max-lag-events", "6"]).await;
    assert_eq!(
        code,
        ExitCode::SUCCESS,
        "a lag equal to the threshold is healthy"
    );
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut redis)
        .await
        .expect("del");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_service_is_named_with_how_to_start_it() {
    let p = Pipeline::new().await;
    // Nothing declared the topology in this vhost yet: no queue, no error.
    let (code, json) = status_json(&p, &[]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(json["dead_letters"]["depth"].is_null(), "{json}");
    assert_eq!(json["log"]["global_position"], 0);
    let good = p.settings();
    let command = || crate::helpers::parse(&["status"]).expect("parses");
    let mut out = Vec::new();
    for (mangle, service, how) in [
        (0, "PostgreSQL", "pg_ctlcluster"),
        (1, "RabbitMQ", "rabbitmq-server"),
        (2, "Redis", "redis-server"),
    ] {
        let mut settings = good.clone();
        match mangle {
            0 => settings.database_url = "postgres://postgres@127.0.0.1:1/chat".into(),
            1 => settings.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            _ => settings.redis_url = "redis://127.0.0.1:1".into(),
        }
        let error = operator_tools::run_with_output(command(), &settings, &mut out)
            .await
            .expect_err("an unreachable service is an error");
        let line = format!("{error:#}");
        assert!(line.contains(service) && line.contains(how), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}

/// Positions are not in commit order: a transaction that takes its id first
/// and appends last gets a higher position than one that commits after it.
/// The projection's lag is counted from its commit-order cursor, so a
/// projection that applied both lags by nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn projection_lag_is_counted_in_commit_order() {
    use domain::{ChannelCreated, ChannelId, ChannelKind, Event};
    use event_store::{ExpectedVersion, NewEvent};
    let p = Pipeline::running().await;
    let owner = UserId::new();
    let channel = p.create_channel(owner).await;
    let mut early = p.log.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *early)
        .await
        .expect("take an xid");
    // Commits later in commit order, with the lower position.
    p.send(owner, channel, "late in commit order").await;
    let other = ChannelId::new();
    let stored = Event::ChannelCreated(ChannelCreated {
        channel_id: other,
        name: "early".into(),
        kind: ChannelKind::Public,
        max_members: None,
        owner_id: owner,
    })
    .to_stored();
    let created = NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: stored.event_type,
        schema_version: stored.schema_version,
        data: stored.data,
        metadata: serde_json::json!({}),
    };
    p.store()
        .append_in(
            &mut early,
            &domain::channel_stream(other),
            ExpectedVersion::NoStream,
            &[created],
        )
        .await
        .expect("append in the early transaction");
    early.commit().await.expect("commit");
    p.wait_projected().await;
    wait_relay(&p).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, json) = status_json(&p, &[]).await;
        if json["projections"][0]["lag_events"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "every event is applied, yet the projection lags: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
