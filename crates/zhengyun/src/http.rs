//! The CLI's HTTPS client: the system's roots plus any `--ca-file`, through the proxy the usual
//! variables name (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, upper or lower case)
//! by `CONNECT`.

use std::{future::Future, path::PathBuf, pin::Pin, sync::Arc, task::Poll};

use anyhow::Context as _;
use http::Uri;
use hyper_util::{
    client::{
        legacy::{
            Client,
            connect::{HttpConnector, proxy::Tunnel},
        },
        proxy::matcher::Matcher,
    },
    rt::{TokioExecutor, TokioIo},
};
use tower_service::Service;

/// A client sending bodies of type `B`.
pub type HttpsClient<B> = Client<hyper_rustls::HttpsConnector<Connector>, B>;

/// Connects straight to the destination, or through the proxy the environment names for it.
#[derive(Clone, Debug)]
pub struct Connector {
    direct: HttpConnector,
    proxies: Arc<Matcher>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Uri> for Connector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        match self.proxies.intercept(&destination) {
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.direct.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move { Ok(tunnel.call(destination).await?) })
            }
            None => {
                let mut direct = self.direct.clone();
                Box::pin(async move { Ok(direct.call(destination).await?) })
            }
        }
    }
}

/// A client trusting the system's roots and the certificates in `ca_files`.
pub fn client<B>(ca_files: &[PathBuf]) -> anyhow::Result<HttpsClient<B>>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for path in ca_files {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("unable to read the CA file {}", path.display()))?;
        let mut added = 0;
        for cert in certs {
            let cert =
                cert.with_context(|| format!("the CA file {} is not PEM", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("a certificate in {} is unusable", path.display()))?;
            added += 1;
        }
        anyhow::ensure!(
            added > 0,
            "the CA file {} holds no certificate",
            path.display()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut direct = HttpConnector::new();
    direct.enforce_http(false);
    let connector = Connector {
        direct,
        proxies: Arc::new(Matcher::from_env()),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    fn connector(proxies: Matcher) -> Connector {
        let mut direct = HttpConnector::new();
        direct.enforce_http(false);
        Connector {
            direct,
            proxies: Arc::new(proxies),
        }
    }

    /// A proxy taking one `CONNECT`: it answers 200 and returns the request's head and the first
    /// five bytes sent through the tunnel.
    async fn one_tunnel(listener: TcpListener) -> (String, Vec<u8>) {
        let (mut socket, _) = listener.accept().await.expect("a connection");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket
                .read_exact(&mut byte)
                .await
                .expect("the request head");
            head.push(byte[0]);
        }
        socket
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .expect("the answer");
        let mut sent = vec![0u8; 5];
        socket.read_exact(&mut sent).await.expect("the tunnel");
        (String::from_utf8_lossy(&head).into_owned(), sent)
    }

    #[tokio::test]
    async fn an_https_api_is_reached_through_the_proxy_by_connect_with_the_proxys_credentials() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let proxy = tokio::spawn(one_tunnel(listener));
        let mut connector = connector(
            Matcher::builder()
                .https(format!("http://staff:s3cret@127.0.0.1:{port}"))
                .build(),
        );
        let stream = connector
            .call(Uri::from_static("https://zhengyun.haidian.gov.cn:8443/"))
            .await
            .expect("a tunnel");
        stream
            .into_inner()
            .write_all(b"hello")
            .await
            .expect("through the tunnel");
        let (head, sent) = proxy.await.expect("the proxy");
        assert!(
            head.starts_with("CONNECT zhengyun.haidian.gov.cn:8443 HTTP/1.1\r\n"),
            "{head}"
        );
        // staff:s3cret
        assert!(
            head.to_ascii_lowercase()
                .contains("proxy-authorization: basic c3rhzmy6cznjcmv0\r\n"),
            "{head}"
        );
        assert_eq!(sent, b"hello");
    }

    #[tokio::test]
    async fn a_destination_named_in_no_proxy_is_reached_directly() {
        let destination = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = destination.local_addr().expect("addr").port();
        // Nothing listens on the proxy's port: going through it would fail.
        let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let nowhere = unused.local_addr().expect("addr").port();
        drop(unused);
        let mut connector = connector(
            Matcher::builder()
                .all(format!("http://127.0.0.1:{nowhere}"))
                .no("127.0.0.1")
                .build(),
        );
        let uri: Uri = format!("https://127.0.0.1:{port}/").parse().expect("uri");
        let (connected, accepted) = tokio::join!(connector.call(uri), destination.accept());
        connected.expect("a direct connection");
        accepted.expect("the destination saw it");
    }
}
