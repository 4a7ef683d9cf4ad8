//! Command line of the `zhengyun` binary: one subcommand per role of the process.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Zhengyun (政云): quotas, environments and chargeback for a government private cloud.
#[derive(Debug, Parser)]
#[command(name = "zhengyun", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (for `kubectl apply -f -`).
    Crds,
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
                print!("{}", zhengyun_model::crds_yaml()?);
                Ok(())
            }
        }
    }
}
