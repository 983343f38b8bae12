//! `ballast-agent`: the agent alone, for managed hosts (see the library's documentation).

use clap::Parser;

/// Ballast agent: runs the server's tasks on this host over mutual TLS.
#[derive(Parser)]
#[command(name = "ballast-agent", version)]
struct Cli {
    #[command(flatten)]
    agent: ballast_agent_bin::AgentArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ballast_agent_bin::tracing_init();
    match ballast_agent_bin::run(cli.agent) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballast-agent: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
