//! The operators' tools of the `chat` CLI: `chat rebuild`, `chat status`,
//! `chat dlq`. Mounted in the `chat` binary with `#[command(flatten)]`.
//!
//! Each runs on the backend the settings chose (DESIGN §9): PostgreSQL,
//! RabbitMQ and Redis (`services`), or the SQLite files of the data
//! directory (`embedded`, in [`embedded`]), with the same arguments and the
//! same output.
//!
//! Data goes to stdout (tables, or JSON with `--json`); logs and progress go
//! to stderr. Exit codes: 0 success, 1 error (one clear line on stderr), 2
//! from `status` when a lag exceeds a given threshold.

pub mod dlq;
pub mod embedded;
mod handlers;
pub mod progress;
pub mod rebuild;
pub mod status;
mod text;

use service_kit::Backend;
use std::process::ExitCode;

/// The operators' commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum OperatorCommand {
    /// Rebuilds a projection from the event log into fresh tables beside the
    /// live ones (schema `rm_rebuild`) while the live projector and queries
    /// carry on, then switches atomically and drops the old tables. Reads the
    /// log in commit order (not through RabbitMQ) and commits in pages
    /// (embedded: builds in `read-rm_rebuild.db` and switches by replacing
    /// the live rows in one transaction). An interrupted rebuild leaves the
    /// live model untouched; a rerun starts cleanly. Progress on stderr; a
    /// summary at the end.
    Rebuild(RebuildArgs),
    /// Shows the event log's head, the relay's and each projection's
    /// checkpoint and lag (events and seconds), what holds whole-log readers
    /// back, the dead-letter queue's depth and the sockets of each gateway
    /// (embedded: no relay, the dead letters' table, the gateway inside `chat up`).
    /// Exit code 0 when healthy, 2 when a lag exceeds a given threshold (a
    /// health probe), 1 when a service cannot be reached.
    Status(StatusArgs),
    /// Inspects and drains the projector's dead letters (`projector.dlq`;
    /// embedded: the table `rm.dead_letters`): list them with why they
    /// failed, show one, retry (republish to `chat.exchange` with the
    /// original routing key; embedded: apply it to the live read model) or drop.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// Arguments of `chat rebuild`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["projection", "all"])))]
pub struct RebuildArgs {
    /// The projection to rebuild (known: read-model).
    pub projection: Option<String>,
    /// Rebuild every projection, one after the other.
    #[arg(long)]
    pub all: bool,
    /// Events read from the log, folded and committed together.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

/// Arguments of `chat status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Unhealthy (exit code 2) when the relay or a projection trails the log
    /// by more than this many events.
    #[arg(long, value_name = "N")]
    pub max_lag_events: Option<u64>,
    /// Unhealthy (exit code 2) when the oldest event the relay or a
    /// projection has not handled yet is older than this many seconds.
    #[arg(long, value_name = "S")]
    pub max_lag_seconds: Option<f64>,
}

/// The subcommands of `chat dlq`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Lists dead letters, oldest first: id (= event id), event type,
    /// original routing key, when and why it failed. Leaves them in place.
    List {
        /// Print one JSON object per line instead of the table.
        #[arg(long)]
        json: bool,
        /// List at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Shows one dead letter in full: summary, properties, headers and the
    /// body (pretty JSON). Leaves it in place.
    Show {
        /// The dead letter's id, as `list` prints it.
        id: String,
        /// Print one JSON object instead of the sections.
        #[arg(long)]
        json: bool,
    },
    /// Republishes dead letters to `chat.exchange` with their original
    /// routing key and properties, and removes each from the dead letters
    /// once RabbitMQ confirmed its copy (embedded: applies each to the live
    /// read model through the projector, and removes it once committed).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
    Retry {
        /// The dead letter to retry.
        id: Option<String>,
        /// Retry every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Removes one dead letter for good.
    Drop {
        /// The dead letter's id, as `list` prints it.
        id: String,
    },
}

/// Runs an operator command; the exit code says how it went. Data goes to
/// stdout, everything else to stderr.
pub async fn run(
    command: OperatorCommand,
    settings: &service_kit::Settings,
) -> anyhow::Result<ExitCode> {
    run_with_output(command, settings, &mut std::io::stdout()).await
}

/// Like `run`, with the data written to `out` (tests capture it).
pub async fn run_with_output(
    command: OperatorCommand,
    settings: &service_kit::Settings,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<ExitCode> {
    use embedded::commands as on_files;
    match (settings.backend.backend, command) {
        (Backend::Services, OperatorCommand::Rebuild(args)) => {
            handlers::rebuild(args, settings).await
        }
        (Backend::Services, OperatorCommand::Status(args)) => {
            handlers::status(args, settings, out).await
        }
        (Backend::Services, OperatorCommand::Dlq { command }) => {
            handlers::dlq(command, settings, out).await
        }
        (Backend::Embedded, OperatorCommand::Rebuild(args)) => {
            on_files::rebuild(args, settings).await
        }
        (Backend::Embedded, OperatorCommand::Status(args)) => {
            on_files::status(args, settings, out).await
        }
        (Backend::Embedded, OperatorCommand::Dlq { command }) => {
            on_files::dlq(command, settings, out).await
        }
    }
}
