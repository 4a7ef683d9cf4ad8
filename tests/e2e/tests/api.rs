//! The control-plane API against the devcluster and the running operator: requests become
//! namespaces, concurrency never over-allocates, approvals apply, and the authorisation matrix
//! holds for every endpoint and role.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api as KubeApi;
use serde_json::{Value, json};
use zhengyun_api::state::FIELD_MANAGER;
use zhengyun_contract::{
    BureauView, CreateBureau, CreateEnvironment, EnvironmentView, QuotaBody, UpdateBureau,
    UpdateEnvironment,
};
use zhengyun_e2e::{api::Api, client, eventually, unique_name};
use zhengyun_model::crd::{Bureau, CLEANUP_FINALIZER, Environment};
use zhengyun_store::Role;

const WAIT: Duration = Duration::from_secs(180);

/// Onboards bureau `code` through the API with `cpu` cores and 64Gi.
async fn onboard(api: &Api, code: &str, cpu: &str) -> anyhow::Result<()> {
    let bureau = CreateBureau {
        name: code.to_owned(),
        display_name: "海淀区城市管理委员会".to_owned(),
        kind: "bureau".to_owned(),
        parent: None,
        quota: QuotaBody {
            cpu: Some(cpu.to_owned()),
            memory: Some("64Gi".to_owned()),
            storage: Some("100Gi".to_owned()),
            ..QuotaBody::default()
        },
        monthly_budget: None,
        admin_groups: vec![format!("{code}-admins")],
        viewer_groups: Vec::new(),
        domains: Vec::new(),
    };
    let answer = api
        .call(
            Method::POST,
            "/api/v1/bureaus",
            Some(&api.admin),
            Some(&serde_json::to_value(&bureau)?),
        )
        .await?;
    anyhow::ensure!(answer.status == StatusCode::CREATED, "onboard: {answer:?}");
    Ok(())
}

/// The body requesting environment `name` with `cpu` cores and 1Gi.
fn env_body(name: &str, purpose: &str, cpu: &str) -> Value {
    let request = CreateEnvironment {
        name: Some(name.to_owned()),
        purpose: purpose.to_owned(),
        tier: None,
        quota: QuotaBody {
            cpu: Some(cpu.to_owned()),
            memory: Some("1Gi".to_owned()),
            ..QuotaBody::default()
        },
        services: Vec::new(),
        expires_at: None,
    };
    serde_json::to_value(request).unwrap_or_default()
}

async fn wait_for_phase(
    api: &Api,
    token: &str,
    bureau: &str,
    name: &str,
    phase: &str,
) -> anyhow::Result<Value> {
    let uri = format!("/api/v1/bureaus/{bureau}/environments/{name}");
    eventually(&format!("{name} {phase}"), WAIT, || async {
        let answer = api.call(Method::GET, &uri, Some(token), None).await?;
        Ok((answer.body["phase"] == phase).then_some(answer.body))
    })
    .await
}

async fn cleanup(bureau: &str) -> anyhow::Result<()> {
    let client = client().await?;
    let envs: KubeApi<Environment> = KubeApi::all(client.clone());
    let params = kube::api::ListParams::default().fields(&format!("spec.bureau={bureau}"));
    for env in envs.list(&params).await? {
        let name = env.metadata.name.unwrap_or_default();
        envs.delete(&name, &Default::default()).await.ok();
    }
    KubeApi::<Bureau>::all(client)
        .delete(bureau, &Default::default())
        .await
        .ok();
    Ok(())
}

#[tokio::test]
async fn an_environment_requested_through_the_api_becomes_a_ready_namespace() -> anyhow::Result<()>
{
    let api = Api::start().await?;
    let bureau = unique_name("cgw");
    onboard(&api, &bureau, "8").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let name = format!("{bureau}-prod");

    let created = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/environments"),
            Some(&token),
            Some(
                &json!({"purpose": "prod", "tier": "gold", "quota": {"cpu": "2", "memory": "4Gi"}}),
            ),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["name"], name.as_str());
    // The API creates it with the cleanup finalizer, so the operator never has to patch one in:
    // only the API's field manager has ever written `metadata.finalizers`.
    let stored = KubeApi::<Environment>::all(client().await?)
        .get(&name)
        .await?;
    assert_eq!(
        stored.metadata.finalizers.as_deref(),
        Some(&[CLEANUP_FINALIZER.to_owned()][..])
    );
    let finalizer_writers: Vec<_> = stored
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:metadata/f:finalizers").is_some())
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(finalizer_writers, [FIELD_MANAGER]);

    let ready = wait_for_phase(&api, &token, &bureau, &name, "Ready").await?;
    assert_eq!(ready["namespace"], name.as_str());
    assert_eq!(ready["admittedQuota"]["cpu"], "2");
    let namespace = KubeApi::<Namespace>::all(client().await?)
        .get(&name)
        .await?;
    assert_eq!(
        namespace.metadata.labels.unwrap_or_default()["zhengyun.io/bureau"],
        bureau
    );

    let resized = api
        .call(
            Method::PATCH,
            &format!("/api/v1/bureaus/{bureau}/environments/{name}"),
            Some(&token),
            Some(&json!({"quota": {"cpu": "3", "memory": "4Gi"}})),
        )
        .await?;
    assert_eq!(resized.status, StatusCode::OK, "{:?}", resized.body);
    eventually("the resize admitted", WAIT, || async {
        let answer = api
            .call(
                Method::GET,
                &format!("/api/v1/bureaus/{bureau}/environments/{name}"),
                Some(&token),
                None,
            )
            .await?;
        Ok((answer.body["admittedQuota"]["cpu"] == "3").then_some(()))
    })
    .await?;

    let deleted = api
        .call(
            Method::DELETE,
            &format!("/api/v1/bureaus/{bureau}/environments/{name}"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(deleted.body["phase"], "Terminating");
    eventually("the environment gone", WAIT, || async {
        let answer = api
            .call(
                Method::GET,
                &format!("/api/v1/bureaus/{bureau}/environments/{name}"),
                Some(&token),
                None,
            )
            .await?;
        Ok((answer.status == StatusCode::NOT_FOUND).then_some(()))
    })
    .await?;

    let log = api
        .call(
            Method::GET,
            &format!("/api/v1/audit?bureau={bureau}"),
            Some(&api.admin),
            None,
        )
        .await?;
    let actions: Vec<&str> = log
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "bureau.create",
            "environment.create",
            "environment.update",
            "environment.delete"
        ]
    );
    let resize = &log.body[2];
    assert_eq!(resize["quotaBefore"]["cpu"], "2");
    assert_eq!(resize["quotaAfter"]["cpu"], "3");
    assert_eq!(resize["result"], "200 OK");
    cleanup(&bureau).await
}

