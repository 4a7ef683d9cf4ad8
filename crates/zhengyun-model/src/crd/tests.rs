//! Tests of the resources as the apiserver will see them: the generated CRDs, their CEL rules
//! (evaluated client-side by kube's CEL engine), `Validate` on every spec, and the sample
//! manifests under `manifests/samples/`.

use std::path::Path;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    jiff::Timestamp,
};
use kube::core::cel::{self as kcel, CompiledSchema, WarningKind};
use rstest::rstest;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::*;
use crate::{
    names::{BureauKind, Purpose, Tier},
    quantity::{Quota, Resource, ResourceAmounts, Unit},
    validation::{Validate, ValidationErrors},
};

// ---------------------------------------------------------------- fixtures

fn quota(cpu: &str, memory: &str, storage: &str) -> Quota {
    Quota::default()
        .with(Resource::Cpu, cpu)
        .with(Resource::Memory, memory)
        .with(Resource::Storage, storage)
}

fn bureau(code: &str, display_name: &str, kind: BureauKind, parent: Option<&str>) -> Bureau {
    Bureau::new(
        code,
        BureauSpec {
            display_name: display_name.into(),
            kind,
            parent: parent.map(Into::into),
            quota: quota("24", "96Gi", "768Gi"),
            monthly_budget: Some("12000.00".into()),
            admin_groups: vec![format!("{code}-admins")],
            viewer_groups: vec![format!("{code}-viewers")],
            domains: Vec::new(),
        },
    )
}

fn wjw() -> Bureau {
    bureau("wjw", "区卫生健康委员会", BureauKind::Bureau, None)
}

fn environment(bureau: &str, purpose: Purpose) -> Environment {
    let name = crate::names::environment_name(bureau, purpose);
    Environment::new(
        &name,
        EnvironmentSpec {
            bureau: bureau.into(),
            purpose,
            tier: Tier::Silver,
            quota: quota("4", "16Gi", "64Gi"),
            services: vec![web(), postgres()],
            expires_at: None,
        },
    )
}

fn web() -> CatalogService {
    CatalogService {
        name: "web".into(),
        kind: ServiceKind::Web,
        replicas: Some(2),
        image: Some("registry.example.cn/wjw/portal:1.4".into()),
        storage: None,
    }
}

fn postgres() -> CatalogService {
    CatalogService {
        name: "db".into(),
        kind: ServiceKind::Postgres,
        replicas: None,
        image: None,
        storage: Some("20Gi".into()),
    }
}

fn pool() -> CapacityPool {
    CapacityPool::new(
        POOL_NAME,
        CapacityPoolSpec {
            capacity: quota("2000", "8000Gi", "64Ti"),
            overcommit: Overcommit {
                cpu_percent: 150,
                ..Overcommit::default()
            },
            priority_classes: TierPriorityClasses::default(),
            priority_values: TierPriorityValues::default(),
            limit_range: LimitRangeDefaults::default(),
            object_counts: Default::default(),
            borrowing: Default::default(),
            service_levels: Default::default(),
            publishing: Default::default(),
        },
    )
}

#[test]
fn tier_priority_values_must_keep_gold_above_silver_above_bronze_and_below_system_classes() {
    let mut bad = pool();
    bad.spec.priority_values = TierPriorityValues {
        gold: 10,
        silver: 10,
        bronze: 1,
        burst: 0,
    };
    let errors = bad.validate().expect_err("equal tiers are refused");
    assert!(
        format!("{errors:?}").contains("priorityValues"),
        "{errors:?}"
    );
    bad.spec.priority_values = TierPriorityValues {
        gold: 2_000_000_000,
        silver: 10,
        bronze: 1,
        burst: 0,
    };
    let errors = bad.validate().expect_err("a system-class value is refused");
    assert!(
        format!("{errors:?}").contains("priorityValues.gold"),
        "{errors:?}"
    );
    assert!(pool().validate().is_ok());
    let crd = serde_json::to_string(&CapacityPool::crd()).expect("json");
    assert!(crd.contains(
        "self.gold > self.silver && self.silver > self.bronze && self.bronze > self.burst"
    ));
}

#[test]
fn the_burst_class_must_sit_below_bronze_and_differ_from_every_tier_class() {
    let mut bad = pool();
    bad.spec.priority_values.burst = bad.spec.priority_values.bronze;
    let errors = format!("{:?}", bad.validate().expect_err("burst equal to bronze"));
    assert!(errors.contains("bronze above burst"), "{errors}");
    let mut bad = pool();
    bad.spec.priority_classes.burst = bad.spec.priority_classes.bronze.clone();
    let errors = format!("{:?}", bad.validate().expect_err("burst named as bronze"));
    assert!(errors.contains("priorityClasses.burst"), "{errors}");
}

