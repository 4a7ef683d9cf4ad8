//! `…/environments/{environment}/kubeconfig(s)`: kubeconfigs for an environment's namespace,
//! so that bureau staff can use `kubectl` there and nowhere else.
//!
//! # How a kubeconfig is made, and how it stops working
//!
//! The operator keeps two ServiceAccounts in every environment namespace, bound to the tenant
//! roles: [`KUBECONFIG_ADMIN_ACCOUNT`] (tenant-admin) and [`KUBECONFIG_VIEWER_ACCOUNT`]
//! (tenant-viewer). A bureau admin gets a token of the first, a bureau viewer of the second,
//! through the TokenRequest API. Each token is bound to a Secret of its own in the namespace: the
//! API server accepts the token only while that Secret exists. The issue is recorded in the
//! database before anything is made in the cluster; [`remove_due_kubeconfigs`] deletes the
//! Secret of every kubeconfig that has expired or was revoked. So a kubeconfig stops working at
//! its expiry (within a sweep, [`SWEEP_INTERVAL`]), at its revocation, or when the environment's
//! namespace is deleted (with its ServiceAccounts and Secrets), whichever comes first; the
//! token's own expiry (never under the API server's minimum of 10 minutes) is a second bound.

use std::time::Duration;

use axum::extract::State;
use base64::{Engine, engine::general_purpose::STANDARD};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{Secret, ServiceAccount},
};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use zhengyun_contract::kubeconfigs::{IssueKubeconfig, IssuedKubeconfig, KubeconfigView};
use zhengyun_model::crd::{Environment, EnvironmentPhase};
use zhengyun_model::policies::{
    BUREAU_LABEL, KUBECONFIG_ADMIN_ACCOUNT, KUBECONFIG_LABEL, KUBECONFIG_VIEWER_ACCOUNT,
};
use zhengyun_store::{Kubeconfig, NewKubeconfig, Role};

use crate::{
    context::{Audit, Caller},
    extract::{Json, Path},
    problem::{ApiResult, ErrorChain, Problem},
    reply::Created,
    state::AppState,
};

/// The kubeconfig routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_kubeconfig))
        .routes(routes!(list_kubeconfigs))
        .routes(routes!(revoke_kubeconfig))
}

/// The API server's shortest token lifetime: a kubeconfig shorter than this ends by its Secret.
const MIN_TOKEN_SECONDS: i64 = 600;

/// The shortest kubeconfig issued.
pub const MIN_LIFETIME: SignedDuration = SignedDuration::from_mins(1);

/// How often expired and revoked kubeconfigs' Secrets are deleted.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Where issued kubeconfigs point and how long they live (flags of `zhengyun api`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeconfigPolicy {
    /// The cluster's API server as bureau staff reach it.
    pub server: String,
    /// The PEM certificates that server's certificate is checked against; the system's roots
    /// when `None`.
    pub ca_pem: Option<String>,
    /// The lifetime of a kubeconfig asked for without `ttl`.
    pub default_lifetime: SignedDuration,
    /// The longest lifetime a kubeconfig may be given.
    pub max_lifetime: SignedDuration,
}

impl Default for KubeconfigPolicy {
    fn default() -> Self {
        Self {
            server: String::new(),
            ca_pem: None,
            default_lifetime: SignedDuration::from_hours(8),
            max_lifetime: SignedDuration::from_hours(24),
        }
    }
}

