//! Sign-in with the district's identity provider (the development one, which the devcluster's
//! API server trusts too): the same token works with the API, in the bureau's role, and with
//! `kubectl`, in the bureau's namespaces only; tokens that do not verify are 401, identities
//! with nothing here 403; a rotated key is accepted at once; the CLI signs in by the device flow
//! and by PKCE through a loopback redirect.

use std::{path::PathBuf, process::Command};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use zhengyun_e2e::{
    api::Api,
    client,
    faults::binary,
    idp::{Idp, finish_login, start_login},
    tenants::bureau_with_dev_environment,
};

/// A bureau with a Ready dev environment (`<code>-admins` is the group the API server maps
/// `zhengyun:<code>:bureau-admin` to).
async fn bureau_with_environment(prefix: &str) -> anyhow::Result<(String, String)> {
    bureau_with_dev_environment(&client().await?, prefix).await
}

fn admin_of(code: &str, name: &str) -> Value {
    json!({"sub": format!("{name}-{code}"), "name": "王芳", "groups": [format!("zhengyun:{code}:bureau-admin")]})
}

/// `kubectl` with `token` as the only credential, against the devcluster.
fn kubectl_with(token: &str, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let config = kube::config::Kubeconfig::read()?;
    let cluster = config
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| anyhow::anyhow!("no cluster in KUBECONFIG"))?;
    let dir = std::env::temp_dir().join(zhengyun_e2e::unique_name("zhengyun-e2e-oidc"));
    std::fs::create_dir_all(&dir)?;
    let ca = dir.join("ca.crt");
    match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => {
            use base64::Engine;
            std::fs::write(&ca, base64::engine::general_purpose::STANDARD.decode(data)?)?
        }
        (None, Some(path)) => {
            std::fs::copy(path, &ca)?;
        }
        _ => anyhow::bail!("no cluster CA in KUBECONFIG"),
    }
    let out =
        Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../devcluster/bin/kubectl"))
            .args(args)
            .arg(format!("--server={}", cluster.server.unwrap_or_default()))
            .arg(format!("--certificate-authority={}", ca.display()))
            .arg(format!("--token={token}"))
            .arg("--request-timeout=20s")
            .env_clear()
            .env("HOME", &dir)
            .env("KUBECONFIG", dir.join("none"))
            .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test]
async fn a_signed_in_bureau_admin_reaches_its_bureau_through_the_api_and_kubectl_and_nothing_else()
-> anyhow::Result<()> {
    let idp = Idp::require()?;
    let api = Api::start().await?;
    let (home, home_env) = bureau_with_environment("oidca").await?;
    let (away, away_env) = bureau_with_environment("oidcb").await?;
    let token = idp.mint(&admin_of(&home, "wangfang"))?;

    let me = api
        .call(Method::GET, "/api/v1/whoami", Some(&token), None)
        .await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["role"], "bureau-admin");
    assert_eq!(me.body["bureau"], home.as_str());
    assert!(
        me.body["token"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("wangfang-{home}@")),
        "{}",
        me.body
    );
    let own = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{home}/environments"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let other = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{away}"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
    // A change made signed in is audited under the person.
    let issued = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{home}/environments/{home_env}/kubeconfig"),
            Some(&token),
            Some(&json!({"ttl": "10m"})),
        )
        .await?;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let log = api
        .call(
            Method::GET,
            "/api/v1/audit?action=environment.kubeconfig",
            Some(&api.admin),
            None,
        )
        .await?;
    assert!(
        log.body
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["principalLabel"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("user wangfang-{home}@"))),
        "{}",
        log.body
    );

    // The same token with kubectl: its bureau's namespace, nothing else.
    let (ok, said) = kubectl_with(&token, &["get", "configmaps", "-n", &home_env])?;
    assert!(ok, "kubectl in its own namespace: {said}");
    for namespace in [away_env.as_str(), "kube-system"] {
        let (ok, said) = kubectl_with(&token, &["get", "configmaps", "-n", namespace])?;
        assert!(
            !ok && said.to_lowercase().contains("forbidden"),
            "{namespace}: {said}"
        );
    }
    let (ok, said) = kubectl_with(
        &token,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"],
    )?;
    assert!(ok && said.contains(&format!("{home}-admins")), "{said}");

    // A person of the other bureau is refused this one's objects.
    let stranger = idp.mint(&admin_of(&away, "lina"))?;
    let refused = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{home}/environments"),
            Some(&stranger),
            None,
        )
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    Ok(())
}