#[test]
fn a_borrowing_policy_out_of_range_is_refused_field_by_field() {
    let mut bad = pool();
    bad.spec.borrowing.lender_share_percent = 101;
    bad.spec.borrowing.burst_price_percent = 150;
    bad.spec.borrowing.safety_margin_percent = 95;
    let errors = format!("{:?}", bad.validate().expect_err("out of range"));
    for field in [
        "borrowing.lenderSharePercent",
        "borrowing.burstPricePercent",
        "borrowing.safetyMarginPercent",
    ] {
        assert!(errors.contains(field), "{field} in {errors}");
    }
    let mut good = pool();
    good.spec.borrowing.enabled = true;
    good.spec.borrowing.lender_share_percent = 100;
    assert!(good.validate().is_ok());
}

#[test]
fn a_negative_borrowing_figure_does_not_even_parse_and_the_schema_says_so() {
    let spec =
        serde_json::json!({"capacity": {"cpu": "10"}, "borrowing": {"burstPricePercent": -1}});
    assert!(serde_json::from_value::<CapacityPoolSpec>(spec).is_err());
    let crd = serde_json::to_value(CapacityPool::crd()).expect("json");
    let borrowing = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["borrowing"]["properties"];
    for field in [
        "maxBorrowPercent",
        "burstPricePercent",
        "lenderSharePercent",
    ] {
        assert_eq!(borrowing[field]["minimum"], 0.0, "{field}");
    }
    assert_eq!(borrowing["lenderSharePercent"]["maximum"], 100.0);
}

fn prices(cpu: &str) -> ResourcePrices {
    ResourcePrices {
        cpu_core_hour: cpu.into(),
        memory_gib_hour: "0.01".into(),
        storage_gib_hour: "0.0008".into(),
        gpu_hour: "8.00".into(),
    }
}

fn rate_card() -> RateCard {
    RateCard::new(
        "rates-2026",
        RateCardSpec {
            currency: "CNY".into(),
            effective_from: "2026-01-01".into(),
            reservation_prices: None,
            reservation_share: None,
            rounding: None,
            prices: TierPrices {
                gold: prices("0.12"),
                silver: prices("0.08"),
                bronze: prices("0.05"),
            },
        },
    )
}

fn fields(errors: &ValidationErrors) -> Vec<&str> {
    errors.errors().iter().map(|e| e.field.as_str()).collect()
}

/// Asserts that Validate reports `field` and that the apiserver's CEL rules reject the object
/// too, with a message containing `cel_message`.
fn assert_rejected_twice<T>(object: &T, field: &str, cel_message: &str)
where
    T: Validate + kube::CustomResourceExt + Serialize,
{
    let errors = object.validate().expect_err("Validate accepts it");
    assert!(errors.has_field(field), "expected {field}, got {errors}");
    let cel = kcel::validate_cel(object).expect_err("CEL accepts it");
    assert!(cel.to_string().contains(cel_message), "{cel}");
}

// ---------------------------------------------------------------- CRDs

#[test]
fn crds_yaml_holds_every_crd_in_a_fixed_order() {
    let yaml = crds_yaml();
    assert_eq!(yaml, crds_yaml(), "output is deterministic");
    let parsed: Vec<CustomResourceDefinition> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| CustomResourceDefinition::deserialize(doc).expect("each document is a CRD"))
        .collect();
    let names: Vec<_> = parsed
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            "bureaus.zhengyun.io",
            "capacitypools.zhengyun.io",
            "environments.zhengyun.io",
            "ratecards.zhengyun.io"
        ]
    );
    assert_eq!(parsed, crds());
}

use serde::Deserialize as _;

#[rstest]
#[case("bureaus.zhengyun.io", "bu", &["Display Name", "Kind", "CPU", "Memory", "Allocated CPU", "Age"])]
#[case("environments.zhengyun.io", "env", &["Bureau", "Purpose", "Tier", "Phase", "CPU", "Memory", "Age"])]
#[case("capacitypools.zhengyun.io", "cp", &["CPU", "Memory", "Storage", "CPU Overcommit %", "Allocated CPU", "Age"])]
#[case("ratecards.zhengyun.io", "rc", &["Currency", "Effective From", "Gold CPU/h", "Age"])]
fn every_crd_is_cluster_scoped_with_status_short_name_and_columns(
    #[case] name: &str,
    #[case] short_name: &str,
    #[case] columns: &[&str],
) {
    let crd = crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .expect("CRD exists");
    assert_eq!(crd.spec.group, GROUP);
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec![short_name.to_owned()])
    );
    assert_eq!(crd.spec.names.categories, Some(vec!["zhengyun".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, VERSION);
    assert!(
        version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );
    let printed: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(printed, columns);
}

fn schema_of(crd_name: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(crd_name))
        .expect("CRD exists");
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema);
    serde_json::to_value(schema.expect("CRD has a schema")).expect("schema serializes")
}

