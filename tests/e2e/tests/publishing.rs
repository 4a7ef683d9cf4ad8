//! Publishing an application: a bureau's Ingresses and Gateway API routes may name only
//! hostnames under its own domains (`<bureau>.<the pool's domain>` and those granted to it),
//! and traffic from the pool's ingress controller reaches its pods.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use k8s_openapi::api::{
    core::v1::Namespace,
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Api, Client, Config,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, ResourceExt},
};
use serde_json::json;
use zhengyun_e2e::{
    api::Api as ZhengyunApi,
    client, eventually,
    gateway_api::install_crd,
    operator::ensure_operator,
    tenants::{apply_pool_spec, bureau_code, create_bureau, create_ready_environment},
};
use zhengyun_model::crd::Bureau;

const DOMAIN: &str = "apps.haidian.gov.cn";

fn ingress(name: &str, hosts: &[&str]) -> anyhow::Result<Ingress> {
    let rules: Vec<_> = hosts
        .iter()
        .map(|host| {
            json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "portal", "port": {"number": 80}}}}]}})
        })
        .collect();
    Ok(serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {"ingressClassName": "nginx", "rules": rules},
    }))?)
}

/// Publishing switched on in the pool (its domain and ingress controller namespace), then the
/// bureau `home` (区卫生健康委员会, with `spec` added to a small quota) and a Ready `prod`
/// environment of it, whose namespace lists `hostnames`: returns that namespace.
async fn publishing_bureau(
    kube: &Client,
    home: &str,
    spec: serde_json::Value,
    hostnames: &str,
) -> anyhow::Result<String> {
    apply_pool_spec(
        kube,
        "zhengyun-e2e-publishing",
        Some(json!({"publishing": {"domain": DOMAIN, "controllerNamespace": "ingress-nginx"}})),
    )
    .await?;
    let mut bureau = json!({"displayName": "区卫生健康委员会", "kind": "bureau",
                            "quota": {"cpu": "4", "memory": "8Gi", "storage": "10Gi"}});
    if let (Some(bureau), Some(extra)) = (bureau.as_object_mut(), spec.as_object()) {
        bureau.extend(extra.clone());
    }
    create_bureau(kube, home, bureau).await?;
    let ns = format!("{home}-prod");
    create_ready_environment(
        kube,
        &ns,
        json!({"bureau": home, "purpose": "prod", "tier": "silver",
               "quota": {"cpu": "2", "memory": "4Gi", "storage": "5Gi"}}),
    )
    .await?;
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    eventually(
        "the namespace to list its hostnames",
        Duration::from_secs(60),
        || async {
            let listed = namespaces
                .get(&ns)
                .await?
                .annotations()
                .get("zhengyun.io/hostnames")
                .cloned()
                .unwrap_or_default();
            Ok((listed == hostnames).then_some(()))
        },
    )
    .await?;
    Ok(ns)
}

