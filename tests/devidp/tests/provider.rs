//! The provider over real HTTPS: each test starts one on port 0 in a temporary state directory
//! and talks to it as a relying party would, trusting only the test authority it made.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use zhengyun_devidp::tokens::Claims;
use zhengyun_devidp::{Config, Running};

const PASSWORD: &str = "zhengyun-dev";
const REDIRECT_URI: &str = "http://127.0.0.1:8400/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The S256 transform of `VERIFIER` (RFC 7636 appendix B).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A running provider, its state directory and a client that trusts its authority.
struct Provider {
    running: Running,
    client: reqwest::Client,
    state_dir: tempfile::TempDir,
}

impl Provider {
    async fn start() -> Self {
        let state_dir = tempfile::tempdir().expect("a temporary state directory");
        let running = start_in(state_dir.path()).await;
        let client = client_trusting(running.ca_cert());
        Self {
            running,
            client,
            state_dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.issuer())
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the provider answers")
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("the provider answers")
    }

    async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("the provider answers")
    }

    /// The token endpoint's answer: its status and JSON body.
    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        json_of(self.post_form("/token", form).await).await
    }

    async fn password_token(&self, username: &str) -> Value {
        let (status, body) = self
            .token(&[
                ("grant_type", "password"),
                ("client_id", "zhengyun"),
                ("username", username),
                ("password", PASSWORD),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A device's poll of the token endpoint.
    async fn poll(&self, device_code: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", DEVICE_GRANT),
            ("client_id", "zhengyun"),
            ("device_code", device_code),
        ])
        .await
    }

    async fn mint(&self, request: Value) -> String {
        let (status, body) = json_of(self.post_json("/admin/mint", request).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    async fn jwks(&self) -> JwkSet {
        self.get("/jwks").await.json().await.expect("a JWKS")
    }

    /// Verifies `token` as a relying party would: the key named by its kid in the JWKS, the
    /// issuer, the audience, and the times without leeway.
    async fn verify(&self, token: &str) -> jsonwebtoken::errors::Result<Claims> {
        verify_with(&self.jwks().await, self.running.issuer(), token)
    }

    async fn stop(self) -> tempfile::TempDir {
        self.running
            .stop()
            .await
            .expect("the provider stops cleanly");
        self.state_dir
    }
}

async fn start_in(state_dir: &Path) -> Running {
    zhengyun_devidp::start(Config {
        addr: "127.0.0.1:0".parse().expect("an address"),
        state_dir: state_dir.to_owned(),
        users_file: Path::new(env!("CARGO_MANIFEST_DIR")).join("users.yaml"),
        issuer: None,
        client_id: "zhengyun".into(),
        token_lifetime: jiff::SignedDuration::from_hours(1),
    })
    .await
    .expect("the provider starts")
}

fn client_trusting(ca_cert: &Path) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_cert).expect("ca.crt is PEM") {
        roots
            .add(cert.expect("a certificate"))
            .expect("a usable root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

fn verify_with(jwks: &JwkSet, issuer: &str, token: &str) -> jsonwebtoken::errors::Result<Claims> {
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header
        .kid
        .ok_or(ErrorKind::MissingRequiredClaim("kid".into()))?;
    let jwk = jwks.find(&kid).ok_or(ErrorKind::InvalidKeyFormat)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["zhengyun"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_jwk(jwk)?, &validation)
        .map(|data| data.claims)
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a kid")
}

fn kids(jwks: &JwkSet) -> Vec<String> {
    jwks.keys
        .iter()
        .map(|jwk| jwk.common.key_id.clone().expect("a kid"))
        .collect()
}

fn authorize_form<'a>(username: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", "zhengyun"),
        ("redirect_uri", REDIRECT_URI),
        ("state", "xyz-state"),
        ("scope", "openid profile groups"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("username", username),
        ("password", password),
    ]
}

#[tokio::test]
async fn discovery_names_the_issuer_and_its_endpoints() {
    let provider = Provider::start().await;
    let issuer = provider.running.issuer().to_owned();
    assert_eq!(
        issuer,
        format!("https://127.0.0.1:{}", provider.running.addr().port())
    );
    let document: Value = provider
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("a JSON document");
    assert_eq!(document["issuer"], issuer.as_str());
    assert_eq!(
        document["authorization_endpoint"],
        format!("{issuer}/authorize")
    );
    assert_eq!(document["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(document["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(
        document["device_authorization_endpoint"],
        format!("{issuer}/device/code")
    );
    assert_eq!(document["response_types_supported"], json!(["code"]));
    assert_eq!(
        document["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "password",
            DEVICE_GRANT
        ])
    );
    assert_eq!(document["subject_types_supported"], json!(["public"]));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(
        document["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        document["scopes_supported"],
        json!(["openid", "profile", "email", "groups"])
    );

    let written =
        std::fs::read_to_string(provider.state_dir.path().join("issuer")).expect("the issuer file");
    assert_eq!(written.trim_end(), issuer);
    let plain = provider
        .client
        .get(format!(
            "http://{}/.well-known/openid-configuration",
            provider.running.addr()
        ))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP is not served");

    let state_dir = provider.stop().await;
    assert!(
        !state_dir.path().join("issuer").exists(),
        "a stopped provider takes its issuer file away"
    );
}

#[tokio::test]
async fn a_password_grant_token_verifies_against_the_jwks_with_the_users_claims() {
    let provider = Provider::start().await;
    let answer = provider.password_token("zhangwei").await;
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3600);
    assert_eq!(answer["scope"], "openid profile email groups");
    assert!(
        answer["refresh_token"]
            .as_str()
            .is_some_and(|token| !token.is_empty())
    );
    assert_eq!(answer["access_token"], answer["id_token"]);

    let token = answer["id_token"].as_str().expect("an ID token");
    let header = jsonwebtoken::decode_header(token).expect("a JWT header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let claims = provider.verify(token).await.expect("the token verifies");
    assert_eq!(claims.iss, provider.running.issuer());
    assert_eq!(claims.aud, "zhengyun");
    assert_eq!(claims.sub, "zhangwei");
    assert_eq!(claims.preferred_username, "zhangwei");
    assert_eq!(claims.name, "张伟");
    assert_eq!(
        claims.email.as_deref(),
        Some("zhangwei@wjw.haidian.example.gov.cn")
    );
    assert_eq!(claims.groups, vec!["zhengyun:wjw:bureau-admin"]);
    assert_eq!(claims.exp - claims.iat, 3600);
}

#[tokio::test]
async fn token_errors_follow_rfc_6749() {
    let provider = Provider::start().await;
    let (status, body) = provider
        .token(&[
            ("grant_type", "password"),
            ("client_id", "zhengyun"),
            ("username", "zhangwei"),
            ("password", "guess"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(body["error_description"].is_string());

    let (status, body) = provider
        .token(&[("grant_type", "password"), ("client_id", "other")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    let (status, body) = provider
        .token(&[("grant_type", "implicit"), ("client_id", "zhengyun")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );

    let (status, body) = provider
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "zhengyun"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn authorization_code_with_pkce_refuses_a_wrong_verifier_and_works_once() {
    let provider = Provider::start().await;
    let query: Vec<_> = authorize_form("", "").into_iter().take(7).collect();
    let page = provider
        .client
        .get(provider.url("/authorize"))
        .query(&query)
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("HTML");
    for text in ["用户名", "密码", "登录", CHALLENGE] {
        assert!(html.contains(text), "the sign-in page shows {text}");
    }
    assert!(!html.contains("<script"), "the sign-in page has no script");

    let refused = provider
        .post_form("/authorize", &authorize_form("zhangwei", "guess"))
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.expect("HTML").contains("<form"));

    let signed_in = provider
        .post_form("/authorize", &authorize_form("zhangwei", PASSWORD))
        .await;
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    let location = signed_in.headers()["location"]
        .to_str()
        .expect("a Location");
    let back = url::Url::parse(location).expect("a URL");
    assert_eq!(back.as_str().split('?').next(), Some(REDIRECT_URI));
    let query: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("xyz-state"));
    let code = query.get("code").expect("a code");

    let exchange = |verifier: &'static str| {
        let code = code.clone();
        let provider = &provider;
        async move {
            provider
                .token(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", "zhengyun"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", verifier),
                ])
                .await
        }
    };
    let (status, body) = exchange("wrong-verifier-wrong-verifier-wrong-verifier-0").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let (status, body) = exchange(VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "openid profile groups");
    let claims = provider
        .verify(body["id_token"].as_str().expect("an ID token"))
        .await
        .expect("the token verifies");
    assert_eq!(claims.sub, "zhangwei");

    let (status, body) = exchange(VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn authorize_refuses_an_unknown_client_a_remote_redirect_and_a_missing_challenge() {
    let provider = Provider::start().await;
    let authorize = |pairs: Vec<(&'static str, &'static str)>| {
        let request = provider
            .client
            .get(provider.url("/authorize"))
            .query(&pairs);
        async move { request.send().await.expect("answers") }
    };
    let mut unknown_client = authorize_form("", "");
    unknown_client[1] = ("client_id", "other");
    assert_eq!(
        authorize(unknown_client).await.status(),
        StatusCode::BAD_REQUEST
    );

    for remote in [
        "https://127.0.0.1:8400/callback",
        "http://app.example:8400/callback",
    ] {
        let mut form = authorize_form("", "");
        form[2] = ("redirect_uri", remote);
        assert_eq!(
            authorize(form).await.status(),
            StatusCode::BAD_REQUEST,
            "{remote}"
        );
    }

    let mut plain = authorize_form("", "");
    plain[6] = ("code_challenge_method", "plain");
    let answer = authorize(plain).await;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = answer.headers()["location"]
        .to_str()
        .expect("a Location")
        .to_owned();
    assert!(location.starts_with(REDIRECT_URI));
    assert!(location.contains("error=invalid_request"), "{location}");
    assert!(location.contains("state=xyz-state"), "{location}");
}

#[tokio::test]
async fn the_device_flow_is_pending_until_the_user_approves_then_yields_tokens() {
    let provider = Provider::start().await;
    let (status, started) = json_of(
        provider
            .post_form(
                "/device/code",
                &[("client_id", "zhengyun"), ("scope", "openid groups")],
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let user_code = started["user_code"]
        .as_str()
        .expect("a user code")
        .to_owned();
    let device_code = started["device_code"]
        .as_str()
        .expect("a device code")
        .to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(user_code.as_bytes()[4], b'-');
    assert_eq!(started["verification_uri"], provider.url("/device"));
    assert_eq!(
        started["verification_uri_complete"],
        provider.url(&format!("/device?user_code={user_code}"))
    );
    assert_eq!(
        (started["expires_in"].as_u64(), started["interval"].as_u64()),
        (Some(600), Some(1))
    );

    let (status, body) = provider.poll(&device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authorization_pending"))
    );

    let page = provider
        .get(&format!("/device?user_code={user_code}"))
        .await
        .text()
        .await
        .expect("HTML");
    assert!(
        page.contains(&user_code),
        "the approval form is filled in with the user code"
    );
    let wrong_password = provider
        .post_form(
            "/device",
            &[
                ("user_code", &user_code),
                ("username", "lina"),
                ("password", "guess"),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    let approved = provider
        .post_form(
            "/device",
            &[
                ("user_code", &user_code),
                ("username", "lina"),
                ("password", PASSWORD),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = provider.poll(&device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "openid groups");
    let claims = provider
        .verify(body["access_token"].as_str().expect("an access token"))
        .await
        .expect("the token verifies");
    assert_eq!(
        (claims.sub.as_str(), claims.name.as_str()),
        ("lina", "李娜")
    );
    assert_eq!(claims.groups, vec!["zhengyun:wjw:bureau-viewer"]);
}

#[tokio::test]
async fn a_device_the_user_refused_hears_access_denied() {
    let provider = Provider::start().await;
    let (_, started) = json_of(
        provider
            .post_form("/device/code", &[("client_id", "zhengyun")])
            .await,
    )
    .await;
    let user_code = started["user_code"].as_str().expect("a user code");
    let denied = provider
        .post_form(
            "/device",
            &[
                ("user_code", user_code),
                ("username", "wangfang"),
                ("password", PASSWORD),
                ("action", "deny"),
            ],
        )
        .await;
    assert_eq!(denied.status(), StatusCode::OK);
    let device_code = started["device_code"].as_str().expect("a device code");
    let (status, body) = provider.poll(device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("access_denied"))
    );
}

#[tokio::test]
async fn a_refresh_token_yields_fresh_tokens_once() {
    let provider = Provider::start().await;
    let first = provider.password_token("chenjing").await;
    let refresh = first["refresh_token"].as_str().expect("a refresh token");
    let grant = [
        ("grant_type", "refresh_token"),
        ("client_id", "zhengyun"),
        ("refresh_token", refresh),
    ];
    let (status, second) = provider.token(&grant).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let claims = provider
        .verify(second["id_token"].as_str().expect("an ID token"))
        .await
        .expect("the token verifies");
    assert_eq!(claims.groups, vec!["zhengyun:finance"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let (status, again) = provider.token(&grant).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn after_a_rotation_new_tokens_carry_the_new_kid_and_both_keys_are_published() {
    let provider = Provider::start().await;
    let before = provider.password_token("liuyang").await["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let (status, rotated) = json_of(provider.post_json("/admin/rotate", json!({})).await).await;
    assert_eq!(status, StatusCode::OK);
    let new_kid = rotated["kid"].as_str().expect("a kid");
    assert_ne!(new_kid, kid_of(&before));

    let after = provider.password_token("liuyang").await["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    assert_eq!(kid_of(&after), new_kid);
    assert_eq!(
        kids(&provider.jwks().await),
        vec![kid_of(&before), new_kid.to_owned()]
    );
    provider
        .verify(&before)
        .await
        .expect("a token of the old key still verifies");
    provider
        .verify(&after)
        .await
        .expect("a token of the new key verifies");
}

#[tokio::test]
async fn minted_tokens_have_exactly_the_defects_asked_for() {
    let provider = Provider::start().await;
    let auditor = json!({"sub": "zhaolei", "name": "赵磊", "groups": ["zhengyun:auditor"]});

    let good = provider.mint(auditor.clone()).await;
    let claims = provider
        .verify(&good)
        .await
        .expect("a plain minted token verifies");
    assert_eq!(
        (claims.sub.as_str(), claims.name.as_str()),
        ("zhaolei", "赵磊")
    );
    assert_eq!(claims.groups, vec!["zhengyun:auditor"]);

    let with = |extra: Value| {
        let mut request = auditor.clone();
        request
            .as_object_mut()
            .expect("an object")
            .extend(extra.as_object().expect("an object").clone());
        request
    };
    let foreign = provider.mint(with(json!({"signer": "foreign"}))).await;
    let published = kids(&provider.jwks().await);
    assert!(
        published.contains(&kid_of(&foreign)),
        "the foreign token names a published kid"
    );
    let refused = provider
        .verify(&foreign)
        .await
        .expect_err("a foreign signature does not verify");
    assert_eq!(refused.kind(), &ErrorKind::InvalidSignature);

    let expired = provider.mint(with(json!({"expiresIn": -60}))).await;
    let refused = provider
        .verify(&expired)
        .await
        .expect_err("an expired token does not verify");
    assert_eq!(refused.kind(), &ErrorKind::ExpiredSignature);

    let early = provider.mint(with(json!({"notBeforeIn": 3600}))).await;
    let refused = provider
        .verify(&early)
        .await
        .expect_err("a token not yet valid does not verify");
    assert_eq!(refused.kind(), &ErrorKind::ImmatureSignature);

    let other_audience = provider.mint(with(json!({"aud": "other"}))).await;
    let refused = provider
        .verify(&other_audience)
        .await
        .expect_err("a token for another audience does not verify");
    assert_eq!(refused.kind(), &ErrorKind::InvalidAudience);

    let other_issuer = provider
        .mint(with(json!({"issuer": "https://sso.example"})))
        .await;
    let refused = provider
        .verify(&other_issuer)
        .await
        .expect_err("a token of another issuer does not verify");
    assert_eq!(refused.kind(), &ErrorKind::InvalidIssuer);
}

#[tokio::test]
async fn a_user_added_through_the_hook_can_sign_in() {
    let provider = Provider::start().await;
    let added = provider
        .post_json(
            "/admin/users",
            json!({
                "username": "sunli",
                "password": "another-password",
                "name": "孙丽",
                "email": "sunli@jw.haidian.example.gov.cn",
                "groups": ["zhengyun:jw:bureau-admin"],
            }),
        )
        .await;
    assert!(added.status().is_success());
    let (status, body) = provider
        .token(&[
            ("grant_type", "password"),
            ("client_id", "zhengyun"),
            ("username", "sunli"),
            ("password", "another-password"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = provider
        .verify(body["access_token"].as_str().expect("a token"))
        .await
        .expect("the token verifies");
    assert_eq!(claims.groups, vec!["zhengyun:jw:bureau-admin"]);
}

#[tokio::test]
async fn a_restart_with_the_same_state_dir_reuses_the_authority_and_the_keys() {
    let provider = Provider::start().await;
    let client = provider.client.clone();
    let token = provider.password_token("zhangwei").await["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let published = kids(&provider.jwks().await);
    let ca_cert = std::fs::read(provider.running.ca_cert()).expect("ca.crt");
    let first_issuer = provider.running.issuer().to_owned();
    let state_dir = provider.stop().await;

    let running = start_in(state_dir.path()).await;
    assert_eq!(std::fs::read(running.ca_cert()).expect("ca.crt"), ca_cert);
    // The client made for the first start still trusts the second.
    let jwks: JwkSet = client
        .get(format!("{}/jwks", running.issuer()))
        .send()
        .await
        .expect("the restarted provider answers")
        .json()
        .await
        .expect("a JWKS");
    assert_eq!(kids(&jwks), published);
    // A port-0 restart has another issuer URL; the key that signed the token is the same.
    verify_with(&jwks, &first_issuer, &token)
        .expect("a token signed before the restart verifies against the restarted JWKS");
    running.stop().await.expect("stops");
}