#[rstest]
#[case(
    "bureaus.zhengyun.io",
    "",
    "self.metadata.name.size() <= 40 && !self.metadata.name.contains('.')"
)]
#[case(
    "bureaus.zhengyun.io",
    "",
    "self.metadata.name != 'kube' && !self.metadata.name.startsWith('kube-')"
)]
#[case(
    "bureaus.zhengyun.io",
    "",
    "!has(self.spec.parent) || self.spec.parent != self.metadata.name"
)]
#[case(
    "bureaus.zhengyun.io",
    "/properties/spec/properties/displayName",
    "self == self.trim()"
)]
#[case(
    "environments.zhengyun.io",
    "",
    "self.metadata.name == self.spec.bureau + '-' + self.spec.purpose || self.metadata.name.startsWith(self.spec.bureau + '-' + self.spec.purpose + '-')"
)]
#[case(
    "environments.zhengyun.io",
    "/properties/spec/properties/bureau",
    "self == oldSelf"
)]
#[case(
    "environments.zhengyun.io",
    "/properties/spec/properties/purpose",
    "self == oldSelf"
)]
#[case(
    "environments.zhengyun.io",
    "/properties/spec",
    "!has(self.expiresAt) || self.purpose == 'dev' || self.purpose == 'test'"
)]
#[case(
    "environments.zhengyun.io",
    "/properties/spec/properties/services/items",
    "has(self.storage) == (self.kind == 'postgres')"
)]
#[case("capacitypools.zhengyun.io", "", "self.metadata.name == 'default'")]
#[case("ratecards.zhengyun.io", "/properties/spec", "self == oldSelf")]
fn crd_schemas_carry_the_cel_rules(#[case] crd: &str, #[case] pointer: &str, #[case] rule: &str) {
    let schema = schema_of(crd);
    let node = schema.pointer(pointer).expect("schema node exists");
    let rules = node["x-kubernetes-validations"]
        .as_array()
        .expect("node has rules");
    assert!(
        rules.iter().any(|r| r["rule"] == rule),
        "{rule} not in {rules:?}"
    );
}

#[rstest]
#[case(
    "bureaus.zhengyun.io",
    "/properties/spec/properties/quota/properties/cpu",
    Unit::Millicores.quota_pattern()
)]
#[case(
    "environments.zhengyun.io",
    "/properties/spec/properties/services/items/properties/storage",
    Unit::Bytes.quota_pattern()
)]
#[case(
    "capacitypools.zhengyun.io",
    "/properties/spec/properties/limitRange/properties/default/properties/memory",
    Unit::Bytes.quota_pattern()
)]
#[case(
    "environments.zhengyun.io",
    "/properties/status/properties/usage/properties/pods",
    crate::quantity::QUANTITY_PATTERN.to_owned()
)]
fn quantities_are_int_or_string_with_a_non_negative_pattern(
    #[case] crd: &str,
    #[case] pointer: &str,
    #[case] pattern: String,
) {
    let schema = schema_of(crd);
    let node = schema.pointer(pointer).expect("schema node exists");
    assert_eq!(node["x-kubernetes-int-or-string"], true);
    assert_eq!(node["pattern"], pattern.as_str());
}

#[rstest]
#[case("12000.00")]
#[case("0")]
#[case("0.0325")]
#[case("0.000001")]
#[case("999999999999999.99")]
#[case("12000.001")]
#[case("0.0000001")]
#[case("-1")]
#[case("1e3")]
#[case(".5")]
#[case("5.")]
#[case("1000000000000000")]
fn decimal_patterns_in_the_schema_agree_with_validate(#[case] value: &str) {
    let cases = [
        (
            "bureaus.zhengyun.io",
            "/properties/spec/properties/monthlyBudget",
            BUDGET_MAX_SCALE,
        ),
        (
            "ratecards.zhengyun.io",
            "/properties/spec/properties/prices/properties/gold/properties/gpuHour",
            PRICE_MAX_SCALE,
        ),
    ];
    for (crd, pointer, scale) in cases {
        let schema = schema_of(crd);
        let pattern = schema
            .pointer(pointer)
            .and_then(|n| n["pattern"].as_str())
            .expect("pattern");
        let regex = regex::Regex::new(pattern).expect("pattern compiles");
        let valid = crate::validation::check_decimal(value, scale).is_ok();
        assert_eq!(regex.is_match(value), valid, "{crd}{pointer} on {value:?}");
    }
}