#[tokio::test]
async fn a_bureau_publishes_hostnames_under_its_own_domains_only() -> anyhow::Result<()> {
    ensure_operator().await?;
    let kube = client().await?;
    let (home, other) = (bureau_code("pubw"), bureau_code("pubr"));
    let granted = format!("{home}.bj.gov.cn");
    let own = format!("{home}.{DOMAIN}");
    let ns = publishing_bureau(
        &kube,
        &home,
        json!({"domains": [granted]}),
        &format!("{own},{granted}"),
    )
    .await?;

    let ingresses: Api<Ingress> = Api::namespaced(kube.clone(), &ns);
    let create = |name: &str, hosts: &[&str]| {
        let ingresses = ingresses.clone();
        let made = ingress(name, hosts);
        async move {
            ingresses
                .create(&PostParams::default(), &made?)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    // Its own names, the granted domain and a wildcard below its own name are accepted.
    create("portal", &[&format!("portal.{own}")]).await?;
    create("granted", &[&granted, &format!("*.{own}")]).await?;
    // Another bureau's name, a name that only ends like its domain, a bare IP and a rule
    // without a host are refused, and nothing is stored.
    for (name, hosts) in [
        ("other", vec![format!("portal.{other}.{DOMAIN}")]),
        ("lookalike", vec![format!("evil{home}.bj.gov.cn")]),
        (
            "mixed",
            vec![format!("portal.{own}"), format!("portal.{other}.{DOMAIN}")],
        ),
        ("address", vec!["10.20.30.40".to_owned()]),
        ("anyhost", vec![String::new()]),
    ] {
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let refused = create(name, &hosts).await;
        let error = refused.expect_err(name).to_string();
        assert!(
            error.contains("own domains")
                || error.contains("not an IP")
                || error.contains("must name its host"),
            "{name}: {error}"
        );
        assert!(
            ingresses.get_opt(name).await?.is_none(),
            "{name} was stored"
        );
    }

    // Traffic from the ingress controller's namespace may reach the pods.
    let policy = Api::<NetworkPolicy>::namespaced(kube.clone(), &ns)
        .get("zhengyun-allow-ingress-controller")
        .await?;
    let from = serde_json::to_value(&policy.spec)?["ingress"][0]["from"][0].clone();
    assert_eq!(
        from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    Ok(())
}

/// A client acting as a member of `group`, as a bureau's staff reach the cluster.
async fn member_of(group: &str) -> anyhow::Result<Client> {
    let mut config = Config::infer().await?;
    config.auth_info.impersonate = Some(format!("someone-of-{group}"));
    config.auth_info.impersonate_groups = Some(vec![group.to_owned()]);
    Ok(Client::try_from(config)?)
}

fn http_route(name: &str, hostnames: &[&str]) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "ingress-nginx"}],
            "hostnames": hostnames,
            "rules": [{"backendRefs": [{"name": "portal", "port": 80}]}],
        },
    }))?)
}

