//! Handler tests through `app().oneshot(...)`, without a socket and without a cluster: every
//! case here is decided before the API would reach Kubernetes (authentication, authorisation,
//! body parsing, validation), or checks that an unreachable cluster is a 503. The store is a
//! real (in-memory SQLite) store. Cases that need the cluster run in `tests/e2e`.

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tower::ServiceExt;

use zhengyun_api::{AppState, app, state::BureauUidLookup};
use zhengyun_store::{NewToken, Role, Store, TokenId};

struct Harness {
    app: Router,
    store: Store,
    admin: String,
    /// Bureaus that do not exist (`None`) or have another uid than `uid-<code>`.
    bureaus: Arc<Mutex<HashMap<String, Option<String>>>>,
}

/// An app over an in-memory store and a cluster address where nothing listens. Bureau tokens
/// are checked against a stand-in for the cluster's bureaus, where every bureau `<code>`
/// exists with the uid `uid-<code>` unless `bureaus` says otherwise.
async fn harness() -> Harness {
    let store = Store::in_memory().await.expect("store");
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    let client = kube::Client::try_from(config).expect("client");
    let admin = "platform-admin-secret-for-handler-tests-0123456789".to_owned();
    store.bootstrap_admin(&admin).await.expect("bootstrap");
    let bureaus: Arc<Mutex<HashMap<String, Option<String>>>> = Arc::default();
    let known = bureaus.clone();
    let lookup: BureauUidLookup = Arc::new(move |code: String| {
        let uid = known
            .lock()
            .expect("bureaus")
            .get(&code)
            .cloned()
            .unwrap_or_else(|| Some(format!("uid-{code}")));
        Box::pin(async move { Ok(uid) })
    });
    Harness {
        app: app(AppState::new(store.clone(), client).with_bureau_lookup(lookup)),
        store,
        admin,
        bureaus,
    }
}

impl Harness {
    async fn token(&self, role: Role, bureau: Option<&str>) -> String {
        let (_, secret) = self
            .store
            .create_token(role, bureau, "test")
            .await
            .expect("token");
        secret.expose().to_owned()
    }

    /// Appends the `n`th audit entry of a test: a bureau viewer of `bureau` creating `object`,
    /// answered `result`, `n` seconds after a fixed instant.
    async fn append_audit(&self, n: i64, bureau: &str, object: String, result: String) {
        self.store
            .append_audit(&zhengyun_store::AuditEntry {
                at: jiff::Timestamp::from_second(1_790_000_000 + n).expect("instant"),
                principal: "0123456789abcdef".to_owned(),
                principal_label: None,
                role: Some(Role::BureauViewer),
                bureau: Some(bureau.to_owned()),
                action: "environment.create".to_owned(),
                object,
                quota_before: None,
                quota_after: None,
                result,
                request_id: format!("req-{n}"),
            })
            .await
            .expect("append");
    }

    /// Every page of `GET /api/v1/audit?<query>` as the admin, following `x-next-after`, which
    /// must name the last entry of the page it comes with; fails past ten pages.
    async fn audit_pages(&self, query: &str) -> Vec<Value> {
        let mut pages: Vec<Value> = Vec::new();
        let mut uri = format!("/api/v1/audit?{query}");
        loop {
            let (status, page, headers) = self
                .call(request(Method::GET, &uri, Some(&self.admin), None))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let last = page
                .as_array()
                .expect("entries")
                .last()
                .map(|e| e["seq"].as_u64().expect("seq"));
            pages.push(page);
            match headers.get("x-next-after").and_then(|v| v.to_str().ok()) {
                Some(next) => {
                    assert_eq!(Some(next.to_owned()), last.map(|seq| seq.to_string()));
                    uri = format!("/api/v1/audit?{query}&after={next}");
                }
                None => break,
            }
            assert!(pages.len() < 10, "paging does not end");
        }
        pages
    }

    /// A platform-wide token of `role` and the principal it signs in as.
    async fn principal(&self, role: Role) -> (String, zhengyun_store::Principal) {
        let secret = self.token(role, None).await;
        let principal = self
            .store
            .authenticate(&secret)
            .await
            .expect("authenticate")
            .expect("a principal");
        (secret, principal)
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, Value, header::HeaderMap) {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, headers)
    }
}

fn request(method: Method, uri: &str, token: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

fn assert_problem(status: StatusCode, body: &Value, headers: &header::HeaderMap, want: StatusCode) {
    assert_eq!(status, want, "{body}");
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(body["status"], want.as_u16());
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://zhengyun.io/problems/"))
    );
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    let id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    assert!(id.is_some());
    assert_eq!(body["requestId"].as_str(), id);
}

#[tokio::test]
async fn a_call_without_a_token_is_401_problem_json_with_a_bearer_challenge() {
    let h = harness().await;
    let (status, body, headers) = h
        .call(request(Method::GET, "/api/v1/bureaus", None, None))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::WWW_AUTHENTICATE).is_some());
}

#[tokio::test]
async fn unknown_malformed_and_revoked_tokens_are_401() {
    let h = harness().await;
    let viewer = h.token(Role::BureauViewer, Some("wjw")).await;
    let id: TokenId = viewer
        .split('_')
        .nth(1)
        .expect("id")
        .parse()
        .expect("token id");
    h.store.revoke_token(&id).await.expect("revoke");
    for token in [viewer.as_str(), "zy_0123456789abcdef_nope", "不是令牌"] {
        let (status, body, headers) = h
            .call(request(Method::GET, "/api/v1/whoami", Some(token), None))
            .await;
        assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
    }
    let basic = Request::builder()
        .uri("/api/v1/whoami")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .expect("request");
    let (status, body, headers) = h.call(basic).await;
    assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_names_the_token_role_and_bureau() {
    let h = harness().await;
    let token = h.token(Role::BureauAdmin, Some("wjw")).await;
    let (status, body, _) = h
        .call(request(Method::GET, "/api/v1/whoami", Some(&token), None))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "bureau-admin");
    assert_eq!(body["bureau"], "wjw");
}

