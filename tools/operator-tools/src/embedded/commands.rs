//! The edge on the embedded backend: opens the data directory, runs a
//! command, prints as the services path prints (the same tables and JSON),
//! picks the exit code.

use super::Embedded;
use super::dlq::{Dlq, Retried};
use crate::dlq::DeadLetter;
use crate::handlers::{DeadLetterStore, dlq_command, thresholds};
use crate::progress::Progress;
use crate::rebuild::{self, PROJECTIONS, RebuildOptions};
use crate::{DlqCommand, RebuildArgs, StatusArgs, status};
use anyhow::Context;
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
    let files = Embedded::open(&settings.data_dir).await?;
    let options = RebuildOptions {
        page_size: args.page_size as usize,
        ..RebuildOptions::default()
    };
    for p in projections {
        let progress = Progress::stderr(&format!("rebuild {}", p.name));
        let result = tokio::select! {
            result = super::rebuild::rebuild(&files.data, &files.log, p, &options, &progress) => result,
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
    files.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `chat status`.
pub(crate) async fn status(
    args: StatusArgs,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let files = Embedded::open(&settings.data_dir).await?;
    let report = super::status::gather(&files.log, &files.read, thresholds(&args)).await;
    files.close().await;
    let report = report.context("reading the embedded data directory")?;
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

/// `chat dlq ...`.
pub(crate) async fn dlq(
    command: DlqCommand,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let files = Embedded::open(&settings.data_dir).await?;
    let result = dlq_command(&Dlq::new(&files.read, &files.log), command, out).await;
    files.close().await;
    result
}

impl DeadLetterStore for Dlq<'_> {
    type Error = super::dlq::DlqError;

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
            .map(|(letter, how)| {
                let how = match how {
                    Retried::Applied => "applied to the live read model",
                    Retried::Duplicate => "the live read model had it already",
                };
                format!("retried {}: {how}", letter.id)
            })
            .collect();
        Ok((lines, failed))
    }

    async fn drop_letter(&self, id: &str) -> Result<usize, Self::Error> {
        Dlq::drop_letter(self, id).await
    }
}
