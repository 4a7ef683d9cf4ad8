//! `/healthz`, `/readyz` and `/metrics` on `--operator-addr`, served by every replica, leader or
//! standby, until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Serves the endpoints on `addr` until `stop` says so. A port that cannot be bound is logged:
/// the operator goes on without its endpoints rather than not at all.
pub(super) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render))
        .with_state(metrics);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, %addr, "unable to listen for health and metrics");
            return;
        }
    };
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "health and metrics server failed");
    }
}

/// Ready as soon as the process serves, leader or standby alike: a standby is ready to take
/// over, and a readiness that followed the Lease would keep every standby out of its Service
/// (no metrics scraped from it) and stall a rolling update waiting for it to become ready.
/// Which replica leads is `zhengyun_operator_leader` in `/metrics` and the Lease's holder.
async fn readyz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok")
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format
/// otherwise.
async fn render(
    State(metrics): State<Arc<Metrics>>,
    headers: HeaderMap,
) -> ([(HeaderName, &'static str); 1], String) {
    let (content_type, body) = if wants_openmetrics(&headers) {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render_prometheus(),
        )
    };
    ([(header::CONTENT_TYPE, content_type)], body)
}

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scraper_asking_for_openmetrics_gets_it() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
                .parse()
                .expect("header"),
        );
        assert!(wants_openmetrics(&headers));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
