//! The HTTP server over a real socket: slow or idle clients are cut off after the configured
//! timeout, and connections beyond the cap wait. No assertion is about elapsed time; the
//! outer timeouts only keep a failing test from hanging.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
};
use zhengyun_api::{AppState, ConnectionLimits, serve_on};
use zhengyun_store::Store;

/// Longer than any configured timeout here; reaching it means the server never acted.
const GUARD: Duration = Duration::from_secs(20);

async fn server(limits: ConnectionLimits) -> (SocketAddr, oneshot::Sender<()>) {
    let store = Store::in_memory().await.expect("store");
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    let client = kube::Client::try_from(config).expect("client");
    let state = AppState::new(store, client);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        serve_on(listener, &limits, state, shutdown)
            .await
            .expect("serve");
    });
    (addr, stop)
}

/// Everything the server sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut received))
        .await
        .expect("the server closed the connection")
        .expect("read");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_line_is_disconnected() {
    let (addr, _stop) = server(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 8,
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let received = until_closed(&mut stream).await;
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "{received}"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let (addr, _stop) = server(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 8,
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let received = until_closed(&mut stream).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
}

#[tokio::test]
async fn a_connection_beyond_the_cap_waits_for_one_to_close() {
    let (addr, _stop) = server(ConnectionLimits {
        header_read_timeout: Duration::from_secs(60),
        max_connections: 1,
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut first = TcpStream::connect(addr).await.expect("connect");
    first.write_all(request).await.expect("write");
    let mut buffer = [0u8; 12];
    tokio::time::timeout(GUARD, first.read_exact(&mut buffer))
        .await
        .expect("first answered")
        .expect("read");
    assert_eq!(&buffer, b"HTTP/1.1 200");

    let mut second = TcpStream::connect(addr).await.expect("connect");
    second.write_all(request).await.expect("write");
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the second connection was served while the first was open"
    );
    drop(first);
    tokio::time::timeout(GUARD, second.read_exact(&mut buffer))
        .await
        .expect("second answered once the first closed")
        .expect("read");
    assert_eq!(&buffer, b"HTTP/1.1 200");
}