#[test]
fn lists_merge_by_key_under_server_side_apply() {
    let env = schema_of("environments.zhengyun.io");
    let services = &env["properties"]["spec"]["properties"]["services"];
    assert_eq!(services["x-kubernetes-list-type"], "map");
    assert_eq!(
        services["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    let conditions = &env["properties"]["status"]["properties"]["conditions"];
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let bureau = schema_of("bureaus.zhengyun.io");
    assert_eq!(
        bureau["properties"]["spec"]["properties"]["adminGroups"]["x-kubernetes-list-type"],
        "set"
    );
}

/// Every rule in the schema tree, with the node it is attached to.
fn rules_in(node: &CompiledSchema, out: &mut Vec<(String, bool)>) {
    for compiled in &node.validations {
        match compiled {
            Ok(c) => {
                let over_budget = kcel::estimate_rule_cost(&c.rule.rule, node)
                    .iter()
                    .any(|w| w.kind == WarningKind::CostExceeded);
                out.push((c.rule.rule.clone(), over_budget));
            }
            Err(e) => panic!("rule does not compile: {e:?}"),
        }
    }
    let children = node.properties.values().chain(node.items.as_deref());
    children.for_each(|child| rules_in(child, out));
}

#[test]
fn every_cel_rule_compiles_and_stays_within_the_cost_budget() {
    let mut rules = Vec::new();
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        rules_in(&kcel::compile_schema(&schema_of(&name)), &mut rules);
    }
    assert_eq!(rules.len(), 40, "{rules:?}");
    let over: Vec<_> = rules.iter().filter(|(_, over)| *over).collect();
    assert!(over.is_empty(), "{over:?}");
}

// ---------------------------------------------------------------- CEL rules, client-side

#[test]
fn valid_fixtures_pass_every_cel_rule() {
    assert_eq!(
        kcel::validate_cel(&wjw()).map_err(|e| e.to_string()),
        Ok(())
    );
    assert_eq!(
        kcel::validate_cel(&environment("wjw", Purpose::Test)).map_err(|e| e.to_string()),
        Ok(())
    );
    assert_eq!(
        kcel::validate_cel(&pool()).map_err(|e| e.to_string()),
        Ok(())
    );
    assert_eq!(
        kcel::validate_cel(&rate_card()).map_err(|e| e.to_string()),
        Ok(())
    );
}

#[test]
fn environment_must_be_named_after_its_bureau_and_purpose() {
    let mut env = environment("wjw", Purpose::Prod);
    env.metadata.name = Some("wjw-production".into());
    assert_rejected_twice(
        &env,
        "metadata.name",
        "metadata.name must be <spec.bureau>-<spec.purpose>",
    );
}

#[test]
fn environment_bureau_and_purpose_never_change_but_tier_may() {
    let old = environment("wjw", Purpose::Test);
    let mut moved = old.clone();
    moved.spec.bureau = "mzj".into();
    let error = kcel::validate_cel_update(&moved, &old).expect_err("bureau changed");
    assert!(error.to_string().contains("bureau is immutable"), "{error}");

    let mut upgraded = old.clone();
    upgraded.spec.tier = Tier::Gold;
    upgraded.spec.quota = quota("8", "32Gi", "64Gi");
    assert_eq!(
        kcel::validate_cel_update(&upgraded, &old).map_err(|e| e.to_string()),
        Ok(())
    );
}

#[rstest]
#[case(Purpose::Dev, true)]
#[case(Purpose::Test, true)]
#[case(Purpose::Staging, false)]
#[case(Purpose::Prod, false)]
fn only_dev_and_test_environments_may_expire(#[case] purpose: Purpose, #[case] allowed: bool) {
    let mut env = environment("wjw", purpose);
    let at: Timestamp = "2026-06-30T16:00:00Z".parse().expect("timestamp");
    env.spec.expires_at = Some(Time(at));
    assert_eq!(env.validate().is_ok(), allowed);
    assert_eq!(kcel::validate_cel(&env).is_ok(), allowed);
    if !allowed {
        assert_rejected_twice(
            &env,
            "spec.expiresAt",
            "expiresAt is only allowed for dev and test",
        );
    }
}

#[rstest]
#[case::no_cpu(|q: &mut Quota| q.cpu = None, "spec.quota.cpu", "an environment needs a CPU and a memory quota")]
#[case::no_memory(|q: &mut Quota| q.memory = None, "spec.quota.memory", "an environment needs a CPU and a memory quota")]
fn an_environment_without_a_cpu_or_memory_quota_is_refused(
    #[case] break_it: fn(&mut Quota),
    #[case] field: &str,
    #[case] cel_message: &str,
) {
    let mut env = environment("wjw", Purpose::Dev);
    break_it(&mut env.spec.quota);
    assert_rejected_twice(&env, field, cel_message);
}

#[rstest]
#[case::zero_cpu(|q: &mut Quota| q.cpu = Some("0".into()), "spec.quota.cpu")]
#[case::zero_millicores(|q: &mut Quota| q.cpu = Some("0m".into()), "spec.quota.cpu")]
#[case::zero_memory(|q: &mut Quota| q.memory = Some("0Gi".into()), "spec.quota.memory")]
fn an_environment_with_a_zero_cpu_or_memory_quota_is_refused(
    #[case] break_it: fn(&mut Quota),
    #[case] field: &str,
) {
    let mut env = environment("wjw", Purpose::Dev);
    break_it(&mut env.spec.quota);
    let errors = env.validate().expect_err("a zero quota is refused");
    assert_eq!(fields(&errors), [field], "{errors}");
}

#[rstest]
#[case::postgres_without_storage(
    |s: &mut CatalogService| { s.kind = ServiceKind::Postgres; s.image = None; s.replicas = None; },
    "spec.services[0].storage", "storage is required for postgres"
)]
#[case::web_with_storage(
    |s: &mut CatalogService| s.storage = Some("1Gi".into()),
    "spec.services[0].storage", "not allowed for web services"
)]
#[case::replicated_postgres(
    |s: &mut CatalogService| { *s = postgres(); s.replicas = Some(2); },
    "spec.services[0].replicas", "postgres services run exactly one replica"
)]
#[case::web_without_image(
    |s: &mut CatalogService| s.image = None,
    "spec.services[0].image", "web services need an image"
)]
fn catalog_services_are_checked_by_kind(
    #[case] break_it: fn(&mut CatalogService),
    #[case] field: &str,
    #[case] cel_message: &str,
) {
    let mut env = environment("wjw", Purpose::Test);
    break_it(&mut env.spec.services[0]);
    assert_rejected_twice(&env, field, cel_message);
}

