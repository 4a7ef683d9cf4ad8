//! The command line: flags, each also read from a `ZHENGYUN_IDP_*` variable, and the run until
//! SIGTERM or Ctrl-C.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jiff::SignedDuration;
use url::Url;

use crate::server::{self, Config};

/// A development OpenID Connect provider standing in for a district's single sign-on.
#[derive(Debug, Parser)]
#[command(name = "zhengyun-devidp", version)]
pub struct Args {
    /// Where to listen for HTTPS; port 0 picks a free port.
    #[arg(long, env = "ZHENGYUN_IDP_ADDR", default_value = "127.0.0.1:5556")]
    pub addr: SocketAddr,
    /// Certificates (ca.crt, tls.crt, tls.key), signing keys (keys/) and the issuer file.
    #[arg(long, env = "ZHENGYUN_IDP_STATE_DIR")]
    pub state_dir: PathBuf,
    /// The YAML file of users.
    #[arg(
        long,
        env = "ZHENGYUN_IDP_USERS",
        default_value = "tests/devidp/users.yaml"
    )]
    pub users: PathBuf,
    /// The issuer URL [default: https://127.0.0.1:<bound port>].
    #[arg(long, env = "ZHENGYUN_IDP_ISSUER", value_parser = parse_issuer)]
    pub issuer: Option<String>,
    /// The only client, and the audience of every token.
    #[arg(long, env = "ZHENGYUN_IDP_CLIENT_ID", default_value = "zhengyun")]
    pub client_id: String,
    /// How long a token is valid, such as 1h or 15m.
    #[arg(long, env = "ZHENGYUN_IDP_TOKEN_LIFETIME", default_value = "1h", value_parser = parse_lifetime)]
    pub token_lifetime: SignedDuration,
}

impl Args {
    /// Parses the command line and serves until told to stop.
    pub fn parse_and_run() -> ExitCode {
        let args = Self::parse();
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .init();
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!("unable to start the runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(args.run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{}", server::chain(&error));
                ExitCode::FAILURE
            }
        }
    }

    async fn run(self) -> crate::Result<()> {
        let running = server::start(Config {
            addr: self.addr,
            state_dir: self.state_dir,
            users_file: self.users,
            issuer: self.issuer,
            client_id: self.client_id,
            token_lifetime: self.token_lifetime,
        })
        .await?;
        stop_requested().await;
        tracing::info!("stopping");
        running.stop().await
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!("unable to watch for SIGTERM ({error}); stop with Ctrl-C");
            let _interrupted = tokio::signal::ctrl_c().await;
        }
    }
}

/// An issuer must be an https URL without query or fragment (OpenID Connect Discovery 3).
fn parse_issuer(text: &str) -> Result<String, String> {
    let url = Url::parse(text).map_err(|error| error.to_string())?;
    if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
        return Err("an issuer is an https URL without query or fragment".into());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

fn parse_lifetime(text: &str) -> Result<SignedDuration, String> {
    let lifetime: SignedDuration = text
        .parse()
        .map_err(|error: jiff::Error| error.to_string())?;
    if lifetime < SignedDuration::from_secs(1) {
        return Err("a token lifetime is at least one second".into());
    }
    Ok(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_read_in_friendly_units() {
        assert_eq!(parse_lifetime("1h"), Ok(SignedDuration::from_hours(1)));
        assert_eq!(parse_lifetime("15m"), Ok(SignedDuration::from_mins(15)));
        assert!(parse_lifetime("0s").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn an_issuer_is_https_without_query() {
        assert_eq!(
            parse_issuer("https://idp.example/"),
            Ok("https://idp.example".into())
        );
        assert!(parse_issuer("http://idp.example").is_err());
        assert!(parse_issuer("https://idp.example/?a=b").is_err());
    }

    #[test]
    fn the_flags_are_consistent() {
        use clap::CommandFactory as _;
        Args::command().debug_assert();
    }
}
