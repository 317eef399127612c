//! `runledger-local`: runledger in one process over an embedded database.

use clap::{Parser, Subcommand};
use runledger::settings::{
    AwsSettings, BACKEND, DATA_DIR, DEFAULT_BACKEND, DEFAULT_DATA_DIR, DEFAULT_LISTEN,
    JwtVariables, LISTEN, LocalSettings, LogSettings, env_var,
};
use runledger_local::config::{self, MissingSecret};
use runledger_local::runtime::{LocalRuntime, RuntimeSettings, StoreLocation};
use runledger_local::server::{self, Limits};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// jemalloc instead of glibc's malloc, whose arenas took a fifth of the server's CPU: 27 %
/// more step reports/s over HTTP (README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its first allocation (`_RJEM_MALLOC_CONF` adds to them): freed
/// pages go back to the system after about a second, by a thread of its own so also when the
/// server is idle, which keeps the peak RSS where glibc's was instead of half again above it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &u8 = &b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

#[derive(Parser)]
#[command(
    name = "runledger-local",
    version,
    about = "runledger in one process, no AWS needed",
    // `serve` is the default: its flags work without it, but not before another subcommand.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, run the built-in runner and the timeout sweep (the default).
    Serve(ServeArgs),
    /// Print a bearer token signed with the local secret.
    Token(TokenArgs),
    /// Measure the engine: starts, step reports, latency, visibility, memory.
    Bench(runledger_local::bench::BenchArgs),
    /// Print the OpenAPI document, generated from the handlers (what `/api/v1/openapi.json`
    /// serves).
    Openapi,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = LISTEN, default_value = DEFAULT_LISTEN)]
    listen: String,
    #[command(flatten)]
    data_dir: DataDir,
    /// `embedded` (one database file, nothing else needed) or `aws` (DynamoDB, SQS and
    /// EventBridge named by the RUNLEDGER_ variables; AWS_ENDPOINT_URL for an emulator).
    #[arg(long, env = BACKEND, default_value = DEFAULT_BACKEND)]
    backend: String,
    /// With `--backend aws`: create the table, queues and bus (named after
    /// `--resource-prefix`) when they do not exist, instead of reading their names.
    #[arg(long)]
    create_resources: bool,
    /// The name of the table and bus, and the prefix of the queues, that
    /// `--create-resources` creates.
    #[arg(long, default_value = "runledger")]
    resource_prefix: String,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The user the token is for (`sub`).
    #[arg(long, default_value = "local")]
    sub: String,
    /// Grant the `admin` role (sees every user's data).
    #[arg(long)]
    admin: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    #[command(flatten)]
    data_dir: DataDir,
}

/// One definition for `serve` and `token`, so that `token` finds the secret `serve` made.
#[derive(clap::Args)]
struct DataDir {
    /// Where the database and the JWT secret live (`serve` creates the secret on first start).
    #[arg(long = "data-dir", env = DATA_DIR, default_value = DEFAULT_DATA_DIR)]
    path: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    // The bench measures the engine, not the terminal: only warnings unless asked.
    let quiet = matches!(command, Command::Bench(_) | Command::Openapi);
    init_logging(if quiet { "warn" } else { "info" });
    runledger::crypto::install();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve(args) => serve(args).await,
            Command::Token(args) => token(args),
            Command::Bench(args) => runledger_local::bench::run(args).await,
            Command::Openapi => {
                print!("{}", runledger::api::openapi::document_text());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("runledger-local: {message}");
    ExitCode::FAILURE
}

fn init_logging(default_level: &str) {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let log = LogSettings::from_vars(&env_var);
    let filter = log.targets(None, default_level);
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let registry = tracing_subscriber::registry().with(filter);
    if log.json {
        registry.with(text.json()).init();
    } else {
        registry.with(text).init();
    }
}

/// Colour escapes only where a person reads them: on a terminal, unless `NO_COLOR` is set to
/// anything but empty (no-color.org). A log file or a pipe gets plain text.
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let jwt = config::jwt_settings(
        JwtVariables::from_vars(&env_var),
        &args.data_dir.path,
        MissingSecret::Create,
    )?;
    let local = LocalSettings::from_vars(&env_var)?;
    let settings = RuntimeSettings {
        jwt,
        workers: local.workers as usize,
        sweep_interval: Duration::from_millis(local.sweep_interval_ms),
        allow_private_targets: local.allow_private_targets,
        analytics: true,
    };
    let limits = connection_limits(settings.workers, &args.backend);
    std::fs::create_dir_all(&args.data_dir.path)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.path.display()))?;
    // Listen before the runtime starts: its recovery may run built-in work at once, and a
    // step aimed at this very server (the demo target) must find the port taken, not closed.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let runtime = match args.backend.as_str() {
        "embedded" => {
            let database = config::database_path(&args.data_dir.path);
            LocalRuntime::start(StoreLocation::File(&database), settings).await?
        }
        "aws" => {
            let sdk = runledger::aws::sdk_config().await;
            let aws = if args.create_resources {
                runledger::aws::backend::AwsBackend::create_resources(&sdk, &args.resource_prefix)
                    .await?
            } else {
                AwsSettings::from_env()?
            };
            tracing::info!(table = %aws.table, bus = %aws.event_bus, "using AWS resources");
            LocalRuntime::start_aws(
                runledger::aws::backend::AwsBackend::following_the_log(&sdk, aws),
                settings,
            )
            .await?
        }
        other => return Err(format!("--backend must be embedded or aws, not `{other}`")),
    };
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let token = runtime.auth.issue("local", false, 12 * 3600);
    println!(
        "runledger-local listening on http://{address}/api/v1 (data in {})",
        args.data_dir.path.display()
    );
    println!("token for user `local` (12 h): {token}");
    // The token goes in the fragment, which the browser never sends: the dashboard keeps it
    // in sessionStorage and clears it from the address bar.
    println!("dashboard (signs you in as `local`): http://{address}/#token={token}");
    println!("export RUNLEDGER_URL=http://{address}/api/v1 RUNLEDGER_TOKEN={token}");
    server::serve(listener, runtime.router.clone(), limits, shutdown_signal()).await;
    runtime.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// The connection cap the open-file limit allows, after raising it as far as it goes.
fn connection_limits(workers: usize, backend: &str) -> Limits {
    let open_files = server::raise_open_file_limit();
    // On AWS a request being answered may hold an outgoing connection too.
    let files_per_connection = if backend == "aws" { 2 } else { 1 };
    let limits = Limits::within_open_files(
        open_files,
        server::reserved_files(workers),
        files_per_connection,
    );
    if limits.max_connections < server::MAX_CONNECTIONS {
        tracing::warn!(
            open_files,
            max_connections = limits.max_connections,
            "the open-file limit (ulimit -n) leaves room for fewer connections than {}",
            server::MAX_CONNECTIONS
        );
    }
    limits
}

fn token(args: TokenArgs) -> Result<(), String> {
    let settings = config::jwt_settings(
        JwtVariables::from_vars(&env_var),
        &args.data_dir.path,
        MissingSecret::Refuse,
    )?;
    let auth = runledger::auth::Authenticator::new(settings).map_err(|e| e.to_string())?;
    println!("{}", auth.issue(&args.sub, args.admin, args.ttl));
    Ok(())
}

async fn shutdown_signal() {
    runledger_local::runtime::stop_signal().await;
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }
}
