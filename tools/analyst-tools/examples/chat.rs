//! The analysts' commands mounted the way the `chat` binary mounts them
//! (`#[command(flatten)]`), so they can be tried before and apart from it:
//! `cargo run -p analyst-tools --example chat -- events --help`.

use clap::Parser;
use std::process::ExitCode;

/// An event-sourced chat backend (the analysts' commands only).
#[derive(Debug, Parser)]
#[command(name = "chat")]
struct Cli {
    #[command(subcommand)]
    command: analyst_tools::AnalystCommand,
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
    match runtime.block_on(analyst_tools::run(cli.command, &settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
