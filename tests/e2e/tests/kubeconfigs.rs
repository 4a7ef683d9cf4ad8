//! Kubeconfigs issued by the API, used with the real `kubectl` against the devcluster: a bureau
//! admin's deploys in its environment's namespace and nowhere else, a viewer's only reads, and
//! each stops working when revoked, when it expires, and when the environment is deleted.

use std::{path::PathBuf, process::Command, time::Duration};

use axum::http::{Method, StatusCode};
use kube::{Api as KubeApi, api::DeleteParams};
use serde_json::{Value, json};
use zhengyun_contract::{IssuedKubeconfig, KubeconfigView};
use zhengyun_e2e::{api::Api, client, eventually, tenants::bureau_with_dev_environment};
use zhengyun_model::crd::Environment;
use zhengyun_store::Role;

/// How long a kubeconfig may take to stop working after its Secret is due to go: a sweep
/// interval, and the API server noticing the Secret is gone.
const STOPS_WITHIN: Duration = Duration::from_secs(90);

fn kubectl_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../devcluster/bin/kubectl")
}

/// An issued kubeconfig saved to a file of its own.
struct Saved {
    issued: IssuedKubeconfig,
    path: PathBuf,
}

impl Saved {
    fn new(issued: IssuedKubeconfig) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("zhengyun-e2e-{}.kubeconfig", issued.id));
        std::fs::write(&path, &issued.kubeconfig)?;
        Ok(Self { issued, path })
    }

    /// Runs `kubectl ARGS` with this kubeconfig only (no other credentials in reach), `stdin`
    /// piped in; returns whether it succeeded and what it said.
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<(bool, String)> {
        use std::io::Write;
        let mut command = Command::new(kubectl_binary());
        command
            .args(args)
            .arg("--request-timeout=20s")
            .env_clear()
            .env("KUBECONFIG", &self.path)
            .env("HOME", std::env::temp_dir())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn()?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        drop(child.stdin.take());
        let out = child.wait_with_output()?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), said))
    }

    /// Asserts that `kubectl ARGS` is refused as forbidden.
    fn forbidden(&self, args: &[&str]) -> anyhow::Result<()> {
        let (ok, said) = self.kubectl(args, None)?;
        anyhow::ensure!(
            !ok && said.to_lowercase().contains("forbidden"),
            "kubectl {args:?} should be forbidden: {said}"
        );
        Ok(())
    }

    /// Waits until the kubeconfig no longer authenticates at all.
    async fn stops_working(&self, why: &str) -> anyhow::Result<()> {
        eventually(why, STOPS_WITHIN, || async {
            let (ok, said) = self.kubectl(&["get", "configmaps"], None)?;
            Ok((!ok && said.contains("Unauthorized")).then_some(()))
        })
        .await
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A Deployment that Pod Security `restricted` admits.
fn deployment(name: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "web", "image": "registry.local/wjw/portal:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                      "limits": {"cpu": "200m", "memory": "128Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    })
    .to_string()
}

async fn issue(
    api: &Api,
    bureau: &str,
    env: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<Saved> {
    let answer = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/environments/{env}/kubeconfig"),
            Some(token),
            Some(&body),
        )
        .await?;
    anyhow::ensure!(
        answer.status == StatusCode::CREATED,
        "issuing a kubeconfig: {} {}",
        answer.status,
        answer.body
    );
    Saved::new(answer.decode()?)
}

/// Two bureaus with a Ready dev environment each, `(code, environment)`.
async fn two_bureaus(prefix: &str) -> anyhow::Result<[(String, String); 2]> {
    let kube = client().await?;
    Ok([
        bureau_with_dev_environment(&kube, &format!("{prefix}a")).await?,
        bureau_with_dev_environment(&kube, &format!("{prefix}b")).await?,
    ])
}