/// Where issued kubeconfigs point and how long they live (flags of `zhengyun api` and
/// `zhengyun dev`).
#[derive(Clone, Debug, clap::Args)]
pub struct KubeconfigArgs {
    /// The cluster's API server URL as bureau staff reach it, written into issued kubeconfigs;
    /// the URL the API itself uses when absent (right for `zhengyun dev`, rarely in a cluster).
    #[arg(long, env = "ZHENGYUN_KUBECONFIG_SERVER")]
    pub kubeconfig_server: Option<String>,
    /// PEM file of the certificates that API server's certificate is checked against, written
    /// into issued kubeconfigs; the API's own cluster CA when absent.
    #[arg(long, env = "ZHENGYUN_KUBECONFIG_CA_FILE")]
    pub kubeconfig_ca_file: Option<std::path::PathBuf>,
    /// The lifetime of a kubeconfig issued without `ttl`: `30m`, `8h`.
    #[arg(long, env = "ZHENGYUN_KUBECONFIG_LIFETIME", default_value = "8h",
        value_parser = parse_lifetime)]
    pub kubeconfig_lifetime: SignedDuration,
    /// The longest lifetime a kubeconfig may be given.
    #[arg(long, env = "ZHENGYUN_KUBECONFIG_MAX_LIFETIME", default_value = "24h",
        value_parser = parse_lifetime)]
    pub kubeconfig_max_lifetime: SignedDuration,
}

fn parse_lifetime(text: &str) -> Result<SignedDuration, String> {
    let lifetime: SignedDuration = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30m, 8h or 24h"))?;
    if lifetime < MIN_LIFETIME {
        return Err(format!("{text}: at least {MIN_LIFETIME:#}"));
    }
    Ok(lifetime)
}

impl KubeconfigArgs {
    /// The policy, completed from `cluster` (the API's own connection to the cluster) where a
    /// flag is absent; or why the flags do not make one.
    pub fn policy(&self, cluster: &kube::Config) -> Result<KubeconfigPolicy, String> {
        if self.kubeconfig_lifetime > self.kubeconfig_max_lifetime {
            return Err(format!(
                "--kubeconfig-lifetime ({:#}) is longer than --kubeconfig-max-lifetime ({:#})",
                self.kubeconfig_lifetime, self.kubeconfig_max_lifetime
            ));
        }
        let mut policy = KubeconfigPolicy::for_cluster(cluster);
        if let Some(path) = &self.kubeconfig_ca_file {
            policy.ca_pem = Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("--kubeconfig-ca-file {}: {e}", path.display()))?,
            );
        }
        if let Some(server) = &self.kubeconfig_server {
            policy.server = server.clone();
        }
        policy.default_lifetime = self.kubeconfig_lifetime;
        policy.max_lifetime = self.kubeconfig_max_lifetime;
        Ok(policy)
    }
}

impl KubeconfigPolicy {
    /// Kubeconfigs pointing where `cluster` (the API's own connection) does, checked against
    /// its CA, with the default lifetimes.
    pub fn for_cluster(cluster: &kube::Config) -> Self {
        Self {
            server: cluster
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_owned(),
            ca_pem: cluster
                .root_cert
                .as_ref()
                .map(|certs| certs.iter().map(|der| pem("CERTIFICATE", der)).collect()),
            ..Self::default()
        }
    }
}

/// `der` in PEM, under `label`.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `admin` or `viewer`, from the ServiceAccount.
fn access_of(account: &str) -> &'static str {
    if account == KUBECONFIG_ADMIN_ACCOUNT {
        "admin"
    } else {
        "viewer"
    }
}

fn view(kubeconfig: Kubeconfig, now: Timestamp) -> KubeconfigView {
    let state = if kubeconfig.revoked_at.is_some() {
        "revoked"
    } else if kubeconfig.expires_at <= now {
        "expired"
    } else {
        "active"
    };
    KubeconfigView {
        access: access_of(&kubeconfig.account).to_owned(),
        id: kubeconfig.id,
        namespace: kubeconfig.namespace,
        issued_to: kubeconfig.issued_to,
        issued_at: kubeconfig.issued_at.to_string(),
        expires_at: kubeconfig.expires_at.to_string(),
        revoked_at: kubeconfig.revoked_at.map(|at| at.to_string()),
        state: state.to_owned(),
    }
}