#[tokio::test]
async fn fifty_concurrent_requests_never_over_allocate_and_every_caller_gets_a_clear_answer()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let bureau = unique_name("jtj");
    onboard(&api, &bureau, "3").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let uri = format!("/api/v1/bureaus/{bureau}/environments");

    let answers = join_all((0..50).map(|i| {
        let (api, token, uri) = (api.clone(), token.clone(), uri.clone());
        let body = env_body(&format!("{bureau}-dev-{i}"), "dev", "1");
        async move {
            api.call(Method::POST, &uri, Some(&token), Some(&body))
                .await
        }
    }))
    .await;
    let mut created = 0;
    let mut pending = 0;
    for answer in answers {
        let answer = answer?;
        match answer.status {
            StatusCode::CREATED => created += 1,
            StatusCode::ACCEPTED => {
                pending += 1;
                assert_eq!(answer.body["request"]["state"], "pending");
                assert!(
                    answer.body["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("cpu")),
                    "{:?}",
                    answer.body
                );
            }
            other => panic!("unexpected {other}: {:?}", answer.body),
        }
    }
    assert_eq!((created, pending), (3, 47));

    // The same name requested ten times at once: one wins, the rest are told it exists.
    let twins = join_all((0..10).map(|_| {
        let (api, token, uri) = (api.clone(), token.clone(), uri.clone());
        let body = env_body(&format!("{bureau}-test"), "test", "1");
        async move {
            api.call(Method::POST, &uri, Some(&token), Some(&body))
                .await
        }
    }))
    .await;
    let statuses: Vec<StatusCode> = twins
        .into_iter()
        .map(|a| a.map(|a| a.status))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9,
        "{statuses:?}"
    );

    let envs: KubeApi<Environment> = KubeApi::all(client().await?);
    let params = kube::api::ListParams::default().fields(&format!("spec.bureau={bureau}"));
    assert_eq!(envs.list(&params).await?.items.len(), 3);
    eventually("three environments Ready", WAIT, || async {
        let list = api.call(Method::GET, &uri, Some(&token), None).await?;
        let ready = list
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["phase"] == "Ready")
            .count();
        Ok((ready == 3).then_some(()))
    })
    .await?;
    let requests = api
        .call(
            Method::GET,
            &format!("/api/v1/requests?bureau={bureau}&state=pending"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(requests.body.as_array().map(Vec::len), Some(48));
    cleanup(&bureau).await
}

#[tokio::test]
async fn a_request_beyond_the_bureau_quota_waits_for_approval_and_approval_applies_it()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let bureau = unique_name("sfj");
    onboard(&api, &bureau, "2").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let uri = format!("/api/v1/bureaus/{bureau}/environments");
    let first = api
        .call(
            Method::POST,
            &uri,
            Some(&token),
            Some(&env_body(&format!("{bureau}-dev"), "dev", "1")),
        )
        .await?;
    assert_eq!(first.status, StatusCode::CREATED);
    let big = api
        .call(
            Method::POST,
            &uri,
            Some(&token),
            Some(&env_body(&format!("{bureau}-prod"), "prod", "4")),
        )
        .await?;
    assert_eq!(big.status, StatusCode::ACCEPTED, "{:?}", big.body);
    let id = big.body["request"]["id"].as_str().expect("id").to_owned();

    let by_bureau = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            Some(&token),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(by_bureau.status, StatusCode::FORBIDDEN);

    let approved = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            Some(&api.admin),
            Some(&json!({"reason": "汛期保障"})),
        )
        .await?;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    assert_eq!(approved.body["request"]["state"], "approved");
    assert_eq!(approved.body["bureauQuota"]["cpu"], "5");
    wait_for_phase(&api, &token, &bureau, &format!("{bureau}-prod"), "Ready").await?;

    let again = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            Some(&api.admin),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let more = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/quota-requests"),
            Some(&token),
            Some(&json!({"quota": {"cpu": "50", "memory": "64Gi"}, "reason": "年底集中报表"})),
        )
        .await?;
    assert_eq!(more.status, StatusCode::ACCEPTED);
    let more_id = more.body["request"]["id"].as_str().expect("id").to_owned();
    let no_reason = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{more_id}/reject"),
            Some(&api.admin),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rejected = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{more_id}/reject"),
            Some(&api.admin),
            Some(&json!({"reason": "资源池容量不足"})),
        )
        .await?;
    assert_eq!(rejected.status, StatusCode::OK);
    assert_eq!(rejected.body["decisionReason"], "资源池容量不足");
    let quota = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{bureau}"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(quota.body["quota"]["cpu"], "5");
    cleanup(&bureau).await
}

