//! HTTPS: a test authority and a serving certificate for the loopback addresses, made once in the
//! state directory and reused on later starts so clients that trust `ca.crt` keep working, and a
//! listener that completes TLS handshakes before axum sees a connection.
//!
//! The authority's private key is never written down: once the serving certificate is signed,
//! nothing else can be made that clients of `ca.crt` would trust.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::{Error, Result, files};

/// The names the serving certificate is valid for.
const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// How long a client may take over its handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificates of a state directory are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The test authority's certificate (PEM), for clients to trust.
    pub ca_cert: PathBuf,
    /// The serving certificate (PEM).
    pub cert: PathBuf,
    /// The serving certificate's private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files of the state directory `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    /// Makes the authority and the serving certificate unless an earlier start made them.
    ///
    /// `ca.crt` is written last, so its presence means the other two are whole.
    pub fn ensure(&self) -> Result<()> {
        if self.ca_cert.exists() {
            return match (self.cert.exists(), self.key.exists()) {
                (true, true) => Ok(()),
                _ => Err(Error::Certificate {
                    action: "load",
                    reason: format!(
                        "{} exists but the serving certificate or key beside it does not; \
                         delete it to make a new authority",
                        self.ca_cert.display()
                    ),
                }),
            };
        }
        let made = issue().map_err(|error| Error::Certificate {
            action: "make",
            reason: error.to_string(),
        })?;
        if self.key.exists() {
            std::fs::remove_file(&self.key)
                .map_err(|source| files::io_error("remove the stale", &self.key, source))?;
        }
        files::create_private(&self.key, made.key.as_bytes())?;
        files::replace_atomically(&self.cert, made.cert.as_bytes())?;
        files::replace_atomically(&self.ca_cert, made.ca_cert.as_bytes())
    }

    /// The rustls configuration serving the certificate, HTTP/1.1 only.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let unusable = |reason: String| Error::Certificate {
            action: "load",
            reason,
        };
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|error| unusable(format!("{}: {error}", self.cert.display())))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|error| unusable(format!("{}: {error}", self.key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|error| unusable(error.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// PEM texts of a new authority's certificate and of a serving certificate and key it signed.
struct Issued {
    ca_cert: String,
    cert: String,
    key: String,
}

fn issue() -> Result<Issued, rcgen::Error> {
    let year = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .year();
    let valid = |params: &mut CertificateParams| {
        params.not_before = rcgen::date_time_ymd(i32::from(year) - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(i32::from(year) + 10, 1, 1);
    };

    let mut authority = CertificateParams::default();
    authority.distinguished_name.push(
        DnType::CommonName,
        "Zhengyun development identity provider authority",
    );
    authority.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    valid(&mut authority);
    let authority_key = KeyPair::generate()?;
    let ca_cert = authority.self_signed(&authority_key)?;

    let mut server = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "zhengyun-devidp");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    valid(&mut server);
    let server_key = KeyPair::generate()?;
    let cert = server.signed_by(&server_key, &Issuer::new(authority, authority_key))?;

    Ok(Issued {
        ca_cert: ca_cert.pem(),
        cert: cert.pem(),
        key: server_key.serialize_pem(),
    })
}

/// The address of the client at the other end of a connection, for handlers that answer only
/// to loopback clients.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Peer {
    /// Whether the client is on this machine (an IPv4-mapped loopback address counts).
    pub fn is_loopback(&self) -> bool {
        self.0.ip().to_canonical().is_loopback()
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// Accepts TCP connections and hands on those whose TLS handshake completed. Handshakes run in
/// tasks of their own, so a slow client holds up nobody else.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    handshaken: mpsc::Receiver<Accepted>,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `config` on the connections of `tcp`.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (sender, handshaken) = mpsc::channel(64);
        let accepting = tokio::spawn(accept(tcp, TlsAcceptor::from(config), sender));
        Ok(Self {
            local,
            handshaken,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // Only when the accepting task is gone, that is while the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept(tcp: TcpListener, acceptor: TlsAcceptor, handshaken: mpsc::Sender<Accepted>) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Mostly running out of file descriptors: wait for some to be closed.
                tracing::warn!("unable to accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _closed = handshaken.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::info!(%peer, "TLS handshake failed: {error}"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = TlsFiles::in_dir(dir.path());
        files.ensure().expect("certificates are made");
        let first = std::fs::read(&files.ca_cert).expect("ca.crt exists");
        files.ensure().expect("certificates are reused");
        assert_eq!(std::fs::read(&files.ca_cert).expect("ca.crt exists"), first);
        files
            .server_config()
            .expect("the serving certificate loads");
    }

    #[test]
    fn the_serving_key_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = TlsFiles::in_dir(dir.path());
        files.ensure().expect("certificates are made");
        let mode = std::fs::metadata(&files.key)
            .expect("tls.key exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn loopback_peers_are_told_apart_from_others() {
        let peer = |address: &str| Peer(address.parse().expect("a socket address"));
        assert!(peer("127.0.0.1:40000").is_loopback());
        assert!(peer("[::1]:40000").is_loopback());
        assert!(peer("[::ffff:127.0.0.1]:40000").is_loopback());
        assert!(!peer("10.0.0.7:40000").is_loopback());
        assert!(!peer("[::ffff:10.0.0.7]:40000").is_loopback());
    }
}