/// The lifetime asked for (`ttl`), checked against the policy and the caller's own token: an
/// absent `ttl` gets the default, cut to what is left of the caller's token.
fn lifetime(
    ttl: Option<&str>,
    policy: &KubeconfigPolicy,
    now: Timestamp,
    caller_expires: Timestamp,
) -> Result<SignedDuration, Problem> {
    let left = caller_expires.duration_since(now);
    let Some(text) = ttl else {
        return Ok(policy.default_lifetime.min(left));
    };
    let invalid = |m: String| Problem::invalid_field("ttl", m);
    let asked: SignedDuration = text
        .trim()
        .parse()
        .map_err(|_| invalid(format!("{text:?} is not a duration such as 30m, 2h or 8h")))?;
    if asked < MIN_LIFETIME || asked > policy.max_lifetime {
        return Err(invalid(format!(
            "{text}: a kubeconfig lives from {:#} to {:#}",
            MIN_LIFETIME, policy.max_lifetime
        )));
    }
    if asked > left {
        return Err(invalid(format!(
            "{text}: longer than your own token, which expires at {caller_expires}, in {}; \
             a kubeconfig never outlives the sign-in or token it is asked with: ask for at most \
             that, or leave ttl out to get the longest allowed",
            whole_minutes(left)
        )));
    }
    Ok(asked)
}

/// `left` for a person to read: whole minutes, rounded down (`59m`, `7h 59m`), or the seconds
/// under a minute.
fn whole_minutes(left: SignedDuration) -> String {
    let seconds = left.as_secs().max(0);
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
    match (hours, minutes) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// The kubeconfig file: one cluster, one user with the token, one context in the namespace.
fn kubeconfig_yaml(
    policy: &KubeconfigPolicy,
    namespace: &str,
    user: &str,
    token: &str,
) -> Result<String, Problem> {
    let mut cluster = json!({"server": policy.server});
    if let Some(pem) = &policy.ca_pem {
        cluster["certificate-authority-data"] = json!(STANDARD.encode(pem));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "zhengyun", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": namespace, "context": {"cluster": "zhengyun", "namespace": namespace, "user": user}}],
        "current-context": namespace,
    });
    serde_yaml::to_string(&config).map_err(|e| Problem::internal(&e))
}

/// The environment, Ready, and its namespace; 409 while it is not (yet, or any more) usable.
fn usable_namespace(env: &Environment) -> Result<String, Problem> {
    let name = env.metadata.name.clone().unwrap_or_default();
    if env.metadata.deletion_timestamp.is_some() {
        return Err(Problem::conflict(format!(
            "environment {name:?} is being deleted"
        )));
    }
    let status = env.status.as_ref();
    match (
        status.and_then(|s| s.phase),
        status.and_then(|s| s.namespace.clone()),
    ) {
        (Some(EnvironmentPhase::Ready), Some(namespace)) => Ok(namespace),
        _ => Err(Problem::conflict(format!(
            "environment {name:?} is not Ready yet: its namespace has no kubeconfig accounts to \
             issue for; retry once it is"
        ))),
    }
}