#[tokio::test]
async fn a_signed_in_bureau_viewer_reads_its_namespace_with_kubectl_and_writes_nothing_there_or_through_the_api()
-> anyhow::Result<()> {
    let idp = Idp::require()?;
    let api = Api::start().await?;
    let (home, home_env) = bureau_with_environment("oidcv").await?;
    // 李娜, 卫健委's viewer in the sample users, here of this test's own bureau.
    let token = idp.mint(&json!({"sub": format!("lina-{home}"), "name": "李娜",
        "groups": [format!("zhengyun:{home}:bureau-viewer")]}))?;

    let me = api
        .call(Method::GET, "/api/v1/whoami", Some(&token), None)
        .await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(
        (me.body["role"].as_str(), me.body["bureau"].as_str()),
        (Some("bureau-viewer"), Some(home.as_str()))
    );
    let listed = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{home}/environments"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    // kubectl with her token: she reads in the bureau's namespace and writes nothing there.
    let (ok, said) = kubectl_with(&token, &["get", "configmaps,deployments", "-n", &home_env])?;
    assert!(ok, "a viewer reading her namespace: {said}");
    let (ok, said) = kubectl_with(
        &token,
        &[
            "create",
            "configmap",
            "notes",
            "--from-literal=a=b",
            "-n",
            &home_env,
        ],
    )?;
    assert!(
        !ok && said.to_lowercase().contains("forbidden"),
        "a viewer wrote a ConfigMap: {said}"
    );
    let (_, said) = kubectl_with(
        &token,
        &[
            "auth",
            "can-i",
            "create",
            "deployments.apps",
            "-n",
            &home_env,
        ],
    )?;
    assert_eq!(said.lines().next().map(str::trim), Some("no"), "{said}");

    // Through the API every write is 403.
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/bureaus/{home}/environments"),
            Some(json!({"purpose": "test", "quota": {"cpu": "1", "memory": "1Gi"}})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/bureaus/{home}/environments/{home_env}"),
            Some(json!({"quota": {"cpu": "1", "memory": "1Gi"}})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/bureaus/{home}/environments/{home_env}"),
            None,
        ),
    ] {
        api.call(method.clone(), &path, Some(&token), body.as_ref())
            .await?
            .assert_problem(StatusCode::FORBIDDEN, &format!("{method} {path}"));
    }
    Ok(())
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_401_and_identities_with_no_role_here_are_403()
-> anyhow::Result<()> {
    let idp = Idp::require()?;
    let api = Api::start().await?;
    let (home, _) = bureau_with_environment("oidcc").await?;
    let good = admin_of(&home, "chenjing");
    let with = |extra: Value| {
        let mut request = good.clone();
        if let (Some(request), Value::Object(extra)) = (request.as_object_mut(), extra) {
            request.extend(extra);
        }
        request
    };
    for (what, request, want) in [
        (
            "a bad signature",
            with(json!({"signer": "foreign"})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another audience",
            with(json!({"aud": "grafana"})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an expired token",
            with(json!({"expiresIn": -120})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a token not valid yet",
            with(json!({"notBeforeIn": 600})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "an unknown issuer",
            with(json!({"issuer": "https://sso.example.invalid"})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "no role",
            with(json!({"groups": ["staff", "wjw-admins"]})),
            StatusCode::FORBIDDEN,
        ),
        (
            "an unknown bureau",
            with(json!({"groups": ["zhengyun:nosuchbureau:bureau-admin"]})),
            StatusCode::FORBIDDEN,
        ),
        (
            "two roles",
            with(json!({"groups": [format!("zhengyun:{home}:bureau-admin"), "zhengyun:auditor"]})),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let token = idp.mint(&request)?;
        api.call(Method::GET, "/api/v1/whoami", Some(&token), None)
            .await?
            .assert_problem(want, what);
    }
    // A malformed token looking like a JWT is 401 too, never a 500.
    let answer = api
        .call(
            Method::GET,
            "/api/v1/whoami",
            Some("eyJhbGciOiJFUzI1NiJ9.e30.AAAA"),
            None,
        )
        .await?;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    Ok(())
}

#[tokio::test]
async fn a_key_rotated_at_the_provider_is_accepted_without_a_restart() -> anyhow::Result<()> {
    let idp = Idp::require()?;
    let api = Api::start().await?;
    let (home, _) = bureau_with_environment("oidcd").await?;
    let before = idp.mint(&admin_of(&home, "zhaolei"))?;
    let answer = api
        .call(Method::GET, "/api/v1/whoami", Some(&before), None)
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    idp.rotate()?;
    let after = idp.mint(&admin_of(&home, "zhaolei"))?;
    assert_ne!(
        jsonwebtoken_kid(&before),
        jsonwebtoken_kid(&after),
        "the rotation made no new key"
    );
    for token in [&after, &before] {
        let answer = api
            .call(Method::GET, "/api/v1/whoami", Some(token), None)
            .await?;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    Ok(())
}

/// The `kid` of a JWT's header.
fn jsonwebtoken_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&bytes).unwrap_or_default()["kid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Runs `zhengyun <args>` against `url` with the session kept in `config`.
fn cli(url: &str, config: &std::path::Path, ca: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .args(["--api-url", url])
        .arg("--ca-file")
        .arg(ca)
        .env("ZHENGYUN_CONFIG_DIR", config)
        .env_remove("ZHENGYUN_TOKEN")
        .env_remove("ZHENGYUN_BUREAU")
        .env_remove("ZHENGYUN_CA_FILE");
    command
}

// Several workers: the test blocks on the CLI while the API it calls is served in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_signs_in_by_the_device_flow_and_by_a_loopback_redirect_and_uses_the_session()
-> anyhow::Result<()> {
    let idp = Idp::require()?;
    let api = Api::start().await?;
    let (home, _) = bureau_with_environment("oidce").await?;
    let url = format!("http://{}", api.listen().await?);
    let config = std::env::temp_dir().join(zhengyun_e2e::unique_name("zhengyun-e2e-session"));
    let user = format!("wangfang-{home}");
    idp.add_user(
        &user,
        "zhengyun-dev",
        "王芳",
        &[&format!("zhengyun:{home}:bureau-admin")],
    )?;

    // The device flow: the code printed is entered (here by the test) at the provider.
    let (child, code) = start_login(
        cli(&url, &config, &idp.ca, &["login", "--device"]),
        |line| {
            line.split_once("enter the code ")
                .map(|(_, code)| code.trim().to_owned())
        },
    )?;
    idp.approve_device(&code, &user, "zhengyun-dev")?;
    let signed_in = tokio::task::spawn_blocking(move || finish_login(child)).await??;
    assert!(signed_in.contains("bureau-admin"), "{signed_in}");
    let me = cli(&url, &config, &idp.ca, &["whoami", "-o", "json"]).output()?;
    let me: Value = serde_json::from_slice(&me.stdout)?;
    assert_eq!(
        (me["role"].as_str(), me["bureau"].as_str()),
        (Some("bureau-admin"), Some(home.as_str()))
    );
    // kubectl's exec credential carries the same sign-in.
    let credential = cli(&url, &config, &idp.ca, &["credential"]).output()?;
    let credential: Value = serde_json::from_slice(&credential.stdout)?;
    assert_eq!(credential["kind"], "ExecCredential");
    assert!(
        credential["status"]["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("eyJ"))
    );
    // Signed out, nothing is sent.
    assert!(
        cli(&url, &config, &idp.ca, &["logout"])
            .output()?
            .status
            .success()
    );
    let refused = cli(&url, &config, &idp.ca, &["whoami"]).output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("zhengyun login"));

    // The authorization code flow with PKCE: the browser (here curl) signs in at the printed
    // address and is redirected to the CLI's loopback port.
    let (child, address) = start_login(cli(&url, &config, &idp.ca, &["login"]), |line| {
        let line = line.trim();
        line.starts_with(&idp.issuer).then(|| line.to_owned())
    })?;
    let redirect = idp.sign_in_at(&address, &user, "zhengyun-dev")?;
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    let landed = Command::new("curl").args(["-sS", &redirect]).output()?;
    assert!(String::from_utf8_lossy(&landed.stdout).contains("登录成功"));
    let signed_in = tokio::task::spawn_blocking(move || finish_login(child)).await??;
    assert!(signed_in.contains(&home), "{signed_in}");
    let me = cli(&url, &config, &idp.ca, &["whoami", "-o", "json"]).output()?;
    assert!(
        me.status.success(),
        "{}",
        String::from_utf8_lossy(&me.stderr)
    );
    let _ = std::fs::remove_dir_all(&config);
    Ok(())
}