#[tokio::test]
async fn an_admins_kubeconfig_deploys_in_its_namespace_only_and_a_viewers_only_reads()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let [(home, env), (_, other_env)] = two_bureaus("kca").await?;
    let admin = api.token(Role::BureauAdmin, Some(&home)).await?;
    let viewer = api.token(Role::BureauViewer, Some(&home)).await?;
    let saved = issue(&api, &home, &env, &admin, json!({"ttl": "2h"})).await?;
    assert_eq!(saved.issued.namespace, env);
    assert_eq!(saved.issued.access, "admin");

    // The admin deploys a restricted Deployment in the environment's namespace (the context's
    // namespace: no -n needed) and reads it back.
    let (ok, said) = saved.kubectl(&["apply", "-f", "-"], Some(&deployment("portal")))?;
    assert!(ok, "kubectl apply: {said}");
    let (ok, said) = saved.kubectl(&["get", "deployment", "portal", "-o", "name"], None)?;
    assert!(ok && said.contains("deployment.apps/portal"), "{said}");
    // Nowhere else: another bureau's namespace, kube-system, cluster-wide objects, RBAC.
    saved.forbidden(&["get", "pods", "-n", &other_env])?;
    saved.forbidden(&["get", "secrets", "-n", "kube-system"])?;
    saved.forbidden(&["get", "nodes"])?;
    saved.forbidden(&["get", "namespaces"])?;
    saved.forbidden(&[
        "create",
        "rolebinding",
        "x",
        "--clusterrole=admin",
        "--user=x",
    ])?;
    saved.forbidden(&["delete", "resourcequota", "zhengyun-quota"])?;

    // The viewer's kubeconfig reads the namespace and changes nothing.
    let read_only = issue(&api, &home, &env, &viewer, json!({})).await?;
    assert_eq!(read_only.issued.access, "viewer");
    let (ok, said) = read_only.kubectl(&["get", "deployments", "-o", "name"], None)?;
    assert!(ok && said.contains("deployment.apps/portal"), "{said}");
    read_only.forbidden(&["delete", "deployment", "portal"])?;
    read_only.forbidden(&["get", "pods", "-n", &other_env])?;

    // Both are listed, never with a token; the issue is in the audit log.
    let listed = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{home}/environments/{env}/kubeconfigs"),
            Some(&viewer),
            None,
        )
        .await?;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let views: Vec<KubeconfigView> = listed.decode()?;
    assert_eq!(views.len(), 2);
    assert!(views.iter().all(|v| v.state == "active"));
    assert!(
        !listed
            .body
            .to_string()
            .contains(&saved.issued.kubeconfig[..40])
    );
    let results = api.audit_results("environment.kubeconfig").await?;
    assert!(
        results.iter().filter(|r| r.starts_with("201")).count() >= 2,
        "{results:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_kubeconfig_stops_working_when_revoked_when_expired_and_when_its_environment_is_deleted()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let [(home, env), _] = two_bureaus("kcb").await?;
    let admin = api.token(Role::BureauAdmin, Some(&home)).await?;
    let revoked = issue(&api, &home, &env, &admin, json!({"ttl": "1h"})).await?;
    let short = issue(&api, &home, &env, &admin, json!({"ttl": "1m"})).await?;
    let kept = issue(&api, &home, &env, &admin, json!({})).await?;
    for saved in [&revoked, &short, &kept] {
        let (ok, said) = saved.kubectl(&["get", "configmaps"], None)?;
        assert!(ok, "a fresh kubeconfig works: {said}");
    }

    // Revoked: stops within seconds, the others go on.
    let answer = api
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/bureaus/{home}/environments/{env}/kubeconfigs/{}",
                revoked.issued.id
            ),
            Some(&admin),
            None,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["state"], "revoked");
    revoked
        .stops_working("the revoked kubeconfig to stop")
        .await?;
    // A minute's kubeconfig: its token would live the API server's minimum of 10 minutes; the
    // Secret it is bound to goes at its expiry.
    short
        .stops_working("the one-minute kubeconfig to expire")
        .await?;
    let (ok, said) = kept.kubectl(&["get", "configmaps"], None)?;
    assert!(
        ok,
        "an unexpired, unrevoked kubeconfig keeps working: {said}"
    );

    // Deleting the environment deletes its namespace, accounts and Secrets: the last one stops.
    KubeApi::<Environment>::all(client().await?)
        .delete(&env, &DeleteParams::default())
        .await?;
    kept.stops_working("the kubeconfig of a deleted environment to stop")
        .await?;
    Ok(())
}

#[tokio::test]
async fn kubeconfigs_are_refused_to_other_roles_and_bureaus_and_for_bad_lifetimes()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let [(home, env), (away, _)] = two_bureaus("kcc").await?;
    let path = format!("/api/v1/bureaus/{home}/environments/{env}/kubeconfig");
    let admin = api.token(Role::BureauAdmin, Some(&home)).await?;
    let stranger = api.token(Role::BureauAdmin, Some(&away)).await?;
    let finance = api.token(Role::Finance, None).await?;
    for (token, body, want) in [
        (&stranger, json!({}), StatusCode::FORBIDDEN),
        (&finance, json!({}), StatusCode::FORBIDDEN),
        (&api.admin, json!({}), StatusCode::FORBIDDEN),
        (
            &admin,
            json!({"ttl": "25h"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            json!({"ttl": "10s"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            json!({"ttl": "两小时"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            json!({"ttl": 7200}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            json!({"lifetime": "2h"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        api.call(Method::POST, &path, Some(token), Some(&body))
            .await?
            .assert_problem(want, &body.to_string());
    }
    let missing = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{home}/environments/{home}-prod/kubeconfig"),
            Some(&admin),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    // Nothing was issued by any of them.
    assert!(api.store.kubeconfigs_of(&home, &env).await?.is_empty());
    // An id of nothing cannot be revoked.
    let unknown = api
        .call(
            Method::DELETE,
            &format!("/api/v1/bureaus/{home}/environments/{env}/kubeconfigs/0000000000000000"),
            Some(&admin),
            None,
        )
        .await?;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    Ok(())
}
