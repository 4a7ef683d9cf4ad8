//! Command line of the `zhengyun` binary: one subcommand per role of the process, and the
//! everyday API commands for bureau IT staff.

mod client;
mod commands;
mod http;
mod login;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Zhengyun (政云): quotas, environments and chargeback for a government private cloud.
#[derive(Debug, Parser)]
#[command(name = "zhengyun", version, about)]
pub struct Cli {
    /// Log format: `json` for production log pipelines, `text` for a terminal.
    #[arg(
        long,
        global = true,
        env = "ZHENGYUN_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(flatten)]
    common: commands::Common,
    #[command(subcommand)]
    command: Command,
}

/// How the process stops.
#[derive(Clone, Copy, Debug, clap::Args)]
struct ProcessArgs {
    /// Stop gracefully when standard input closes (for supervisors and test harnesses that
    /// hold a pipe to the process).
    #[arg(long, hide = true)]
    stop_on_stdin_eof: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once at start-up, so the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (for `kubectl apply -f -`).
    Crds,
    /// Print what holds tenants to their namespaces, cluster-wide: the tenant ClusterRoles and the
    /// admission policies with their bindings, as YAML (for `kubectl apply -f -`, after the CRDs).
    Policies,
    /// Print the API's OpenAPI 3.1 document as JSON.
    Openapi,
    /// Serve the control-plane HTTP API.
    Api {
        #[command(flatten)]
        api: zhengyun_api::ApiConfig,
        #[command(flatten)]
        database: zhengyun_store::DatabaseArgs,
        #[command(flatten)]
        zone: zhengyun_operator::metering::TimeZoneArgs,
        #[command(flatten)]
        clock: zhengyun_operator::metering::ClockArgs,
        #[command(flatten)]
        process: ProcessArgs,
    },
    /// Run the API and the operator in one process, for a laptop or a demo.
    Dev {
        #[command(flatten)]
        api: zhengyun_api::ApiConfig,
        /// (`--database-url` is shared: the API's tokens and audit log and the operator's
        /// ledger live in one database.)
        #[command(flatten)]
        operator: zhengyun_operator::OperatorConfig,
        #[command(flatten)]
        process: ProcessArgs,
    },
    /// Run the operator: admit environments and reconcile them into namespaces.
    Operator {
        #[command(flatten)]
        config: zhengyun_operator::OperatorConfig,
        #[command(flatten)]
        process: ProcessArgs,
    },
    #[command(flatten)]
    Client(commands::ApiCommand),
}

impl Cli {
    /// Parses the command line and runs the chosen subcommand.
    pub fn parse_and_run() -> ExitCode {
        let cli = Self::parse();
        match cli.run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Errors carry the server's words: shown escaped, line breaks kept.
                eprintln!("zhengyun: {}", terminal::lines(&format!("{e:#}")));
                ExitCode::FAILURE
            }
        }
    }

    fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crds => {
                print!("{}", zhengyun_model::crds_yaml());
                Ok(())
            }
            Command::Policies => {
                let roles = zhengyun_operator::cluster::tenant_roles()?;
                print!("{}", zhengyun_model::policies::yaml_stream(&roles));
                print!("{}", zhengyun_model::admission_policies_yaml());
                Ok(())
            }
            Command::Client(command) => runtime()?.block_on(command.run(self.common)),
            Command::Openapi => {
                print!("{}", zhengyun_api::openapi_json());
                Ok(())
            }
            Command::Api {
                api,
                database,
                zone,
                clock,
                process,
            } => {
                init_logging(self.log_format);
                runtime()?.block_on(async {
                    let store = zhengyun_store::Store::connect(&database.database_url).await?;
                    let state = api_state(store, &api, &zone.time_zone, clock.clock()).await?;
                    zhengyun_api::serve(&api, state, shutdown_signal(process.stop_on_stdin_eof))
                        .await?;
                    Ok(())
                })
            }
            Command::Dev {
                api,
                operator,
                process,
            } => {
                init_logging(self.log_format);
                runtime()?.block_on(async {
                    let store =
                        zhengyun_store::Store::connect(&operator.database.database_url).await?;
                    let state = api_state(
                        store.clone(),
                        &api,
                        &operator.metering.zone.time_zone,
                        operator.metering.clock.clock(),
                    )
                    .await?;
                    let client = kube::Client::try_default().await?;
                    let (stop, _) = tokio::sync::watch::channel(false);
                    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    };
                    let operator_task = async {
                        let result =
                            zhengyun_operator::run(client, operator, stopped(stop.subscribe()))
                                .await;
                        tracing::info!("the operator stopped");
                        result
                    };
                    let api_task = async {
                        let result =
                            zhengyun_api::serve(&api, state, stopped(stop.subscribe())).await;
                        tracing::info!("the API stopped");
                        result
                    };
                    let signal = async {
                        shutdown_signal(process.stop_on_stdin_eof).await;
                        let _ = stop.send(true);
                    };
                    let (operator_result, api_result, ()) =
                        tokio::join!(operator_task, api_task, signal);
                    operator_result?;
                    api_result?;
                    Ok(())
                })
            }
            Command::Operator { config, process } => {
                init_logging(self.log_format);
                operator_runtime()?.block_on(async {
                    let client = kube::Client::try_default().await?;
                    zhengyun_operator::run(
                        client,
                        config,
                        shutdown_signal(process.stop_on_stdin_eof),
                    )
                    .await
                })
            }
        }
    }
}