/// Issues a kubeconfig for the environment's namespace: the tenant-admin role for a bureau
/// admin, the tenant-viewer role for a bureau viewer (only they may ask). It works until
/// `expiresAt`, until revoked, or until the environment is deleted. The token is in this
/// response only.
#[utoipa::path(post, path = "/api/v1/bureaus/{bureau}/environments/{environment}/kubeconfig",
    tag = "environments", request_body = IssueKubeconfig,
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name")),
    responses((status = 201, body = IssuedKubeconfig), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
async fn issue_kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((bureau, environment)): Path<(String, String)>,
    Json(body): Json<IssueKubeconfig>,
) -> ApiResult<Created<IssuedKubeconfig>> {
    audit.about(
        "environment.kubeconfig",
        format!("environments/{environment}"),
        Some(&bureau),
    );
    caller.require(&[Role::BureauAdmin, Role::BureauViewer])?;
    caller.require_bureau(&bureau)?;
    let account = if caller.role() == Role::BureauAdmin {
        KUBECONFIG_ADMIN_ACCOUNT
    } else {
        KUBECONFIG_VIEWER_ACCOUNT
    };
    let policy = state.kubeconfig_policy();
    let now = Timestamp::from_microsecond(state.clock().now().as_microsecond())
        .map_err(|e| Problem::internal(&e))?;
    let lifetime = lifetime(body.ttl.as_deref(), policy, now, caller.0.expires_at)?;
    if lifetime < MIN_LIFETIME {
        return Err(Problem::forbidden(
            "your token expires within a minute: sign in again first",
        ));
    }
    let env = state.environment(&bureau, &environment).await?;
    let namespace = usable_namespace(&env)?;
    let expires_at = now
        .checked_add(lifetime)
        .map_err(|e| Problem::internal(&e))?;
    let record = state
        .store()
        .record_kubeconfig(&NewKubeconfig {
            bureau: &bureau,
            environment: &environment,
            namespace: &namespace,
            account,
            issued_to: &caller.0.label(),
            issued_at: now,
            expires_at,
        })
        .await?;
    audit.note(|n| {
        n.object = Some(format!(
            "environments/{environment}/kubeconfigs/{}",
            record.id
        ))
    });
    let token = match bound_token(&state, &record, &bureau, lifetime).await {
        Ok(token) => token,
        Err(problem) => {
            // Whatever was made is found by the sweep through the revoked record.
            if let Err(error) = state
                .store()
                .revoke_kubeconfig(&bureau, &environment, &record.id, now)
                .await
            {
                tracing::warn!(error = %ErrorChain(&error), id = %record.id, "unable to revoke a kubeconfig that failed");
            }
            return Err(problem);
        }
    };
    let user = format!("{namespace}-{}", access_of(account));
    Ok(Created {
        location: format!(
            "/api/v1/bureaus/{bureau}/environments/{environment}/kubeconfigs/{}",
            record.id
        ),
        body: IssuedKubeconfig {
            kubeconfig: kubeconfig_yaml(policy, &namespace, &user, &token)?,
            id: record.id,
            namespace,
            access: access_of(account).to_owned(),
            expires_at: expires_at.to_string(),
        },
    })
}

/// Makes the Secret of `record` and a token of its ServiceAccount bound to it.
async fn bound_token(
    state: &AppState,
    record: &Kubeconfig,
    bureau: &str,
    lifetime: SignedDuration,
) -> Result<String, Problem> {
    let secrets: Api<Secret> = Api::namespaced(state.client(), &record.namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(record.secret.clone()),
            labels: Some(
                [
                    (KUBECONFIG_LABEL.to_owned(), record.id.clone()),
                    (BUREAU_LABEL.to_owned(), bureau.to_owned()),
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "zhengyun".to_owned(),
                    ),
                ]
                .into(),
            ),
            annotations: Some(
                [(
                    "zhengyun.io/expires-at".to_owned(),
                    record.expires_at.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("zhengyun.io/kubeconfig-binding".to_owned()),
        ..Secret::default()
    };
    let made = secrets.create(&PostParams::default(), &secret).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(state.client(), &record.namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(lifetime.as_secs().max(MIN_TOKEN_SECONDS)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Secret".to_owned()),
                name: Some(record.secret.clone()),
                uid: made.metadata.uid,
            }),
        }),
        ..TokenRequest::default()
    };
    let issued = accounts
        .create_token_request(&record.account, &PostParams::default(), &request)
        .await
        .map_err(|error| match &error {
            kube::Error::Api(status) if status.code == 404 => Problem::conflict(format!(
                "the namespace {:?} has no account {:?} yet: the operator makes it; retry shortly",
                record.namespace, record.account
            )),
            _ => Problem::from(error),
        })?;
    issued
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::unavailable("the cluster issued no token; retry"))
}