#[test]
fn capacity_pool_is_a_singleton_named_default() {
    let mut other = pool();
    other.metadata.name = Some("spare".into());
    assert_rejected_twice(&other, "metadata.name", "singleton");
}

#[test]
fn rate_cards_never_change() {
    let old = rate_card();
    let mut cheaper = old.clone();
    cheaper.spec.prices.gold.cpu_core_hour = "0.10".into();
    let error = kcel::validate_cel_update(&cheaper, &old).expect_err("price changed");
    assert!(error.to_string().contains("never changes"), "{error}");
    assert_eq!(
        kcel::validate_cel_update(&old.clone(), &old).map_err(|e| e.to_string()),
        Ok(())
    );
}

#[rstest]
#[case::reserved("kube-system", "metadata.name", "reserved")]
#[case::reserved_exact("kube", "metadata.name", "reserved")]
#[case::too_long(
    "a23456789012345678901234567890123456789012",
    "metadata.name",
    "at most 40"
)]
#[case::dotted("wjw.gov", "metadata.name", "no dots")]
fn bureau_codes_are_short_labels_outside_kube(
    #[case] code: &str,
    #[case] field: &str,
    #[case] cel: &str,
) {
    let mut bureau = wjw();
    bureau.metadata.name = Some(code.into());
    assert_rejected_twice(&bureau, field, cel);
}

#[test]
fn bureau_cannot_be_its_own_parent() {
    let bureau = bureau("haidian", "海淀街道", BureauKind::Town, Some("haidian"));
    assert_rejected_twice(&bureau, "spec.parent", "its own parent");
}

#[test]
fn display_names_keep_no_surrounding_whitespace() {
    let mut bureau = wjw();
    bureau.spec.display_name = "区卫生健康委员会 ".into();
    assert_rejected_twice(
        &bureau,
        "spec.displayName",
        "must not start or end with whitespace",
    );
}

// ---------------------------------------------------------------- Validate

#[rstest]
#[case("wjw", "区卫生健康委员会", BureauKind::Bureau, None)]
#[case("gzw", "区人民政府国有资产监督管理委员会", BureauKind::Bureau, None)]
#[case("wanshoulu", "万寿路街道", BureauKind::Town, None)]
#[case("zgc-keyu", "科育社区", BureauKind::Community, Some("zhongguancun"))]
#[case("beitaipingzhuang", "北太平庄街道", BureauKind::Town, None)]
fn sample_tenants_are_valid_bureaus(
    #[case] code: &str,
    #[case] name: &str,
    #[case] kind: BureauKind,
    #[case] parent: Option<&str>,
) {
    let bureau = bureau(code, name, kind, parent);
    assert_eq!(bureau.validate(), Ok(()));
    assert_eq!(bureau.spec.validate(), Ok(()));
    assert_eq!(
        kcel::validate_cel(&bureau).map_err(|e| e.to_string()),
        Ok(())
    );
}

