//! Measured service levels on the devcluster: a simulated node made NotReady takes an
//! environment's pods down for a few minutes while the operator is killed and restarted; the
//! minutes it records, the availability and the credit on the statement match the test's own
//! count. A stuck rollout in another environment at the same time earns no credit, and a
//! minute inside an announced maintenance window is not counted.
//!
//! The pods run on simulated nodes of this test's own, pinned by name. Minutes are judged at their middle (`:30`): the test starts and ends the outage
//! well away from it, and counts as bad every minute whose middle falls within the outage it
//! observes. The tests change the capacity pool and a node, so they run alone (`pool_wide`).

mod pool_wide {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use axum::http::{Method, StatusCode};
    use jiff::{SignedDuration, Timestamp};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use kube::{Api, Client};
    use rust_decimal::Decimal;
    use serde_json::json;
    use zhengyun_contract::{AvailabilityView, StatementView};
    use zhengyun_e2e::api::Api as ZhengyunApi;
    use zhengyun_e2e::operator::{ensure_operator, kill_operator, ledger_url, use_operator_args};
    use zhengyun_e2e::tenants::{
        apply_sample_rate_card, bureau_code, create_bureau, create_ready_environment,
    };
    use zhengyun_e2e::{client, clock, eventually, unique_name};
    use zhengyun_metering::availability::{credit_amount, credit_percent};
    use zhengyun_model::crd::{CapacityPool, ServiceLevels};
    use zhengyun_store::{Role, Store};

    const WAIT: Duration = Duration::from_secs(240);
    const MANAGER: &str = "zhengyun-e2e-availability";

