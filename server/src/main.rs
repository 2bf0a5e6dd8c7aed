//! `sipfleet`: run the console and its nodes, or credit an account from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use app::ssr::store::Audit;
use clap::{Parser, Subcommand};
use server::{config, ensure_operator, prepare, Server, OPERATOR_EMAIL};

#[derive(Parser)]
#[command(
    name = "sipfleet",
    version,
    about = "Deploy and run your own SIP servers from a web console"
)]
struct Cli {
    /// The settings file (Leptos options and sipfleet's own).
    #[arg(
        long,
        env = "SIPFLEET_CONFIG",
        default_value = "Leptos.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the console and run the nodes (the default).
    Serve,
    /// Credit a provider account's balance, as the operator (recorded in the audit log).
    Credit {
        /// Email of any user of the account.
        #[arg(long)]
        email: String,
        /// Amount in US dollars, e.g. 100 or 12.50.
        #[arg(long)]
        amount: String,
    },
}

/// mimalloc rather than the system's allocator: a node's threads allocate and free a
/// message's strings on every packet, and glibc's per-thread arenas spent a seventh of a
/// busy Dispatcher's CPU on it (bench/dispatcher.sh: 0.47 CPU-seconds per 1,000 calls
/// with glibc, 0.40 with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sipfleet: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (leptos_options, settings) = config::load(&cli.config).map_err(|e| e.to_string())?;
    let addr = leptos_options.site_addr;
    let state = prepare(leptos_options, settings)
        .await
        .map_err(|e| e.to_string())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            // For automated set-ups: the operator's first password from the environment.
            let initial = std::env::var("SIPFLEET_OPERATOR_PASSWORD")
                .ok()
                .filter(|p| p.len() >= 10);
            if let Some(password) = ensure_operator(&state.store, initial)
                .await
                .map_err(|e| e.to_string())?
            {
                println!(
                    "First run: the operator signs in as {OPERATOR_EMAIL} with password {password}"
                );
                println!("(shown this once; only its hash is stored)");
            }
            let server = Server::start(state, addr)
                .await
                .map_err(|e| e.to_string())?;
            println!("sipfleet console on http://{}", server.addr);
            server.task.await.map_err(|e| e.to_string())
        }
        Command::Credit { email, amount } => {
            let amount = app::model::Usd::parse(&amount).map_err(|e| e.to_string())?;
            let email = email.trim().to_lowercase();
            let account = state
                .store
                .account_of_email(&email)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user with email {email}"))?;
            let balance = state
                .store
                .credit(account, amount, |_| {
                    Audit::by_platform(
                        account,
                        "account.credit",
                        &email,
                        format!("{amount} by operator (command line)"),
                    )
                })
                .await
                .map_err(|e| e.to_string())?;
            println!("credited {amount} to {email}; balance now {balance}");
            Ok(())
        }
    }
}