#[rstest]
#[case::empty_name(|s: &mut BureauSpec| s.display_name = "  ".into(), "spec.displayName")]
#[case::long_name(|s: &mut BureauSpec| s.display_name = "卫".repeat(129), "spec.displayName")]
#[case::bad_parent(|s: &mut BureauSpec| s.parent = Some("中关村".into()), "spec.parent")]
#[case::negative_cpu(|s: &mut BureauSpec| s.quota.cpu = Some("-24".into()), "spec.quota.cpu")]
#[case::garbage_memory(|s: &mut BureauSpec| s.quota.memory = Some("96GB".into()), "spec.quota.memory")]
#[case::half_a_gpu(|s: &mut BureauSpec| s.quota.gpu = Some("0.5".into()), "spec.quota.gpu")]
#[case::budget_in_li(|s: &mut BureauSpec| s.monthly_budget = Some("12000.001".into()), "spec.monthlyBudget")]
#[case::budget_with_symbol(|s: &mut BureauSpec| s.monthly_budget = Some("¥12000".into()), "spec.monthlyBudget")]
#[case::empty_group(|s: &mut BureauSpec| s.admin_groups.push(String::new()), "spec.adminGroups[1]")]
#[case::duplicate_group(|s: &mut BureauSpec| s.viewer_groups.push("wjw-viewers".into()), "spec.viewerGroups[1]")]
fn invalid_bureau_specs_name_the_field(#[case] break_it: fn(&mut BureauSpec), #[case] field: &str) {
    let mut bureau = wjw();
    break_it(&mut bureau.spec);
    let errors = bureau.validate().expect_err("invalid");
    assert_eq!(fields(&errors), [field], "{errors}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let mut bureau = wjw();
    bureau.metadata.name = Some("WJW".into());
    bureau.spec.display_name = String::new();
    bureau.spec.quota.cpu = Some("-1".into());
    let errors = bureau.validate().expect_err("invalid");
    assert_eq!(
        fields(&errors),
        ["metadata.name", "spec.displayName", "spec.quota.cpu"]
    );
    assert_eq!(errors.errors()[2].message, "must not be negative");
}

#[rstest]
#[case::bad_bureau(|s: &mut EnvironmentSpec| s.bureau = "Wjw".into(), "spec.bureau")]
#[case::bad_quota(|s: &mut EnvironmentSpec| s.quota.storage = Some("lots".into()), "spec.quota.storage")]
#[case::bad_service_name(|s: &mut EnvironmentSpec| s.services[0].name = "1web".into(), "spec.services[0].name")]
#[case::duplicate_service(|s: &mut EnvironmentSpec| s.services[1].name = "web".into(), "spec.services[1].name")]
#[case::zero_replicas(|s: &mut EnvironmentSpec| s.services[0].replicas = Some(0), "spec.services[0].replicas")]
#[case::too_many_replicas(|s: &mut EnvironmentSpec| s.services[0].replicas = Some(21), "spec.services[0].replicas")]
#[case::image_with_spaces(|s: &mut EnvironmentSpec| s.services[0].image = Some("nginx latest".into()), "spec.services[0].image")]
#[case::volume_too_big(|s: &mut EnvironmentSpec| s.services[1].storage = Some("65Gi".into()), "spec.services")]
#[case::no_storage_quota(|s: &mut EnvironmentSpec| s.quota.storage = None, "spec.services")]
#[case::bad_volume(|s: &mut EnvironmentSpec| s.services[1].storage = Some("-1Gi".into()), "spec.services[1].storage")]
fn invalid_environment_specs_name_the_field(
    #[case] break_it: fn(&mut EnvironmentSpec),
    #[case] field: &str,
) {
    let mut env = environment("wjw", Purpose::Test);
    break_it(&mut env.spec);
    env.metadata.name = Some(env.spec.expected_name());
    let errors = env.validate().expect_err("invalid");
    assert_eq!(fields(&errors), [field], "{errors}");
}

#[test]
fn too_many_services_are_refused() {
    let mut env = environment("wjw", Purpose::Dev);
    env.spec.services = (0..=MAX_SERVICES)
        .map(|i| CatalogService {
            name: format!("web{i}"),
            ..web()
        })
        .collect();
    assert_eq!(
        fields(&env.validate().expect_err("17 services")),
        ["spec.services"]
    );
}

#[rstest]
#[case::zero_overcommit(|s: &mut CapacityPoolSpec| s.overcommit.memory_percent = 0, "spec.overcommit.memoryPercent")]
#[case::huge_overcommit(|s: &mut CapacityPoolSpec| s.overcommit.cpu_percent = 1001, "spec.overcommit.cpuPercent")]
#[case::bad_capacity(|s: &mut CapacityPoolSpec| s.capacity.cpu = Some("2k cores".into()), "spec.capacity.cpu")]
#[case::bad_priority_class(|s: &mut CapacityPoolSpec| s.priority_classes.bronze = "Bronze".into(), "spec.priorityClasses.bronze")]
#[case::request_above_limit(
    |s: &mut CapacityPoolSpec| s.limit_range.default_request.memory = "1Gi".into(),
    "spec.limitRange.defaultRequest.memory"
)]
#[case::bad_limit(|s: &mut CapacityPoolSpec| s.limit_range.default.cpu = "half".into(), "spec.limitRange.default.cpu")]
fn invalid_capacity_pools_name_the_field(
    #[case] break_it: fn(&mut CapacityPoolSpec),
    #[case] field: &str,
) {
    let mut pool = pool();
    break_it(&mut pool.spec);
    let errors = pool.validate().expect_err("invalid");
    assert_eq!(fields(&errors), [field], "{errors}");
}

