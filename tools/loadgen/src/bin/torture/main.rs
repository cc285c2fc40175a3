//! `torture`: faults under load, judged by a history checker (RELIABILITY.md).
//!
//! Starts a PostgreSQL cluster, a RabbitMQ node and a Redis server of its
//! own, two `chat up --no-projector` instances and a standalone `projector`
//! on them; drives steady load (senders that retry on the other instance
//! with the same key, edits, deletes, read pointers, joins and kicks, socket
//! clients that resume by `after_seq`); injects every fault in a seeded
//! order; waits for quiet; then checks the history against the log, the
//! broker, the read model and its fold. Prints a table, exits 1 on any
//! violation with the seed and the history that shows it.

mod api;
mod faults;
mod judge;
mod load;
mod observe;
mod procs;
mod run;
mod services;
mod sockets;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Faults under load, judged by a history checker.
#[derive(Debug, Parser)]
#[command(name = "torture")]
pub struct Args {
    /// Seconds of load with faults (every fault at least once); the quiet
    /// wait and the checks come after. CI's short run: 180; the long run: 1800.
    #[arg(long, default_value_t = 180)]
    pub seconds: u64,
    /// The seed of the fault order and the load's choices (printed; pass it
    /// again to replay the same schedule).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The `chat` binary (default: `chat` beside this one, e.g. target/debug/chat).
    #[arg(long, env = "TORTURE_CHAT_BIN")]
    pub chat: Option<PathBuf>,
    /// The `projector` binary (default: `projector` beside this one).
    #[arg(long, env = "TORTURE_PROJECTOR_BIN")]
    pub projector: Option<PathBuf>,
    /// Sending users (each also holds a socket, on alternate instances).
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("torture: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        tokio::select! {
            result = run::run(args) => result,
            // Dropping the run drops its guards: processes and services go.
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("torture: {e:#}");
            ExitCode::from(2)
        }
    }
}