/// The bureau's quota as the API shows it.
async fn bureau_quota(api: &Api, bureau: &str) -> anyhow::Result<Value> {
    let answer = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{bureau}"),
            Some(&api.admin),
            None,
        )
        .await?;
    anyhow::ensure!(answer.status == StatusCode::OK, "bureau: {answer:?}");
    Ok(answer.body["quota"].clone())
}

async fn request_state(api: &Api, id: &str) -> anyhow::Result<Value> {
    let answer = api
        .call(
            Method::GET,
            &format!("/api/v1/requests/{id}"),
            Some(&api.admin),
            None,
        )
        .await?;
    Ok(answer.body["state"].clone())
}

#[tokio::test]
async fn a_quota_request_changes_only_the_resources_it_names_and_keeps_the_rest_as_at_approval()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let bureau = unique_name("rsj");
    onboard(&api, &bureau, "2").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let filed = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/quota-requests"),
            Some(&token),
            Some(&json!({"quota": {"cpu": "32"}, "reason": "社保系统年度结算"})),
        )
        .await?;
    assert_eq!(filed.status, StatusCode::ACCEPTED, "{:?}", filed.body);
    assert_eq!(filed.body["request"]["payload"], json!({"cpu": "32"}));
    let id = filed.body["request"]["id"].as_str().expect("id").to_owned();

    // Memory changes between filing and approval; approval keeps the new value.
    let patched = api
        .call(
            Method::PATCH,
            &format!("/api/v1/bureaus/{bureau}"),
            Some(&api.admin),
            Some(&json!({"quota": {"cpu": "2", "memory": "128Gi", "storage": "100Gi"}})),
        )
        .await?;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);

    let approved = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            Some(&api.admin),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    let want = json!({"cpu": "32", "memory": "128Gi", "storage": "100Gi"});
    assert_eq!(approved.body["bureauQuota"], want);
    assert_eq!(bureau_quota(&api, &bureau).await?, want);
    cleanup(&bureau).await
}

/// A ValidatingAdmissionPolicy (and its binding) that makes the cluster refuse to create the
/// environment `target` of `bureau`: every create, or with `dry_runs_pass` only the real one (so
/// a dry run of it succeeds). Returns once the cluster enforces it.
async fn refuse_creating(bureau: &str, target: &str, dry_runs_pass: bool) -> anyhow::Result<()> {
    use kube::{
        api::PostParams,
        core::{ApiResource, DynamicObject, GroupVersionKind},
    };
    let client = client().await?;
    let gvk = |kind: &str| GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    let policy = format!("e2e-refuse-{target}");
    // The probe is refused even in a dry run, which tells when the policy is in force.
    let probe = if dry_runs_pass {
        format!("{bureau}-test")
    } else {
        target.to_owned()
    };
    let expression = if dry_runs_pass {
        format!(
            "object.metadata.name != '{probe}' && \
             (object.metadata.name != '{target}' || request.dryRun)"
        )
    } else {
        format!("object.metadata.name != '{target}'")
    };
    let objects = [
        (
            gvk("ValidatingAdmissionPolicy"),
            json!({"metadata": {"name": policy}, "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": ["zhengyun.io"], "apiVersions": ["*"],
                    "operations": ["CREATE"], "resources": ["environments"]}]},
                "validations": [{"expression": expression, "reason": "Invalid",
                    "message": "refused by the test's admission policy"}]}}),
        ),
        (
            gvk("ValidatingAdmissionPolicyBinding"),
            json!({"metadata": {"name": policy}, "spec": {
                "policyName": policy, "validationActions": ["Deny"]}}),
        ),
    ];
    for (gvk, body) in objects {
        let resource = ApiResource::from_gvk(&gvk);
        let mut object: DynamicObject = serde_json::from_value(body)?;
        object.types = Some(kube::core::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        KubeApi::<DynamicObject>::all_with(client.clone(), &resource)
            .create(&PostParams::default(), &object)
            .await?;
    }
    let probe_env: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": probe},
        "spec": {"bureau": bureau, "purpose": if dry_runs_pass { "test" } else { "prod" },
            "quota": {"cpu": "1", "memory": "1Gi"}},
    }))?;
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let environments = KubeApi::<Environment>::all(client);
    eventually("the admission policy in force", WAIT, || async {
        Ok(environments
            .create(&dry_run, &probe_env)
            .await
            .is_err()
            .then_some(()))
    })
    .await
}