#[test]
fn effective_capacity_applies_overcommit_only_where_allowed() {
    let effective = pool().spec.effective_capacity().expect("valid capacity");
    assert_eq!(effective.get(Resource::Cpu), 3_000_000);
    assert_eq!(effective.get(Resource::Memory), 8000 << 30);
    assert_eq!(effective.get(Resource::Storage), 64 << 40);
    assert_eq!(
        pool().spec.priority_classes.for_tier(Tier::Gold),
        "zhengyun-gold"
    );
}

#[rstest]
#[case::lowercase_currency(|s: &mut RateCardSpec| s.currency = "cny".into(), "spec.currency")]
#[case::not_a_date(|s: &mut RateCardSpec| s.effective_from = "2026-02-30".into(), "spec.effectiveFrom")]
#[case::short_date(|s: &mut RateCardSpec| s.effective_from = "2026-1-1".into(), "spec.effectiveFrom")]
#[case::float_price(|s: &mut RateCardSpec| s.prices.silver.gpu_hour = "8e0".into(), "spec.prices.silver.gpuHour")]
#[case::too_precise(|s: &mut RateCardSpec| s.prices.bronze.memory_gib_hour = "0.0000001".into(), "spec.prices.bronze.memoryGibHour")]
fn invalid_rate_cards_name_the_field(#[case] break_it: fn(&mut RateCardSpec), #[case] field: &str) {
    let mut card = rate_card();
    break_it(&mut card.spec);
    let errors = card.validate().expect_err("invalid");
    assert_eq!(fields(&errors), [field], "{errors}");
}

#[test]
fn rate_card_dates_are_calendar_dates() {
    let date = rate_card().spec.effective_date().expect("valid date");
    assert_eq!((date.year(), date.month(), date.day()), (2026, 1, 1));
}

// ---------------------------------------------------------------- samples

fn samples_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../manifests/samples"
    ))
}

