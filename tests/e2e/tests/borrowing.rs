//! Borrowing on the devcluster: a bureau at its quota runs burst pods on capacity the pool can
//! lend, within an allowance the operator sets; the pool stops lending and burst pods are
//! refused with a clear message.
//!
//! These tests change the capacity pool, which every environment shares, so they run on their
//! own after the rest of the suite (`scripts/e2e.sh` runs this binary alone, one test at a
//! time; the tests live in [`pool_wide`] so that the main run can skip them by name).

mod pool_wide {
    use std::time::Duration;

    use anyhow::Context as _;
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ResourceQuota};
    use kube::api::{DeleteParams, ListParams, PostParams};
    use kube::{Api, Client, ResourceExt};
    use serde_json::json;
    use zhengyun_e2e::operator::{
        ensure_operator, kill_and_restart_operator, ledger_url, use_operator_args,
    };
    use zhengyun_e2e::tenants::{apply_sample_rate_card, bureau_code};
    use zhengyun_e2e::{client, eventually};
    use zhengyun_model::crd::{Bureau, Environment, EnvironmentPhase};
    use zhengyun_model::quantity::{Resource, Unit};

    const WAIT: Duration = Duration::from_secs(180);
    /// The field manager of the pool's borrowing policy in these tests.
    const MANAGER: &str = "zhengyun-e2e-borrowing";

    /// The shared operator, closing a metering window every 2 s so that settlements are seen.
    async fn setup() -> anyhow::Result<()> {
        use_operator_args(&["--metering-period", "2", "--metering-lateness", "1"]);
        ensure_operator().await
    }

    fn pod(name: &str, class: Option<&str>, cpu: &str) -> anyhow::Result<Pod> {
        let resources = json!({"cpu": cpu, "memory": "64Mi"});
        let mut spec = json!({
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "registry.local/batch-report:1",
                "resources": {"requests": resources, "limits": resources},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}}]
        });
        if let Some(class) = class {
            spec["priorityClassName"] = json!(class);
        }
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec,
        }))?)
    }

    /// Sets the pool's borrowing policy (`None` gives the field back: borrowing off).
    async fn set_borrowing(
        client: &Client,
        policy: Option<serde_json::Value>,
    ) -> anyhow::Result<()> {
        let spec = policy.map(|policy| json!({"borrowing": policy}));
        zhengyun_e2e::tenants::apply_pool_spec(client, MANAGER, spec).await
    }

    /// An admitted environment of a new bureau, granted `cpu` and 1Gi; returns its name.
    async fn admitted_environment(
        client: &Client,
        cpu: &str,
        memory: &str,
    ) -> anyhow::Result<String> {
        let code = bureau_code("e2e-burst");
        let bureau: Bureau = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Bureau",
            "metadata": {"name": code},
            "spec": {"displayName": "区城市管理委员会", "kind": "bureau",
                     "quota": {"cpu": cpu, "memory": memory, "storage": "1Gi"},
                     "adminGroups": [], "viewerGroups": []},
        }))?;
        Api::<Bureau>::all(client.clone())
            .create(&PostParams::default(), &bureau)
            .await?;
        let name = format!("{code}-prod");
        let env: Environment = serde_json::from_value(json!({
            "apiVersion": "zhengyun.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": name},
            "spec": {"bureau": code, "purpose": "prod", "tier": "silver",
                     "quota": {"cpu": cpu, "memory": memory, "storage": "1Gi"}},
        }))?;
        let envs: Api<Environment> = Api::all(client.clone());
        envs.create(&PostParams::default(), &env).await?;
        eventually(&format!("environment {name} Ready"), WAIT, || async {
            let env = envs.get(&name).await?;
            let ready = env.status.and_then(|s| s.phase) == Some(EnvironmentPhase::Ready);
            Ok(ready.then_some(()))
        })
        .await?;
        Ok(name)
    }

    /// The environment's burst allowance of CPU in millicores, once it has one.
    async fn cpu_allowance(client: &Client, name: &str) -> anyhow::Result<Option<u64>> {
        let env = Api::<Environment>::all(client.clone()).get(name).await?;
        Ok(env
            .status
            .and_then(|s| s.burst_allowance)
            .and_then(|q| q.get(Resource::Cpu).cloned())
            .and_then(|q| Unit::Millicores.parse(q.as_str()).ok()))
    }

    /// The CPU (millicores) the burst quota of `namespace` counts against, once counted: quota
    /// admission reads the quota's status, which the quota controller updates after the
    /// operator has applied the allowance.
    async fn burst_quota_cpu(client: &Client, namespace: &str) -> anyhow::Result<Option<u64>> {
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), namespace);
        Ok(quotas
            .get_opt("zhengyun-burst")
            .await?
            .and_then(|q| q.status)
            .and_then(|s| s.hard)
            .and_then(|h| h.get("requests.cpu").cloned())
            .and_then(|q| Unit::Millicores.parse(&q.0).ok()))
    }

    async fn refusal(pods: &Api<Pod>, pod: &Pod) -> anyhow::Result<String> {
        match pods.create(&PostParams::default(), pod).await {
            Err(kube::Error::Api(status)) => Ok(status.message),
            Ok(p) => anyhow::bail!("pod {} was admitted", p.name_any()),
            Err(e) => Err(e.into()),
        }
    }

    #[tokio::test]
    async fn a_bureau_at_its_quota_runs_burst_pods_within_its_allowance_and_none_once_lending_stops()
    -> anyhow::Result<()> {
        setup().await?;
        let client = client().await?;
        set_borrowing(
            &client,
            Some(json!({"enabled": true, "maxBorrowPercent": 50, "hysteresisPercent": 0})),
        )
        .await?;
        let name = admitted_environment(&client, "1", "1Gi").await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);

        // At its quota: two guaranteed pods of 500m fill the granted CPU; a third is refused.
        for i in 0..2 {
            pods.create(
                &PostParams::default(),
                &pod(&format!("steady-{i}"), None, "500m")?,
            )
            .await?;
        }
        let over = refusal(&pods, &pod("steady-2", None, "500m")?).await?;
        assert!(over.contains("exceeded quota"), "{over}");

        // The pool lends: the allowance is at most half the granted CPU (less when the caps of
        // every environment on the cluster add up to more than the nodes can lend).
        let allowance = eventually("a burst allowance", WAIT, || async {
            cpu_allowance(&client, &name).await
        })
        .await?;
        assert!(
            (1..=500).contains(&allowance),
            "at most 50 % of 1 core, shared with every other environment: {allowance}m"
        );
        let burst = "zhengyun-burst";
        let half = format!("{}m", allowance.div_ceil(2));
        // The quota of burst pods follows the allowance once the operator has applied it.
        eventually("a burst pod admitted", WAIT, || async {
            match pods
                .create(
                    &PostParams::default(),
                    &pod("report-0", Some(burst), &half)?,
                )
                .await
            {
                Ok(_) => Ok(Some(())),
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        eventually("the burst pod running", WAIT, || async {
            let p = pods.get("report-0").await?;
            Ok((p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(()))
        })
        .await?;
        // The bureau's status sums what its environments may borrow and what they borrow.
        let bureau = name.trim_end_matches("-prod").to_owned();
        eventually("the bureau's burst figures", WAIT, || async {
            let status = Api::<Bureau>::all(client.clone())
                .get(&bureau)
                .await?
                .status;
            let used = status
                .as_ref()
                .and_then(|s| s.burst_used.as_ref())
                .and_then(|q| q.get(Resource::Cpu).cloned())
                .and_then(|q| Unit::Millicores.parse(q.as_str()).ok());
            let lent = status
                .as_ref()
                .and_then(|s| s.burst_allowance.as_ref())
                .and_then(|q| q.get(Resource::Cpu).cloned())
                .and_then(|q| Unit::Millicores.parse(q.as_str()).ok());
            Ok((used == Some(allowance.div_ceil(2)) && lent.is_some()).then_some(()))
        })
        .await?;
        // Beyond the allowance, which never exceeds the cap (500m): refused by the burst quota,
        // or by the whole one (granted + allowance), which it exceeds too; the API server names
        // either.
        let beyond = refusal(&pods, &pod("report-1", Some(burst), "501m")?).await?;
        assert!(
            beyond.contains("exceeded quota: zhengyun-burst")
                || beyond.contains("exceeded quota: zhengyun-quota"),
            "{beyond}"
        );
        assert!(beyond.contains("requests.cpu=501m"), "{beyond}");
        // A guaranteed pod still cannot use the allowance.
        let guaranteed = refusal(&pods, &pod("steady-3", None, "100m")?).await?;
        assert!(guaranteed.contains("exceeded quota"), "{guaranteed}");

        // The pool stops lending: the allowance is withdrawn and new burst pods are refused by
        // the admission policy, with a message that says why.
        set_borrowing(&client, None).await?;
        eventually("the allowance withdrawn", WAIT, || async {
            Ok(cpu_allowance(&client, &name).await?.is_none().then_some(()))
        })
        .await?;
        let message = eventually("burst refused with borrowing off", WAIT, || async {
            match pods
                .create(
                    &PostParams::default(),
                    &pod("report-2", Some(burst), "100m")?,
                )
                .await
            {
                Err(kube::Error::Api(s))
                    if s.message.contains("burst") && s.message.contains("lends") =>
                {
                    Ok(Some(s.message))
                }
                Ok(_) => {
                    pods.delete("report-2", &DeleteParams::default()).await?;
                    Ok(None)
                }
                Err(_) => Ok(None),
            }
        })
        .await?;
        assert!(
            message.contains("zhengyun.io/burst-priority-class"),
            "{message}"
        );
        let ns = Api::<Namespace>::all(client.clone()).get(&name).await?;
        assert!(
            !ns.annotations()
                .contains_key("zhengyun.io/burst-priority-class")
        );

        Api::<Environment>::all(client.clone())
            .delete(&name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// Whole cores free on the schedulable nodes now: each node's allocatable CPU less what the
    /// pods bound to it request, rounded down per node.
    async fn free_cores(client: &Client) -> anyhow::Result<u64> {
        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await?;
        let pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
            .await?;
        let mut free = 0;
        for node in &nodes.items {
            let cpu = |q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
                q.and_then(|q| Unit::Millicores.parse(&q.0).ok())
                    .unwrap_or(0)
            };
            let allocatable = cpu(node
                .status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref())
                .and_then(|a| a.get("cpu")));
            let used: u64 = pods
                .items
                .iter()
                .filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node.name_any())
                })
                .flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter()))
                .map(|c| {
                    cpu(c
                        .resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get("cpu")))
                })
                .sum();
            free += allocatable.saturating_sub(used) / 1000;
        }
        Ok(free)
    }

    /// Creates `count` one-core pods named `<prefix>-<i>` of `class` and waits until all run;
    /// returns how long that took.
    async fn run_all(
        pods: &Api<Pod>,
        prefix: &str,
        class: Option<&str>,
        count: u64,
    ) -> anyhow::Result<Duration> {
        let start = std::time::Instant::now();
        for i in 0..count {
            pods.create(
                &PostParams::default(),
                &pod(&format!("{prefix}-{i}"), class, "1")?,
            )
            .await?;
        }
        eventually(
            &format!("{count} pods {prefix}-* running"),
            WAIT,
            || async {
                let list = pods.list(&ListParams::default()).await?;
                let running = list
                    .items
                    .iter()
                    .filter(|p| p.name_any().starts_with(&format!("{prefix}-")))
                    .filter(|p| {
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .count();
                Ok((running as u64 == count).then_some(()))
            },
        )
        .await?;
        Ok(start.elapsed())
    }

    #[tokio::test]
    async fn the_scheduler_takes_back_room_from_burst_pods_when_a_lenders_own_pods_need_it()
    -> anyhow::Result<()> {
        setup().await?;
        let client = client().await?;
        set_borrowing(
            &client,
            Some(
                json!({"enabled": true, "maxBorrowPercent": 100, "safetyMarginPercent": 0,
                        "hysteresisPercent": 0}),
            ),
        )
        .await?;
        let borrower = admitted_environment(&client, "40", "4Gi").await?;
        let lender = admitted_environment(&client, "200", "20Gi").await?;
        let borrowed: Api<Pod> = Api::namespaced(client.clone(), &borrower);
        let owned: Api<Pod> = Api::namespaced(client.clone(), &lender);

        // The borrower fills what it may borrow with one-core burst pods.
        let allowance = eventually("the borrower's allowance", WAIT, || async {
            Ok(cpu_allowance(&client, &borrower)
                .await?
                .filter(|a| *a >= 2_000))
        })
        .await?;
        let limit = eventually("the burst quota counting the allowance", WAIT, || async {
            Ok(burst_quota_cpu(&client, &borrower)
                .await?
                .filter(|h| *h >= 2_000))
        })
        .await?;
        let burst_pods = (limit.min(allowance) / 1000).min(20);
        run_all(&borrowed, "report", Some("zhengyun-burst"), burst_pods).await?;

        // The lender then asks for every free core and two more: the scheduler must preempt
        // two burst pods to run them.
        let free = free_cores(&client).await?;
        let wanted = free + 2;
        let took = run_all(&owned, "web", None, wanted).await?;
        let left = borrowed.list(&ListParams::default()).await?.items;
        let survivors = left
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count() as u64;
        assert!(
            survivors <= burst_pods - 2,
            "{survivors} of {burst_pods} burst pods left; two at least must have given way"
        );
        println!(
            "{wanted} guaranteed pods running in {:.1} s, {} burst pods preempted",
            took.as_secs_f64(),
            burst_pods - survivors
        );
        // Each preemption is recorded with the borrower and the time the room took to come
        // back, and at least the two the lender's pods needed name the lender as the bureau
        // that got the room back (from the scheduler's Preempted Event).
        let borrower_bureau = borrower.trim_end_matches("-prod").to_owned();
        let lender_bureau = lender.trim_end_matches("-prod").to_owned();
        let store = zhengyun_store::Store::connect(&ledger_url()).await?;
        let now = jiff::Timestamp::now();
        // What the last look found, for the failure's message.
        let last_seen = std::sync::Mutex::new(Vec::new());
        let preempted = eventually("the preemptions recorded", WAIT, || async {
            let reclaims = store
                .list_reclaims(
                    Some(&borrower_bureau),
                    now - jiff::SignedDuration::from_hours(1),
                    now + jiff::SignedDuration::from_hours(1),
                )
                .await?;
            last_seen
                .lock()
                .expect("not poisoned")
                .clone_from(&reclaims);
            let recorded: Vec<zhengyun_store::Reclaim> = reclaims
                .into_iter()
                .filter(|r| r.cause == zhengyun_store::ReclaimCause::Preempted)
                .collect();
            let for_lender = recorded
                .iter()
                .filter(|r| r.beneficiary.as_deref() == Some(lender_bureau.as_str()))
                .count();
            let complete = for_lender >= 2 && recorded.iter().all(|r| r.freed.is_some());
            Ok(complete.then_some(recorded))
        })
        .await
        .with_context(|| {
            format!(
                "the borrower's reclaims at the last look: {:?}",
                last_seen.lock().expect("not poisoned")
            )
        })?;
        for reclaim in &preempted {
            assert_eq!(reclaim.bureau, borrower_bureau);
            assert_eq!(reclaim.namespace, borrower);
            // A third preemption may come: the suite's other tests share the pool and run
            // meanwhile, and a pod of theirs that came between the count of free cores and the
            // lender's pods may take a burst pod's room. Its record names the bureau of that
            // pod, or none while the scheduler's Preempted Event that names it is not found.
            if reclaim.beneficiary.as_deref() != Some(lender_bureau.as_str()) {
                println!("a preemption beyond the lender's two: {reclaim:?}");
            }
            let seconds = reclaim.freed.expect("freed").as_second() - reclaim.started.as_second();
            // The pods' grace period is 0 s: the room comes back as soon as the kubelet sees
            // the deletion.
            assert!((0..=60).contains(&seconds), "{reclaim:?}");
        }
        store.close().await;

        set_borrowing(&client, None).await?;
        let envs = Api::<Environment>::all(client.clone());
        for name in [&borrower, &lender] {
            envs.delete(name, &DeleteParams::default()).await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn burst_pods_above_a_lowered_allowance_are_reclaimed_newest_first_with_an_event()
    -> anyhow::Result<()> {
        setup().await?;
        let client = client().await?;
        let policy = |percent: u32| {
            json!({"enabled": true, "maxBorrowPercent": percent, "safetyMarginPercent": 0,
                   "hysteresisPercent": 0, "reclaimGraceSeconds": 0})
        };
        set_borrowing(&client, Some(policy(100))).await?;
        let name = admitted_environment(&client, "3", "3Gi").await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
        // Whatever the allowance (every environment on the cluster shares what can be lent),
        // three burst pods fill it once the quota counts it.
        let allowance = eventually("a burst quota", WAIT, || async {
            Ok(burst_quota_cpu(&client, &name).await?.filter(|h| *h >= 300))
        })
        .await?;
        let size = allowance / 3;
        for i in 0..3 {
            let batch = pod(
                &format!("batch-{i}"),
                Some("zhengyun-burst"),
                &format!("{size}m"),
            )?;
            pods.create(&PostParams::default(), &batch).await?;
            // A second apart, so that their ages differ.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
        }
        // The pool now lends each environment at most 5 % of its quota, less than its burst pods
        // hold: the newest go until the rest fit the lowered allowance.
        set_borrowing(&client, Some(policy(5))).await?;
        let (lowered, left) = eventually("burst pods reclaimed", WAIT, || async {
            let Some(lowered) = cpu_allowance(&client, &name)
                .await?
                .filter(|a| *a < allowance)
            else {
                return Ok(None);
            };
            let list = pods.list(&ListParams::default()).await?;
            let mut left: Vec<String> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(ResourceExt::name_any)
                .collect();
            left.sort();
            let fits = left.len() as u64 * size <= lowered;
            Ok((fits && left.len() < 3).then_some((lowered, left)))
        })
        .await?;
        let oldest_first: Vec<String> = (0..left.len()).map(|i| format!("batch-{i}")).collect();
        assert_eq!(
            left, oldest_first,
            "the oldest stay (allowance {lowered}m, pods of {size}m)"
        );
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(client.clone(), "default");
        let reclaimed = eventually("BurstReclaimed Events", WAIT, || async {
            let list = events.list(&ListParams::default()).await?;
            let notes: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("BurstReclaimed"))
                .filter(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                })
                .filter_map(|e| e.note)
                .collect();
            Ok((!notes.is_empty()).then_some(notes))
        })
        .await?;
        assert!(
            reclaimed.iter().any(|n| n.contains("batch-2")),
            "{reclaimed:?}"
        );
        // Each is recorded in the ledger, completed once the pod is gone.
        let bureau = name.trim_end_matches("-prod").to_owned();
        let store = zhengyun_store::Store::connect(&ledger_url()).await?;
        let now = jiff::Timestamp::now();
        let recorded = eventually("the reclaims recorded and completed", WAIT, || async {
            let recorded = store
                .list_reclaims(
                    Some(&bureau),
                    now - jiff::SignedDuration::from_hours(1),
                    now + jiff::SignedDuration::from_hours(1),
                )
                .await?;
            let done =
                recorded.len() == 3 - left.len() && recorded.iter().all(|r| r.freed.is_some());
            Ok(done.then_some(recorded))
        })
        .await?;
        assert!(recorded.iter().any(|r| r.pod == "batch-2"), "{recorded:?}");
        assert!(
            recorded
                .iter()
                .all(|r| r.cause == zhengyun_store::ReclaimCause::Allowance),
            "{recorded:?}"
        );
        store.close().await;

        set_borrowing(&client, None).await?;
        Api::<Environment>::all(client.clone())
            .delete(&name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// The second `pod` was seen scheduled at, by its `PodScheduled` condition, once Running.
    async fn scheduled_at(pods: &Api<Pod>, name: &str) -> anyhow::Result<i64> {
        eventually(&format!("{name} running"), WAIT, || async {
            let pod = pods.get(name).await?;
            let status = pod.status.unwrap_or_default();
            if status.phase.as_deref() != Some("Running") {
                return Ok(None);
            }
            Ok(status
                .conditions
                .unwrap_or_default()
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.as_second()))
        })
        .await
    }

    #[tokio::test]
    async fn burst_usage_is_charged_to_its_borrower_and_credited_to_an_idle_lender_once_across_an_operator_kill()
    -> anyhow::Result<()> {
        use zhengyun_metering::settlement::Role;
        use zhengyun_metering::{Calendar, RateSchedule, TimeRange, UsageKind};
        use zhengyun_model::crd::RateCard;
        use zhengyun_model::names::Tier;

        setup().await?;
        let client = client().await?;
        apply_sample_rate_card(&client).await?;
        set_borrowing(
            &client,
            Some(
                json!({"enabled": true, "maxBorrowPercent": 50, "hysteresisPercent": 0,
                        "burstPricePercent": 40, "lenderSharePercent": 70}),
            ),
        )
        .await?;
        // The lender reserves 2 cores and runs nothing; the borrower runs one burst pod.
        let lender = admitted_environment(&client, "2", "1Gi").await?;
        let borrower = admitted_environment(&client, "1", "1Gi").await?;
        let allowance = eventually("a burst allowance", WAIT, || async {
            cpu_allowance(&client, &borrower).await
        })
        .await?;
        let millicores = allowance.div_ceil(2);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &borrower);
        eventually("the burst pod admitted", WAIT, || async {
            let burst = pod(
                "report-0",
                Some("zhengyun-burst"),
                &format!("{millicores}m"),
            )?;
            match pods.create(&PostParams::default(), &burst).await {
                Ok(_) => Ok(Some(())),
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        let started = scheduled_at(&pods, "report-0").await?;

        // The operator is killed while the pod runs, mid-window.
        tokio::time::sleep(Duration::from_secs(4)).await;
        kill_and_restart_operator().await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        pods.delete("report-0", &DeleteParams::default()).await?;
        eventually("the burst pod gone", WAIT, || async {
            Ok(pods.get_opt("report-0").await?.is_none().then_some(()))
        })
        .await?;
        let ended = jiff::Timestamp::now().as_second();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let end = jiff::Timestamp::now().as_second();

        let store = zhengyun_store::Store::connect(&ledger_url()).await?;
        eventually("the ledger written past the burst", WAIT, || async {
            let checkpoint = store.checkpoint("usage").await?;
            Ok(checkpoint.filter(|c| c.as_second() >= end).map(|_| ()))
        })
        .await?;
        let calendar = Calendar::default();
        let months: std::collections::BTreeSet<_> = [started, end]
            .into_iter()
            .map(|s| Ok(calendar.month_of(jiff::Timestamp::from_second(s)?)))
            .collect::<anyhow::Result<_>>()?;
        let mut sums = Vec::new();
        for month in &months {
            sums.extend(store.month_settlement_sums(*month).await?);
        }
        let of = |role: Role, party: &str| {
            sums.iter()
                .filter(|s| s.role == role && s.resource == Resource::Cpu)
                .filter(|s| s.environment == party || s.bureau == party)
                .fold((0u128, 0u128), |(u, m), s| {
                    (u + s.unit_seconds, m + s.micro_fen)
                })
        };

        // The borrower's burst against an independent count: from the pod's scheduling to
        // the deletion the test saw, within the sampler's boundary error (an end is seen late
        // by the watch's delay, the test's polling and whole-second truncation: 3 s).
        let (burst_us, charged) = of(Role::Burst, &borrower);
        let expected = u128::from(millicores) * u128::try_from(ended - started)?;
        let tolerance = u128::from(millicores) * 3;
        assert!(
            burst_us.abs_diff(expected) <= tolerance,
            "burst unit-seconds {burst_us}, independently {expected} (± {tolerance}): counted \
             once across the kill"
        );
        // Priced at 40 % of the silver consumption price of the card in force, exactly (each
        // window to the millionth of a fen).
        let cards = Api::<RateCard>::all(client.clone())
            .list(&ListParams::default())
            .await?;
        let schedule = RateSchedule::from_objects(cards.items.iter())?;
        let at = jiff::Timestamp::from_second(started)?;
        let range = TimeRange::new(at, at + jiff::SignedDuration::from_secs(1))?;
        let periods = schedule.periods(range, &calendar)?;
        let card = periods[0].card.expect("a rate card in force");
        let price = card.price(Tier::Silver, Resource::Cpu, UsageKind::Consumed);
        let exact = zhengyun_metering::rates::cost_in_units(
            burst_us,
            Resource::Cpu,
            price,
            40,
            8,
            zhengyun_metering::Rounding::HalfUp,
        )?;
        let windows = u128::try_from(end - started)? / 2 + 2;
        assert!(
            charged.abs_diff(exact) <= windows,
            "charged {charged} millionths of a fen for {burst_us} millicore-seconds at {price} \
             × 40 %: {exact} (± one per window)"
        );
        // The lender had 2 idle cores while the pod ran: it is credited, and what was charged
        // is exactly what lenders were credited plus the platform's share.
        let (idle_us, credited) = of(Role::Lent, lender.trim_end_matches("-prod"));
        assert!(credited > 0, "the idle lender is credited: {sums:?}");
        assert!(
            idle_us >= 2_000 * u128::try_from(ended - started - 3)?,
            "idle unit-seconds {idle_us}"
        );
        let total = |role: Role| {
            sums.iter()
                .filter(|s| s.role == role)
                .map(|s| s.micro_fen)
                .sum::<u128>()
        };
        assert_eq!(
            total(Role::Burst),
            total(Role::Lent) + total(Role::Platform),
            "charges = credits + the platform's share, to the millionth of a fen"
        );
        assert!(total(Role::Lent) <= total(Role::Burst) * 70 / 100 + windows);

        // Finance's metrics show both bureaus' settled amounts for the month.
        let borrower_bureau = borrower.trim_end_matches("-prod").to_owned();
        let lender_bureau = lender.trim_end_matches("-prod").to_owned();
        eventually("the settlement in the finance metrics", WAIT, || async {
            let text = zhengyun_e2e::operator::operator_metrics().await?;
            let has = |name: &str, bureau: &str| {
                text.lines()
                    .any(|l| l.starts_with(&format!("{name}{{bureau=\"{bureau}\"")))
            };
            Ok(
                (has("zhengyun_burst_charges_month_to_date", &borrower_bureau)
                    && has("zhengyun_lent_credits_month_to_date", &lender_bureau))
                .then_some(()),
            )
        })
        .await?;

        // And each Bureau's status says what it borrowed and lent this month.
        eventually(
            "the bureaus' settled borrowing in their status",
            WAIT,
            || async {
                let bureaus = Api::<Bureau>::all(client.clone());
                let borrowed = bureaus
                    .get(&borrower_bureau)
                    .await?
                    .status
                    .and_then(|s| s.burst_charges_this_month);
                let lent = bureaus
                    .get(&lender_bureau)
                    .await?
                    .status
                    .and_then(|s| s.lent_credits_this_month);
                Ok((borrowed.is_some() && lent.is_some()).then_some(()))
            },
        )
        .await?;

        // The statement shows both, balanced, and the bureaus' payable amounts include them.
        for month in &months {
            let statement = store
                .computed_statement(*month, &calendar, &schedule, &Default::default(), None)
                .await?;
            statement.check_conservation()?;
        }
        store.close().await;

        set_borrowing(&client, None).await?;
        for name in [borrower, lender] {
            Api::<Environment>::all(client.clone())
                .delete(&name, &DeleteParams::default())
                .await?;
        }
        Ok(())
    }
}
