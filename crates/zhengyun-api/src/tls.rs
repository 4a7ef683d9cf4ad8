//! Serving the API over TLS from a certificate and key on disk (`--tls-cert-file`,
//! `--tls-key-file`), reloaded when the files change: a certificate renewed by cert-manager or
//! an operator's script is served within [`RELOAD_INTERVAL`], without a restart. A change that
//! cannot be loaded (a half-written file, a key that does not match) is logged and the
//! certificate in service stays.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use rustls::{
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// How often the files are looked at.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The certificate and key files.
#[derive(Clone, Debug, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate chain to serve the API over TLS with (with `--tls-key-file`); plain HTTP
    /// when absent. Reloaded when the file changes.
    #[arg(long, env = "ZHENGYUN_API_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "ZHENGYUN_API_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

/// The certificate in service, replaced when the files change.
#[derive(Debug)]
pub struct Reloading {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Vec<u8>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1
                .clone(),
        )
    }
}

/// The files' bytes, read together.
fn read_pair(cert: &Path, key: &Path) -> Result<Vec<u8>, String> {
    let mut both = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    both.extend(std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?);
    Ok(both)
}

fn certified(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::from_der(chain, private, provider)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(certified))
}

impl Reloading {
    /// Loads the pair; fails if it cannot be used.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bytes = read_pair(cert_file, key_file)?;
        let key = certified(cert_file, key_file, &provider)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new((bytes, key)),
        }))
    }

    /// Loads the files again if they changed; returns whether a new certificate is in service.
    pub fn reload(&self) -> bool {
        let Ok(bytes) = read_pair(&self.cert_file, &self.key_file) else {
            return false;
        };
        if self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            == bytes
        {
            return false;
        }
        match certified(&self.cert_file, &self.key_file, &self.provider) {
            Ok(key) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = (bytes, key);
                tracing::info!(cert = %self.cert_file.display(), "serving the renewed TLS certificate");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "the changed TLS certificate cannot be used; the one in service stays");
                false
            }
        }
    }

    /// A TLS acceptor serving the certificate in service (HTTP/1.1).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Looks at the files every [`RELOAD_INTERVAL`] for as long as it runs.
    pub async fn watch(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(RELOAD_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.reload();
        }
    }
}

impl TlsArgs {
    /// The certificate to serve, if TLS is asked for.
    pub fn load(&self) -> Result<Option<Arc<Reloading>>, String> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Reloading::load(cert, key).map(Some),
            (None, None) => Ok(None),
            _ => Err("--tls-cert-file and --tls-key-file go together".to_owned()),
        }
    }
}