#[tokio::test]
async fn a_bureau_admin_routes_its_own_hostnames_through_the_gateway_api_and_no_other_bureaus()
-> anyhow::Result<()> {
    ensure_operator().await?;
    let kube = client().await?;
    install_crd(&kube, "httproutes").await?;
    let (home, other) = (bureau_code("rtew"), bureau_code("rter"));
    let (admins, viewers) = (format!("{home}-admins"), format!("{home}-viewers"));
    let own = format!("{home}.{DOMAIN}");
    let ns = publishing_bureau(
        &kube,
        &home,
        json!({"adminGroups": [admins], "viewerGroups": [viewers]}),
        &own,
    )
    .await?;

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ));
    let routes_as =
        |client: Client| -> Api<DynamicObject> { Api::namespaced_with(client, &ns, &resource) };
    let (admin, viewer) = (
        routes_as(member_of(&admins).await?),
        routes_as(member_of(&viewers).await?),
    );
    // The bureau's admin (its tenant-admin RoleBinding) routes a name under its own domain;
    // RoleBindings and the new CRD take a moment to be seen by the authorizer.
    let portal = format!("portal.{own}");
    eventually(
        "the bureau admin to create its route",
        Duration::from_secs(60),
        || async {
            Ok(admin
                .create(&PostParams::default(), &http_route("portal", &[&portal])?)
                .await
                .ok())
        },
    )
    .await?;
    // Another bureau's name, alone or beside its own, and a route without hostnames are
    // refused by the admission policy, and nothing is stored.
    for (name, hostnames) in [
        ("other", vec![format!("portal.{other}.{DOMAIN}")]),
        (
            "mixed",
            vec![portal.clone(), format!("portal.{other}.{DOMAIN}")],
        ),
        ("anyhost", vec![]),
    ] {
        let hostnames: Vec<&str> = hostnames.iter().map(String::as_str).collect();
        let refused = admin
            .create(&PostParams::default(), &http_route(name, &hostnames)?)
            .await;
        let error = refused.expect_err(name).to_string();
        assert!(
            error.contains("own domains") || error.contains("must name its hostnames"),
            "{name}: {error}"
        );
        assert!(admin.get_opt(name).await?.is_none(), "{name} was stored");
    }
    // The viewer reads the routes and writes none.
    let seen = viewer.list(&ListParams::default()).await?;
    assert_eq!(
        seen.items.iter().map(|r| r.name_any()).collect::<Vec<_>>(),
        ["portal"]
    );
    match viewer
        .create(
            &PostParams::default(),
            &http_route("viewer", &[&format!("viewer.{own}")])?,
        )
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("a viewer created a route: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_bureau_is_never_granted_the_platforms_domain_one_above_it_or_another_bureaus_names()
-> anyhow::Result<()> {
    let api = ZhengyunApi::start().await?;
    let kube = client().await?;
    apply_pool_spec(
        &kube,
        "zhengyun-e2e-publishing",
        Some(json!({"publishing": {"domain": DOMAIN, "controllerNamespace": "ingress-nginx"}})),
    )
    .await?;
    let (home, other, third) = (
        bureau_code("domw"),
        bureau_code("domr"),
        bureau_code("domt"),
    );
    let refused = [
        DOMAIN.to_owned(),
        "haidian.gov.cn".to_owned(),
        format!("{other}.{DOMAIN}"),
        format!("portal.{other}.{DOMAIN}"),
    ];
    let spec = |domains: &[String]| {
        json!({"displayName": "区卫生健康委员会", "kind": "bureau",
               "quota": {"cpu": "1", "memory": "1Gi"}, "domains": domains})
    };

    // Through the API: 422 naming the field, for a new bureau and for a change of one.
    for domain in &refused {
        let mut body = spec(&[format!("{home}.bj.gov.cn"), domain.clone()]);
        body["name"] = json!(home);
        let answer = api
            .call(
                Method::POST,
                "/api/v1/bureaus",
                Some(&api.admin),
                Some(&body),
            )
            .await?;
        answer.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, domain);
        assert_eq!(
            answer.body["errors"][0]["field"], "domains[1]",
            "{}",
            answer.body
        );
    }
    let mut body = spec(&[
        format!("{home}.bj.gov.cn"),
        format!("portal.{home}.{DOMAIN}"),
    ]);
    body["name"] = json!(home);
    let created = api
        .call(
            Method::POST,
            "/api/v1/bureaus",
            Some(&api.admin),
            Some(&body),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for domain in &refused {
        api.call(
            Method::PATCH,
            &format!("/api/v1/bureaus/{home}"),
            Some(&api.admin),
            Some(&json!({"domains": [domain]})),
        )
        .await?
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, domain);
    }

    // Through kubectl: the admission policy, with the pool as its param, refuses the same for
    // a third bureau (tried as dry runs, so that nothing is stored while the API server loads the policy).
    let bureaus: Api<Bureau> = Api::all(kube.clone());
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let bureau = |domains: &[String]| -> anyhow::Result<Bureau> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
            "metadata": {"name": third}, "spec": spec(domains),
        }))?)
    };
    for domain in &refused {
        let said = eventually(
            &format!("the admission policy to refuse {domain}"),
            Duration::from_secs(60),
            || async {
                match bureaus
                    .create(&dry_run, &bureau(std::slice::from_ref(domain))?)
                    .await
                {
                    Ok(_) => Ok(None),
                    Err(kube::Error::Api(status)) => Ok(Some(status.message)),
                    Err(other) => Err(other.into()),
                }
            },
        )
        .await?;
        assert!(
            said.contains("spec.domains may not grant") && said.contains(domain.as_str()),
            "{domain}: {said}"
        );
    }
    // Its own name and a domain outside the platform's are let in.
    bureaus
        .create(
            &dry_run,
            &bureau(&[
                format!("api.{third}.{DOMAIN}"),
                format!("{third}.bj.gov.cn"),
            ])?,
        )
        .await?;
    Ok(())
}
