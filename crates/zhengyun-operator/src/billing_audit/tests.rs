use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};

use super::*;

fn at() -> Timestamp {
    "2027-01-05T08:00:00Z".parse().expect("instant")
}

fn seen(kind: &str, name: &str, uid: &str, audited: Value, manager: &str) -> Seen {
    Seen {
        observed: Observed {
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            generation: 1,
            audited,
        },
        manager: Some(manager.to_owned()),
        bureau: (kind != RateCard::KIND).then(|| "wjw".to_owned()),
    }
}

fn summary(entries: &[AuditEntry]) -> Vec<(String, String, Option<Value>, Option<Value>)> {
    entries
        .iter()
        .map(|e| {
            (
                e.action.clone(),
                e.principal.clone(),
                e.quota_before.clone(),
                e.quota_after.clone(),
            )
        })
        .collect()
}

#[test]
fn a_new_rate_card_is_a_create_by_its_field_manager_and_a_vanished_one_a_delete() {
    let card = seen(
        "RateCard",
        "r-2027",
        "u1",
        json!({"currency": "CNY"}),
        "kubectl-create",
    );
    let created = entries("ratecards", None, Some(&card), at());
    assert_eq!(
        summary(&created),
        [(
            "ratecard.create".to_owned(),
            "kubernetes:kubectl-create".to_owned(),
            None,
            Some(json!({"currency": "CNY"}))
        )]
    );
    assert_eq!(created[0].object, "ratecards/r-2027");
    assert_eq!(created[0].result, RESULT);
    let deleted = entries("ratecards", Some(&card.observed), None, at());
    assert_eq!(
        summary(&deleted),
        [(
            "ratecard.delete".to_owned(),
            "kubernetes:unknown".to_owned(),
            Some(json!({"currency": "CNY"})),
            None
        )]
    );
}

#[test]
fn a_rate_card_re_created_under_its_name_is_a_delete_then_a_create() {
    let old = seen("RateCard", "r", "u1", json!({"a": 1}), "kubectl-create");
    let new = seen(
        "RateCard",
        "r",
        "u2",
        json!({"a": 2}),
        "kubectl-client-side-apply",
    );
    let actions: Vec<_> = entries("ratecards", Some(&old.observed), Some(&new), at())
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["ratecard.delete", "ratecard.create"]);
    assert!(entries("ratecards", Some(&new.observed), Some(&new), at()).is_empty());
}

#[test]
fn a_budget_change_records_before_and_after_and_an_unchanged_budget_nothing() {
    let before = seen(
        "Bureau",
        "wjw",
        "u1",
        json!({"monthlyBudget": "100.00"}),
        "zhengyun-api",
    );
    let after = seen(
        "Bureau",
        "wjw",
        "u1",
        json!({"monthlyBudget": "250.00"}),
        "kubectl-patch",
    );
    let changed = entries("bureaus", Some(&before.observed), Some(&after), at());
    assert_eq!(
        summary(&changed),
        [(
            "bureau.budget".to_owned(),
            "kubernetes:kubectl-patch".to_owned(),
            Some(json!({"monthlyBudget": "100.00"})),
            Some(json!({"monthlyBudget": "250.00"}))
        )]
    );
    assert_eq!(changed[0].bureau.as_deref(), Some("wjw"));
    assert!(entries("bureaus", Some(&after.observed), Some(&after), at()).is_empty());
    // A deleted bureau is forgotten, not recorded as a budget change.
    assert!(entries("bureaus", Some(&after.observed), None, at()).is_empty());
}

#[test]
fn a_bureau_without_a_budget_needs_no_entry_until_it_gets_one() {
    let none = seen(
        "Bureau",
        "wjw",
        "u1",
        json!({"monthlyBudget": null}),
        "kubectl-create",
    );
    assert!(entries("bureaus", None, Some(&none), at()).is_empty());
    let set = seen(
        "Bureau",
        "wjw",
        "u1",
        json!({"monthlyBudget": "9.00"}),
        "kubectl-edit",
    );
    let recorded = entries("bureaus", None, Some(&set), at());
    assert_eq!(recorded[0].quota_before, None);
    let removed = entries("bureaus", Some(&set.observed), Some(&none), at());
    assert_eq!(removed[0].quota_after, Some(json!({"monthlyBudget": null})));
}

#[test]
fn a_tier_change_is_recorded_for_the_environments_bureau() {
    let gold = seen(
        "Environment",
        "wjw-prod",
        "u1",
        json!({"tier": "gold"}),
        "zhengyun-api",
    );
    let silver = seen(
        "Environment",
        "wjw-prod",
        "u1",
        json!({"tier": "silver"}),
        "kubectl-edit",
    );
    let changed = entries("environments", Some(&gold.observed), Some(&silver), at());
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].action, "environment.tier");
    assert_eq!(changed[0].object, "environments/wjw-prod");
    assert_eq!(changed[0].principal, "kubernetes:kubectl-edit");
}

fn managed(
    manager: &str,
    seconds: i64,
    fields: Value,
    subresource: Option<&str>,
) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.to_owned()),
        operation: Some("Update".to_owned()),
        time: Some(Time(Timestamp::from_second(seconds).expect("instant"))),
        fields_v1: Some(FieldsV1(fields)),
        subresource: subresource.map(str::to_owned),
        ..Default::default()
    }
}

