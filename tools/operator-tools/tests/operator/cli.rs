//! The command line as the `chat` binary mounts it: every command and flag
//! parses as documented, and bad input is refused with a clear message.

use crate::helpers::parse;
use operator_tools::{DlqCommand, OperatorCommand};

#[test]
fn commands_parse_and_help_renders() {
    use clap::CommandFactory;
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: OperatorCommand,
    }
    Cli::command().debug_assert();
    let help = Cli::command().render_long_help().to_string();
    for expected in ["rebuild", "status", "dlq"] {
        assert!(help.contains(expected), "{help}");
    }
    assert!(
        matches!(parse(&["rebuild", "--all"]), Ok(OperatorCommand::Rebuild(a)) if a.all && a.page_size == 20_000)
    );
    assert!(
        matches!(parse(&["rebuild", "read-model", "--page-size", "500"]), Ok(OperatorCommand::Rebuild(a)) if a.page_size == 500)
    );
    assert!(
        parse(&["rebuild"]).is_err(),
        "a projection or --all is required"
    );
    assert!(
        parse(&["rebuild", "read-model", "--all"]).is_err(),
        "not both"
    );
    assert!(parse(&["rebuild", "--all", "--page-size", "0"]).is_err());
    assert!(matches!(
        parse(&["status", "--json", "--max-lag-events", "10", "--max-lag-seconds", "2.5"]),
        Ok(OperatorCommand::Status(a)) if a.json && a.max_lag_events == Some(10) && a.max_lag_seconds == Some(2.5)
    ));
    assert!(parse(&["status", "--max-lag-events", "many"]).is_err());
    assert!(matches!(
        parse(&["dlq", "retry", "--all"]),
        Ok(OperatorCommand::Dlq {
            command: DlqCommand::Retry { all: true, .. }
        })
    ));
    assert!(
        parse(&["dlq", "retry"]).is_err(),
        "an id or --all is required"
    );
    assert!(matches!(
        parse(&["dlq", "list"]),
        Ok(OperatorCommand::Dlq {
            command: DlqCommand::List {
                json: false,
                limit: 1000
            }
        })
    ));
    assert!(parse(&["dlq", "drop"]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_projection_is_refused_with_the_known_ones() {
    let settings = service_kit::Settings::from_lookup(|_| None).expect("defaults");
    let command = parse(&["rebuild", "read-modle"]).expect("parses");
    let error = operator_tools::run(command, &settings)
        .await
        .expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "unknown projection \"read-modle\"; known: read-model"
    );
}
