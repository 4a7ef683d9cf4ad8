//! The API in-process (`app().oneshot(...)`) over the devcluster and a fresh SQLite store, as a
//! test harness: each test gets its own store and tokens, and shares the cluster and operator.

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use zhengyun_api::{
    AppState, app,
    limit::{AuthLimit, FailedAuthLimiter},
};
use zhengyun_metering::Clock;
use zhengyun_store::{Role, Store};

/// An API over the devcluster with its own store.
#[derive(Clone, Debug)]
pub struct Api {
    app: Router,
    state: AppState,
    /// The store behind it.
    pub store: Store,
    /// A platform-admin token.
    pub admin: String,
}

/// One answer: status and JSON body (`Null` when empty).
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
    /// The `Content-Type` (empty when there is none).
    pub content_type: String,
}

impl Answer {
    /// Asserts that this is a problem+json answer of status `want` (its `Content-Type`
    /// `application/problem+json`, its body with a `detail`); `what` names the call.
    pub fn assert_problem(&self, want: StatusCode, what: &str) {
        assert_eq!(self.status, want, "{what}: {}", self.body);
        assert_eq!(
            self.content_type.split(';').next().map(str::trim),
            Some("application/problem+json"),
            "{what}: the Content-Type of {}",
            self.body
        );
        assert_eq!(self.body["status"], want.as_u16(), "{what}: {}", self.body);
        assert!(
            self.body["detail"].is_string(),
            "{what}: no problem+json detail in {}",
            self.body
        );
    }

    /// The body as the contract's type `T` (`zhengyun_contract`).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.body.clone()).map_err(|e| {
            anyhow::anyhow!("{} is not a {}: {e}", self.body, std::any::type_name::<T>())
        })
    }
}

impl Api {
    /// A fresh API: in-memory store, bootstrap admin token, operator running.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_store(Store::in_memory().await?).await
    }

    /// An API over `store` (e.g. the operator's ledger), with a bootstrap admin token.
    pub async fn start_with_store(store: Store) -> anyhow::Result<Self> {
        Self::start_with_clock(store, crate::clock()).await
    }

    /// A fresh API whose bureaus may take no more than `limits`.
    pub async fn start_with_limits(limits: zhengyun_api::TenantLimits) -> anyhow::Result<Self> {
        Self::start_with(Store::in_memory().await?, crate::clock(), limits).await
    }

    /// An API over `store` whose "now" is `clock`'s.
    pub async fn start_with_clock(store: Store, clock: Clock) -> anyhow::Result<Self> {
        Self::start_with(store, clock, zhengyun_api::TenantLimits::default()).await
    }

    /// An API over `store` whose "now" is `clock`'s and whose bureaus may take no more than
    /// `limits`.
    pub async fn start_with(
        store: Store,
        clock: Clock,
        limits: zhengyun_api::TenantLimits,
    ) -> anyhow::Result<Self> {
        crate::operator::ensure_operator().await?;
        let admin = format!("e2e-platform-admin-{}", crate::unique_name("token"));
        store.bootstrap_admin(&admin).await?;
        let client = crate::client().await?;
        let cluster = kube::Config::infer().await?;
        // Every call here comes from one (absent) address, and the authorization matrix makes
        // many failed ones on purpose; the limit itself is the handler tests' concern.
        let state = AppState::with_time(
            store.clone(),
            client,
            zhengyun_metering::Calendar::default(),
            clock,
        )
        .with_auth_limiter(FailedAuthLimiter::new(AuthLimit {
            max_failures: u32::MAX,
            ..AuthLimit::default()
        }))
        .with_limits(limits)
        .with_kubeconfig_policy(zhengyun_api::kubeconfigs::KubeconfigPolicy::for_cluster(
            &cluster,
        ))
        // Sign-in with the development identity provider, when it runs.
        .with_oidc(
            crate::idp::Idp::running()
                .map(|idp| zhengyun_api::oidc::Oidc::new(&idp.oidc_config()))
                .transpose()
                .map_err(anyhow::Error::msg)?,
        );
        state.start_cache();
        tokio::spawn(zhengyun_api::kubeconfigs::remove_due_kubeconfigs(
            state.clone(),
        ));
        Ok(Self {
            app: app(state.clone()),
            state,
            store,
            admin,
        })
    }

    /// Serves this API over HTTP on a free local port until the test process ends, and returns
    /// its address: for tests of what a real connection does (a client that hangs up).
    pub async fn listen(&self) -> anyhow::Result<std::net::SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = self.state.clone();
        tokio::spawn(async move {
            let limits = zhengyun_api::ConnectionLimits {
                header_read_timeout: std::time::Duration::from_secs(10),
                max_connections: 1024,
            };
            if let Err(error) =
                zhengyun_api::serve_on(listener, &limits, state, std::future::pending()).await
            {
                eprintln!("the test server stopped: {error}");
            }
        });
        Ok(addr)
    }

    /// The mutating calls still being carried out by this API.
    pub fn changes_in_flight(&self) -> usize {
        self.state.changes().len()
    }

    /// Issues a token straight in the store.
    pub async fn token(&self, role: Role, bureau: Option<&str>) -> anyhow::Result<String> {
        let (_, secret) = self.store.create_token(role, bureau, "e2e").await?;
        Ok(secret.expose().to_owned())
    }

    /// Calls the API.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.call_with(method, uri, token, body, &[]).await
    }

    /// The results of the audit entries for `action`, oldest first, as the platform admin
    /// reads them.
    pub async fn audit_results(&self, action: &str) -> anyhow::Result<Vec<String>> {
        let log = self
            .call(
                Method::GET,
                &format!("/api/v1/audit?action={action}"),
                Some(&self.admin),
                None,
            )
            .await?;
        anyhow::ensure!(
            log.status == StatusCode::OK,
            "reading the audit log: {}",
            log.body
        );
        Ok(log
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["result"].as_str().map(str::to_owned))
            .collect())
    }

    /// Calls the API and returns the status and the body as text (for CSV).
    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, String)> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self
            .app
            .clone()
            .oneshot(builder.body(Body::empty())?)
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(bytes.to_vec())?))
    }

    /// Calls the API and returns the status, the `Content-Type` and the body as bytes (for CSV
    /// in another character set).
    pub async fn raw_bytes(
        &self,
        uri: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, String, Vec<u8>)> {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self
            .app
            .clone()
            .oneshot(builder.body(Body::empty())?)
            .await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, content_type, bytes.to_vec()))
    }

    /// Calls the API with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))?,
            None => builder.body(Body::empty())?,
        };
        let response = self.app.clone().oneshot(request).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            body,
            content_type,
        })
    }
}
