//! `chat`: run the whole system, or one part of it, or an operator's or
//! analyst's tool. Data goes to stdout, logs and progress to stderr; the
//! exit code is 0 on success and non-zero with one clear line on failure.

mod connections;
mod embedded;
mod services;
mod tls;
mod up;

use clap::{Parser, Subcommand};

/// Frees and allocates for every frame and row: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// An event-sourced chat backend.
#[derive(Debug, Parser)]
#[command(name = "chat", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs everything in one process on one port: the web client at /,
    /// command API, relay, projector, query API and WebSocket gateway.
    /// Creates databases, exchanges and queues on first start. With
    /// CHAT_TLS_CERT and CHAT_TLS_KEY it serves HTTPS and WSS.
    Up(up::UpArgs),
    /// Runs the WebSocket gateway alone (with the command path for `send`).
    Gateway(up::UpArgs),
    #[command(flatten)]
    Operator(operator_tools::OperatorCommand),
    #[command(flatten)]
    Analyst(analyst_tools::AnalystCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match service_kit::Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    service_kit::init_tracing(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(settings, args, up::Role::Everything).await,
            Command::Gateway(args) => up::run(settings, args, up::Role::GatewayOnly).await,
            Command::Operator(command) => operator_tools::run(command, &settings).await,
            Command::Analyst(command) => analyst_tools::run(command, &settings).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
