//! Command line of the `zhengyun` binary: one subcommand per role of the process.

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
    #[command(subcommand)]
    command: Command,
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
    /// Run the operator: admit environments and reconcile them into namespaces.
    Operator {
        #[command(flatten)]
        config: zhengyun_operator::OperatorConfig,
        /// Stop gracefully when standard input closes (for supervisors and test harnesses that
        /// hold a pipe to the process).
        #[arg(long, hide = true)]
        stop_on_stdin_eof: bool,
    },
}

impl Cli {
    /// Parses the command line and runs the chosen subcommand.
    pub fn parse_and_run() -> ExitCode {
        let cli = Self::parse();
        match cli.run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zhengyun: {e:#}");
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
            Command::Operator {
                config,
                stop_on_stdin_eof,
            } => {
                init_logging(self.log_format);
                runtime()?.block_on(async {
                    let client = kube::Client::try_default().await?;
                    zhengyun_operator::run(client, config, shutdown_signal(stop_on_stdin_eof)).await
                })
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
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