/// The kubeconfigs issued for the environment, newest first, never their tokens (the bureau's
/// staff, platform admins and auditors).
#[utoipa::path(get, path = "/api/v1/bureaus/{bureau}/environments/{environment}/kubeconfigs",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name")),
    responses((status = 200, body = [KubeconfigView]), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn list_kubeconfigs(
    State(state): State<AppState>,
    caller: Caller,
    Path((bureau, environment)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<KubeconfigView>>> {
    caller.require(&[
        Role::BureauAdmin,
        Role::BureauViewer,
        Role::PlatformAdmin,
        Role::Auditor,
    ])?;
    caller.require_bureau(&bureau)?;
    environment_of(&bureau, &environment)?;
    let now = state.clock().now();
    let issued = state.store().kubeconfigs_of(&bureau, &environment).await?;
    Ok(axum::Json(
        issued.into_iter().map(|k| view(k, now)).collect(),
    ))
}

/// 404 for an environment name that is not the bureau's.
fn environment_of(bureau: &str, environment: &str) -> Result<(), Problem> {
    let owner = zhengyun_model::names::parse_environment_name(environment).map(|(b, _)| b);
    if owner != Some(bureau) {
        return Err(Problem::not_found(format!(
            "environment {environment:?} of bureau {bureau:?} not found"
        )));
    }
    Ok(())
}

/// Revokes a kubeconfig: it stops working within seconds (a bureau admin of its bureau, or a
/// platform admin). Revoking one already revoked or expired changes nothing.
#[utoipa::path(delete, path = "/api/v1/bureaus/{bureau}/environments/{environment}/kubeconfigs/{id}",
    tag = "environments",
    params(("bureau" = String, Path, description = "Bureau code"),
        ("environment" = String, Path, description = "Environment name"),
        ("id" = String, Path, description = "Kubeconfig id")),
    responses((status = 200, body = KubeconfigView), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn revoke_kubeconfig(
    State(state): State<AppState>,
    caller: Caller,
    audit: Audit,
    Path((bureau, environment, id)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<KubeconfigView>> {
    audit.about(
        "kubeconfig.revoke",
        format!("environments/{environment}/kubeconfigs/{id}"),
        Some(&bureau),
    );
    caller.require(&[Role::BureauAdmin, Role::PlatformAdmin])?;
    caller.require_bureau(&bureau)?;
    environment_of(&bureau, &environment)?;
    let now = state.clock().now();
    let revoked = state
        .store()
        .revoke_kubeconfig(&bureau, &environment, &id, now)
        .await?;
    // The Secret goes now rather than at the next sweep; the sweep retries on failure.
    remove(&state, &revoked).await;
    Ok(axum::Json(view(revoked, now)))
}

/// Deletes the Secret of `kubeconfig` (gone already counts) and records it; a failure is
/// logged and left to the next sweep.
async fn remove(state: &AppState, kubeconfig: &Kubeconfig) {
    let secrets: Api<Secret> = Api::namespaced(state.client(), &kubeconfig.namespace);
    match secrets
        .delete(&kubeconfig.secret, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), id = %kubeconfig.id, "unable to delete a kubeconfig's Secret; retrying at the next sweep");
            return;
        }
    }
    if let Err(error) = state
        .store()
        .kubeconfig_removed(&kubeconfig.id, state.clock().now())
        .await
    {
        tracing::warn!(error = %ErrorChain(&error), id = %kubeconfig.id, "unable to record a kubeconfig's removal");
    }
}

/// Every [`SWEEP_INTERVAL`], deletes the Secrets of kubeconfigs that expired or were revoked,
/// which ends their tokens. Any number of API replicas may sweep at once.
pub async fn remove_due_kubeconfigs(state: AppState) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match state
            .store()
            .kubeconfigs_to_remove(state.clock().now(), 100)
            .await
        {
            Ok(due) => {
                for kubeconfig in &due {
                    remove(&state, kubeconfig).await;
                }
            }
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "unable to list the kubeconfigs to remove")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn a_kubeconfig_lives_the_default_cut_to_the_callers_token_or_what_is_asked_within_bounds() {
        let policy = KubeconfigPolicy::default();
        let now = ts("2026-11-10T08:00:00Z");
        let far = ts("2027-01-01T00:00:00Z");
        assert_eq!(
            lifetime(None, &policy, now, far).expect("default"),
            SignedDuration::from_hours(8)
        );
        assert_eq!(
            lifetime(None, &policy, now, ts("2026-11-10T10:00:00Z")).expect("cut"),
            SignedDuration::from_hours(2)
        );
        assert_eq!(
            lifetime(Some("2h"), &policy, now, far).expect("2h"),
            SignedDuration::from_hours(2)
        );
        assert_eq!(
            lifetime(Some("90s"), &policy, now, far).expect("90s"),
            SignedDuration::from_secs(90)
        );
        for bad in ["25h", "30s", "-1h", "two hours", "", "0"] {
            let problem = lifetime(Some(bad), &policy, now, far).expect_err(bad);
            assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
        // Longer than the caller's own token: refused, with its expiry.
        let problem = lifetime(Some("4h"), &policy, now, ts("2026-11-10T10:00:00Z"))
            .expect_err("beyond the caller");
        assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_ttl_beyond_the_callers_sign_in_is_refused_saying_how_long_the_sign_in_still_lives() {
        let policy = KubeconfigPolicy::default();
        let now = ts("2026-11-10T08:00:00Z");
        // A person signed in by SSO a minute ago: the provider's hour, less that minute.
        let signed_in = ts("2026-11-10T08:59:00.5Z");
        let problem = lifetime(Some("2h"), &policy, now, signed_in).expect_err("2h");
        assert_eq!(problem.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let said = &problem.detail;
        assert!(
            said.contains("expires at 2026-11-10T08:59:00.5Z, in 59m"),
            "{said}"
        );
        assert!(said.contains("never outlives"), "{said}");
        assert_eq!(
            lifetime(Some("59m"), &policy, now, signed_in).expect("59m"),
            SignedDuration::from_mins(59)
        );
        // Left out, the ttl is what is left of the sign-in.
        assert_eq!(
            lifetime(None, &policy, now, signed_in).expect("default"),
            SignedDuration::from_millis(59 * 60 * 1000 + 500)
        );
        assert_eq!(
            whole_minutes(SignedDuration::from_secs(7 * 3600 + 59 * 60 + 59)),
            "7h 59m"
        );
        assert_eq!(whole_minutes(SignedDuration::from_hours(2)), "2h");
        assert_eq!(whole_minutes(SignedDuration::from_secs(42)), "42s");
    }

    #[test]
    fn a_kubeconfig_names_its_namespace_as_the_context_and_carries_the_ca() {
        let policy = KubeconfigPolicy {
            server: "https://k8s.haidian.gov.cn:6443".to_owned(),
            ca_pem: Some(
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
            ),
            ..KubeconfigPolicy::default()
        };
        let yaml = kubeconfig_yaml(&policy, "wjw-dev", "wjw-dev-admin", "t0ken").expect("yaml");
        let parsed: serde_json::Value = serde_yaml::from_str(&yaml).expect("parse");
        assert_eq!(parsed["current-context"], "wjw-dev");
        assert_eq!(parsed["contexts"][0]["context"]["namespace"], "wjw-dev");
        assert_eq!(parsed["users"][0]["user"]["token"], "t0ken");
        assert_eq!(
            parsed["clusters"][0]["cluster"]["server"],
            "https://k8s.haidian.gov.cn:6443"
        );
        let ca = parsed["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .expect("ca");
        assert_eq!(
            STANDARD.decode(ca).expect("base64"),
            policy.ca_pem.expect("pem").as_bytes()
        );
    }
}