/// Connects the store and a cluster client with timeouts that suit an API: a request that
/// cannot reach the cluster fails in seconds with a 503 rather than hanging. The tenant limits
/// and the kubeconfig policy come from `api`.
async fn api_state(
    store: zhengyun_store::Store,
    api: &zhengyun_api::ApiConfig,
    time_zone: &str,
    clock: zhengyun_metering::Clock,
) -> anyhow::Result<zhengyun_api::AppState> {
    if !clock.is_system() {
        tracing::warn!(now = %clock.now(), "statements and usage run on a moved clock");
    }
    let calendar = zhengyun_metering::Calendar::new(time_zone)
        .map_err(|e| anyhow::anyhow!("unknown time zone {time_zone:?}: {e}"))?;
    let mut config = kube::Config::infer().await?;
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    // Longer than the API server keeps the API's watches open (they would fail when quiet).
    const IO_TIMEOUT_SECONDS: u32 = 15;
    const { assert!(zhengyun_api::cache::WATCH_SECONDS < IO_TIMEOUT_SECONDS) };
    let io_timeout = std::time::Duration::from_secs(IO_TIMEOUT_SECONDS.into());
    config.read_timeout = Some(io_timeout);
    config.write_timeout = Some(io_timeout);
    let kubeconfigs = api
        .kubeconfigs
        .policy(&config)
        .map_err(|e| anyhow::anyhow!("invalid kubeconfig settings: {e}"))?;
    let oidc = api
        .oidc()
        .map_err(|e| anyhow::anyhow!("invalid sign-in settings: {e}"))?;
    let client = kube::Client::try_from(config)?;
    Ok(
        zhengyun_api::AppState::with_time(store, client, calendar, clock)
            .with_limits(api.limits)
            .with_kubeconfig_policy(kubeconfigs)
            .with_oidc(oidc)
            .with_downloads_dir(api.downloads_dir.clone()),
    )
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The operator's runtime: one worker thread. The operator waits on the API server far more than
/// it computes (about a fifth of a core while converging 1,000 environments at full speed), and
/// a second worker mostly adds wake-ups and hand-overs between threads: with two, the kernel's
/// task switching was about a fifth of the operator's CPU.
fn operator_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZHENGYUN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_runtime=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C (or, if asked, when standard input closes).
async fn shutdown_signal(stdin_eof: bool) {
    let eof = async move {
        if !stdin_eof {
            return std::future::pending().await;
        }
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    };
    tokio::select! {
        _ = eof => {}
        _ = signals() => {}
    }
}

async fn signals() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_subcommand_has_unique_consistent_arguments() {
        Cli::command().debug_assert();
    }
}
