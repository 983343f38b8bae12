//! `ballast`: the one binary. Each subcommand lives in its own module; this file only parses the
//! command line, dispatches, and turns errors into exit codes (0 success, 1 a `--fail-under`
//! threshold not met or a negative answer, 2 bad input or an error).

mod assess_cmd;
mod calendar_cmd;
mod catalog_cmd;
mod cmdb_cmd;
mod exec_cmd;
mod output;
mod server_cmd;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ballast",
    version,
    about = "Ballast — operation automation for securities and fund firms, and the maturity model of its standard",
    long_about = None
)]
struct Cli {
    /// Load another edition of the maturity catalog (same format as data/catalog/) instead of the bundled one.
    #[arg(long, global = true, env = "BALLAST_CATALOG", value_name = "FILE")]
    catalog: Option<PathBuf>,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Browse and export the maturity catalog (the standard's tables 4–49).
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCmd),
    /// Offline assessments: answer templates and scoring.
    #[command(subcommand)]
    Assess(assess_cmd::AssessCmd),
    /// Exchange trading calendars: trading days, sessions, schedules, data import.
    #[command(subcommand)]
    Calendar(calendar_cmd::CalendarCmd),
    /// Run the platform server (SQLite in --data-dir by default, or --database postgres://…).
    Serve(server_cmd::ServeArgs),
    /// Administration on the data directory or database: users, tokens, export/import.
    #[command(subcommand)]
    Admin(server_cmd::AdminCmd),
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(server_cmd::AuditCmd),
    /// Run an ad-hoc command on hosts through a server; one status line per host, exit 0 only if
    /// every host succeeded.
    Exec(exec_cmd::ExecArgs),
    /// Job plans on a server.
    #[command(subcommand)]
    Job(exec_cmd::JobCmd),
    /// The agent on a managed host: enrols once with a token, then keeps one outbound mutual-TLS
    /// connection to the server and runs the tasks it receives.
    Agent(ballast_agent_bin::AgentArgs),
    /// The CMDB on a server: import a spreadsheet, query instances.
    #[command(subcommand)]
    Cmdb(cmdb_cmd::CmdbCmd),
    /// Print the version.
    Version,
}

/// An error whose message has already been written for the user, with the exit code to return.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

fn run(cli: Cli) -> anyhow::Result<u8> {
    // Long-running commands must not hold the stdout lock: their worker threads log, and a
    // worker blocked on the lock would stall whatever it was doing.
    let cli = match cli.cmd {
        Cmd::Serve(args) => return server_cmd::run_serve(args),
        Cmd::Agent(args) => return exec_cmd::run_agent(args),
        other => Cli { cmd: other, ..cli },
    };
    let mut stdout = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Catalog(cmd) => catalog_cmd::run(cmd, cli.catalog.as_deref(), &mut stdout),
        Cmd::Assess(cmd) => assess_cmd::run(cmd, cli.catalog.as_deref(), &mut stdout),
        Cmd::Calendar(cmd) => {
            calendar_cmd::run(cmd, &mut stdout).map(|c| u8::try_from(c).unwrap_or(2))
        }
        Cmd::Serve(args) => server_cmd::run_serve(args),
        Cmd::Admin(cmd) => server_cmd::run_admin(cmd, &mut stdout),
        Cmd::Audit(cmd) => server_cmd::run_audit(cmd, &mut stdout),
        Cmd::Exec(args) => exec_cmd::run_exec(args, &mut stdout),
        Cmd::Job(cmd) => exec_cmd::run_job(cmd, &mut stdout),
        Cmd::Agent(args) => exec_cmd::run_agent(args),
        Cmd::Cmdb(cmd) => cmdb_cmd::run(cmd, &mut stdout),
        Cmd::Version => {
            writeln!(stdout, "ballast {}", env!("CARGO_PKG_VERSION"))?;
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            // A closed pipe (`ballast … | head`) is not an error worth a message.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("错误 error: {e:#}");
            ExitCode::from(2)
        }
    }
}
