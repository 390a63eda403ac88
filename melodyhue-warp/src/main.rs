//! `melodyhue`: the MelodyHue server and its small administration commands.

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Parser, Subcommand};
use melodyhue_core::App;
use melodyhue_core::config::{Config, LogFormat};
use melodyhue_core::model::Role;
use melodyhue_core::service::Error;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "melodyhue",
    version,
    about = "MelodyHue: Spotify now-playing colors for stream overlays"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Give an account a role, in the configured database (this is how the first admin is made).
    Promote {
        /// The account's e-mail address.
        email: String,
        /// The new role.
        #[arg(long, value_parser = PossibleValuesParser::new(["admin", "moderator", "user"])
            .try_map(|role| role.parse::<Role>()))]
        role: Role,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    if let Err(message) = init_logging(&config) {
        eprintln!("melodyhue: {message}");
        return ExitCode::from(2);
    }
    if let Err(err) = config.ensure_secrets() {
        return fail(&err);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Promote { email, role } => promote(config, &email, role).await,
    }
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("melodyhue: {err}");
    ExitCode::from(2)
}

fn init_logging(config: &Config) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(&config.log_level).map_err(|err| format!("invalid LOG_LEVEL: {err}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn serve(config: Config) -> ExitCode {
    let address = config.listen_address();
    let app = match App::connect(config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = %err, "cannot start");
            eprintln!("melodyhue: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&address).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("melodyhue: cannot listen on {address}: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%address, "MelodyHue listening");
    let _jobs = app.spawn_background_jobs();
    melodyhue_warp::serve(app, listener, shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

async fn promote(config: Config, email: &str, role: Role) -> ExitCode {
    let app = match App::connect(config).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("melodyhue: {err}");
            return ExitCode::FAILURE;
        }
    };
    match app.promote(email, role).await {
        Ok(user) => {
            println!("{} ({}) is now {role}", user.email, user.username);
            ExitCode::SUCCESS
        }
        Err(Error::NotFound(_)) => {
            eprintln!("melodyhue: no account has the e-mail address {email:?}");
            ExitCode::FAILURE
        }
        Err(Error::Rejected(_)) => {
            eprintln!(
                "melodyhue: {email} is the last admin; promote another account to admin first"
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("melodyhue: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