async fn remove_refusal(target: &str) -> anyhow::Result<()> {
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
    let client = client().await?;
    for kind in [
        "ValidatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
    ] {
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        KubeApi::<DynamicObject>::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
            .delete(&format!("e2e-refuse-{target}"), &Default::default())
            .await
            .ok();
    }
    Ok(())
}

/// Files an environment request beyond `bureau`'s 2 cores, makes the cluster refuse to create
/// it, approves it, and checks that nothing stays applied and the failure is audited.
async fn approve_an_environment_the_cluster_refuses(
    prefix: &str,
    dry_runs_pass: bool,
    outcome: &str,
) -> anyhow::Result<()> {
    let api = Api::start().await?;
    let bureau = unique_name(prefix);
    onboard(&api, &bureau, "2").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let name = format!("{bureau}-prod");
    let big = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/environments"),
            Some(&token),
            Some(&env_body(&name, "prod", "4")),
        )
        .await?;
    assert_eq!(big.status, StatusCode::ACCEPTED, "{:?}", big.body);
    let id = big.body["request"]["id"].as_str().expect("id").to_owned();
    refuse_creating(&bureau, &name, dry_runs_pass).await?;

    let before = bureau_quota(&api, &bureau).await?;
    let approved = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            Some(&api.admin),
            Some(&json!({})),
        )
        .await?;
    remove_refusal(&name).await?;
    assert_eq!(
        approved.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        approved.body
    );
    assert_eq!(bureau_quota(&api, &bureau).await?, before);
    assert_eq!(request_state(&api, &id).await?, "pending");
    let log = api
        .store
        .audit_log(&zhengyun_store::AuditFilter {
            action: Some("request.approve".to_owned()),
            ..Default::default()
        })
        .await?;
    let entry = &log.last().expect("an audit entry").entry;
    assert!(entry.result.starts_with("422"), "{entry:?}");
    assert!(entry.result.contains(outcome), "{entry:?}");
    assert_eq!(entry.quota_before, entry.quota_after, "{entry:?}");
    cleanup(&bureau).await
}

#[tokio::test]
async fn approving_an_environment_the_cluster_would_refuse_raises_no_quota_and_is_audited()
-> anyhow::Result<()> {
    approve_an_environment_the_cluster_refuses("jtj", false, "nothing was applied").await
}

#[tokio::test]
async fn an_approval_whose_create_fails_after_the_dry_run_rolls_the_quota_back_and_is_audited()
-> anyhow::Result<()> {
    approve_an_environment_the_cluster_refuses("jtw", true, "rolled back").await
}

#[tokio::test]
async fn approving_a_quota_request_below_what_is_admitted_is_409_and_changes_nothing()
-> anyhow::Result<()> {
    let api = Api::start().await?;
    let bureau = unique_name("mzj");
    onboard(&api, &bureau, "4").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let name = format!("{bureau}-prod");
    let created = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/environments"),
            Some(&token),
            Some(&env_body(&name, "prod", "3")),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    wait_for_phase(&api, &token, &bureau, &name, "Ready").await?;

    let filed = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/quota-requests"),
            Some(&token),
            Some(&json!({"quota": {"cpu": "1"}, "reason": "退还闲置资源"})),
        )
        .await?;
    assert_eq!(filed.status, StatusCode::ACCEPTED, "{:?}", filed.body);
    let id = filed.body["request"]["id"].as_str().expect("id").to_owned();
    let before = bureau_quota(&api, &bureau).await?;
    let approved = api
        .call(
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            Some(&api.admin),
            Some(&json!({})),
        )
        .await?;
    assert_eq!(approved.status, StatusCode::CONFLICT, "{:?}", approved.body);
    assert_eq!(
        approved.body["type"],
        "https://zhengyun.io/problems/conflict"
    );
    assert!(
        approved.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cpu")),
        "{:?}",
        approved.body
    );
    assert_eq!(bureau_quota(&api, &bureau).await?, before);
    assert_eq!(request_state(&api, &id).await?, "pending");
    cleanup(&bureau).await
}

/// One row of the authorization matrix: method, path, body, extra headers, and the expected
/// status for each caller.
type Case<'a> = (
    Method,
    String,
    Option<Value>,
    &'a [(&'a str, &'a str)],
    [u16; 8],
);