#[tokio::test]
async fn a_bureau_token_gets_403_for_another_bureau_whether_or_not_it_exists() {
    let h = harness().await;
    let token = h.token(Role::BureauAdmin, Some("wjw")).await;
    for uri in [
        "/api/v1/bureaus/fgw",
        "/api/v1/bureaus/no-such-bureau/environments",
        "/api/v1/bureaus/fgw/environments/fgw-prod",
    ] {
        let (status, body, headers) = h.call(request(Method::GET, uri, Some(&token), None)).await;
        assert_problem(status, &body, &headers, StatusCode::FORBIDDEN);
    }
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/fgw/environments",
            Some(&token),
            Some(r#"{"purpose":"dev","quota":{"cpu":"1","memory":"1Gi"}}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn roles_without_the_right_get_403_before_the_body_is_acted_on() {
    let h = harness().await;
    let body = r#"{"name":"tjj","displayName":"海淀区统计局","kind":"bureau"}"#;
    for role in [Role::BureauViewer, Role::Finance, Role::Auditor] {
        let bureau = role.is_bureau_scoped().then_some("tjj");
        let token = h.token(role, bureau).await;
        let (status, problem, headers) = h
            .call(request(
                Method::POST,
                "/api/v1/bureaus",
                Some(&token),
                Some(body),
            ))
            .await;
        assert_problem(status, &problem, &headers, StatusCode::FORBIDDEN);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(role.as_str()))
        );
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_a_wrong_content_type_415() {
    let h = harness().await;
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus",
            Some(&h.admin),
            Some("{\"name\":"),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::BAD_REQUEST);
    let text = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/bureaus")
        .header(header::AUTHORIZATION, format!("Bearer {}", h.admin))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("name=tjj"))
        .expect("request");
    let (status, body, headers) = h.call(text).await;
    assert_problem(status, &body, &headers, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_422() {
    let h = harness().await;
    for body in [
        r#"{"name":"tjj","displayName":"统计局","kind":"bureau","colour":"red"}"#,
        r#"{"name":"tjj","displayName":"统计局","kind":"bureau","quota":{"cpu":4}}"#,
        r#"{"name":"tjj","displayName":"统计局","kind":"bureau","quota":{"cpus":"4"}}"#,
        r#"[1,2,3]"#,
    ] {
        let (status, problem, headers) = h
            .call(request(
                Method::POST,
                "/api/v1/bureaus",
                Some(&h.admin),
                Some(body),
            ))
            .await;
        assert_problem(status, &problem, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let h = harness().await;
    let huge = format!(
        r#"{{"name":"tjj","displayName":"{}","kind":"bureau"}}"#,
        "统".repeat(400_000)
    );
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus",
            Some(&h.admin),
            Some(&huge),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn invalid_names_and_quantities_are_422_naming_each_field() {
    let h = harness().await;
    let token = h.token(Role::BureauAdmin, Some("wjw")).await;
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/wjw/environments",
            Some(&token),
            Some(r#"{"name":"WJW_生产","purpose":"prod","quota":{"cpu":"-1","memory":"lots"}}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    for field in ["name", "quota.cpu", "quota.memory"] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }

    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/wjw/environments",
            Some(&token),
            Some(r#"{"purpose":"qa","tier":"platinum","quota":{"cpu":"1e400"}}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["purpose", "tier", "quota.cpu"]);

    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus",
            Some(&h.admin),
            Some(r#"{"name":"kube-system","displayName":" ","kind":"ministry"}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "kind");
}

#[tokio::test]
async fn a_quota_request_that_names_no_resource_is_422_naming_the_quota_field() {
    let h = harness().await;
    let token = h.token(Role::BureauAdmin, Some("wjw")).await;
    for body in [
        r#"{"quota":{},"reason":"汛期值守系统扩容"}"#,
        r#"{"quota":{"cpu":null},"reason":"汛期值守系统扩容"}"#,
    ] {
        let (status, answer, headers) = h
            .call(request(
                Method::POST,
                "/api/v1/bureaus/wjw/quota-requests",
                Some(&token),
                Some(body),
            ))
            .await;
        assert_problem(status, &answer, &headers, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer["errors"][0]["field"], "quota", "{answer}");
    }
}

#[tokio::test]
async fn an_unreachable_cluster_is_503_not_500() {
    let h = harness().await;
    let (status, body, headers) = h
        .call(request(
            Method::GET,
            "/api/v1/bureaus",
            Some(&h.admin),
            None,
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body, headers) = h.call(request(Method::GET, "/readyz", None, None)).await;
    assert_problem(status, &body, &headers, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = h.call(request(Method::GET, "/healthz", None, None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_closed_database_is_503_for_authenticated_calls() {
    let h = harness().await;
    h.store.close().await;
    let (status, body, headers) = h
        .call(request(Method::GET, "/api/v1/whoami", Some(&h.admin), None))
        .await;
    assert_problem(status, &body, &headers, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_as_problems() {
    let h = harness().await;
    let (status, body, headers) = h
        .call(request(Method::GET, "/api/v2/everything", None, None))
        .await;
    assert_problem(status, &body, &headers, StatusCode::NOT_FOUND);
    let (status, body, headers) = h
        .call(request(
            Method::PUT,
            "/api/v1/bureaus",
            Some(&h.admin),
            None,
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_callers_request_id_is_kept_and_a_missing_one_is_generated() {
    let h = harness().await;
    let mut req = request(Method::GET, "/healthz", None, None);
    req.headers_mut()
        .insert("x-request-id", "trace-0042".parse().expect("header"));
    let (_, _, headers) = h.call(req).await;
    assert_eq!(
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("trace-0042")
    );
    let mut req = request(Method::GET, "/healthz", None, None);
    req.headers_mut().insert(
        "x-request-id",
        "bad id\twith spaces".parse().expect("header"),
    );
    let (_, _, headers) = h.call(req).await;
    let generated = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("id");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[tokio::test]
async fn every_mutating_call_is_audited_even_when_refused_and_the_chain_verifies() {
    let h = harness().await;
    let viewer = h.token(Role::BureauViewer, Some("wjw")).await;
    let (status, _, _) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/wjw/environments",
            Some(&viewer),
            Some(r#"{"purpose":"dev","quota":{"cpu":"1","memory":"1Gi"}}"#),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/wjw/environments",
            Some(&viewer),
            Some("{not json"),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Reads and unauthenticated calls are not audited.
    h.call(request(Method::GET, "/api/v1/whoami", Some(&viewer), None))
        .await;
    h.call(request(
        Method::DELETE,
        "/api/v1/tokens/0123456789abcdef",
        None,
        None,
    ))
    .await;

    let (status, log, _) = h
        .call(request(Method::GET, "/api/v1/audit", Some(&h.admin), None))
        .await;
    assert_eq!(status, StatusCode::OK);
    let entries = log.as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{log:#}");
    assert_eq!(entries[0]["action"], "environment.create");
    assert_eq!(entries[0]["object"], "environments/wjw-dev");
    assert_eq!(entries[0]["bureau"], "wjw");
    assert_eq!(entries[0]["result"], "403 Forbidden");
    assert_eq!(entries[0]["role"], "bureau-viewer");
    assert_eq!(
        entries[1]["action"],
        "POST /api/v1/bureaus/{bureau}/environments"
    );
    assert_eq!(entries[1]["result"], "400 Bad Request");
    assert_eq!(entries[1]["prevHash"], entries[0]["hash"]);
    assert!(
        entries
            .iter()
            .all(|e| e["requestId"].as_str().is_some_and(|r| !r.is_empty()))
    );

    let (status, verdict, _) = h
        .call(request(
            Method::GET,
            "/api/v1/audit/verify",
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict, json!({"intact": true, "entries": 2}));
}

#[tokio::test]
async fn a_refused_call_with_a_200_kb_name_is_audited_in_bounded_form() {
    let h = harness().await;
    let viewer = h.token(Role::BureauViewer, Some("wjw")).await;
    let body = json!({
        "name": format!("wjw-{}", "卫".repeat(70_000)),
        "purpose": "dev",
        "quota": {"cpu": "1", "memory": "1Gi"},
    })
    .to_string();
    assert!(body.len() > 200_000);
    let (status, _, _) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/wjw/environments",
            Some(&viewer),
            Some(&body),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, log, _) = h
        .call(request(Method::GET, "/api/v1/audit", Some(&h.admin), None))
        .await;
    assert_eq!(status, StatusCode::OK);
    let entry = &log[0];
    assert_eq!(entry["result"], "403 Forbidden");
    let object = entry["object"].as_str().expect("object");
    assert!(object.starts_with("environments/wjw-卫卫"), "{object}");
    assert!(object.contains("[cut"), "{object}");
    assert!(
        entry.to_string().len() < 4096,
        "{} bytes",
        entry.to_string().len()
    );
    let (_, verdict, _) = h
        .call(request(
            Method::GET,
            "/api/v1/audit/verify",
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(verdict, json!({"intact": true, "entries": 1}));
}

#[tokio::test]
async fn an_audit_page_stops_before_one_mebibyte_and_names_where_the_next_begins() {
    let h = harness().await;
    for n in 0..1000 {
        h.append_audit(
            n,
            "wjw",
            format!("environments/{}", "卫".repeat(2_000)),
            format!("403 Forbidden: {}", "审".repeat(2_000)),
        )
        .await;
    }
    let pages = h.audit_pages("limit=1000").await;
    for page in &pages {
        assert!(serde_json::to_vec(page).expect("json").len() <= 1 << 20);
        assert!(!page.as_array().expect("entries").is_empty());
    }
    assert!(pages.len() > 1, "one page held everything");
    assert_eq!(seqs(&pages), (1..=1000).collect::<Vec<u64>>());
}

/// The audit sequence numbers of `pages`, in order.
fn seqs(pages: &[Value]) -> Vec<u64> {
    pages
        .iter()
        .flat_map(|page| page.as_array().expect("entries"))
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn a_full_audit_page_names_the_next_one_and_the_last_page_names_none() {
    let h = harness().await;
    for n in 0..120 {
        let bureau = if n % 2 == 0 { "wjw" } else { "jyj" };
        h.append_audit(
            n,
            bureau,
            format!("environments/e{n}"),
            "201 Created".to_owned(),
        )
        .await;
    }
    for (filter, expected) in [("", 120_usize), ("&bureau=wjw", 60)] {
        let walked = h.audit_pages(&format!("limit=50{filter}")).await;
        let pages: Vec<usize> = walked
            .iter()
            .map(|page| page.as_array().expect("entries").len())
            .collect();
        let mut seen = seqs(&walked);
        assert_eq!(seen.len(), expected, "{filter}");
        seen.dedup();
        assert_eq!(seen.len(), expected, "an entry came twice ({filter})");
        assert_eq!(pages.first(), Some(&50));
        assert!(*pages.last().expect("a page") < 50 || expected % 50 == 0);
    }
    // A page that ends exactly with the last entry names no next page.
    let (_, page, headers) = h
        .call(request(
            Method::GET,
            "/api/v1/audit?limit=20&after=100",
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(page.as_array().map(Vec::len), Some(20));
    assert!(headers.get("x-next-after").is_none());
}

#[tokio::test]
async fn tokens_are_issued_once_listed_without_secrets_and_revoked() {
    let h = harness().await;
    let (status, issued, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(r#"{"role":"finance","description":"财政局 结算"}"#),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let id = issued["id"].as_str().expect("id").to_owned();
    let secret = issued["secret"].as_str().expect("secret").to_owned();
    assert!(headers.get(header::LOCATION).is_some());
    let (_, me, _) = h
        .call(request(Method::GET, "/api/v1/whoami", Some(&secret), None))
        .await;
    assert_eq!(me["role"], "finance");

    let (_, list, _) = h
        .call(request(Method::GET, "/api/v1/tokens", Some(&h.admin), None))
        .await;
    assert!(!list.to_string().contains(&secret));
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|t| t["id"] == id.as_str())
    );

    let (status, _, _) = h
        .call(request(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = h
        .call(request(Method::GET, "/api/v1/whoami", Some(&secret), None))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(r#"{"role":"root"}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "role");
    let (status, body, headers) = h
        .call(request(
            Method::DELETE,
            "/api/v1/tokens/ffffffffffffffff",
            Some(&h.admin),
            None,
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_committed_openapi_document_matches_the_handlers() {
    let committed = include_str!("../../../openapi/openapi.json");
    let generated = zhengyun_api::openapi_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `make generate` and commit the result"
    );
    let doc: Value = serde_json::from_str(&generated).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_served_openapi_document_is_the_generated_one() {
    let h = harness().await;
    let (status, body, _) = h
        .call(request(Method::GET, "/api/v1/openapi.json", None, None))
        .await;
    assert_eq!(status, StatusCode::OK);
    let generated: Value = serde_json::from_str(&zhengyun_api::openapi_json()).expect("json");
    assert_eq!(body, generated);
}

#[tokio::test]
async fn a_path_name_that_cannot_exist_is_404_without_reaching_the_cluster() {
    let h = harness().await;
    // The cluster is unreachable here: a 404 (not a 503) shows the name was refused first.
    for uri in [
        "/api/v1/bureaus/%01%C2%B0",
        "/api/v1/bureaus/%F0%9E%BB%A1%1F/environments",
        "/api/v1/bureaus/wjw/environments/%F3%96%93%8F%3C",
        "/api/v1/bureaus/wjw,metadata.name=x/environments",
        "/api/v1/bureaus/卫健委",
    ] {
        let (status, body, headers) = h
            .call(request(Method::GET, uri, Some(&h.admin), None))
            .await;
        assert_problem(status, &body, &headers, StatusCode::NOT_FOUND);
    }
}

/// The fields of a 422's `errors`.
fn error_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect()
}

#[tokio::test]
async fn purpose_codes_system_groups_and_hidden_characters_are_422_naming_the_field() {
    let h = harness().await;
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus",
            Some(&h.admin),
            Some(
                r#"{"name":"hd-test","displayName":"海淀\u202e测试","kind":"bureau",
                    "adminGroups":["hd-admins","system:authenticated"],
                    "viewerGroups":["system:serviceaccounts"]}"#,
            ),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_fields(&body),
        ["name", "displayName", "adminGroups[1]", "viewerGroups[0]"]
    );

    let bureau_admin = h.token(Role::BureauAdmin, Some("wjw")).await;
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/bureaus/wjw/quota-requests",
            Some(&bureau_admin),
            Some(r#"{"quota":{"cpu":"8"},"reason":"扩容\u200b申请"}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), ["reason"]);

    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(r#"{"role":"finance","description":"财务\u2066张工\u2069"}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&body), ["description"]);

    for decision in ["approve", "reject"] {
        let (status, body, headers) = h
            .call(request(
                Method::POST,
                &format!("/api/v1/requests/0123456789abcdef/{decision}"),
                Some(&h.admin),
                Some(r#"{"reason":"ok\u001b[2J"}"#),
            ))
            .await;
        assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error_fields(&body), ["reason"], "{decision}");
    }
}

/// The `zhengyun_api_http_requests` lines of the metrics exposition.
async fn request_metrics(h: &Harness) -> String {
    let response = h
        .app
        .clone()
        .oneshot(request(Method::GET, "/metrics", None, None))
        .await
        .expect("infallible");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| l.starts_with("zhengyun_api_http_request"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn unknown_methods_share_one_metrics_label_and_paths_are_never_labels() {
    let h = harness().await;
    for (i, path) in [
        "/api/v1/bureaus/raw-bureau-7f3a",
        "/no/such/path-9c1e",
        "/healthz",
    ]
    .iter()
    .enumerate()
    {
        for method in ["BREW", "XYZZY", "MKCOL"] {
            let method = Method::from_bytes(format!("{method}{i}").as_bytes()).expect("method");
            h.call(request(method, path, Some(&h.admin), None)).await;
        }
    }
    h.call(request(
        Method::GET,
        "/api/v1/bureaus/raw-bureau-7f3a",
        Some(&h.admin),
        None,
    ))
    .await;
    let metrics = request_metrics(&h).await;
    for leaked in ["BREW", "XYZZY", "MKCOL", "raw-bureau-7f3a", "path-9c1e"] {
        assert!(!metrics.contains(leaked), "{leaked} in\n{metrics}");
    }
    assert!(metrics.contains(r#"method="OTHER""#), "{metrics}");
    assert!(
        metrics.contains(r#"route="/api/v1/bureaus/{bureau}""#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"method="GET""#), "{metrics}");
}

/// A harness whose failed-authentication limit is `max_failures` per minute, on a clock the
/// test moves.
async fn limited_harness(
    max_failures: u32,
) -> (
    Harness,
    std::sync::Arc<std::sync::Mutex<std::time::Instant>>,
) {
    use std::sync::{Arc, Mutex};
    use zhengyun_api::limit::{AuthLimit, FailedAuthLimiter};
    let h = harness().await;
    let at = Arc::new(Mutex::new(std::time::Instant::now()));
    let read = at.clone();
    let limiter = FailedAuthLimiter::with_clock(
        AuthLimit {
            max_failures,
            window: std::time::Duration::from_secs(60),
            ..AuthLimit::default()
        },
        Arc::new(move || *read.lock().expect("clock")),
    );
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    let client = kube::Client::try_from(config).expect("client");
    let app = app(AppState::new(h.store.clone(), client).with_auth_limiter(limiter));
    (Harness { app, ..h }, at)
}

fn from(peer: &str, mut request: Request<Body>) -> Request<Body> {
    let peer: std::net::SocketAddr = peer.parse().expect("peer");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    request
}

#[tokio::test]
async fn repeated_failed_authentication_is_429_with_retry_after_without_the_database() {
    let (h, at) = limited_harness(3).await;
    let bad = "zy_0123456789abcdef_nope";
    let whoami = |peer: &str, token: &str| {
        from(
            peer,
            request(Method::GET, "/api/v1/whoami", Some(token), None),
        )
    };
    for _ in 0..3 {
        let (status, body, headers) = h.call(whoami("192.0.2.1:5000", bad)).await;
        assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
    }
    // From here on a lookup would be a 503: the 429 proves the database was not asked.
    h.store.close().await;
    let (status, body, headers) = h.call(whoami("192.0.2.1:5001", bad)).await;
    assert_problem(status, &body, &headers, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address is counted on its own.
    let (status, body, headers) = h.call(whoami("198.51.100.7:5000", bad)).await;
    assert_problem(status, &body, &headers, StatusCode::SERVICE_UNAVAILABLE);
    // When the window has ended the address is heard again.
    *at.lock().expect("clock") += std::time::Duration::from_secs(61);
    let (status, body, headers) = h.call(whoami("192.0.2.1:5002", bad)).await;
    assert_problem(status, &body, &headers, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn successful_authentication_is_never_limited_nor_counted() {
    let (h, _) = limited_harness(3).await;
    for _ in 0..10 {
        let (status, body, _) = h
            .call(from(
                "192.0.2.1:5000",
                request(Method::GET, "/api/v1/whoami", Some(&h.admin), None),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for _ in 0..3 {
        let (status, body, headers) = h
            .call(from(
                "192.0.2.1:5000",
                request(Method::GET, "/api/v1/whoami", Some("zy_0_nope"), None),
            ))
            .await;
        assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn auditors_and_platform_admins_read_the_audit_head_which_is_then_remembered() {
    let h = harness().await;
    let viewer = h.token(Role::BureauViewer, Some("wjw")).await;
    // A refused call is audited: the head moves to entry 1.
    h.call(request(
        Method::DELETE,
        "/api/v1/tokens/0123456789abcdef",
        Some(&viewer),
        None,
    ))
    .await;
    let auditor = h.token(Role::Auditor, None).await;
    for token in [&auditor, &h.admin] {
        let (status, head, _) = h
            .call(request(
                Method::GET,
                "/api/v1/audit/head",
                Some(token),
                None,
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{head}");
        let stored = h.store.audit_head().await.expect("head");
        assert_eq!(head["seq"], stored.seq);
        assert_eq!(head["hash"], stored.hash.as_str());
        assert_eq!(
            h.store.published_audit_head().await.expect("published"),
            Some(stored)
        );
    }
    let (status, body, headers) = h
        .call(request(
            Method::GET,
            "/api/v1/audit/head",
            Some(&viewer),
            None,
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_that_authenticated_before_still_works_from_a_refused_address() {
    let (h, _) = limited_harness(3).await;
    let whoami = |token: &str| {
        from(
            "192.0.2.1:5000",
            request(Method::GET, "/api/v1/whoami", Some(token), None),
        )
    };
    let (status, _, _) = h.call(whoami(&h.admin)).await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        h.call(whoami("zy_0_nope")).await;
    }
    let (status, body, headers) = h.call(whoami("zy_0_nope")).await;
    assert_problem(status, &body, &headers, StatusCode::TOO_MANY_REQUESTS);
    // Someone else behind the same address, whose token worked before, is not refused.
    let (status, body, _) = h.call(whoami(&h.admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn instant(text: &str) -> jiff::Timestamp {
    text.parse().expect("instant")
}

#[tokio::test]
async fn an_expired_token_authenticates_nobody() {
    let h = harness().await;
    // Issued and expired long ago: whatever today is, it is past its expiry.
    let (_, secret) = h
        .store
        .issue_token_at(
            &NewToken {
                role: Role::Finance,
                bureau: None,
                bureau_uid: None,
                description: "expired",
                expires_at: instant("2001-01-01T00:00:00Z"),
            },
            instant("2000-12-01T00:00:00Z"),
        )
        .await
        .expect("issue");
    let (status, body, headers) = h
        .call(request(
            Method::GET,
            "/api/v1/whoami",
            Some(secret.expose()),
            None,
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{body}"
    );
}

#[tokio::test]
async fn a_token_lives_its_lifetime_within_the_maximum_and_the_listing_shows_its_expiry() {
    let h = harness().await;
    for days in ["0", "366", "100000"] {
        let (status, body, headers) = h
            .call(request(
                Method::POST,
                "/api/v1/tokens",
                Some(&h.admin),
                Some(&format!(r#"{{"role":"finance","lifetimeDays":{days}}}"#)),
            ))
            .await;
        assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "lifetimeDays", "{days}: {body}");
    }
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(r#"{"role":"finance","lifetimeDays":-1}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, issued, _) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(r#"{"role":"finance","description":"结算","lifetimeDays":30}"#),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let expires: jiff::Timestamp = issued["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("RFC 3339");
    let (_, list, _) = h
        .call(request(Method::GET, "/api/v1/tokens", Some(&h.admin), None))
        .await;
    let listed = list
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == issued["id"])
        .expect("listed");
    let listed_expiry: jiff::Timestamp = listed["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("RFC 3339");
    assert_eq!(listed_expiry, expires);
    let created: jiff::Timestamp = listed["createdAt"]
        .as_str()
        .expect("createdAt")
        .parse()
        .expect("RFC 3339");
    assert_eq!(
        expires.duration_since(created),
        jiff::SignedDuration::from_hours(30 * 24)
    );
    // Without a lifetime: the default, 90 days.
    let (_, issued, _) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(r#"{"role":"auditor"}"#),
        ))
        .await;
    let (_, list, _) = h
        .call(request(Method::GET, "/api/v1/tokens", Some(&h.admin), None))
        .await;
    let listed = list
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == issued["id"])
        .expect("listed")
        .clone();
    let at = |field: &str| -> jiff::Timestamp {
        listed[field]
            .as_str()
            .expect(field)
            .parse()
            .expect("RFC 3339")
    };
    assert_eq!(
        at("expiresAt").duration_since(at("createdAt")),
        jiff::SignedDuration::from_hours(90 * 24)
    );
}

#[tokio::test]
async fn a_bureau_token_stops_working_when_its_bureau_is_gone_or_was_created_again() {
    let h = harness().await;
    let issue = |bureau: &'static str, uid: Option<&'static str>| {
        let store = h.store.clone();
        async move {
            let (_, secret) = store
                .issue_token(&NewToken {
                    role: Role::BureauAdmin,
                    bureau: Some(bureau),
                    bureau_uid: uid,
                    description: "test",
                    expires_at: jiff::Timestamp::now()
                        .checked_add(jiff::SignedDuration::from_hours(24))
                        .expect("instant"),
                })
                .await
                .expect("issue");
            secret.expose().to_owned()
        }
    };
    let live = issue("wjw", Some("uid-wjw")).await;
    let recreated = issue("jw", Some("uid-of-the-deleted-jw")).await;
    let deleted = issue("mzj", Some("uid-mzj")).await;
    let deleted_without_uid = issue("sfj", None).await;
    h.bureaus
        .lock()
        .expect("bureaus")
        .insert("mzj".into(), None);
    h.bureaus
        .lock()
        .expect("bureaus")
        .insert("sfj".into(), None);

    let (status, me, _) = h
        .call(request(Method::GET, "/api/v1/whoami", Some(&live), None))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["bureau"], "wjw");
    for token in [&recreated, &deleted, &deleted_without_uid] {
        let (status, body, headers) = h
            .call(request(Method::GET, "/api/v1/whoami", Some(token), None))
            .await;
        assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_api_refuses_a_first_start_without_a_bootstrap_token_instead_of_minting_one() {
    let store = Store::in_memory().await.expect("store");
    let policy = zhengyun_api::state::TokenPolicy::default();
    let refused = zhengyun_api::bootstrap(None, &store, policy)
        .await
        .expect_err("no token, no secret configured");
    assert!(
        format!("{refused}").contains("ZHENGYUN_BOOTSTRAP_TOKEN"),
        "{refused}"
    );
    assert!(
        store.list_tokens().await.expect("list").is_empty(),
        "nothing minted"
    );
    let secret = "bootstrap-secret-0123456789abcdef0123456789";
    zhengyun_api::bootstrap(Some(secret), &store, policy)
        .await
        .expect("with a secret");
    // Later starts need no secret: the database holds a token.
    zhengyun_api::bootstrap(None, &store, policy)
        .await
        .expect("a later start");
    assert_eq!(store.list_tokens().await.expect("list").len(), 1);
}

#[tokio::test]
async fn audit_entries_name_the_token_readably_and_auditors_can_list_tokens_without_secrets() {
    let h = harness().await;
    let (_, secret) = h
        .store
        .create_token(Role::BureauAdmin, Some("wjw"), "卫健委 CI")
        .await
        .expect("token");
    let id = secret.expose().split('_').nth(1).expect("id").to_owned();
    // A mutating call, refused or not, is audited under the token's readable name.
    h.call(request(
        Method::POST,
        "/api/v1/bureaus/wjw/environments",
        Some(secret.expose()),
        Some("{"),
    ))
    .await;
    let auditor = h.token(Role::Auditor, None).await;
    let (status, log, _) = h
        .call(request(Method::GET, "/api/v1/audit", Some(&auditor), None))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entry = log
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["principal"] == id.as_str())
        .expect("the call is audited");
    assert_eq!(
        entry["principalLabel"],
        format!("token {id} (bureau-admin wjw: \"卫健委 CI\")")
    );
    let (_, verdict, _) = h
        .call(request(
            Method::GET,
            "/api/v1/audit/verify",
            Some(&auditor),
            None,
        ))
        .await;
    assert_eq!(verdict["intact"], true, "{verdict}");

    // The auditor resolves the id: metadata, never a secret.
    let (status, tokens, _) = h
        .call(request(Method::GET, "/api/v1/tokens", Some(&auditor), None))
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let listed = tokens
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("listed");
    assert_eq!(listed["role"], "bureau-admin");
    assert_eq!(listed["bureau"], "wjw");
    assert_eq!(listed["description"], "卫健委 CI");
    assert!(listed["createdAt"].is_string() && listed["expiresAt"].is_string());
    assert!(listed.get("secret").is_none());
    // The random part follows `zy_<id>_`; it may itself contain `_`.
    let tail = secret.expose().splitn(3, '_').nth(2).expect("tail");
    assert_eq!(tail.len(), 43, "{tail}");
    assert!(!tokens.to_string().contains(tail));
    // Nobody else gained the listing; issuing and revoking stay with platform admins.
    for role in [Role::Finance, Role::BureauAdmin, Role::BureauViewer] {
        let bureau = role.is_bureau_scoped().then_some("wjw");
        let token = h.token(role, bureau).await;
        let (status, body, headers) = h
            .call(request(Method::GET, "/api/v1/tokens", Some(&token), None))
            .await;
        assert_problem(status, &body, &headers, StatusCode::FORBIDDEN);
    }
    let (status, body, headers) = h
        .call(request(
            Method::POST,
            "/api/v1/tokens",
            Some(&auditor),
            Some(r#"{"role":"auditor"}"#),
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::FORBIDDEN);
    let (status, body, headers) = h
        .call(request(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&auditor),
            None,
        ))
        .await;
    assert_problem(status, &body, &headers, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn token_listing_pages_with_limit_and_after_without_gaps_or_repeats() {
    let h = harness().await;
    for n in 0..5 {
        h.store
            .create_token(Role::Finance, None, &format!("财务 {n}"))
            .await
            .expect("token");
    }
    let (status, everything, _) = h
        .call(request(Method::GET, "/api/v1/tokens", Some(&h.admin), None))
        .await;
    assert_eq!(status, StatusCode::OK, "{everything}");
    let all: Vec<String> = everything
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(all.len() >= 6, "{everything}");

    let mut seen = Vec::new();
    let mut uri = "/api/v1/tokens?limit=2".to_owned();
    loop {
        let (status, body, headers) = h
            .call(request(Method::GET, &uri, Some(&h.admin), None))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body.as_array().expect("a page");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|t| t["id"].as_str().expect("id").to_owned()),
        );
        match headers.get("x-next-after").and_then(|v| v.to_str().ok()) {
            Some(next) => uri = format!("/api/v1/tokens?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, all);

    for bad in [
        "/api/v1/tokens?limit=0",
        "/api/v1/tokens?limit=1001",
        "/api/v1/tokens?after=nope",
    ] {
        let (status, body, _) = h
            .call(request(Method::GET, bad, Some(&h.admin), None))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["type"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn a_token_revoked_here_stops_at_once_and_one_revoked_elsewhere_within_a_second() {
    let h = harness().await;
    let whoami = |token: &str| request(Method::GET, "/api/v1/whoami", Some(token), None);
    let id_of = |secret: &str| -> TokenId {
        secret
            .split('_')
            .nth(1)
            .expect("id")
            .parse()
            .expect("token id")
    };

    // Revoked through the API: the very next call is refused, although the token was just used.
    let here = h.token(Role::Finance, None).await;
    let (status, _, _) = h.call(whoami(&here)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = h
        .call(request(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", id_of(&here)),
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body, headers) = h.call(whoami(&here)).await;
    assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);

    // Revoked in the database by another replica: refused once its last authentication here is
    // older than the cache keeps it.
    let elsewhere = h.token(Role::Finance, None).await;
    let (status, _, _) = h.call(whoami(&elsewhere)).await;
    assert_eq!(status, StatusCode::OK);
    h.store
        .revoke_token(&id_of(&elsewhere))
        .await
        .expect("revoke");
    tokio::time::sleep(zhengyun_api::token_cache::TOKEN_CACHE_TTL).await;
    let (status, body, headers) = h.call(whoami(&elsewhere)).await;
    assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
}

/// Opens a console session for `principal` as the sign-in would, and returns its cookie.
async fn console_session(h: &Harness, principal: &zhengyun_store::Principal) -> String {
    let now = jiff::Timestamp::now();
    let (cookie, _) = h
        .store
        .open_console_session(principal, now, now + jiff::SignedDuration::from_hours(8))
        .await
        .expect("session");
    cookie
}

/// The console's sign-in form posted with the API token `secret` and the sign-in `nonce` (its
/// cookie and its field).
fn token_sign_in(secret: &str, nonce: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/console/sign-in")
        .header(header::COOKIE, format!("zy_sign_in={nonce}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={secret}&nonce={nonce}")))
        .expect("request")
}

/// `GET path` of the console with the session `cookie`.
fn console_get(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header(header::COOKIE, format!("zy_session={cookie}"))
        .body(Body::empty())
        .expect("request")
}

fn sent_to_sign_in(status: StatusCode, headers: &header::HeaderMap) -> bool {
    status.is_redirection()
        && headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) == Some("/console/sign-in")
}

#[tokio::test]
async fn a_console_session_ends_when_its_token_is_revoked_here_at_once_and_elsewhere_within_a_second()
 {
    let h = harness().await;
    let principal_of = |secret: String| {
        let store = h.store.clone();
        async move {
            store
                .authenticate(&secret)
                .await
                .expect("authenticate")
                .expect("a principal")
        }
    };

    // Revoked through the API: the session's next page sends the browser to sign in.
    let here = principal_of(h.token(Role::Auditor, None).await).await;
    let cookie = console_session(&h, &here).await;
    let (status, _, headers) = h.call(console_get("/console/audit", &cookie)).await;
    assert_eq!(status, StatusCode::OK, "{headers:?}");
    let (status, body, _) = h
        .call(request(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", here.token),
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, headers) = h.call(console_get("/console/audit", &cookie)).await;
    assert!(sent_to_sign_in(status, &headers), "{status} {headers:?}");
    // The session is gone, not only refused.
    assert!(
        h.store
            .console_session(&cookie, jiff::Timestamp::now())
            .await
            .expect("read")
            .is_none()
    );

    // Revoked in the database by another replica: ended within a second.
    let elsewhere = principal_of(h.token(Role::Auditor, None).await).await;
    let cookie = console_session(&h, &elsewhere).await;
    let (status, _, _) = h.call(console_get("/console/audit", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    h.store
        .revoke_token(&elsewhere.token)
        .await
        .expect("revoke");
    tokio::time::sleep(zhengyun_api::token_cache::TOKEN_CACHE_TTL).await;
    let (status, _, headers) = h.call(console_get("/console/audit", &cookie)).await;
    assert!(sent_to_sign_in(status, &headers), "{status} {headers:?}");
}

#[tokio::test]
async fn a_console_session_ends_with_its_bureau_and_never_outlives_the_identity_providers_token() {
    let h = harness().await;
    let (_, secret) = h
        .store
        .issue_token(&NewToken {
            role: Role::BureauAdmin,
            bureau: Some("mzj"),
            bureau_uid: Some("uid-mzj"),
            description: "民政局",
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
        })
        .await
        .expect("issue");
    let principal = h
        .store
        .authenticate(secret.expose())
        .await
        .expect("authenticate")
        .expect("a principal");
    let cookie = console_session(&h, &principal).await;
    h.bureaus
        .lock()
        .expect("bureaus")
        .insert("mzj".into(), None);
    let (status, _, headers) = h.call(console_get("/console/bureaus/mzj", &cookie)).await;
    assert!(sent_to_sign_in(status, &headers), "{status} {headers:?}");

    // A person signed in through an identity provider whose token expires in a second: the
    // session, even one kept longer by mistake, ends with it.
    let person = zhengyun_store::Principal {
        token: TokenId::signed_in("zhangwei", "sso.haidian.gov.cn"),
        role: Role::Auditor,
        bureau: None,
        bureau_uid: None,
        description: "张伟".to_owned(),
        expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1),
    };
    let cookie = console_session(&h, &person).await;
    let (status, _, _) = h.call(console_get("/console/audit", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, headers) = h.call(console_get("/console/audit", &cookie)).await;
    assert!(sent_to_sign_in(status, &headers), "{status} {headers:?}");
}

#[tokio::test]
async fn the_consoles_in_process_calls_are_refused_once_the_sign_in_behind_them_is_revoked() {
    let h = harness().await;
    let (_, principal) = h.principal(Role::Auditor).await;
    let in_process = |principal: &zhengyun_store::Principal| {
        let mut request = request(Method::GET, "/api/v1/whoami", None, None);
        request
            .extensions_mut()
            .insert(zhengyun_api::console::SignedIn(
                zhengyun_api::context::Caller(principal.clone()),
            ));
        request
    };
    let (status, body, _) = h.call(in_process(&principal)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = h
        .call(request(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", principal.token),
            Some(&h.admin),
            None,
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, headers) = h.call(in_process(&principal)).await;
    assert_problem(status, &body, &headers, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_approvals_queue_shows_who_asked_and_the_quota_asked_for() {
    let h = harness().await;
    let (asker, _) = h
        .store
        .create_token(Role::BureauAdmin, Some("wjw"), "张伟")
        .await
        .expect("token");
    h.store
        .create_request(&zhengyun_store::NewRequest {
            kind: zhengyun_store::RequestKind::EnvironmentCreate,
            bureau: "wjw".to_owned(),
            object: "wjw-dev".to_owned(),
            payload: json!({"name": "wjw-dev", "purpose": "dev", "tier": "gold",
                "quota": {"cpu": "4", "memory": "8Gi"}}),
            note: "beyond the bureau's remaining quota".to_owned(),
            requested_by: asker.to_string(),
        })
        .await
        .expect("request");
    let admin = h
        .store
        .authenticate(&h.admin)
        .await
        .expect("authenticate")
        .expect("the admin");
    let cookie = console_session(&h, &admin).await;
    let response = h
        .app
        .clone()
        .oneshot(console_get("/console/admin/requests", &cookie))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let page = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("UTF-8");
    for shown in ["张伟", "CPU", "8Gi", "开发", "金牌"] {
        assert!(page.contains(shown), "{shown} is not on the page");
    }
}

/// The console's page at `path` for the session `cookie`: its status and HTML.
async fn console_page(h: &Harness, path: &str, cookie: &str) -> (StatusCode, String) {
    let response = h
        .app
        .clone()
        .oneshot(console_get(path, cookie))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
}

#[tokio::test]
async fn a_statement_that_cannot_be_read_is_explained_under_the_month_selector() {
    let h = harness().await;
    let (_, finance) = h.principal(Role::Finance).await;
    let cookie = console_session(&h, &finance).await;
    // No month of that name: 422, the page and its selector still there.
    let (status, page) = console_page(&h, "/console/finance?month=2026-13", &cookie).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("name=\"month\"") && page.contains("输入有误"),
        "{page}"
    );
    // The cluster's rate cards out of reach: 503, explained in the page.
    let (status, page) = console_page(&h, "/console/finance?month=2026-11", &cookie).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert!(
        page.contains("name=\"month\"") && page.contains("value=\"2026-11\""),
        "{page}"
    );
}

/// The `Set-Cookie` values of `headers`.
fn set_cookies(headers: &header::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_language_a_person_chooses_is_theirs_again_at_their_next_sign_in_and_not_the_next_persons()
 {
    let h = harness().await;
    let (secret, finance) = h.principal(Role::Finance).await;
    let cookie = console_session(&h, &finance).await;
    let (status, _, _) = h.call(console_get("/console/lang/en", &cookie)).await;
    assert!(status.is_redirection());
    assert_eq!(
        h.store
            .console_language(finance.token.as_str())
            .await
            .expect("read")
            .as_deref(),
        Some("en")
    );

    // Signing out forgets it in the browser.
    let session = h
        .store
        .console_session(&cookie, jiff::Timestamp::now())
        .await
        .expect("read")
        .expect("a session");
    let (status, _, headers) = h
        .call(
            Request::builder()
                .method(Method::POST)
                .uri("/console/sign-out")
                .header(header::COOKIE, format!("zy_session={cookie}; zy_lang=en"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={}", session.csrf)))
                .expect("request"),
        )
        .await;
    assert!(status.is_redirection(), "{status}");
    assert!(
        set_cookies(&headers)
            .iter()
            .any(|c| c.starts_with("zy_lang=;") && c.contains("Max-Age=0")),
        "{headers:?}"
    );

    // Signing in again, on a browser without the cookie, brings it back.
    let (_, _, headers) = h
        .call(request(Method::GET, "/console/sign-in", None, None))
        .await;
    let nonce = set_cookies(&headers)
        .iter()
        .find_map(|c| {
            c.strip_prefix("zy_sign_in=")
                .and_then(|rest| rest.split(';').next())
                .map(str::to_owned)
        })
        .expect("a sign-in nonce");
    let (status, _, headers) = h.call(token_sign_in(&secret, &nonce)).await;
    assert!(status.is_redirection(), "{status}");
    let cookies = set_cookies(&headers);
    assert!(
        cookies.iter().any(|c| c.starts_with("zy_lang=en;")),
        "{cookies:?}"
    );
    // Someone who never chose keeps the browser's language.
    let other = h.token(Role::Auditor, None).await;
    let (_, _, headers) = h.call(token_sign_in(&other, &nonce)).await;
    assert!(
        !set_cookies(&headers)
            .iter()
            .any(|c| c.starts_with("zy_lang=")),
        "{headers:?}"
    );
}