/// Every YAML document under `manifests/samples/`, with the file it came from.
fn sample_documents() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(samples_dir())
        .expect("manifests/samples exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("readable sample");
            let name = path.display().to_string();
            serde_yaml::Deserializer::from_str(&text)
                .map(|doc| (name.clone(), Value::deserialize(doc).expect("valid YAML")))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn typed<T: DeserializeOwned>(file: &str, doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn check_sample<T>(file: &str, doc: &Value) -> T
where
    T: DeserializeOwned + Validate + kube::CustomResourceExt + Serialize,
{
    let object: T = typed(file, doc);
    object.validate().unwrap_or_else(|e| panic!("{file}: {e}"));
    kcel::validate_cel(&object).unwrap_or_else(|e| panic!("{file}: {e}"));
    object
}

#[derive(Default)]
struct Samples {
    bureaus: Vec<Bureau>,
    environments: Vec<Environment>,
    pools: Vec<CapacityPool>,
    rate_cards: Vec<RateCard>,
}

fn load_samples() -> Samples {
    let mut samples = Samples::default();
    for (file, doc) in sample_documents() {
        assert_eq!(doc["apiVersion"], "zhengyun.io/v1alpha1", "{file}");
        match doc["kind"].as_str() {
            Some("Bureau") => samples.bureaus.push(check_sample(&file, &doc)),
            Some("Environment") => samples.environments.push(check_sample(&file, &doc)),
            Some("CapacityPool") => samples.pools.push(check_sample(&file, &doc)),
            Some("RateCard") => samples.rate_cards.push(check_sample(&file, &doc)),
            other => panic!("{file}: unexpected kind {other:?}"),
        }
    }
    samples
}

#[test]
fn every_sample_manifest_parses_and_validates() {
    let samples = load_samples();
    // bureau-wjw.yaml, and the 71 Haidian sample tenants (wjw among them).
    assert_eq!(samples.bureaus.len(), 72);
    assert_eq!(samples.environments.len(), 2);
    assert_eq!(samples.pools.len(), 1);
    assert_eq!(samples.rate_cards.len(), 1);
    for bureau in samples
        .bureaus
        .iter()
        .filter(|b| b.metadata.name.as_deref() == Some("wjw"))
    {
        assert_eq!(bureau.spec.display_name, "区卫生健康委员会");
    }
    let communities = samples
        .bureaus
        .iter()
        .filter(|b| b.spec.parent.is_some())
        .count();
    assert_eq!(communities, 10);
}

#[test]
fn sample_environments_fit_the_sample_bureau_which_fits_the_pool() {
    let samples = load_samples();
    let env_quotas: Vec<ResourceAmounts> = samples
        .environments
        .iter()
        .map(|e| e.spec.quota.to_amounts().expect("valid quota"))
        .collect();
    let allocated = ResourceAmounts::checked_sum(&env_quotas).expect("no overflow");
    let bureau = samples.bureaus[0]
        .spec
        .quota
        .to_amounts()
        .expect("valid quota");
    assert!(
        allocated.fits_within(&bureau),
        "{:?}",
        allocated.shortfall(&bureau)
    );
    let pool = samples.pools[0]
        .spec
        .effective_capacity()
        .expect("valid capacity");
    assert!(bureau.fits_within(&pool));
}

#[rstest]
#[case::plain("wjw-test", true)]
#[case::with_suffix("wjw-test-2", true)]
#[case::with_word_suffix("wjw-test-payroll", true)]
#[case::empty_suffix("wjw-test-", false)]
#[case::glued_suffix("wjw-testing", false)]
#[case::other_purpose("wjw-prod", false)]
#[case::upper_suffix("wjw-test-A", false)]
#[case::too_long(
    "wjw-test-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    false
)]
fn environment_names_are_bureau_purpose_and_an_optional_suffix(
    #[case] name: &str,
    #[case] ok: bool,
) {
    let mut env = environment("wjw", Purpose::Test);
    env.metadata.name = Some(name.into());
    let result = env.validate();
    assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
    if let Err(errors) = result {
        assert_eq!(fields(&errors), ["metadata.name"], "{errors}");
    }
}

mod names_and_text;
mod quantity_language;

// ---------------------------------------------------------------- service levels

#[rstest]
#[case::objective_above_100(
    |p: &mut CapacityPool| p.spec.service_levels.gold.objective = "100.5".into(),
    "spec.serviceLevels.gold.objective",
    "objective must be a percentage above 0 and at most 100"
)]
#[case::credits_not_monotonic(
    |p: &mut CapacityPool| p.spec.service_levels.silver.credits[1].credit_percent = 5,
    "spec.serviceLevels.silver.credits",
    "credits must be monotonic"
)]
#[case::two_steps_at_one_level(
    |p: &mut CapacityPool| p.spec.service_levels.bronze.credits[2].below = "99".into(),
    "spec.serviceLevels.bronze.credits",
    "credit steps must have different levels"
)]
#[case::step_above_the_objective(
    |p: &mut CapacityPool| p.spec.service_levels.gold.credits[0].below = "99.99".into(),
    "spec.serviceLevels.gold.credits[0].below",
    "every credit step must apply below a level at or under the objective"
)]
fn bad_service_levels_are_refused_by_both_validations(
    #[case] spoil: fn(&mut CapacityPool),
    #[case] field: &str,
    #[case] message: &str,
) {
    let mut pool = pool();
    spoil(&mut pool);
    assert_rejected_twice(&pool, field, message);
}

#[test]
fn a_maintenance_window_that_ends_before_it_starts_is_refused_by_both_validations() {
    let mut pool = pool();
    let at = |s: &str| Time(s.parse().expect("time"));
    pool.spec
        .service_levels
        .maintenance_windows
        .push(crate::crd::MaintenanceWindow {
            start: at("2026-12-05T02:00:00Z"),
            end: at("2026-12-05T01:00:00Z"),
            reason: "数据库升级".into(),
        });
    assert_rejected_twice(
        &pool,
        "spec.serviceLevels.maintenanceWindows[0].end",
        "a maintenance window must end after it starts",
    );
}