#[tokio::test]
async fn the_authorization_matrix_holds_for_every_endpoint_and_role() -> anyhow::Result<()> {
    let api = Api::start().await?;
    let bureau = unique_name("mzj");
    let other = unique_name("mzo");
    onboard(&api, &bureau, "4").await?;
    // A bureau token works only while its bureau exists: the other bureau is onboarded too.
    onboard(&api, &other, "4").await?;
    let env = format!("{bureau}-dev");
    let created = api
        .call(
            Method::POST,
            &format!("/api/v1/bureaus/{bureau}/environments"),
            Some(&api.admin),
            Some(&env_body(&env, "dev", "1")),
        )
        .await?;
    assert_eq!(created.status, StatusCode::CREATED);

    // Statements need a rate card in the cluster.
    let sample: zhengyun_model::crd::RateCard = serde_yaml::from_str(include_str!(
        "../../../manifests/samples/ratecard-2026.yaml"
    ))?;
    KubeApi::<zhengyun_model::crd::RateCard>::all(client().await?)
        .patch(
            "rates-2026",
            &kube::api::PatchParams::apply("zhengyun-e2e").force(),
            &kube::api::Patch::Apply(&sample),
        )
        .await?;
    zhengyun_e2e::tenants::ensure_capacity_pool(&client().await?).await?;
    let revoked = api.token(Role::PlatformAdmin, None).await?;
    let revoked_id: zhengyun_store::TokenId = revoked.split('_').nth(1).expect("id").parse()?;
    api.store.revoke_token(&revoked_id).await?;
    let callers: [(&str, Option<String>); 8] = [
        ("none", None),
        ("revoked", Some(revoked)),
        ("platform-admin", Some(api.admin.clone())),
        (
            "bureau-admin",
            Some(api.token(Role::BureauAdmin, Some(&bureau)).await?),
        ),
        (
            "other-bureau-admin",
            Some(api.token(Role::BureauAdmin, Some(&other)).await?),
        ),
        (
            "bureau-viewer",
            Some(api.token(Role::BureauViewer, Some(&bureau)).await?),
        ),
        ("finance", Some(api.token(Role::Finance, None).await?)),
        ("auditor", Some(api.token(Role::Auditor, None).await?)),
    ];

    let b = &bureau;
    // A month that has ended (derived from the platform's clock), which this test's fresh ledger
    // does not cover: closing it is refused whoever may close.
    let ended = zhengyun_e2e::running_month().previous()?;
    let stale = [("if-match", "1")];
    // method, path, body, headers, expected status per caller in the order above.
    let table: Vec<Case> = vec![
        (
            Method::GET,
            "/api/v1/bureaus".into(),
            None,
            &[],
            [401, 401, 200, 200, 200, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/bureaus".into(),
            Some(json!({"name": b, "displayName": "重复", "kind": "bureau"})),
            &[],
            [401, 401, 409, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/bureaus/{b}"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 200, 200],
        ),
        (
            Method::PATCH,
            format!("/api/v1/bureaus/{b}"),
            Some(json!({"displayName": "新名称"})),
            &stale,
            [401, 401, 412, 403, 403, 403, 403, 403],
        ),
        (
            Method::DELETE,
            format!("/api/v1/bureaus/{b}"),
            None,
            &[],
            [401, 401, 409, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/bureaus/{b}/quota-requests"),
            Some(json!({"quota": {}, "reason": ""})),
            &[],
            [401, 401, 422, 422, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/bureaus/{b}/environments"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 200, 200],
        ),
        (
            Method::POST,
            format!("/api/v1/bureaus/{b}/environments"),
            Some(json!({"purpose": "qa", "quota": {}})),
            &[],
            [401, 401, 422, 422, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/bureaus/{b}/environments/{env}"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 200, 200],
        ),
        (
            Method::PATCH,
            format!("/api/v1/bureaus/{b}/environments/{env}"),
            Some(json!({"quota": {"cpu": "1", "memory": "1Gi"}})),
            &stale,
            [401, 401, 412, 412, 403, 403, 403, 403],
        ),
        (
            Method::DELETE,
            format!("/api/v1/bureaus/{b}/environments/{b}-nope"),
            None,
            &[],
            [401, 401, 404, 404, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/requests".into(),
            None,
            &[],
            [401, 401, 200, 200, 200, 200, 403, 200],
        ),
        (
            Method::GET,
            "/api/v1/requests/ffffffffffffffff".into(),
            None,
            &[],
            [401, 401, 404, 404, 404, 404, 403, 404],
        ),
        (
            Method::POST,
            "/api/v1/requests/ffffffffffffffff/approve".into(),
            Some(json!({})),
            &[],
            [401, 401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/api/v1/requests/ffffffffffffffff/reject".into(),
            Some(json!({"reason": "不需要"})),
            &[],
            [401, 401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/tokens".into(),
            None,
            &[],
            [401, 401, 200, 403, 403, 403, 403, 200],
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"role": "root"})),
            &[],
            [401, 401, 422, 403, 403, 403, 403, 403],
        ),
        (
            Method::DELETE,
            "/api/v1/tokens/ffffffffffffffff".into(),
            None,
            &[],
            [401, 401, 404, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/api/v1/whoami".into(),
            None,
            &[],
            [401, 401, 200, 200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/audit".into(),
            None,
            &[],
            [401, 401, 200, 403, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            "/api/v1/audit/verify".into(),
            None,
            &[],
            [401, 401, 200, 403, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            "/api/v1/statements".into(),
            None,
            &[],
            [401, 401, 200, 200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/statements?bureau={b}"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/bureaus/{b}/usage"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/bureaus/{b}/costs"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 200, 200],
        ),
        // The pool: platform roles only.
        (
            Method::GET,
            "/api/v1/pool".into(),
            None,
            &[],
            [401, 401, 200, 403, 403, 403, 200, 200],
        ),
        (
            Method::GET,
            "/api/v1/statements/verify".into(),
            None,
            &[],
            [401, 401, 200, 403, 403, 403, 200, 200],
        ),
        (
            Method::GET,
            format!("/api/v1/statements/{ended}/verify"),
            None,
            &[],
            [401, 401, 404, 403, 403, 403, 404, 404],
        ),
        (
            Method::POST,
            format!("/api/v1/statements/{ended}/close"),
            None,
            &[],
            [401, 401, 409, 403, 403, 403, 409, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/statements/{ended}/adjustments"),
            None,
            &[],
            [401, 401, 409, 403, 403, 403, 409, 403],
        ),
        (
            Method::POST,
            format!("/api/v1/statements/{ended}/gaps/waive"),
            Some(json!({"reason": "权限表测试"})),
            &[],
            [401, 401, 200, 403, 403, 403, 200, 403],
        ),
        // Kubeconfigs: only the bureau's own staff are issued one (an over-long ttl is refused
        // before the environment is looked at); the list is theirs, platform admins' and
        // auditors'; a bureau admin or a platform admin revokes.
        (
            Method::POST,
            format!("/api/v1/bureaus/{b}/environments/{env}/kubeconfig"),
            Some(json!({"ttl": "25h"})),
            &[],
            [401, 401, 403, 422, 403, 422, 403, 403],
        ),
        (
            Method::GET,
            format!("/api/v1/bureaus/{b}/environments/{env}/kubeconfigs"),
            None,
            &[],
            [401, 401, 200, 200, 403, 200, 403, 200],
        ),
        (
            Method::DELETE,
            format!("/api/v1/bureaus/{b}/environments/{env}/kubeconfigs/0000000000000000"),
            None,
            &[],
            [401, 401, 404, 404, 403, 403, 403, 403],
        ),
    ];
    let mut mismatches = Vec::new();
    for (method, path, body, headers, expected) in &table {
        for ((who, token), want) in callers.iter().zip(expected) {
            let answer = api
                .call_with(
                    method.clone(),
                    path,
                    token.as_deref(),
                    body.as_ref(),
                    headers,
                )
                .await?;
            if answer.status.as_u16() != *want {
                mismatches.push(format!(
                    "{method} {path} as {who}: got {}, want {want}: {}",
                    answer.status, answer.body
                ));
            }
            if answer.status.is_client_error() {
                assert!(
                    answer.body["type"].is_string(),
                    "{method} {path} as {who}: not a problem: {}",
                    answer.body
                );
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // A bureau role's listing shows its own bureau only.
    let own = api
        .call(
            Method::GET,
            "/api/v1/bureaus",
            callers[4].1.as_deref(),
            None,
        )
        .await?;
    let names: Vec<&str> = own
        .body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, [other.as_str()]);
    cleanup(&other).await?;
    cleanup(&bureau).await
}

#[tokio::test]
async fn a_bureau_at_its_environment_or_pending_request_cap_is_refused_with_409()
-> anyhow::Result<()> {
    let api = Api::start_with_limits(zhengyun_api::TenantLimits {
        max_environments_per_bureau: 2,
        max_pending_requests_per_bureau: 1,
    })
    .await?;
    let bureau = unique_name("cgw");
    onboard(&api, &bureau, "2").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let uri = format!("/api/v1/bureaus/{bureau}/environments");
    for (name, want) in [
        ("dev", StatusCode::CREATED),
        ("test", StatusCode::CREATED),
        ("staging", StatusCode::CONFLICT),
    ] {
        let body = env_body(&format!("{bureau}-{name}"), name, "1");
        let answer = api
            .call(Method::POST, &uri, Some(&token), Some(&body))
            .await?;
        assert_eq!(answer.status, want, "{name}: {:?}", answer.body);
        if want == StatusCode::CONFLICT {
            let detail = answer.body["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains("environments") && detail.contains("(2)"),
                "{detail}"
            );
        }
    }
    let quota_uri = format!("/api/v1/bureaus/{bureau}/quota-requests");
    let more = json!({"quota": {"cpu": "4"}, "reason": "城管执法系统扩容"});
    let first = api
        .call(Method::POST, &quota_uri, Some(&token), Some(&more))
        .await?;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:?}", first.body);
    let second = api
        .call(Method::POST, &quota_uri, Some(&token), Some(&more))
        .await?;
    assert_eq!(second.status, StatusCode::CONFLICT, "{:?}", second.body);
    assert!(
        second.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("requests waiting") && d.contains("(1)")),
        "{:?}",
        second.body
    );
    cleanup(&bureau).await
}

/// An API whose watch cache has synced: reads are served from it from then on, which
/// `/readyz` waits for.
async fn api_with_synced_cache() -> anyhow::Result<Api> {
    let api = Api::start().await?;
    eventually("the watch cache syncs", WAIT, || async {
        let ready = api.call(Method::GET, "/readyz", None, None).await?;
        Ok((ready.status == StatusCode::OK).then_some(()))
    })
    .await?;
    Ok(api)
}

#[tokio::test]
async fn a_bureau_made_with_kubectl_moments_ago_is_found_not_404_while_the_watch_catches_up()
-> anyhow::Result<()> {
    let api = api_with_synced_cache().await?;
    // Made straight in the cluster, not through this API: its watch learns of it a moment later.
    let bureaus: KubeApi<Bureau> = KubeApi::all(client().await?);
    for round in 0..5 {
        let bureau = unique_name(&format!("kct{round}"));
        zhengyun_e2e::tenants::create_bureau(
            &client().await?,
            &bureau,
            json!({"displayName": "区城市管理委员会", "kind": "bureau",
                   "quota": {"cpu": "4", "memory": "8Gi"}}),
        )
        .await?;
        let shown = api
            .call(
                Method::GET,
                &format!("/api/v1/bureaus/{bureau}"),
                Some(&api.admin),
                None,
            )
            .await?;
        assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.body);
        let listed = api
            .call(
                Method::GET,
                &format!("/api/v1/bureaus/{bureau}/environments"),
                Some(&api.admin),
                None,
            )
            .await?;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        bureaus
            .delete(&bureau, &kube::api::DeleteParams::default())
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_caller_sees_each_of_its_changes_in_its_next_read_from_the_watch_cache()
-> anyhow::Result<()> {
    let api = api_with_synced_cache().await?;
    let bureau = unique_name("ryw");
    onboard(&api, &bureau, "8").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let base = format!("/api/v1/bureaus/{bureau}/environments");
    let quota = |cpu: &str| QuotaBody {
        cpu: Some(cpu.to_owned()),
        memory: Some("1Gi".to_owned()),
        ..QuotaBody::default()
    };
    let read = |path: String| {
        let (api, token) = (&api, &token);
        async move {
            let answer = api.call(Method::GET, &path, Some(token), None).await?;
            anyhow::ensure!(answer.status == StatusCode::OK, "GET {path}: {answer:?}");
            Ok::<_, anyhow::Error>(answer)
        }
    };
    for round in 0..3 {
        let name = format!("{bureau}-dev-{round}");
        let request = CreateEnvironment {
            name: Some(name.clone()),
            purpose: "dev".to_owned(),
            tier: None,
            quota: quota("1"),
            services: Vec::new(),
            expires_at: None,
        };
        let created = api
            .call(
                Method::POST,
                &base,
                Some(&token),
                Some(&serde_json::to_value(&request)?),
            )
            .await?;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let created: EnvironmentView = created.decode()?;
        let listed: Vec<EnvironmentView> = read(base.clone()).await?.decode()?;
        assert!(
            listed.iter().any(|e| e.name == name),
            "the list right after creating {name} holds it"
        );
        let shown: EnvironmentView = read(format!("{base}/{name}")).await?.decode()?;
        assert_ne!(shown.resource_version, "", "{shown:?}");

        let resize = UpdateEnvironment {
            quota: Some(quota("2")),
            services: None,
        };
        let resized = api
            .call(
                Method::PATCH,
                &format!("{base}/{name}"),
                Some(&token),
                Some(&serde_json::to_value(&resize)?),
            )
            .await?;
        assert_eq!(resized.status, StatusCode::OK, "{:?}", resized.body);
        let resized: EnvironmentView = resized.decode()?;
        assert_ne!(resized.resource_version, created.resource_version);
        let shown: EnvironmentView = read(format!("{base}/{name}")).await?.decode()?;
        assert_eq!(
            shown.quota.cpu.as_deref(),
            Some("2"),
            "the read right after the resize"
        );

        let deleted = api
            .call(
                Method::DELETE,
                &format!("{base}/{name}"),
                Some(&token),
                None,
            )
            .await?;
        assert_eq!(deleted.status, StatusCode::ACCEPTED, "{:?}", deleted.body);
        let after = api
            .call(Method::GET, &format!("{base}/{name}"), Some(&token), None)
            .await?;
        match after.status {
            StatusCode::OK => assert_eq!(after.decode::<EnvironmentView>()?.phase, "Terminating"),
            status => assert_eq!(status, StatusCode::NOT_FOUND, "{:?}", after.body),
        }
    }

    let change = UpdateBureau {
        display_name: Some("海淀区城市管理委员会（改）".to_owned()),
        ..UpdateBureau::default()
    };
    let changed = api
        .call(
            Method::PATCH,
            &format!("/api/v1/bureaus/{bureau}"),
            Some(&api.admin),
            Some(&serde_json::to_value(&change)?),
        )
        .await?;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    let shown: BureauView = api
        .call(
            Method::GET,
            &format!("/api/v1/bureaus/{bureau}"),
            Some(&api.admin),
            None,
        )
        .await?
        .decode()?;
    assert_eq!(shown.display_name, "海淀区城市管理委员会（改）");
    let listed: Vec<BureauView> = api
        .call(Method::GET, "/api/v1/bureaus", Some(&api.admin), None)
        .await?
        .decode()?;
    assert!(
        listed
            .iter()
            .any(|b| b.name == bureau && b.display_name == shown.display_name)
    );
    Ok(())
}

#[tokio::test]
async fn the_pool_shows_what_the_bureaus_hold_of_what_may_be_allocated() -> anyhow::Result<()> {
    use zhengyun_model::quantity::{Quantity, Resource};
    let kube = client().await?;
    zhengyun_e2e::tenants::ensure_capacity_pool(&kube).await?;
    let api = Api::start().await?;
    let (first, second) = (unique_name("plk"), unique_name("plm"));
    onboard(&api, &first, "4").await?;
    onboard(&api, &second, "4").await?;
    let answer = api
        .call(Method::GET, "/api/v1/pool", Some(&api.admin), None)
        .await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let pool: zhengyun_contract::PoolView = answer.decode()?;
    let spec = KubeApi::<zhengyun_model::crd::CapacityPool>::all(kube)
        .get("default")
        .await?
        .spec;
    assert_eq!(pool.capacity, QuotaBody::from(&spec.capacity));
    let effective = spec
        .effective_capacity()
        .map_err(|(r, e)| anyhow::anyhow!("{r}: {e}"))?;
    let cores = |text: &Option<String>| -> anyhow::Result<u64> {
        Ok(Quantity::new(text.as_deref().unwrap_or("0")).parse(Resource::Cpu.unit())?)
    };
    assert_eq!(cores(&pool.allocatable.cpu)?, effective.get(Resource::Cpu));
    // The two bureaus of this test are among those holding the allocation.
    assert!(pool.bureaus >= 2, "{pool:?}");
    assert!(cores(&pool.allocated.cpu)? >= 8_000, "{pool:?}");
    assert_eq!(
        cores(&pool.unallocated.cpu)?,
        cores(&pool.allocatable.cpu)?.saturating_sub(cores(&pool.allocated.cpu)?)
    );
    // Bureau staff do not see the pool.
    let staff = api.token(Role::BureauAdmin, Some(&first)).await?;
    api.call(Method::GET, "/api/v1/pool", Some(&staff), None)
        .await?
        .assert_problem(StatusCode::FORBIDDEN, "the pool as bureau staff");
    cleanup(&first).await?;
    cleanup(&second).await
}

#[tokio::test]
async fn a_gold_environment_runs_each_web_service_at_least_twice_spread_over_nodes()
-> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    let kube = client().await?;
    let api = Api::start().await?;
    zhengyun_e2e::tenants::service_levels_in_force(&kube).await?;
    let bureau = unique_name("slj");
    onboard(&api, &bureau, "4").await?;
    let token = api.token(Role::BureauAdmin, Some(&bureau)).await?;
    let path = format!("/api/v1/bureaus/{bureau}/environments");
    let body = |purpose: &str, tier: &str, cpu: &str, replicas: u32| {
        json!({"purpose": purpose, "tier": tier, "quota": {"cpu": cpu, "memory": "2Gi"},
               "services": [{"name": "portal", "kind": "web", "replicas": replicas,
                             "image": "registry.local/portal:1"}]})
    };

    // One replica of a gold web service is refused, naming it, whether the environment fits
    // the quota or would go for approval; nothing is created or filed.
    for cpu in ["1", "40"] {
        let refused = api
            .call(
                Method::POST,
                &path,
                Some(&token),
                Some(&body("prod", "gold", cpu, 1)),
            )
            .await?;
        refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "one gold replica");
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("at least 2 replicas") && detail.contains("portal"),
            "{detail}"
        );
    }
    let envs: KubeApi<Environment> = KubeApi::all(kube.clone());
    assert!(envs.get_opt(&format!("{bureau}-prod")).await?.is_none());
    let pending = api
        .call(
            Method::GET,
            &format!("/api/v1/requests?bureau={bureau}"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(
        pending.body.as_array().map(Vec::len),
        Some(0),
        "{}",
        pending.body
    );
    // The same through the cluster itself (kubectl): the admission policy refuses it.
    let direct: Environment = serde_json::from_value(json!({
        "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": format!("{bureau}-prod")},
        "spec": {"bureau": bureau, "purpose": "prod", "tier": "gold",
                 "quota": {"cpu": "1", "memory": "2Gi"},
                 "services": [{"name": "portal", "kind": "web", "replicas": 1,
                               "image": "registry.local/portal:1"}]},
    }))?;
    let error = envs
        .create(&kube::api::PostParams::default(), &direct)
        .await
        .expect_err("refused by the admission policy");
    assert!(error.to_string().contains("minReplicas"), "{error}");

    // Silver runs one; gold runs two, spread over nodes.
    let silver = api
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(&body("test", "silver", "1", 1)),
        )
        .await?;
    assert_eq!(silver.status, StatusCode::CREATED, "{}", silver.body);
    let gold = api
        .call(
            Method::POST,
            &path,
            Some(&token),
            Some(&body("prod", "gold", "2", 2)),
        )
        .await?;
    assert_eq!(gold.status, StatusCode::CREATED, "{}", gold.body);
    let name = format!("{bureau}-prod");
    wait_for_phase(&api, &token, &bureau, &name, "Ready").await?;
    let deployments: KubeApi<Deployment> = KubeApi::namespaced(kube.clone(), &name);
    let portal = eventually("the portal Deployment", WAIT, || async {
        Ok(deployments.get_opt("portal").await?)
    })
    .await?;
    let spread = portal
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.topology_spread_constraints)
        .unwrap_or_default();
    assert_eq!(spread.len(), 1, "{spread:?}");
    assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(spread[0].when_unsatisfiable, "DoNotSchedule");

    // Scaling the gold service down to one replica is refused too.
    let down = api
        .call(
            Method::PATCH,
            &format!("{path}/{name}"),
            Some(&token),
            Some(
                &json!({"services": [{"name": "portal", "kind": "web", "replicas": 1,
                                        "image": "registry.local/portal:1"}]}),
            ),
        )
        .await?;
    down.assert_problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "scaling gold to one replica",
    );
    cleanup(&bureau).await
}
