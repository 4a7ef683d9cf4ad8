//! Starting and stopping the provider: the state directory, the socket, and the issuer file that
//! tells scripts the provider is ready.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::SignedDuration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::flows::Grants;
use crate::http::{self, AppState};
use crate::keys::KeyRing;
use crate::tls::{Peer, TlsFiles, TlsListener};
use crate::tokens::Issuer;
use crate::users::Directory;
use crate::{Error, Result, files};

/// How the provider is to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Certificates, signing keys and the issuer file live here.
    pub state_dir: PathBuf,
    /// The YAML file of users.
    pub users_file: PathBuf,
    /// The issuer URL; `https://<bound address>` when `None`.
    pub issuer: Option<String>,
    /// The only client, and the `aud` of every token.
    pub client_id: String,
    /// How long a token is valid.
    pub token_lifetime: SignedDuration,
}

/// A provider serving in the background of the current tokio runtime.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    issuer: String,
    ca_cert: PathBuf,
    issuer_file: PathBuf,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer URL, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The test authority's certificate, for clients to trust.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// Stops accepting connections, lets requests in progress finish, and removes the issuer
    /// file.
    pub async fn stop(self) -> Result<()> {
        let _already_stopping = self.stop.send(());
        let served = self
            .serving
            .await
            .unwrap_or_else(|joined| Err(std::io::Error::other(joined)));
        remove_issuer_file(&self.issuer_file)?;
        served.map_err(Error::Serve)
    }
}

/// Prepares the state directory, binds, and serves until [`Running::stop`].
///
/// Once this returns, `issuer` in the state directory holds the issuer URL and the provider
/// answers on it.
pub async fn start(config: Config) -> Result<Running> {
    files::ensure_dir(&config.state_dir)?;
    let issuer_file = config.state_dir.join("issuer");
    remove_issuer_file(&issuer_file)?;

    let tls = TlsFiles::in_dir(&config.state_dir);
    tls.ensure()?;
    let server_config = tls.server_config()?;
    let keys = KeyRing::open(&config.state_dir.join("keys"))?;
    let users = Directory::load(&config.users_file)?;

    let bind_error = |source| Error::Bind {
        addr: config.addr,
        source,
    };
    let tcp = TcpListener::bind(config.addr).await.map_err(bind_error)?;
    let addr = tcp.local_addr().map_err(bind_error)?;
    let issuer_url = config
        .issuer
        .map(|url| url.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| default_issuer(addr));
    let listener = TlsListener::new(tcp, server_config).map_err(bind_error)?;

    let state = AppState {
        issuer: Arc::new(Issuer {
            url: issuer_url.clone(),
            client_id: config.client_id,
            lifetime: config.token_lifetime,
        }),
        keys: Arc::new(keys),
        users: Arc::new(users),
        grants: Arc::new(Grants::default()),
    };
    tracing::info!(
        issuer = issuer_url,
        kid = state.keys.current().kid(),
        users = state.users.len(),
        "serving"
    );
    let app = http::app(state).into_make_service_with_connect_info::<Peer>();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _either_way = stopped.await;
            })
            .await
    });

    files::replace_atomically(&issuer_file, format!("{issuer_url}\n").as_bytes())?;
    Ok(Running {
        addr,
        issuer: issuer_url,
        ca_cert: tls.ca_cert,
        issuer_file,
        stop,
        serving,
    })
}

/// `https://` and the bound address, with a loopback address for an unspecified one.
fn default_issuer(addr: SocketAddr) -> String {
    let shown = match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, v4.port()))
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, v6.port()))
        }
        bound => bound,
    };
    format!("https://{shown}")
}

fn remove_issuer_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(files::io_error("remove", path, error))
        }
        _ => Ok(()),
    }
}

/// An error and its causes on one line, `outer: inner: innermost`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        line.push_str(": ");
        line.push_str(&inner.to_string());
        cause = inner.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_issuer_names_the_bound_loopback_address() {
        let issuer = |addr: &str| default_issuer(addr.parse().expect("a socket address"));
        assert_eq!(issuer("127.0.0.1:5556"), "https://127.0.0.1:5556");
        assert_eq!(issuer("0.0.0.0:40001"), "https://127.0.0.1:40001");
        assert_eq!(issuer("[::]:40001"), "https://[::1]:40001");
    }
}
