//! The edge: connects to the services named in the settings, runs a
//! command, prints data to stdout and summaries to stderr, picks the exit code.

use crate::dlq::{DeadLetter, Dlq};
use crate::progress::Progress;
use crate::rebuild::{self, PROJECTIONS, RebuildOptions};
use crate::status::{self, Services, Thresholds};
use crate::text::columns;
use crate::{DlqCommand, RebuildArgs, StatusArgs};
use anyhow::Context;
use event_store::PgEventStore;
use service_kit::Settings;
use std::io::Write;
use std::process::ExitCode;

/// `chat rebuild`.
pub(crate) async fn rebuild(args: RebuildArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    let projections = match (&args.projection, args.all) {
        (_, true) => PROJECTIONS.to_vec(),
        (Some(name), false) => vec![rebuild::projection(name)?],
        (None, false) => anyhow::bail!("name a projection or pass --all"),
    };
    let read = read_model::connect(&settings.read_database_url, 4).await?;
    let log = PgEventStore::new(event_store::connect(&settings.database_url, 4).await?);
    let options = RebuildOptions {
        page_size: args.page_size as usize,
        ..RebuildOptions::default()
    };
    for p in projections {
        let progress = Progress::stderr(&format!("rebuild {}", p.name));
        let result = tokio::select! {
            result = rebuild::rebuild(&read, &log, p, &options, &progress) => result,
            _ = tokio::signal::ctrl_c() => {
                progress.finish();
                eprintln!(
                    "chat rebuild: interrupted; the live {} is untouched (the next run drops the partial {})",
                    p.name, p.rebuild_schema
                );
                return Ok(ExitCode::from(130));
            }
        };
        progress.finish();
        let report = result.with_context(|| format!("rebuilding {}", p.name))?;
        eprintln!("{}", report.summary());
    }
    Ok(ExitCode::SUCCESS)
}

/// `chat status`.
pub(crate) async fn status(
    args: StatusArgs,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let log = event_store::connect(&settings.database_url, 2).await?;
    let read = read_model::connect(&settings.read_database_url, 2).await?;
    let services = Services {
        log,
        read,
        amqp_url: settings.amqp_url.clone(),
        redis_url: settings.redis_url.clone(),
        redis_prefix: String::new(),
    };
    let report = status::gather(&services, thresholds(&args)).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(out, "{}", status::table(&report))?;
    }
    Ok(if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// The lag limits given on the command line.
pub(crate) fn thresholds(args: &StatusArgs) -> Thresholds {
    Thresholds {
        max_lag_events: args
            .max_lag_events
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        max_lag_seconds: args.max_lag_seconds,
    }
}

/// `chat dlq ...`.
pub(crate) async fn dlq(
    command: DlqCommand,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    // Malformed partitions refuse the command: a retry routed by a guess
    // could land in the wrong partition's queue.
    let dlq = Dlq::open(&settings.amqp_url, broker::Partitions::from_env()?).await?;
    let result = dlq_command(&dlq, command, out).await;
    dlq.close().await;
    result
}

/// Where the dead letters are kept: RabbitMQ's `projector.dlq` on the
/// services backend, the read model's table on the embedded one. `chat dlq`
/// speaks to either the same way.
pub(crate) trait DeadLetterStore {
    type Error: std::error::Error + Send + Sync + 'static;

    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, Self::Error>;
    async fn show(&self, id: &str) -> Result<Vec<serde_json::Value>, Self::Error>;
    /// Retries `id` (None: every letter): for each one retried, the line
    /// saying what became of it, and the failures.
    async fn retry(&self, id: Option<&str>)
    -> Result<(Vec<String>, Vec<Self::Error>), Self::Error>;
    async fn drop_letter(&self, id: &str) -> Result<usize, Self::Error>;
}

impl DeadLetterStore for Dlq {
    type Error = crate::dlq::DlqError;

    async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, Self::Error> {
        Dlq::list(self, limit).await
    }

    async fn show(&self, id: &str) -> Result<Vec<serde_json::Value>, Self::Error> {
        Dlq::show(self, id).await
    }

    async fn retry(
        &self,
        id: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Self::Error>), Self::Error> {
        let (retried, failed) = Dlq::retry(self, id).await?;
        let lines = retried
            .iter()
            .map(|letter| {
                format!(
                    "retried {} to {} with routing key {}",
                    letter.id,
                    broker::EVENTS_EXCHANGE,
                    letter.routing_key.as_deref().unwrap_or("?")
                )
            })
            .collect();
        Ok((lines, failed))
    }

    async fn drop_letter(&self, id: &str) -> Result<usize, Self::Error> {
        Dlq::drop_letter(self, id).await
    }
}

/// One `chat dlq` subcommand, whichever store holds the letters.
pub(crate) async fn dlq_command(
    dlq: &impl DeadLetterStore,
    command: DlqCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List { json, limit } => {
            let letters = dlq.list(limit).await?;
            if json {
                for letter in &letters {
                    writeln!(out, "{}", serde_json::to_string(letter)?)?;
                }
            } else {
                write!(out, "{}", letters_table(&letters))?;
            }
            eprintln!("{} dead letter(s) shown", letters.len());
        }
        DlqCommand::Show { id, json } => {
            for detail in dlq.show(&id).await? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&detail)?)?;
                } else {
                    writeln!(out, "{}", show_text(&detail)?)?;
                }
            }
        }
        DlqCommand::Retry { id, all } => {
            let id = if all { None } else { id };
            let (retried, failed) = dlq.retry(id.as_deref()).await?;
            for line in &retried {
                eprintln!("{line}");
            }
            for error in &failed {
                eprintln!("chat dlq retry: {error}");
            }
            eprintln!("{} retried, {} failed", retried.len(), failed.len());
            if !failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        DlqCommand::Drop { id } => {
            let n = dlq.drop_letter(&id).await?;
            eprintln!("dropped {n} dead letter(s) with id {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `list` table.
pub fn letters_table(letters: &[DeadLetter]) -> String {
    let none = || "-".to_owned();
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.id.clone(),
                l.event_type.clone().unwrap_or_else(none),
                l.routing_key.clone().unwrap_or_else(none),
                l.failed_at.clone().unwrap_or_else(none),
                l.reason.clone().unwrap_or_else(none).replace('\n', " "),
            ]
        })
        .collect();
    let mut out = String::new();
    columns(
        &mut out,
        &["ID", "EVENT TYPE", "ROUTING KEY", "FAILED AT", "REASON"],
        &rows,
    );
    out
}

/// `show` for people: the summary, then headers and body as pretty JSON.
pub(crate) fn show_text(detail: &serde_json::Value) -> anyhow::Result<String> {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v);
    Ok(format!(
        "dead letter\n{}\nproperties\n{}\nheaders\n{}\nbody\n{}",
        pretty(&detail["dead_letter"])?,
        pretty(&detail["properties"])?,
        pretty(&detail["headers"])?,
        pretty(&detail["body"])?
    ))
}
