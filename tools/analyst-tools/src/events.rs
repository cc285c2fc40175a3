//! `chat events`: the event log in global commit order as NDJSON or CSV,
//! streamed page by page in constant memory for any size. Each page is a
//! keyset range read after the last cursor written, so a page never holds more
//! than [`PAGE_SIZE`] rows and `--after` any printed cursor resumes exactly.

use crate::AnalystError;
use crate::format::{self, Format};
use crate::log::LogQuery;
use crate::parse::{self, Until};
use crate::progress::{self, Progress};
use crate::source::LogSource;
use event_store::Cursor;
use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

pub use crate::source::PAGE_SIZE;
/// How long an export waits for the transactions running when it starts to
/// end, so that it holds every event committed before it started.
pub const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The kinds of stream, by id prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Category {
    /// `channel-{uuid}` streams: channels, members, messages.
    Channel,
    /// `user-{uuid}` streams: registrations.
    User,
}

impl Category {
    /// The stream id prefix of this category.
    pub fn prefix(self) -> &'static str {
        match self {
            Category::Channel => "channel-",
            Category::User => "user-",
        }
    }
}

/// The flags of `chat events`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EventsArgs {
    /// Start after this cursor — the `cursor` of the last line you already
    /// have — to resume an export exactly where it stopped.
    /// Example: `--after 812-77`. Default: from the start of the log.
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Stop at this cursor (inclusive), or at the first event recorded after
    /// this RFC 3339 time. Examples: `--until 815-90`,
    /// `--until 2026-03-01T12:00:00Z`. Default: the log as it stands when the
    /// export starts.
    #[arg(long, value_name = "CURSOR|TIME")]
    pub until: Option<String>,
    /// Only the events of this stream.
    /// Example: `--stream channel-0190c6e2-7c4a-7d3e-9a55-2b1f0e8d4c11`.
    #[arg(long, value_name = "ID")]
    pub stream: Option<String>,
    /// Only streams of this kind (`channel-…` or `user-…`).
    /// Example: `--category channel`.
    #[arg(long, value_enum)]
    pub category: Option<Category>,
    /// Only these event types, comma-separated.
    /// Example: `--type MessageSent,MessageDeleted`.
    #[arg(long = "type", value_name = "T,...", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Output format: `ndjson` (one envelope per line with its `cursor`, as
    /// `GET /api/events`) or `csv` (RFC 4180, header row).
    /// Example: `--format csv`.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
    /// With `--format csv`, leave out the header row (to append a resumed
    /// export to an earlier file). Example: `--no-header`.
    #[arg(long)]
    pub no_header: bool,
    /// Write the events to this file instead of stdout.
    /// Example: `--output events.ndjson`.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A resolved export: bounds fixed, arguments checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub query: LogQuery,
    pub format: Format,
    pub header: bool,
    /// Things worth telling on stderr (unknown event types).
    pub warnings: Vec<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// The cursor of the last event written (resume `--after` it).
    pub last_cursor: Option<Cursor>,
}

/// The arguments of an export, checked but not yet resolved against the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub after: Cursor,
    pub until: Option<Until>,
    pub types: Vec<String>,
}

/// Checks `args` without touching a database: a bad cursor or time fails here.
pub fn request(args: &EventsArgs) -> Result<Request, AnalystError> {
    let after = match &args.after {
        Some(text) => parse::cursor("--after", text)?,
        None => Cursor::START,
    };
    let until = match &args.until {
        Some(text) => Some(parse::until("--until", text, false)?),
        None => None,
    };
    let types = args
        .types
        .iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    Ok(Request {
        after,
        until,
        types,
    })
}

/// Checks `args` and fixes the export's bounds: the horizon now, and where
/// `--until` stops.
pub async fn plan(source: &LogSource, args: &EventsArgs) -> Result<Plan, AnalystError> {
    let Request {
        after,
        until,
        types,
    } = request(args)?;
    let horizon = source.settle(SETTLE_WAIT).await?;
    let mut warnings: Vec<String> = Vec::new();
    if !horizon.settled {
        warnings.push(format!(
            "events: note: a transaction open for over {}s holds the log back; exporting what is \
             settled and may stop short of the newest events (resume later with --after)",
            SETTLE_WAIT.as_secs()
        ));
    }
    let horizon = horizon.xid;
    let until = match until {
        None | Some(Until::Position(_)) => None,
        Some(Until::Cursor(c)) => Some(c),
        Some(Until::Time(t)) => source.last_before_time(after, horizon, t).await?,
    };
    warnings.extend(
        types
            .iter()
            .filter(|t| !domain::EVENT_TYPES.contains(&t.as_str()))
            .map(|t| format!("events: note: {t:?} is not an event type this version knows")),
    );
    Ok(Plan {
        query: LogQuery {
            after,
            until,
            horizon,
            stream_id: args.stream.clone().filter(|s| !s.is_empty()),
            stream_prefix: args.category.map(|c| c.prefix().to_owned()),
            event_types: types,
            ..LogQuery::default()
        },
        format: args.format,
        header: !args.no_header,
        warnings,
    })
}

/// Writes the planned events to `out`, page by page, and flushes it.
pub async fn export(
    source: &LogSource,
    plan: &Plan,
    out: &mut (impl Write + Send),
    progress: &mut Progress,
) -> Result<Summary, AnalystError> {
    if plan.format == Format::Csv && plan.header {
        format::write_csv_header(out).map_err(AnalystError::Output)?;
    }
    let mut last_cursor = None;
    let mut written = 0u64;
    let mut scratch = Vec::new();
    source
        .scan(&plan.query, &mut |event| {
            format::write_event(out, plan.format, &event, &mut scratch)
                .map_err(AnalystError::Output)?;
            last_cursor = Some(event.cursor());
            written += 1;
            progress.inc(1);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    out.flush().map_err(AnalystError::Output)?;
    Ok(Summary {
        events: written,
        last_cursor,
    })
}

/// `chat events`: plans, counts (for the ETA), exports, and sums up on stderr.
pub async fn run(
    args: &EventsArgs,
    settings: &service_kit::Settings,
) -> Result<Summary, AnalystError> {
    request(args)?;
    let source = LogSource::open(settings).await?;
    let plan = plan(&source, args).await?;
    for warning in &plan.warnings {
        eprintln!("{warning}");
    }
    let total = source.count(&plan.query).await?;
    let mut progress = Progress::stderr("events", Some(total));
    let started = Instant::now();
    let result = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(AnalystError::Output)?;
            export(
                &source,
                &plan,
                &mut BufWriter::with_capacity(1 << 16, file),
                &mut progress,
            )
            .await
        }
        None => {
            let mut stdout = BufWriter::with_capacity(1 << 16, io::stdout());
            export(&source, &plan, &mut stdout, &mut progress).await
        }
    };
    progress.finish();
    let summary = result?;
    let elapsed = started.elapsed();
    let resume = match summary.last_cursor {
        Some(c) => format!("; to continue after the last one: --after {c}"),
        None => String::new(),
    };
    progress.note(&format!(
        "events: {} exported in {:.1}s ({:.0}/s){resume}",
        summary.events,
        elapsed.as_secs_f64(),
        progress::rate(summary.events, elapsed)
    ));
    Ok(summary)
}
