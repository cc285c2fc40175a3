//! The analysts' tools, mounted in the `chat` binary as `chat events`,
//! `chat replay` and `chat state` (DESIGN.md §9): data on stdout (or
//! `--output FILE`), progress and summaries on stderr, exit code 0 on success
//! and 1 with one clear line on failure.
//!
//! The library speaks [`AnalystError`]; [`run`] is the edge that turns it into
//! `anyhow` for the binary.

mod connect;
mod embedded;
mod error;
pub mod events;
pub mod format;
pub mod log;
pub mod parse;
pub mod progress;
pub mod render;
pub mod replay;
mod replay_apply;
pub mod seed;
pub mod source;
pub mod state;
mod target;
mod target_file;

pub use connect::{describe, open_log, same_database};
pub use error::AnalystError;
pub use events::{Category, EventsArgs};
pub use format::Format;
pub use replay::{Projection, ReplayArgs};
pub use source::LogSource;
pub use state::{Aggregate, ChannelStateArgs, StateArgs};

use std::io::Write;
use std::process::ExitCode;

const EVENTS_EXAMPLES: &str = "Examples:
  chat events > log.ndjson
  chat events --after 857555-9 --type MessageSent,MessageDeleted
  chat events --category channel --until 2026-03-01T12:00:00Z --format csv -o march.csv";

const REPLAY_EXAMPLES: &str = "Examples:
  chat replay --projection read-model --until 2026-03-01T12:00:00Z \\
    --into postgres://postgres@localhost:5432/chat_asof
  psql -h localhost -U postgres chat_asof -c 'select name, last_seq from rm.channels'
  (embedded backend) chat replay --projection read-model --until 1500 --into ./chat_asof.db
  sqlite3 ./chat_asof.db 'select name, last_seq from channels'";

const STATE_EXAMPLES: &str = "Examples:
  chat state channel 0190c6e2-7c4a-7d3e-9a55-2b1f0e8d4c11 --as-of 2026-03-01T12:00:00Z
  chat state channel channel-0190c6e2-7c4a-7d3e-9a55-2b1f0e8d4c11 --json";

/// The analysts' commands. Mount with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AnalystCommand {
    /// Exports the event log in global commit order, as NDJSON or CSV.
    ///
    /// Every event committed before the export started, in the order a
    /// whole-log reader sees them — `(transaction_id, global_position)` — in
    /// constant memory for any size. NDJSON lines are the event envelopes of
    /// `GET /api/events`, each with its `cursor`; `--after` the cursor of the
    /// last line you have continues exactly after it. Data goes to stdout (or
    /// `--output`); progress and the count go to stderr.
    #[command(after_help = EVENTS_EXAMPLES)]
    Events(EventsArgs),
    /// Builds a read model as it was at a past moment into a separate database.
    ///
    /// Time travel: reads the log up to the moment (a time, a global position
    /// or a cursor) and applies each event with the projector's own writer into
    /// schema `rm` of the `--into` database (a SQLite file on the embedded
    /// backend), created if missing; then query the past with SQL. Refuses the
    /// live read model and the event log, and a target that already holds rows
    /// unless `--force`.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Prints one aggregate's state at a moment, folded from its events.
    ///
    /// The channel's events recorded at or before `--as-of` are folded with the
    /// domain's own `evolve`: name, kind, archived, members with roles and
    /// usernames, banned users, message counts, last seq. Text, or one JSON
    /// object with `--json`.
    #[command(after_help = STATE_EXAMPLES)]
    State(StateArgs),
}

/// Runs an analyst's command against the backend `settings` choose.
pub async fn run(
    command: AnalystCommand,
    settings: &service_kit::Settings,
) -> anyhow::Result<ExitCode> {
    let result = match command {
        AnalystCommand::Events(args) => events::run(&args, settings).await.map(|_| ()),
        AnalystCommand::Replay(args) => replay::run(&args, settings).await.map(|_| ()),
        AnalystCommand::State(args) => run_state(&args, settings, &mut std::io::stdout()).await,
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader of stdout went away (`| head`): what was asked for was written.
        Err(e) if e.is_broken_pipe() => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// `chat state`, writing to `out`.
pub async fn run_state(
    args: &StateArgs,
    settings: &service_kit::Settings,
    out: &mut impl Write,
) -> Result<(), AnalystError> {
    let Aggregate::Channel(args) = &args.aggregate;
    let id = state::channel_id(&args.id)?;
    let as_of = match &args.as_of {
        Some(text) => parse::time("--as-of", text)?,
        None => chrono::Utc::now(),
    };
    let source = LogSource::open(settings).await?;
    let state = state::channel_as_of(&source, id, as_of).await?;
    let written = if args.json {
        render::channel_json(out, &state)
    } else {
        render::channel_text(out, &state)
    };
    written
        .and_then(|()| out.flush())
        .map_err(AnalystError::Output)
}