    /// A simulated node of this test's own (its pods are pinned to it by name; nothing else
    /// runs while these tests do).
    async fn create_node(nodes: &Api<Node>, name: &str) -> anyhow::Result<()> {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "status": {
                "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        eventually(&format!("node {name} Ready"), WAIT, || async {
            Ok(node_ready(&nodes.get(name).await?).then_some(()))
        })
        .await
    }

    fn node_ready(node: &Node) -> bool {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    }

    /// Takes `name` out of the simulator's hands and reports it NotReady with its pods, as a
    /// kubelet whose container runtime died would; or gives the node back to the simulator.
    async fn set_node_ready(nodes: &Api<Node>, name: &str, ready: bool) -> anyhow::Result<()> {
        let managed = if ready { "fake" } else { "e2e-outage" };
        nodes
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"kwok.x-k8s.io/node": managed}}}),
                ),
            )
            .await?;
        let now = Timestamp::now().to_string();
        let status = if ready { "True" } else { "False" };
        nodes
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"status": {"conditions": [{
                    "type": "Ready", "status": status, "reason": "E2E",
                    "message": "set by the availability test",
                    "lastHeartbeatTime": now, "lastTransitionTime": now}]}})),
            )
            .await?;
        Ok(())
    }

    /// Reports every pod of `pods` not Ready, as the kubelet of a broken node would.
    async fn report_pods_not_ready(pods: &Api<Pod>) -> anyhow::Result<()> {
        let now = Timestamp::now().to_string();
        for pod in pods.list(&ListParams::default()).await?.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let conditions: Vec<serde_json::Value> = ["Ready", "ContainersReady"]
                .iter()
                .map(|kind| {
                    json!({"type": kind, "status": "False", "reason": "E2E",
                                   "lastTransitionTime": now})
                })
                .collect();
            pods.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Strategic(json!({"status": {"conditions": conditions}})),
            )
            .await?;
        }
        Ok(())
    }

    /// A Deployment of `replicas` small pods pinned to `node`.
    fn deployment(name: &str, replicas: i32, node: &str) -> anyhow::Result<Deployment> {
        let resources = json!({"cpu": "100m", "memory": "64Mi"});
        Ok(serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": node},
                        "terminationGracePeriodSeconds": 0,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{"name": "app", "image": "registry.local/app:1",
                            "resources": {"requests": resources, "limits": resources},
                            "securityContext": {"allowPrivilegeEscalation": false,
                                                "capabilities": {"drop": ["ALL"]}}}]
                    }
                }
            }
        }))?)
    }

    async fn available(deployments: &Api<Deployment>, name: &str) -> anyhow::Result<i32> {
        Ok(deployments
            .get(name)
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0))
    }

    /// Polls `name` every second until its available replicas satisfy `done`; returns when
    /// the test saw it.
    async fn until_available(
        deployments: &Api<Deployment>,
        name: &str,
        what: &str,
        done: impl Fn(i32) -> bool,
    ) -> anyhow::Result<Timestamp> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if done(available(deployments, name).await?) {
                return Ok(clock().now());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Sleeps until the clock's second of the minute is within `[from, to)`.
    async fn at_second(from: i64, to: i64) {
        loop {
            let second = clock().now().as_second().rem_euclid(60);
            if (from..to).contains(&second) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn minute_of(at: Timestamp) -> Timestamp {
        Timestamp::from_second(at.as_second().div_euclid(60) * 60).expect("minute")
    }

    /// How far `at` is from the nearest minute's middle (`:30`), in seconds.
    fn off_middle(at: Timestamp) -> i64 {
        (at.as_second().rem_euclid(60) - 30).abs()
    }

    /// Sets (or with `None` removes) the pool's maintenance windows, as this test's manager.
    async fn set_maintenance(
        client: &Client,
        window: Option<(Timestamp, Timestamp)>,
    ) -> anyhow::Result<()> {
        let spec = window.map(|(start, end)| {
            json!({"serviceLevels": {"maintenanceWindows": [
                {"start": start.to_string(), "end": end.to_string(), "reason": "数据库升级（测试）"}]}})
        });
        zhengyun_e2e::tenants::apply_pool_spec(client, MANAGER, spec).await
    }

    async fn availability(
        api: &ZhengyunApi,
        token: &str,
        bureau: &str,
        env: &str,
    ) -> anyhow::Result<AvailabilityView> {
        let answer = api
            .call(
                Method::GET,
                &format!("/api/v1/bureaus/{bureau}/environments/{env}/availability"),
                Some(token),
                None,
            )
            .await?;
        anyhow::ensure!(answer.status == StatusCode::OK, "{}", answer.body);
        answer.decode()
    }

    #[tokio::test]
    async fn a_node_outage_is_measured_minute_by_minute_across_a_restart_and_credited()
    -> anyhow::Result<()> {
        use_operator_args(&["--metering-period", "2", "--metering-lateness", "1"]);
        ensure_operator().await?;
        let kube = client().await?;
        apply_sample_rate_card(&kube).await?;
        set_maintenance(&kube, None).await?;
        let nodes: Api<Node> = Api::all(kube.clone());
        let (broken, healthy) = (unique_name("sla-a"), unique_name("sla-b"));
        create_node(&nodes, &broken).await?;
        create_node(&nodes, &healthy).await?;

        let code = bureau_code("wjw");
        create_bureau(
            &kube,
            &code,
            json!({"displayName": "区卫生健康委员会", "kind": "bureau",
                   "quota": {"cpu": "8", "memory": "16Gi"}}),
        )
        .await?;
        let prod = format!("{code}-prod");
        let staging = format!("{code}-staging");
        for (env, tier) in [(&prod, "gold"), (&staging, "silver")] {
            create_ready_environment(
                &kube,
                env,
                json!({"bureau": code, "purpose": env.rsplit('-').next(), "tier": tier,
                       "quota": {"cpu": "2", "memory": "4Gi"}}),
            )
            .await?;
        }
        let web: Api<Deployment> = Api::namespaced(kube.clone(), &prod);
        let site: Api<Deployment> = Api::namespaced(kube.clone(), &staging);
        web.create(&PostParams::default(), &deployment("web", 2, &broken)?)
            .await?;
        site.create(&PostParams::default(), &deployment("site", 2, &healthy)?)
            .await?;
        until_available(&web, "web", "web available", |n| n == 2).await?;
        until_available(&site, "site", "site available", |n| n == 2).await?;

        // The API over the operator's ledger; wait until both environments are measured.
        let api = ZhengyunApi::start_with_store(Store::connect(&ledger_url()).await?).await?;
        let finance = api.token(Role::Finance, None).await?;
        let viewer = api.token(Role::BureauViewer, Some(&code)).await?;
        for env in [&prod, &staging] {
            eventually(&format!("{env} measured"), WAIT, || async {
                let view = availability(&api, &viewer, &code, env).await?;
                Ok((view.measured_minutes > 0).then_some(()))
            })
            .await?;
        }

        // The outage starts away from a minute's middle.
        at_second(35, 45).await;
        set_node_ready(&nodes, &broken, false).await?;
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &prod);
        report_pods_not_ready(&pods).await?;
        let down = until_available(&web, "web", "web down", |n| n < 2).await?;
        // The tenant's own trouble in staging at the same time: a rollout to a node that does
        // not exist, stuck with one of two replicas.
        site.patch(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {
                "nodeSelector": {"kubernetes.io/hostname": "no-such-node"}}}}})),
        )
        .await?;
        // The minute after the outage began is announced as maintenance.
        let window = minute_of(down) + SignedDuration::from_mins(1);
        set_maintenance(&kube, Some((window, window + SignedDuration::from_mins(1)))).await?;

        // The operator dies during the outage, misses the two minutes after the announced one
        // and comes back while the outage lasts.
        tokio::time::sleep(Duration::from_secs(75)).await;
        kill_operator().await?;
        tokio::time::sleep(Duration::from_secs(100)).await;
        ensure_operator().await?;
        tokio::time::sleep(Duration::from_secs(40)).await;

        // The outage ends away from a minute's middle: the node comes back and the pods are
        // started again on it.
        at_second(35, 45).await;
        set_node_ready(&nodes, &broken, true).await?;
        eventually(&format!("node {broken} Ready"), WAIT, || async {
            Ok(node_ready(&nodes.get(&broken).await?).then_some(()))
        })
        .await?;
        pods.delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels("app=web"),
        )
        .await?;
        let up = until_available(&web, "web", "web back", |n| n == 2).await?;
        site.patch(
            "site",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {
                "nodeSelector": {"kubernetes.io/hostname": healthy}}}}})),
        )
        .await?;
        until_available(&site, "site", "site rolled out", |n| n == 2).await?;
        assert!(
            off_middle(down) >= 3 && off_middle(up) >= 3,
            "the outage ({down} to {up}) must start and end away from a minute's middle"
        );

        // Every minute whose middle fell within the outage, but the announced one.
        let mut expected = BTreeSet::new();
        let mut minute = minute_of(down) - SignedDuration::from_mins(1);
        while minute < up {
            let middle = minute + SignedDuration::from_secs(30);
            if down <= middle && middle < up && minute != window {
                expected.insert(minute);
            }
            minute += SignedDuration::from_mins(1);
        }
        let recorded_past = minute_of(up) + SignedDuration::from_mins(2);
        let view = eventually("the outage recorded", WAIT, || async {
            let view = availability(&api, &viewer, &code, &prod).await?;
            let until: Option<Timestamp> =
                view.measured_until.as_deref().and_then(|t| t.parse().ok());
            Ok(until.is_some_and(|u| u >= recorded_past).then_some(view))
        })
        .await?;
        let counted: BTreeSet<Timestamp> = view
            .slices
            .iter()
            .filter(|s| s.counted)
            .map(|s| s.minute.parse().expect("minute"))
            .collect();
        assert_eq!(counted, expected, "{view:?}");
        assert!(
            view.slices
                .iter()
                .filter(|s| s.counted)
                .all(|s| s.cause == "node-not-ready"),
            "{view:?}"
        );
        assert!(
            view.slices
                .iter()
                .any(|s| s.detail.contains("reconstructed")),
            "the minutes while the operator was down are reconstructed: {view:?}"
        );
        assert!(
            view.slices
                .iter()
                .all(|s| s.minute.parse::<Timestamp>().ok() != Some(window))
        );
        assert_eq!(view.bad_minutes, expected.len() as u64);

        // The tenant's rollout is evidence, never counted.
        let site_view = availability(&api, &viewer, &code, &staging).await?;
        assert_eq!(site_view.bad_minutes, 0, "{site_view:?}");
        assert!(
            site_view
                .slices
                .iter()
                .any(|s| s.cause == "rollout" && !s.counted),
            "{site_view:?}"
        );
        assert_eq!(site_view.credit_percent, 0);

        // The statement credits prod by the default gold table, and staging nothing.
        let answer = api
            .call(Method::GET, "/api/v1/statements", Some(&finance), None)
            .await?;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let statement: StatementView = answer.decode()?;
        let gold = ServiceLevels::default().gold;
        let percent = credit_percent(&gold, view.measured_minutes, view.bad_minutes);
        assert!(percent > 0, "{view:?}");
        let credit = statement
            .service_credits
            .iter()
            .find(|c| c.environment == prod)
            .expect("a credit for prod");
        assert_eq!(credit.bad_minutes, view.bad_minutes);
        assert_eq!(credit.credit_percent, percent);
        let charges: Decimal = credit.charges.parse()?;
        let env_total = statement
            .environments
            .iter()
            .find(|e| e.environment == prod)
            .map(|e| e.amount.parse::<Decimal>())
            .transpose()?
            .unwrap_or_default();
        assert_eq!(charges, env_total);
        assert_eq!(
            credit.amount.parse::<Decimal>()?,
            credit_amount(charges, percent)?
        );
        assert!(
            statement
                .service_credits
                .iter()
                .all(|c| c.environment != staging)
        );

        set_maintenance(&kube, None).await?;
        for node in [&broken, &healthy] {
            nodes.delete(node, &DeleteParams::default()).await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn service_levels_above_100_percent_or_with_a_credit_table_that_is_not_monotonic_are_refused()
    -> anyhow::Result<()> {
        let kube = client().await?;
        ensure_operator().await?;
        zhengyun_e2e::tenants::ensure_capacity_pool(&kube).await?;
        let pools: Api<CapacityPool> = Api::all(kube.clone());
        let dry_run = PatchParams {
            dry_run: true,
            ..PatchParams::apply(MANAGER).force()
        };
        let refused = |levels: serde_json::Value| {
            let pools = pools.clone();
            let dry_run = dry_run.clone();
            async move {
                let body = json!({
                    "apiVersion": "zhengyun.io/v1alpha1", "kind": "CapacityPool",
                    "metadata": {"name": "default"},
                    "spec": {"serviceLevels": levels},
                });
                match pools.patch("default", &dry_run, &Patch::Apply(&body)).await {
                    Err(kube::Error::Api(status)) => Ok(status.message),
                    other => anyhow::bail!("accepted: {other:?}"),
                }
            }
        };
        let above = refused(json!({"gold": {"objective": "100.5", "credits": []}})).await?;
        assert!(
            above.contains("objective must be a percentage above 0 and at most 100"),
            "{above}"
        );
        let not_monotonic = refused(json!({"silver": {"objective": "99.9", "credits": [
            {"below": "99.9", "creditPercent": 25}, {"below": "99", "creditPercent": 10}]}}))
        .await?;
        assert!(
            not_monotonic.contains("credits must be monotonic"),
            "{not_monotonic}"
        );
        let backwards = refused(json!({"maintenanceWindows": [
            {"start": "2026-12-05T02:00:00Z", "end": "2026-12-05T01:00:00Z"}]}))
        .await?;
        assert!(
            backwards.contains("must end after it starts"),
            "{backwards}"
        );
        // The pool is untouched: dry runs change nothing.
        let pool = pools.get("default").await?;
        assert_ne!(pool.spec.service_levels.gold.objective, "100.5");
        Ok(())
    }
}
