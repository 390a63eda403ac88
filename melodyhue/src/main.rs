//! `melodyhue`: the MelodyHue server and its small administration commands.

mod color_command;
mod logging;

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use melodyhue_core::App;
use melodyhue_core::config::{self, Config};
use melodyhue_core::model::Role;
use melodyhue_core::secrets::SecretBox;
use melodyhue_core::service::Error;

/// mimalloc rather than the system allocator: under a cluster's polling load, glibc's malloc and
/// free took about 30% of a node's CPU (perf, the 3-node bench at a 3 s interval); see
/// docs/DECISIONS.md, "Several nodes".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "melodyhue",
    version,
    about = "MelodyHue: Spotify now-playing colors for stream overlays",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Plain `melodyhue` means `melodyhue serve`, with the same options.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve(ServeArgs),
    /// Give an account a role, in the configured database (this is how the first admin is made).
    Promote {
        /// The account's e-mail address.
        email: String,
        /// The new role.
        #[arg(long, value_parser = PossibleValuesParser::new(["admin", "moderator", "user"])
            .try_map(|role| role.parse::<Role>()))]
        role: Role,
    },
    /// Print a fresh SECRET_KEY and Fernet ENCRYPTION_KEY as `.env` lines. Needs no
    /// configuration.
    GenKeys,
    /// Ask the server configured by HOST and PORT for `/health`: status 0 when it answers
    /// `200`, 1 otherwise (the Docker HEALTHCHECK).
    HealthCheck,
    /// Print the classic color, the palette and a text color of image files (JPEG, PNG, WebP)
    /// or of the images in folders: one tab-separated line per image, or one JSON object with
    /// `--json`. Needs no configuration.
    Color(color_command::ColorArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The HTTP server library that serves the API; both serve the same contract.
    // The value name is the variable's, so a bad value's one-line error names both.
    #[arg(
        long,
        value_enum,
        env = "MELODYHUE_FRONTEND",
        value_name = "MELODYHUE_FRONTEND",
        default_value_t = Frontend::Warp
    )]
    frontend: Frontend,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Frontend {
    /// warp (`melodyhue-warp`).
    Warp,
    /// hyper without a framework (`melodyhue-hyper`).
    Hyper,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Read first: it loads `.env`, which may set MELODYHUE_FRONTEND for the command line.
    let config = Config::from_env();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return command_line_error(&err),
    };
    match &cli.command {
        Some(Command::Color(args)) => return color_command::run(args),
        Some(Command::GenKeys) => return gen_keys(),
        _ => {}
    }
    let mut config = match config {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    if let Some(Command::HealthCheck) = &cli.command {
        return health_check(&config).await;
    }
    if let Err(message) = logging::init(&config) {
        eprintln!("melodyhue: {message}");
        return ExitCode::from(2);
    }
    if let Err(err) = config.ensure_secrets() {
        return fail(&err);
    }
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve(config, args.frontend).await,
        Command::Promote { email, role } => promote(config, &email, role).await,
        Command::Color(args) => color_command::run(&args),
        Command::GenKeys => gen_keys(),
        Command::HealthCheck => health_check(&config).await,
    }
}

/// `melodyhue gen-keys`: `.env` lines with fresh secrets.
fn gen_keys() -> ExitCode {
    println!("SECRET_KEY={}", config::generate_secret_key());
    println!("ENCRYPTION_KEY={}", SecretBox::generate_key());
    ExitCode::SUCCESS
}

/// How long `melodyhue health-check` waits for `/health`.
const HEALTH_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `melodyhue health-check`: `GET /health` on the configured address (a wildcard address is
/// asked on loopback).
async fn health_check(config: &Config) -> ExitCode {
    let host = match config.host.trim_start_matches('[').trim_end_matches(']') {
        "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        host => host,
    };
    let url = if host.contains(':') {
        format!("http://[{host}]:{}/health", config.port)
    } else {
        format!("http://{host}:{}/health", config.port)
    };
    let client = match reqwest::Client::builder()
        .timeout(HEALTH_CHECK_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(err) => return fail(&err),
    };
    match client.get(&url).send().await {
        Ok(response) if response.status() == 200 => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("melodyhue: {url} answered {}", response.status());
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("melodyhue: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as usual; a mistake is one line on stderr.
fn command_line_error(err: &clap::Error) -> ExitCode {
    if !err.use_stderr() {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    // The first paragraph is the error itself; usage and hints follow a blank line.
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let message = message.join(" ");
    fail(&message.strip_prefix("error: ").unwrap_or(&message))
}

fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("melodyhue: {err}");
    ExitCode::from(2)
}

async fn serve(config: Config, frontend: Frontend) -> ExitCode {
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
    // The port actually bound, which differs from the configured one when PORT is 0.
    let address = listener
        .local_addr()
        .map_or(address, |bound| bound.to_string());
    tracing::info!(
        %address,
        ?frontend,
        node_id = %app.config().node_id,
        cluster = app.cluster().is_some(),
        "MelodyHue listening"
    );
    let _jobs = app.jobs().spawn_background_jobs();
    match frontend {
        Frontend::Warp => melodyhue_warp::serve(app, listener, shutdown_signal()).await,
        Frontend::Hyper => melodyhue_hyper::serve(app, listener, shutdown_signal()).await,
    }
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
    match app.moderation().promote(email, role).await {
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