#[test]
fn the_manager_is_the_latest_owner_of_the_field_not_of_status_or_other_fields() {
    let meta = ObjectMeta {
        managed_fields: Some(vec![
            managed(
                "zhengyun-api",
                10,
                json!({"f:spec": {"f:monthlyBudget": {}}}),
                None,
            ),
            managed(
                "kubectl-edit",
                20,
                json!({"f:spec": {"f:monthlyBudget": {}}}),
                None,
            ),
            managed(
                "kubectl-label",
                30,
                json!({"f:metadata": {"f:labels": {}}}),
                None,
            ),
            managed(
                "zhengyun-operator",
                40,
                json!({"f:status": {}}),
                Some("status"),
            ),
        ]),
        ..Default::default()
    };
    assert_eq!(
        field_manager(&meta, &["f:spec", "f:monthlyBudget"]).as_deref(),
        Some("kubectl-edit")
    );
    // Nobody owns a removed field: the latest writer of the object removed it.
    assert_eq!(
        field_manager(&meta, &["f:spec", "f:tier"]).as_deref(),
        Some("kubectl-label")
    );
    assert_eq!(field_manager(&ObjectMeta::default(), &["f:spec"]), None);
}

fn budget(name: &str, uid: &str, amount: &str) -> Seen {
    seen(
        "Bureau",
        name,
        uid,
        json!({"monthlyBudget": amount}),
        "kubectl-patch",
    )
}

/// The budget changes in the log, as (object, after).
async fn budget_entries(store: &Store) -> Vec<(String, Option<Value>)> {
    let filter = zhengyun_store::AuditFilter {
        action: Some("bureau.budget".to_owned()),
        ..Default::default()
    };
    store
        .audit_log(&filter)
        .await
        .expect("audit log")
        .into_iter()
        .map(|r| (r.entry.object, r.entry.quota_after))
        .collect()
}

fn listed(ledger: &mut Ledger<Bureau>, objects: Vec<Seen>) -> bool {
    ledger.take(watcher::Event::Init);
    for o in objects {
        assert!(!ledger.take(watcher::Event::InitApply(o)));
    }
    ledger.take(watcher::Event::InitDone)
}

#[test]
fn a_list_replaces_what_the_ledger_holds_only_once_it_is_complete() {
    let mut ledger = Ledger::<Bureau>::new();
    assert!(listed(&mut ledger, vec![budget("wjw", "u1", "100.00")]));
    ledger.take(watcher::Event::Init);
    ledger.take(watcher::Event::InitApply(budget("jyj", "u2", "5.00")));
    // Half a list says nothing about what is gone.
    assert_eq!(ledger.current.keys().collect::<Vec<_>>(), ["wjw"]);
    assert!(ledger.take(watcher::Event::InitDone));
    assert_eq!(ledger.current.keys().collect::<Vec<_>>(), ["jyj"]);
    assert!(ledger.full, "after a list every object is compared");
}

#[tokio::test]
async fn between_lists_only_the_objects_a_watch_event_touched_are_compared() {
    let store = Store::connect("sqlite::memory:").await.expect("store");
    let mut ledger = Ledger::<Bureau>::new();
    listed(
        &mut ledger,
        vec![budget("wjw", "u1", "100.00"), budget("jyj", "u2", "5.00")],
    );
    assert!(ledger.sync(&store).await);
    assert_eq!(
        budget_entries(&store).await.len(),
        2,
        "both budgets recorded after the list"
    );
    assert!(!ledger.full);

    // A change the ledger holds without an event for it (as if its event were still queued) is
    // not compared yet; the event's own object is.
    ledger
        .current
        .insert("jyj".to_owned(), budget("jyj", "u2", "7.00"));
    ledger.take(watcher::Event::Apply(budget("wjw", "u1", "120.00")));
    assert!(ledger.sync(&store).await);
    let entries = budget_entries(&store).await;
    assert_eq!(entries.len(), 3);
    assert!(entries.contains(&(
        "bureaus/wjw".to_owned(),
        Some(json!({"monthlyBudget": "120.00"}))
    )));
    assert!(ledger.touched.is_empty());

    // The next list compares everything again, so the change without an event is recorded.
    listed(
        &mut ledger,
        vec![budget("wjw", "u1", "120.00"), budget("jyj", "u2", "7.00")],
    );
    assert!(ledger.sync(&store).await);
    assert_eq!(budget_entries(&store).await.len(), 4);
}

#[tokio::test]
async fn an_object_missing_from_a_new_list_is_forgotten_as_deleted() {
    let store = Store::connect("sqlite::memory:").await.expect("store");
    let mut ledger = Ledger::<Bureau>::new();
    listed(&mut ledger, vec![budget("wjw", "u1", "100.00")]);
    assert!(ledger.sync(&store).await);
    listed(&mut ledger, vec![]);
    assert!(ledger.sync(&store).await);
    let remembered = store.observed("Bureau").await.expect("observed");
    assert!(remembered.is_empty(), "{remembered:?}");
    // A bureau of that name created again with the same budget is a new budget entry.
    ledger.take(watcher::Event::Apply(budget("wjw", "u3", "100.00")));
    assert!(ledger.sync(&store).await);
    assert_eq!(budget_entries(&store).await.len(), 2);
}
