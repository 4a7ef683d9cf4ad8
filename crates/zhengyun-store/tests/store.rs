//! The store suite: every test runs on SQLite and on PostgreSQL (see `support` for when the
//! PostgreSQL half runs), each on a database of its own.

#[macro_use]
mod support;

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp, civil::Date};
use rust_decimal::Decimal;
use serde_json::json;
use sha2::{Digest, Sha256};
use support::TestDb;
use zhengyun_metering::{
    AdjustmentLine, Calendar, Gap, GapKind, Meter, Month, RateCard, RateSchedule, Statement,
    TimeRange, UsageInterval, UsageKind, adjustments,
};
use zhengyun_model::{names::Tier, quantity::Resource};
use zhengyun_store::{
    AuditEntry, AuditFilter, BootstrapOutcome, ChainStatus, NewRequest, Observed, RequestFilter,
    RequestKind, RequestState, ResourceUsage, Role, Store, TokenId, UsageCounter,
    tokens::{DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME, NewToken},
};

on_both_backends!(
    a_token_authenticates_as_its_role_and_bureau_until_revoked,
    a_wrong_or_malformed_secret_authenticates_nobody,
    bureau_roles_need_a_bureau_and_platform_roles_refuse_one,
    tokens_are_stored_as_hashes_and_listed_without_secrets,
    bootstrap_admin_is_idempotent_and_never_undoes_a_revocation,
    two_replicas_bootstrapping_at_once_create_one_admin,
    a_token_authenticates_until_its_expiry_and_not_from_then_on,
    a_token_lifetime_must_be_in_the_future_and_within_the_maximum,
    a_bootstrap_token_expires_and_a_restart_does_not_renew_it,
    deleting_a_bureau_revokes_its_tokens_and_only_its,
    tokens_issued_before_expiry_existed_expire_after_the_default_lifetime,
    an_intact_audit_chain_verifies_and_an_altered_row_is_named,
    entries_written_before_principal_labels_still_verify_and_a_label_is_hashed,
    deleted_audit_entries_break_the_chain_where_they_were,
    the_database_refuses_to_update_audit_entries,
    a_head_moved_back_below_the_published_one_is_named_and_not_published,
    a_rewritten_chain_that_no_longer_holds_the_published_head_is_named,
    fifty_concurrent_appends_make_one_unbroken_chain,
    fifty_concurrent_changes_each_get_their_own_entry_and_settle_their_own_intent,
    an_audit_intent_is_settled_by_the_append_of_its_outcome,
    stale_intents_are_appended_once_with_an_unknown_outcome_however_many_sweep,
    an_outcome_recorded_after_a_sweep_follows_the_unknown_entry,
    the_audit_log_filters_and_pages_in_chain_order,
    overlong_audit_fields_are_stored_cut_on_a_char_boundary_with_a_marker_and_escaped,
    recording_the_same_intervals_twice_stores_them_once,
    an_interval_key_recorded_with_another_amount_is_a_conflict_and_stores_nothing,
    amounts_beyond_the_ledger_range_are_refused,
    checkpoints_round_trip_and_move_with_their_intervals,
    usage_totals_count_only_the_overlap_exactly,
    intervals_between_streams_every_overlapping_interval_whole,
    a_closed_statement_reads_back_identical_and_closes_once,
    closed_statement_lines_cannot_be_changed_and_tampering_is_caught,
    an_unbalanced_statement_is_refused,
    money_moved_between_bureaus_consistently_breaks_the_seal_of_a_closed_month,
    closed_months_are_sealed_in_a_chain_that_names_who_closed_them,
    a_replaced_seal_breaks_the_chain_at_its_month,
    adjustments_need_a_closed_month_and_the_count_the_caller_saw,
    ping_answers,
    a_change_request_is_pending_until_decided_once,
    concurrent_decisions_on_one_request_let_exactly_one_win,
    change_requests_list_by_bureau_and_state_and_reopen_after_a_failed_apply,
    a_month_statement_from_the_rollups_equals_the_statement_of_the_raw_intervals,
    a_closed_month_statement_is_returned_unchanged_whatever_the_ledger_gets_later,
    usage_before_the_first_rate_card_fails_the_month_statement,
    bureau_usage_sums_each_environment_resource_and_kind_over_any_range,
    replayed_intervals_add_nothing_to_the_rollups_or_the_counters,
    usage_counters_and_span_cover_the_whole_ledger,
    a_window_is_written_only_from_the_checkpoint_its_writer_expects,
    a_window_in_batches_is_stored_whole_or_not_at_all,
    an_observed_change_is_appended_once_and_remembered_with_it,
    gaps_are_recorded_with_their_window_and_shown_until_finance_waives_them,
    gaps_and_waivers_cannot_be_changed,
    a_gap_beyond_the_checkpoint_it_moves_with_is_refused,
    the_ledger_begins_at_its_first_window_and_earlier_time_is_a_gap,
    intervals_keep_the_uid_of_their_environment,
    a_window_is_settled_in_its_own_transaction_and_the_statement_shows_the_settlement,
    a_reclaim_is_recorded_once_completed_once_and_listed_to_both_bureaus,
    efficiency_from_the_rollups_equals_efficiency_of_the_raw_intervals_period_by_period,
    environment_intervals_are_the_environments_own_overlapping_intervals_oldest_first,
    availability_minutes_are_recorded_once_from_the_checkpoint_their_writer_expects,
    a_months_measures_count_measured_minutes_of_each_presence_and_its_counted_slices,
    a_month_below_its_objective_is_credited_on_the_statement_and_in_the_amounts,
    a_kubeconfig_is_due_for_removal_once_expired_or_revoked_and_only_until_removed,
    a_console_session_names_its_principal_until_it_ends_or_is_closed,
    a_token_is_in_force_by_its_id_until_revoked_or_expired,
    a_console_language_is_remembered_per_principal_and_the_last_choice_wins,
    a_bureaus_statement_is_its_part_of_the_districts_line_for_line,
    sums_read_again_include_usage_another_process_added_and_a_restored_ledger,
    a_years_accounts_read_together_are_its_months_read_one_by_one,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn ts(text: &str) -> Timestamp {
    text.parse().expect("test timestamp")
}

fn meter(environment: &str, resource: Resource, kind: UsageKind, tier: Tier) -> Meter {
    let (bureau, _) = zhengyun_model::names::parse_environment_name(environment).expect("name");
    Meter::new(bureau, environment, resource, kind, tier).expect("meter")
}

fn cpu(environment: &str) -> Meter {
    meter(environment, Resource::Cpu, UsageKind::Reserved, Tier::Gold)
}

/// `hours` consecutive hourly intervals of `amount` from `start`.
fn hourly(meter: &Meter, start: &str, hours: i64, amount: u64) -> Vec<UsageInterval> {
    let start = ts(start);
    (0..hours)
        .map(|h| {
            let from = start + jiff::SignedDuration::from_hours(h);
            let to = from + jiff::SignedDuration::from_hours(1);
            UsageInterval::new(meter.clone(), from, to, amount).expect("interval")
        })
        .collect()
}

fn range(start: &str, end: &str) -> TimeRange {
    TimeRange::new(ts(start), ts(end)).expect("range")
}

fn entry(n: u32, bureau: &str, action: &str) -> AuditEntry {
    AuditEntry {
        at: ts("2026-11-05T08:00:00Z") + jiff::SignedDuration::from_secs(i64::from(n)),
        principal: format!("token-{}", n % 3),
        principal_label: Some(format!(
            "token token-{} (bureau-admin {bureau}: \"CI\")",
            n % 3
        )),
        role: Some(Role::BureauAdmin),
        bureau: Some(bureau.to_owned()),
        action: action.to_owned(),
        object: format!("environments/{bureau}-dev"),
        quota_before: Some(json!({"cpu": "2", "memory": "4Gi"})),
        quota_after: Some(json!({"cpu": format!("{n}"), "memory": "8Gi"})),
        result: "ok".to_owned(),
        request_id: format!("req-{n}"),
    }
}

fn schedule() -> RateSchedule {
    let date = |s: &str| s.parse::<Date>().expect("date");
    let price = |s: &str| Decimal::from_str_exact(s).expect("price");
    let mut card = RateCard::new(date("2026-01-01"), "CNY");
    for tier in [Tier::Gold, Tier::Silver, Tier::Bronze] {
        card = card
            .with_prices(tier, Resource::Cpu, price("0.08"), price("0.08"))
            .and_then(|c| c.with_prices(tier, Resource::Memory, price("0.0100"), price("0.0100")))
            .expect("prices");
    }
    RateSchedule::new([card]).expect("schedule")
}

fn november() -> Month {
    Month::new(2026, 11).expect("month")
}

/// November 2026 in Shanghai, for two bureaus and three environments.
fn november_usage() -> Vec<UsageInterval> {
    let mut intervals = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 48, 1_500);
    intervals.extend(hourly(
        &meter(
            "wjw-dev",
            Resource::Memory,
            UsageKind::Consumed,
            Tier::Bronze,
        ),
        "2026-11-10T00:00:00Z",
        10,
        3 << 30,
    ));
    intervals.extend(hourly(&cpu("jtj-test"), "2026-11-20T00:00:00Z", 5, 250));
    intervals
}

fn statement_of(intervals: &[UsageInterval]) -> Statement {
    Statement::build(november(), &Calendar::default(), &schedule(), intervals).expect("statement")
}

// ---------------------------------------------------------------------------------------------
// Tokens

async fn a_token_authenticates_as_its_role_and_bureau_until_revoked(db: &TestDb) {
    let store = &db.store;
    let (id, secret) = store
        .create_token(Role::BureauAdmin, Some("wjw"), "wjw CI pipeline")
        .await
        .expect("issue");
    assert!(
        secret.expose().starts_with(&format!("zy_{id}_")),
        "{}",
        secret.expose()
    );
    let principal = store
        .authenticate(secret.expose())
        .await
        .expect("authenticate")
        .expect("a valid token");
    assert_eq!(principal.token, id);
    assert_eq!(principal.role, Role::BureauAdmin);
    assert_eq!(principal.bureau.as_deref(), Some("wjw"));

    store.revoke_token(&id).await.expect("revoke");
    assert_eq!(
        store.authenticate(secret.expose()).await.expect("auth"),
        None
    );
    let first_revocation = store.list_tokens().await.expect("list")[0].revoked_at;
    assert!(first_revocation.is_some());
    store
        .revoke_token(&id)
        .await
        .expect("revoking twice is fine");
    assert_eq!(
        store.list_tokens().await.expect("list")[0].revoked_at,
        first_revocation
    );

    let unknown: TokenId = "0123456789abcdef".parse().expect("id");
    let missing = store.revoke_token(&unknown).await.expect_err("unknown id");
    assert_eq!(missing.metric_label(), "not_found");
}

async fn a_wrong_or_malformed_secret_authenticates_nobody(db: &TestDb) {
    let store = &db.store;
    let (id, secret) = store
        .create_token(Role::Finance, None, "finance")
        .await
        .expect("issue");
    let secret = secret.expose();
    // Same id, one character of the random part changed.
    let mut wrong = secret.to_owned();
    let last = wrong.pop().expect("non-empty");
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    for attempt in [
        wrong.as_str(),
        &secret[..secret.len() - 1],
        &format!("{secret}x"),
        &format!("zy_{id}_"),
        "",
        "zy_",
        "Bearer whatever",
        &secret.to_uppercase(),
    ] {
        assert_eq!(
            store.authenticate(attempt).await.expect("auth"),
            None,
            "{attempt:?}"
        );
    }
    assert!(store.authenticate(secret).await.expect("auth").is_some());
}

async fn bureau_roles_need_a_bureau_and_platform_roles_refuse_one(db: &TestDb) {
    let store = &db.store;
    for (role, bureau) in [
        (Role::BureauAdmin, None),
        (Role::BureauViewer, None),
        (Role::BureauViewer, Some("Not A Code")),
        (Role::PlatformAdmin, Some("wjw")),
        (Role::Finance, Some("wjw")),
        (Role::Auditor, Some("wjw")),
    ] {
        let err = store
            .create_token(role, bureau, "x")
            .await
            .expect_err("refused");
        assert_eq!(err.metric_label(), "invalid", "{role} {bureau:?}: {err}");
    }
    assert!(store.list_tokens().await.expect("list").is_empty());
    // The schema holds the same rule, whatever the code above it does.
    let forged = db
        .raw(
            "INSERT INTO api_tokens (id, secret_sha256, role, bureau, description, created_at_us) \
             VALUES ('aaaaaaaaaaaaaaaa', zeroblob(32), 'bureau-admin', NULL, '', 0)",
            "INSERT INTO api_tokens (id, secret_sha256, role, bureau, description, created_at_us) \
             VALUES ('aaaaaaaaaaaaaaaa', decode(repeat('00', 32), 'hex'), 'bureau-admin', NULL, '', 0)",
        )
        .await;
    assert!(forged.is_err(), "{forged:?}");
}

async fn tokens_are_stored_as_hashes_and_listed_without_secrets(db: &TestDb) {
    let store = &db.store;
    let (id, secret) = store
        .create_token(Role::Auditor, None, "审计局 annual audit")
        .await
        .expect("issue");
    let listed = store.list_tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].role, Role::Auditor);
    assert_eq!(listed[0].description, "审计局 annual audit");
    let shown = format!(
        "{listed:?} {}",
        serde_json::to_string(&listed).expect("json")
    );
    // The random part follows `zy_<id>_`; it may itself contain `_`.
    let tail = secret.expose().splitn(3, '_').nth(2).expect("tail");
    assert_eq!(tail.len(), 43, "{tail}");
    assert!(!shown.contains(tail), "{shown}");
    assert!(!format!("{secret:?}").contains(tail));

    let stored = db
        .raw_texts("SELECT id || ' ' || role || ' ' || description FROM api_tokens")
        .await;
    assert!(!stored.iter().any(|row| row.contains(tail)));
    let hash_len = db
        .raw_texts("SELECT CAST(length(secret_sha256) AS TEXT) FROM api_tokens")
        .await;
    assert_eq!(hash_len, ["32"]);
    // The stored hash is SHA-256 of the secret: check it through the database's own view.
    let expected = hex::encode(Sha256::digest(secret.expose().as_bytes()));
    let stored_hex = match db.backend() {
        zhengyun_store::Backend::Sqlite => {
            db.raw_texts("SELECT lower(hex(secret_sha256)) FROM api_tokens")
                .await
        }
        zhengyun_store::Backend::Postgres => {
            db.raw_texts("SELECT encode(secret_sha256, 'hex') FROM api_tokens")
                .await
        }
    };
    assert_eq!(stored_hex, [expected]);
}

async fn bootstrap_admin_is_idempotent_and_never_undoes_a_revocation(db: &TestDb) {
    let store = &db.store;
    let first = "bootstrap-secret-0123456789abcdef0123456789";
    let second = "another-bootstrap-secret-fedcba9876543210";
    assert_eq!(
        store.bootstrap_admin(first).await.expect("bootstrap"),
        BootstrapOutcome::Created
    );
    assert_eq!(
        store.bootstrap_admin(first).await.expect("again"),
        BootstrapOutcome::Unchanged
    );
    let admin = store
        .authenticate(first)
        .await
        .expect("auth")
        .expect("valid");
    assert_eq!(
        (admin.token.as_str(), admin.role),
        ("bootstrap", Role::PlatformAdmin)
    );
    assert_eq!(admin.bureau, None);

    assert_eq!(
        store.bootstrap_admin(second).await.expect("rotate"),
        BootstrapOutcome::Replaced
    );
    assert_eq!(store.authenticate(first).await.expect("auth"), None);
    assert!(store.authenticate(second).await.expect("auth").is_some());

    store
        .revoke_token(&TokenId::bootstrap())
        .await
        .expect("revoke");
    assert_eq!(
        store.bootstrap_admin(second).await.expect("restart"),
        BootstrapOutcome::Revoked
    );
    assert_eq!(store.authenticate(second).await.expect("auth"), None);
    assert_eq!(store.list_tokens().await.expect("list").len(), 1);

    let short = store.bootstrap_admin("too-short").await.expect_err("short");
    assert_eq!(short.metric_label(), "invalid");
}

async fn two_replicas_bootstrapping_at_once_create_one_admin(db: &TestDb) {
    // Two API replicas start together against one database: each its own connection pool.
    let other = db.second_store().await;
    let secret = "bootstrap-secret-0123456789abcdef0123456789";
    for round in 0..10 {
        let secret = format!("{secret}-{round}");
        let (a, b) = tokio::join!(
            db.store.bootstrap_admin(&secret),
            other.bootstrap_admin(&secret)
        );
        let mut outcomes = [a.expect("first replica"), b.expect("second replica")];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        let expected = if round == 0 {
            [BootstrapOutcome::Created, BootstrapOutcome::Unchanged]
        } else {
            [BootstrapOutcome::Replaced, BootstrapOutcome::Unchanged]
        };
        assert_eq!(outcomes, expected, "round {round}");
        let admins = db.store.list_tokens().await.expect("list");
        assert_eq!(admins.len(), 1, "round {round}: {admins:?}");
        assert!(
            db.store
                .authenticate(&secret)
                .await
                .expect("auth")
                .is_some(),
            "round {round}"
        );
    }
}

fn instant(text: &str) -> Timestamp {
    text.parse().expect("instant")
}

async fn a_token_authenticates_until_its_expiry_and_not_from_then_on(db: &TestDb) {
    let store = &db.store;
    let issued = instant("2030-03-01T00:00:00Z");
    let expires = instant("2030-04-01T00:00:00Z");
    let (id, secret) = store
        .issue_token_at(
            &NewToken {
                role: Role::BureauAdmin,
                bureau: Some("wjw"),
                bureau_uid: Some("uid-1"),
                description: "卫健委 CI",
                expires_at: expires,
            },
            issued,
        )
        .await
        .expect("issue");
    let before = store
        .authenticate_at(secret.expose(), instant("2030-03-31T23:59:59.999999Z"))
        .await
        .expect("auth")
        .expect("valid until its expiry");
    assert_eq!(before.token, id);
    assert_eq!(before.expires_at, expires);
    assert_eq!(before.bureau_uid.as_deref(), Some("uid-1"));
    assert_eq!(before.description, "卫健委 CI");
    assert_eq!(
        before.label(),
        format!("token {id} (bureau-admin wjw: \"卫健委 CI\")")
    );
    for after in [expires, instant("2031-01-01T00:00:00Z")] {
        assert_eq!(
            store
                .authenticate_at(secret.expose(), after)
                .await
                .expect("auth"),
            None,
            "{after}"
        );
    }
    let listed = store.list_tokens().await.expect("list");
    assert_eq!(listed[0].expires_at, expires);
    assert_eq!(listed[0].created_at, issued);
}

async fn a_token_lifetime_must_be_in_the_future_and_within_the_maximum(db: &TestDb) {
    let store = &db.store;
    let now = instant("2030-03-01T00:00:00Z");
    let token = |expires_at| NewToken {
        role: Role::Finance,
        bureau: None,
        bureau_uid: None,
        description: "finance",
        expires_at,
    };
    for expires in [
        now,
        instant("2029-01-01T00:00:00Z"),
        now.checked_add(MAX_TOKEN_LIFETIME + SignedDuration::from_micros(1))
            .expect("instant"),
    ] {
        let err = store
            .issue_token_at(&token(expires), now)
            .await
            .expect_err("refused");
        assert_eq!(err.metric_label(), "invalid", "{expires}: {err}");
    }
    let longest = now.checked_add(MAX_TOKEN_LIFETIME).expect("instant");
    store
        .issue_token_at(&token(longest), now)
        .await
        .expect("the maximum itself is allowed");
    assert_eq!(store.list_tokens().await.expect("list").len(), 1);
}

async fn a_bootstrap_token_expires_and_a_restart_does_not_renew_it(db: &TestDb) {
    let store = &db.store;
    let first = "bootstrap-secret-0123456789abcdef0123456789";
    let second = "another-bootstrap-secret-fedcba9876543210";
    let start = instant("2030-03-01T00:00:00Z");
    let lifetime = SignedDuration::from_hours(24 * 30);
    let expires = start.checked_add(lifetime).expect("instant");
    assert_eq!(
        store
            .bootstrap_admin_at(first, start, lifetime)
            .await
            .expect("bootstrap"),
        BootstrapOutcome::Created
    );
    let restart = instant("2030-03-20T00:00:00Z");
    assert_eq!(
        store
            .bootstrap_admin_at(first, restart, lifetime)
            .await
            .expect("restart"),
        BootstrapOutcome::Unchanged
    );
    let admin = store
        .authenticate_at(first, restart)
        .await
        .expect("auth")
        .expect("valid");
    assert_eq!(admin.expires_at, expires, "a restart does not renew it");
    assert_eq!(
        store.authenticate_at(first, expires).await.expect("auth"),
        None
    );
    assert_eq!(
        store
            .bootstrap_admin_at(first, expires, lifetime)
            .await
            .expect("restart after expiry"),
        BootstrapOutcome::Expired
    );
    assert_eq!(
        store.authenticate_at(first, expires).await.expect("auth"),
        None
    );
    assert_eq!(
        store
            .bootstrap_admin_at(second, expires, lifetime)
            .await
            .expect("a new secret"),
        BootstrapOutcome::Replaced
    );
    assert!(
        store
            .authenticate_at(second, expires)
            .await
            .expect("auth")
            .is_some()
    );
    let too_long = store
        .bootstrap_admin_at(second, expires, MAX_TOKEN_LIFETIME * 2)
        .await
        .expect_err("longer than the maximum");
    assert_eq!(too_long.metric_label(), "invalid");
}

async fn deleting_a_bureau_revokes_its_tokens_and_only_its(db: &TestDb) {
    let store = &db.store;
    let (_, wjw_admin) = store
        .create_token(Role::BureauAdmin, Some("wjw"), "wjw admin")
        .await
        .expect("issue");
    let (_, wjw_viewer) = store
        .create_token(Role::BureauViewer, Some("wjw"), "wjw viewer")
        .await
        .expect("issue");
    let (_, jw) = store
        .create_token(Role::BureauAdmin, Some("jw"), "jw admin")
        .await
        .expect("issue");
    let (_, finance) = store
        .create_token(Role::Finance, None, "finance")
        .await
        .expect("issue");
    assert_eq!(store.revoke_bureau_tokens("wjw").await.expect("revoke"), 2);
    assert_eq!(store.revoke_bureau_tokens("wjw").await.expect("again"), 0);
    for gone in [&wjw_admin, &wjw_viewer] {
        assert_eq!(store.authenticate(gone.expose()).await.expect("auth"), None);
    }
    for kept in [&jw, &finance] {
        assert!(
            store
                .authenticate(kept.expose())
                .await
                .expect("auth")
                .is_some()
        );
    }
}

async fn tokens_issued_before_expiry_existed_expire_after_the_default_lifetime(db: &TestDb) {
    // A token as the schema before expiry left it (the new column at its default, 0), given an
    // expiry by the migration's own statement: 90 days after the migration ran.
    let store = &db.store;
    let (_, secret) = store
        .create_token(Role::Auditor, None, "issued before expiry")
        .await
        .expect("issue");
    db.raw(
        "UPDATE api_tokens SET expires_at_us = 0",
        "UPDATE api_tokens SET expires_at_us = 0",
    )
    .await
    .expect("as before the migration");
    assert_eq!(
        store.authenticate(secret.expose()).await.expect("auth"),
        None
    );
    let before = Timestamp::now();
    db.raw(
        "UPDATE api_tokens \
         SET expires_at_us = CAST(strftime('%s', 'now') AS INTEGER) * 1000000 + 7776000000000",
        "UPDATE api_tokens \
         SET expires_at_us = CAST(floor(extract(epoch FROM now())) AS BIGINT) * 1000000 + 7776000000000",
    )
    .await
    .expect("the migration's backfill");
    let after = Timestamp::now();
    let migration = match db.backend() {
        zhengyun_store::Backend::Sqlite => {
            include_str!("../migrations/sqlite/0006_token_expiry_and_audit_principals.sql")
        }
        zhengyun_store::Backend::Postgres => {
            include_str!("../migrations/postgres/0006_token_expiry_and_audit_principals.sql")
        }
    };
    assert!(
        migration.contains("* 1000000 + 7776000000000"),
        "the statement above is the migration's"
    );
    let expires = store.list_tokens().await.expect("list")[0].expires_at;
    let second = SignedDuration::from_secs(1);
    assert!(
        expires > before + DEFAULT_TOKEN_LIFETIME - second - second,
        "{expires}"
    );
    assert!(expires <= after + DEFAULT_TOKEN_LIFETIME, "{expires}");
    assert!(
        store
            .authenticate(secret.expose())
            .await
            .expect("auth")
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// Audit log

async fn append_five(store: &Store) {
    for n in 1..=5 {
        let record = store
            .append_audit(&entry(n, "wjw", "environment.resize"))
            .await
            .expect("append");
        assert_eq!(record.seq, u64::from(n));
    }
}

async fn an_intact_audit_chain_verifies_and_an_altered_row_is_named(db: &TestDb) {
    let store = &db.store;
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 0 }
    );
    append_five(store).await;
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 5 }
    );
    assert_eq!(store.audit_head().await.expect("head").seq, 5);

    // Someone with database access lifts the guard and edits entry 3's quota.
    db.raw(
        "DROP TRIGGER audit_log_no_update; \
         UPDATE audit_log SET quota_after = '{\"cpu\":\"64\",\"memory\":\"8Gi\"}' WHERE seq = 3",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
         UPDATE audit_log SET quota_after = '{\"cpu\":\"64\",\"memory\":\"8Gi\"}' WHERE seq = 3",
    )
    .await
    .expect("tamper");
    match store.verify_audit().await.expect("verify") {
        ChainStatus::Broken { seq, reason } => {
            assert_eq!(seq, 3, "{reason}");
            assert!(reason.contains("altered"), "{reason}");
        }
        intact => panic!("tampering went unnoticed: {intact:?}"),
    }
}

/// An entry's hash in the first canonical form (before principal labels), computed here
/// independently of the store, as an auditor's own tool would.
fn v1_hash(prev: &str, seq: i64, at_us: i64, fields: [Option<&str>; 9]) -> String {
    let mut canonical = b"zhengyun-audit-v1".to_vec();
    canonical.extend_from_slice(&seq.to_be_bytes());
    canonical.extend_from_slice(&at_us.to_be_bytes());
    for field in fields {
        match field {
            None => canonical.push(0),
            Some(text) => {
                canonical.push(1);
                canonical.extend_from_slice(&(text.len() as u32).to_be_bytes());
                canonical.extend_from_slice(text.as_bytes());
            }
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(hex::decode(prev).expect("hex"));
    hasher.update(&canonical);
    hex::encode(hasher.finalize())
}

async fn entries_written_before_principal_labels_still_verify_and_a_label_is_hashed(db: &TestDb) {
    let store = &db.store;
    // An entry as the API wrote it before labels existed: the first canonical form, no label.
    let zeros = "0".repeat(64);
    let hash = v1_hash(
        &zeros,
        1,
        1_700_000_000_000_000,
        [
            Some("0123456789abcdef"),
            Some("platform-admin"),
            Some("wjw"),
            Some("bureau.create"),
            Some("bureaus/wjw"),
            None,
            Some("{\"cpu\":\"8\"}"),
            Some("201 Created"),
            Some("req-old"),
        ],
    );
    let insert: &'static str = Box::leak(
        format!(
            "INSERT INTO audit_log (seq, at_us, principal, role, bureau, action, object, \
             quota_before, quota_after, result, request_id, prev_hash, hash) VALUES \
             (1, 1700000000000000, '0123456789abcdef', 'platform-admin', 'wjw', 'bureau.create', \
             'bureaus/wjw', NULL, '{{\"cpu\":\"8\"}}', '201 Created', 'req-old', '{zeros}', '{hash}'); \
             UPDATE audit_head SET seq = 1, hash = '{hash}' WHERE id = 1"
        )
        .into_boxed_str(),
    );
    db.raw(insert, insert).await.expect("an entry from before");
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 1 }
    );
    let old = store
        .audit_log(&AuditFilter::default())
        .await
        .expect("read");
    assert_eq!(old[0].entry.principal_label, None);

    let labelled = store
        .append_audit(&entry(1, "wjw", "environment.create"))
        .await
        .expect("append");
    assert_eq!(
        labelled.entry.principal_label.as_deref(),
        Some("token token-1 (bureau-admin wjw: \"CI\")")
    );
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 2 }
    );
    let read = store
        .audit_log(&AuditFilter::default())
        .await
        .expect("read");
    assert_eq!(
        read[1].entry.principal_label,
        labelled.entry.principal_label
    );
    let json = serde_json::to_value(&read[1]).expect("json");
    assert_eq!(
        json["principalLabel"],
        "token token-1 (bureau-admin wjw: \"CI\")"
    );

    // The label is covered by the hash: changing it, or passing the entry off as one of the
    // first form, breaks the chain there.
    for tamper in [
        "UPDATE audit_log SET principal_label = 'token token-1 (platform-admin: \"x\")' WHERE seq = 2",
        "UPDATE audit_log SET principal_label = 'token token-1 (bureau-admin wjw: \"CI\")', \
         format = 1 WHERE seq = 2",
    ] {
        let sqlite: &'static str = Box::leak(
            format!("DROP TRIGGER IF EXISTS audit_log_no_update; {tamper}").into_boxed_str(),
        );
        let postgres: &'static str = Box::leak(
            format!("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; {tamper}")
                .into_boxed_str(),
        );
        db.raw(sqlite, postgres).await.expect("tamper");
        match store.verify_audit().await.expect("verify") {
            ChainStatus::Broken { seq, reason } => assert_eq!(seq, 2, "{reason}"),
            intact => panic!("{tamper}: unnoticed: {intact:?}"),
        }
    }
}

async fn deleted_audit_entries_break_the_chain_where_they_were(db: &TestDb) {
    let store = &db.store;
    append_five(store).await;
    db.raw(
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 5",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
         DELETE FROM audit_log WHERE seq = 5",
    )
    .await
    .expect("delete the newest");
    assert!(
        matches!(
            store.verify_audit().await.expect("verify"),
            ChainStatus::Broken { seq: 5, .. }
        ),
        "a truncated tail must be noticed"
    );
    db.raw(
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
    )
    .await
    .expect("delete from the middle");
    match store.verify_audit().await.expect("verify") {
        ChainStatus::Broken { seq, reason } => {
            assert_eq!(seq, 2, "{reason}");
            assert!(reason.contains("missing"), "{reason}");
        }
        intact => panic!("a gap went unnoticed: {intact:?}"),
    }
}

/// Deletes the entries after `keep` and sets the head on entry `keep`, as someone with the
/// database credential would to make a shorter chain that is consistent in itself.
async fn cut_back_to(db: &TestDb, keep: u64) {
    let delete = format!("DELETE FROM audit_log WHERE seq > {keep}");
    let head = format!(
        "UPDATE audit_head SET seq = {keep}, \
         hash = (SELECT hash FROM audit_log WHERE seq = {keep}) WHERE id = 1"
    );
    db.raw(
        format!("DROP TRIGGER IF EXISTS audit_log_no_delete; {delete}; {head}").leak(),
        format!("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; {delete}; {head}")
            .leak(),
    )
    .await
    .expect("cut the chain back");
}

async fn a_head_moved_back_below_the_published_one_is_named_and_not_published(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.published_audit_head().await.expect("read"), None);
    for n in 1..=5 {
        store
            .append_audit(&entry(n, "wjw", "environment.resize"))
            .await
            .expect("append");
        if n == 3 {
            assert_eq!(store.publish_audit_head().await.expect("publish").seq, 3);
        }
    }
    let published = store.publish_audit_head().await.expect("publish");
    assert_eq!(published.seq, 5);
    assert_eq!(published, store.audit_head().await.expect("head"));
    assert_eq!(
        store.published_audit_head().await.expect("read"),
        Some(published)
    );

    cut_back_to(db, 3).await;
    match store.verify_audit().await.expect("verify") {
        ChainStatus::Broken { seq, reason } => {
            assert_eq!(seq, 4, "{reason}");
            assert!(reason.contains("backwards"), "{reason}");
        }
        intact => panic!("a head moved backwards went unnoticed: {intact:?}"),
    }
    let refused = store.publish_audit_head().await.expect_err("backwards");
    assert!(refused.to_string().contains("backwards"), "{refused}");
    assert_eq!(
        store
            .published_audit_head()
            .await
            .expect("read")
            .map(|h| h.seq),
        Some(5),
        "the published head stays where it was"
    );
}

async fn a_rewritten_chain_that_no_longer_holds_the_published_head_is_named(db: &TestDb) {
    let store = &db.store;
    append_five(store).await;
    let published = store.publish_audit_head().await.expect("publish");
    // Entries 4 and 5 are replaced by others that chain correctly.
    cut_back_to(db, 3).await;
    for n in 4..=6 {
        store
            .append_audit(&entry(n, "wjw", "environment.delete"))
            .await
            .expect("append");
    }
    match store.verify_audit().await.expect("verify") {
        ChainStatus::Broken { seq, reason } => {
            assert_eq!(seq, 5, "{reason}");
            assert!(reason.contains("published"), "{reason}");
        }
        intact => panic!("a rewritten chain went unnoticed: {intact:?}"),
    }
    let refused = store.publish_audit_head().await.expect_err("rewritten");
    assert!(refused.to_string().contains("published"), "{refused}");
    assert_eq!(
        store.published_audit_head().await.expect("read"),
        Some(published)
    );
}

async fn the_database_refuses_to_update_audit_entries(db: &TestDb) {
    append_five(&db.store).await;
    for (sqlite, postgres) in [
        (
            "UPDATE audit_log SET result = 'denied' WHERE seq = 1",
            "UPDATE audit_log SET result = 'denied' WHERE seq = 1",
        ),
        (
            "DELETE FROM audit_log WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 1",
        ),
        ("DELETE FROM audit_log", "TRUNCATE audit_log"),
    ] {
        let refused = db.raw(sqlite, postgres).await;
        assert!(refused.is_err(), "{sqlite}: {refused:?}");
    }
    assert_eq!(
        db.store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 5 }
    );
}

async fn an_audit_intent_is_settled_by_the_append_of_its_outcome(db: &TestDb) {
    let mut wanted = entry(1, "wjw", "environment.create");
    wanted.result = "in progress".to_owned();
    let intent = db.store.open_audit_intent(&wanted).await.expect("open");
    assert_eq!(db.store.open_audit_intents().await.expect("count"), 1);
    wanted.result = "201 Created".to_owned();
    let record = db
        .store
        .append_audit_settling(&wanted, &intent)
        .await
        .expect("settle");
    assert_eq!(record.seq, 1);
    assert_eq!(record.entry.result, "201 Created");
    assert_eq!(db.store.open_audit_intents().await.expect("count"), 0);
    // Settled intents are not swept again, however old.
    let swept = db
        .store
        .settle_stale_audit_intents(Timestamp::now() + SignedDuration::from_hours(1))
        .await
        .expect("sweep");
    assert_eq!(swept, 0);
    assert_eq!(
        db.store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 1 }
    );
}

async fn stale_intents_are_appended_once_with_an_unknown_outcome_however_many_sweep(db: &TestDb) {
    let old = entry(1, "wjw", "environment.create");
    let recent = AuditEntry {
        at: old.at + SignedDuration::from_hours(2),
        ..entry(2, "jtj", "environment.delete")
    };
    db.store.open_audit_intent(&old).await.expect("open old");
    db.store
        .open_audit_intent(&recent)
        .await
        .expect("open recent");
    let cutoff = old.at + SignedDuration::from_hours(1);
    let sweeps: Vec<_> = (0..4)
        .map(|_| {
            let store = db.store.clone();
            tokio::spawn(async move { store.settle_stale_audit_intents(cutoff).await })
        })
        .collect();
    let mut appended = 0;
    for sweep in sweeps {
        appended += sweep.await.expect("task").expect("sweep");
    }
    assert_eq!(appended, 1, "the old intent is appended exactly once");
    assert_eq!(db.store.open_audit_intents().await.expect("count"), 1);
    let log = db
        .store
        .audit_log(&AuditFilter::default())
        .await
        .expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].entry.action, "environment.create");
    assert_eq!(log[0].entry.request_id, old.request_id);
    assert!(
        log[0]
            .entry
            .result
            .contains(zhengyun_store::UNKNOWN_OUTCOME),
        "{}",
        log[0].entry.result
    );
}

async fn an_outcome_recorded_after_a_sweep_follows_the_unknown_entry(db: &TestDb) {
    let wanted = entry(1, "wjw", "environment.create");
    let intent = db.store.open_audit_intent(&wanted).await.expect("open");
    let swept = db
        .store
        .settle_stale_audit_intents(wanted.at + SignedDuration::from_secs(1))
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    let outcome = AuditEntry {
        result: "201 Created".to_owned(),
        ..wanted.clone()
    };
    db.store
        .append_audit_settling(&outcome, &intent)
        .await
        .expect("append after the sweep");
    let results: Vec<String> = db
        .store
        .audit_log(&AuditFilter::default())
        .await
        .expect("log")
        .into_iter()
        .map(|r| r.entry.result)
        .collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].contains(zhengyun_store::UNKNOWN_OUTCOME));
    assert_eq!(results[1], "201 Created");
}

async fn fifty_concurrent_appends_make_one_unbroken_chain(db: &TestDb) {
    let tasks: Vec<_> = (1..=50)
        .map(|n| {
            let store = db.store.clone();
            tokio::spawn(async move {
                store
                    .append_audit(&entry(
                        n,
                        if n % 2 == 0 { "wjw" } else { "jtj" },
                        "environment.create",
                    ))
                    .await
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for task in tasks {
        let record = task.await.expect("task").expect("append");
        assert!(seqs.insert(record.seq), "seq {} given twice", record.seq);
    }
    assert_eq!(seqs, (1..=50).collect());
    assert_eq!(
        db.store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 50 }
    );
    let all = db
        .store
        .audit_log(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(
        db.store.audit_head().await.expect("head").hash,
        all[49].hash
    );
}

async fn fifty_concurrent_changes_each_get_their_own_entry_and_settle_their_own_intent(
    db: &TestDb,
) {
    // Concurrent audit writes are committed in batches: each caller still gets back the entry
    // it appended, and its intent is the one settled.
    let tasks: Vec<_> = (1..=50)
        .map(|n| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let mut attempt = entry(n, "wjw", "environment.create");
                attempt.result = zhengyun_store::IN_PROGRESS.to_owned();
                let intent = store.open_audit_intent(&attempt).await?;
                tokio::task::yield_now().await;
                let outcome = entry(n, "wjw", "environment.create");
                store.append_audit_settling(&outcome, &intent).await
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for (n, task) in (1..=50).zip(tasks) {
        let record = task.await.expect("task").expect("change");
        assert_eq!(record.entry.request_id, format!("req-{n}"));
        assert_eq!(record.entry.result, "ok");
        assert!(seqs.insert(record.seq), "seq {} given twice", record.seq);
    }
    assert_eq!(seqs, (1..=50).collect());
    assert_eq!(db.store.open_audit_intents().await.expect("count"), 0);
    assert_eq!(
        db.store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 50 }
    );
}

async fn overlong_audit_fields_are_stored_cut_on_a_char_boundary_with_a_marker_and_escaped(
    db: &TestDb,
) {
    use zhengyun_store::audit::MAX_FIELD_CHARS;
    let store = &db.store;
    let mut long = entry(1, "wjw", "environment.create");
    long.object = format!("environments/{}", "卫".repeat(70_000));
    long.result = format!("403 Forbidden: {}", "健".repeat(10_000));
    long.action = "environment.create\n\u{1b}[31mforged\tline".to_owned();
    long.quota_after = Some(json!({"cpu": "核".repeat(10_000), "memory": "8Gi"}));
    let record = store.append_audit(&long).await.expect("append");
    let stored = &record.entry;
    for (field, value) in [
        ("object", &stored.object),
        ("result", &stored.result),
        ("action", &stored.action),
    ] {
        assert!(
            value.chars().count() <= MAX_FIELD_CHARS,
            "{field} keeps {} characters",
            value.chars().count()
        );
        assert!(!value.chars().any(char::is_control), "{field}: {value:?}");
    }
    assert!(stored.object.starts_with("environments/卫卫卫"));
    assert!(stored.object.contains("[cut"), "{}", stored.object);
    assert!(stored.result.starts_with("403 Forbidden: 健"));
    assert_eq!(
        stored.action,
        "environment.create\\n\\u{1b}[31mforged\\tline"
    );
    let after = stored.quota_after.as_ref().expect("quota after");
    assert_eq!(after["memory"], "8Gi");
    let cpu = after["cpu"].as_str().expect("cpu");
    assert!(cpu.chars().count() <= MAX_FIELD_CHARS && cpu.contains("[cut"));
    let short = store
        .append_audit(&entry(2, "wjw", "environment.resize"))
        .await
        .expect("append");
    assert_eq!(short.entry, entry(2, "wjw", "environment.resize"));

    let read = store
        .audit_log(&AuditFilter::default())
        .await
        .expect("read");
    assert_eq!(read[0], record);
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 2 }
    );
}

async fn the_audit_log_filters_and_pages_in_chain_order(db: &TestDb) {
    let store = &db.store;
    for n in 1..=12 {
        let (bureau, action) = match n % 3 {
            0 => ("wjw", "environment.create"),
            1 => ("jtj", "environment.create"),
            _ => ("wjw", "bureau.quota.update"),
        };
        store
            .append_audit(&entry(n, bureau, action))
            .await
            .expect("append");
    }
    let system = AuditEntry {
        role: None,
        bureau: None,
        quota_before: None,
        quota_after: None,
        principal: "system:operator".to_owned(),
        principal_label: None,
        ..entry(13, "wjw", "environment.admit")
    };
    let stored = store.append_audit(&system).await.expect("append");
    assert_eq!(stored.entry, system);

    let seqs = |records: Vec<zhengyun_store::AuditRecord>| -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    };
    let list = |filter: AuditFilter| async move { store.audit_log(&filter).await.expect("list") };

    let wjw = list(AuditFilter {
        bureau: Some("wjw".to_owned()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(seqs(wjw.clone()), [2, 3, 5, 6, 8, 9, 11, 12]);
    assert_eq!(wjw[0].entry, entry(2, "wjw", "bureau.quota.update"));

    let quota_changes = list(AuditFilter {
        bureau: Some("wjw".to_owned()),
        action: Some("bureau.quota.update".to_owned()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(seqs(quota_changes), [2, 5, 8, 11]);

    let by_principal = list(AuditFilter {
        principal: Some("token-0".to_owned()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(seqs(by_principal), [3, 6, 9, 12]);

    let window = list(AuditFilter {
        from: Some(ts("2026-11-05T08:00:04Z")),
        to: Some(ts("2026-11-05T08:00:07Z")),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(seqs(window), [4, 5, 6]);

    let first_page = list(AuditFilter {
        limit: 5,
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(seqs(first_page), [1, 2, 3, 4, 5]);
    let next_page = list(AuditFilter {
        limit: 5,
        after: Some(5),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(seqs(next_page), [6, 7, 8, 9, 10]);
}

// ---------------------------------------------------------------------------------------------
// Ledger

async fn recording_the_same_intervals_twice_stores_them_once(db: &TestDb) {
    let store = &db.store;
    // More than two INSERT statements' worth, so chunk boundaries are crossed.
    let mut batch = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 1_200, 1_000);
    batch.extend(hourly(&cpu("jtj-prod"), "2026-11-01T00:00:00Z", 1_300, 500));
    let first = store.record_intervals(&batch).await.expect("record");
    assert_eq!((first.new, first.duplicates), (2_500, 0));
    let replay = store.record_intervals(&batch).await.expect("replay");
    assert_eq!((replay.new, replay.duplicates), (0, 2_500));

    // A replay overlapping new data stores only the new part, and a batch repeating itself
    // counts the repeats as duplicates.
    let mut overlapping = hourly(&cpu("wjw-prod"), "2027-02-01T00:00:00Z", 10, 1_000);
    overlapping.extend(overlapping.clone());
    overlapping.push(batch[0].clone());
    let mixed = store.record_intervals(&overlapping).await.expect("record");
    assert_eq!((mixed.new, mixed.duplicates), (10, 11));

    let stored = db
        .raw_texts("SELECT CAST(COUNT(*) AS TEXT) FROM usage_intervals")
        .await;
    assert_eq!(stored, ["2510"]);
    let everything = range("2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z");
    let totals = store.usage_totals(everything, None).await.expect("totals");
    let expected: Vec<(String, u128)> = vec![
        ("jtj-prod".to_owned(), 1_300 * 3_600 * 500),
        ("wjw-prod".to_owned(), 1_210 * 3_600 * 1_000),
    ];
    let found: Vec<(String, u128)> = totals
        .iter()
        .map(|t| (t.meter.environment().to_owned(), t.unit_seconds))
        .collect();
    assert_eq!(found, expected);
}

async fn an_interval_key_recorded_with_another_amount_is_a_conflict_and_stores_nothing(
    db: &TestDb,
) {
    let store = &db.store;
    let original = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 3, 1_000);
    store.record_intervals(&original).await.expect("record");

    let remeasured = hourly(&cpu("wjw-prod"), "2026-11-01T01:00:00Z", 1, 1_001);
    let mut batch = hourly(&cpu("jtj-prod"), "2026-11-01T00:00:00Z", 5, 10);
    batch.extend(remeasured);
    let err = store.record_intervals(&batch).await.expect_err("conflict");
    assert_eq!(err.metric_label(), "conflict", "{err}");
    let message = err.to_string();
    assert!(message.contains("/wjw-prod/cpu/reserved"), "{message}");
    assert!(
        message.contains("1000") && message.contains("1001"),
        "{message}"
    );

    let retiered = UsageInterval::new(
        meter("wjw-prod", Resource::Cpu, UsageKind::Reserved, Tier::Silver),
        original[0].start(),
        original[0].end(),
        1_000,
    )
    .expect("interval");
    let err = store
        .record_intervals(&[retiered])
        .await
        .expect_err("conflict");
    assert_eq!(err.metric_label(), "conflict", "{err}");

    let twice = [
        original[0].clone(),
        UsageInterval::new(cpu("wjw-prod"), original[0].start(), original[0].end(), 7)
            .expect("interval"),
    ];
    let err = store.record_intervals(&twice).await.expect_err("conflict");
    assert!(err.to_string().contains("same batch"), "{err}");

    // Nothing of the refused batches was kept: the jtj intervals are not there.
    let stored = db
        .raw_texts("SELECT environment FROM usage_intervals")
        .await;
    assert_eq!(stored, ["wjw-prod"; 3]);
}

async fn amounts_beyond_the_ledger_range_are_refused(db: &TestDb) {
    let huge = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 1, u64::MAX);
    let err = db.store.record_intervals(&huge).await.expect_err("refused");
    assert_eq!(err.metric_label(), "invalid", "{err}");
    let largest = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 1, i64::MAX as u64);
    db.store.record_intervals(&largest).await.expect("fits");
    let totals = db
        .store
        .usage_totals(range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"), None)
        .await
        .expect("totals");
    assert_eq!(totals[0].unit_seconds, u128::from(i64::MAX as u64) * 3_600);
}

async fn checkpoints_round_trip_and_move_with_their_intervals(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.checkpoint("pods").await.expect("read"), None);
    let at = ts("2026-11-05T10:00:00.123456Z");
    store.save_checkpoint("pods", at).await.expect("save");
    assert_eq!(store.checkpoint("pods").await.expect("read"), Some(at));
    assert_eq!(store.checkpoint("pvcs").await.expect("read"), None);

    let batch = hourly(&cpu("wjw-prod"), "2026-11-05T10:00:00Z", 2, 100);
    let later = ts("2026-11-05T12:00:00Z");
    store
        .record_intervals_with_checkpoint(&batch, "pods", later)
        .await
        .expect("record");
    assert_eq!(store.checkpoint("pods").await.expect("read"), Some(later));

    // A refused batch leaves the checkpoint where it was.
    let conflicting = hourly(&cpu("wjw-prod"), "2026-11-05T10:00:00Z", 1, 999);
    store
        .record_intervals_with_checkpoint(&conflicting, "pods", ts("2026-11-05T13:00:00Z"))
        .await
        .expect_err("conflict");
    assert_eq!(store.checkpoint("pods").await.expect("read"), Some(later));

    // Saving an earlier instant is the sampler's call to make.
    store.save_checkpoint("pods", at).await.expect("save");
    assert_eq!(store.checkpoint("pods").await.expect("read"), Some(at));
}

async fn usage_totals_count_only_the_overlap_exactly(db: &TestDb) {
    let store = &db.store;
    let memory = meter(
        "wjw-dev",
        Resource::Memory,
        UsageKind::Consumed,
        Tier::Bronze,
    );
    let mut batch = vec![
        // Straddles the start of the range: 30 minutes inside.
        UsageInterval::new(
            cpu("wjw-prod"),
            ts("2026-10-31T15:30:00Z"),
            ts("2026-10-31T16:30:00Z"),
            2_000,
        )
        .expect("interval"),
        // Wholly before the range: not counted.
        UsageInterval::new(
            cpu("wjw-prod"),
            ts("2026-10-31T14:00:00Z"),
            ts("2026-10-31T15:00:00Z"),
            9,
        )
        .expect("interval"),
        // 10 TiB for a whole month: 2.8 × 10^19 byte-seconds, beyond a 64-bit sum.
        UsageInterval::new(
            memory.clone(),
            ts("2026-10-31T16:00:00Z"),
            ts("2026-11-30T16:00:00Z"),
            10 << 40,
        )
        .expect("interval"),
    ];
    batch.extend(hourly(&cpu("jtj-prod"), "2026-11-10T00:00:00Z", 3, 250));
    store.record_intervals(&batch).await.expect("record");

    let month = Calendar::default().month_range(november()).expect("range");
    let expected_memory = (10u128 << 40) * 30 * 86_400;
    assert!(expected_memory > u128::from(u64::MAX));
    let all = store.usage_totals(month, None).await.expect("totals");
    let found: Vec<(&str, Resource, u128)> = all
        .iter()
        .map(|t| (t.meter.environment(), t.meter.resource(), t.unit_seconds))
        .collect();
    assert_eq!(
        found,
        [
            ("jtj-prod", Resource::Cpu, 3 * 3_600 * 250),
            ("wjw-dev", Resource::Memory, expected_memory),
            ("wjw-prod", Resource::Cpu, 1_800 * 2_000),
        ]
    );
    // The same figures as the metering crate's own clipping.
    for total in &all {
        let independent: u128 = batch
            .iter()
            .filter(|i| i.meter() == &total.meter)
            .map(|i| i.unit_seconds_within(&month))
            .sum();
        assert_eq!(total.unit_seconds, independent, "{:?}", total.meter);
    }
    let wjw = store
        .usage_totals(month, Some("wjw"))
        .await
        .expect("totals");
    assert_eq!(wjw.len(), 2);
    assert!(wjw.iter().all(|t| t.meter.bureau() == "wjw"));
    let none = store
        .usage_totals(month, Some("nobody"))
        .await
        .expect("totals");
    assert!(none.is_empty());
}

async fn intervals_between_streams_every_overlapping_interval_whole(db: &TestDb) {
    let store = &db.store;
    let batch = november_usage();
    let mut outside = hourly(&cpu("wjw-prod"), "2026-12-05T00:00:00Z", 4, 1_500);
    outside.extend(hourly(&cpu("wjw-prod"), "2026-10-05T00:00:00Z", 4, 1_500));
    store.record_intervals(&batch).await.expect("record");
    store.record_intervals(&outside).await.expect("record");

    let month = Calendar::default().month_range(november()).expect("range");
    let mut streamed: Vec<UsageInterval> = store
        .intervals_between(month)
        .try_collect()
        .await
        .expect("stream");
    streamed.sort_by(|a, b| a.key().cmp(b.key()));
    let mut expected: Vec<UsageInterval> = batch
        .into_iter()
        .filter(|i| i.range().intersection(&month).is_some())
        .collect();
    expected.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(streamed, expected);

    // Building a statement from the stream gives the statement of the raw intervals.
    let from_store = statement_of(&streamed);
    from_store.check_against_usage(&expected).expect("recount");
    assert_eq!(from_store, statement_of(&expected));
}

// ---------------------------------------------------------------------------------------------
// Statements

async fn a_closed_statement_reads_back_identical_and_closes_once(db: &TestDb) {
    let store = &db.store;
    let statement = statement_of(&november_usage());
    assert!(statement.lines.len() >= 3);
    assert_eq!(
        store.closed_statement(november()).await.expect("read"),
        None
    );
    store
        .close_statement(november(), &statement)
        .await
        .expect("close");
    assert_eq!(
        store.closed_statement(november()).await.expect("read"),
        Some(statement.clone())
    );
    assert_eq!(store.closed_months().await.expect("months"), [november()]);

    let mut different = statement_of(&november_usage()[..10]);
    different.month = november();
    let again = store
        .close_statement(november(), &different)
        .await
        .expect_err("closed once");
    assert_eq!(again.metric_label(), "conflict", "{again}");
    let wrong_month = store
        .close_statement(Month::new(2026, 12).expect("month"), &statement)
        .await
        .expect_err("wrong month");
    assert_eq!(wrong_month.metric_label(), "invalid");
    assert_eq!(
        store.closed_statement(november()).await.expect("read"),
        Some(statement)
    );
}

async fn closed_statement_lines_cannot_be_changed_and_tampering_is_caught(db: &TestDb) {
    let store = &db.store;
    let statement = statement_of(&november_usage());
    store
        .close_statement(november(), &statement)
        .await
        .expect("close");
    for (sqlite, postgres) in [
        (
            "UPDATE closed_statement_lines SET amount = '0.00'",
            "UPDATE closed_statement_lines SET amount = '0.00'",
        ),
        (
            "DELETE FROM closed_statement_lines",
            "DELETE FROM closed_statement_lines",
        ),
        (
            "DELETE FROM closed_statements",
            "TRUNCATE closed_statements CASCADE",
        ),
        (
            "UPDATE closed_statements SET header = '{}'",
            "UPDATE closed_statements SET header = '{}'",
        ),
    ] {
        assert!(
            db.raw(sqlite, postgres).await.is_err(),
            "{sqlite} was allowed"
        );
    }
    assert_eq!(
        store.closed_statement(november()).await.expect("read"),
        Some(statement.clone())
    );

    // Past the triggers, a halved line no longer adds up to the stored totals.
    let line = &statement.lines[0];
    let halved = serde_json::to_string(&zhengyun_metering::StatementLine {
        amount: line.amount / Decimal::TWO,
        ..line.clone()
    })
    .expect("json");
    let tamper_sqlite = format!(
        "DROP TRIGGER closed_statement_lines_no_update; \
         UPDATE closed_statement_lines SET line = '{halved}' WHERE line_no = 0"
    );
    let tamper_postgres = format!(
        "ALTER TABLE closed_statement_lines DISABLE TRIGGER closed_statement_lines_append_only; \
         UPDATE closed_statement_lines SET line = '{halved}' WHERE line_no = 0"
    );
    db.raw(leak(tamper_sqlite), leak(tamper_postgres))
        .await
        .expect("tamper");
    let err = store
        .closed_statement(november())
        .await
        .expect_err("tampering caught");
    assert_eq!(err.metric_label(), "corrupt", "{err}");
}

/// Raw SQL must be `'static` (sqlx's guard against injection); tests may build it.
fn leak(sql: String) -> &'static str {
    Box::leak(sql.into_boxed_str())
}

/// November's usage with 0.25 core-hour moved from wjw-prod to jtj-test: the same lines, the
/// same platform total, 0.01 CNY moved from one bureau to the other.
fn november_usage_moved() -> Vec<UsageInterval> {
    let mut usage = november_usage();
    for environment in ["wjw-prod", "jtj-test"] {
        let at = usage
            .iter()
            .position(|i| i.environment() == environment)
            .expect("an interval");
        let first = &usage[at];
        let amount = if environment == "wjw-prod" {
            1_250
        } else {
            500
        };
        usage[at] = UsageInterval::new(first.meter().clone(), first.start(), first.end(), amount)
            .expect("interval");
    }
    usage
}

async fn money_moved_between_bureaus_consistently_breaks_the_seal_of_a_closed_month(db: &TestDb) {
    let store = &db.store;
    let statement = statement_of(&november_usage());
    let moved = statement_of(&november_usage_moved());
    moved.check_conservation().expect("the move is consistent");
    assert_eq!(moved.platform, statement.platform);
    assert_ne!(moved.bureaus, statement.bureaus);
    assert_eq!(moved.lines.len(), statement.lines.len());
    store
        .close_statement_as(november(), &statement, "closer")
        .await
        .expect("close");

    // Past the triggers, replace the header and every line with the moved statement's.
    let header = serde_json::to_string(&Statement {
        lines: Vec::new(),
        ..moved.clone()
    })
    .expect("json");
    let mut sqlite = String::from(
        "DROP TRIGGER closed_statement_lines_no_update; \
         DROP TRIGGER closed_statements_no_update; ",
    );
    let mut postgres = String::from(
        "ALTER TABLE closed_statement_lines DISABLE TRIGGER closed_statement_lines_append_only; \
         ALTER TABLE closed_statements DISABLE TRIGGER closed_statements_append_only; ",
    );
    let mut updates = format!("UPDATE closed_statements SET header = '{header}'; ");
    for (no, line) in moved.lines.iter().enumerate() {
        let json = serde_json::to_string(line).expect("json");
        updates.push_str(&format!(
            "UPDATE closed_statement_lines SET line = '{json}' WHERE line_no = {no}; "
        ));
    }
    sqlite.push_str(&updates);
    postgres.push_str(&updates);
    db.raw(leak(sqlite), leak(postgres)).await.expect("tamper");

    let err = store
        .closed_statement(november())
        .await
        .expect_err("the seal catches it");
    assert_eq!(err.metric_label(), "corrupt", "{err}");
    assert!(err.to_string().contains("seal"), "{err}");
    let verification = store.verify_statement_seals(None).await.expect("verify");
    assert!(!verification.intact);
    assert_eq!(verification.first_broken_month.as_deref(), Some("2026-11"));
}

async fn closed_months_are_sealed_in_a_chain_that_names_who_closed_them(db: &TestDb) {
    let store = &db.store;
    let october = Month::new(2026, 10).expect("month");
    let empty_october =
        Statement::build(october, &Calendar::default(), &schedule(), &[]).expect("statement");
    let first = store
        .close_statement_as(october, &empty_october, "token-a")
        .await
        .expect("close october");
    let second = store
        .close_statement_as(november(), &statement_of(&november_usage()), "token-b")
        .await
        .expect("close november");
    assert_ne!(first, second);
    let record = store
        .closed_record(november())
        .await
        .expect("read")
        .expect("closed");
    assert_eq!(record.closed_by, "token-b");
    assert_eq!(record.seal.as_deref(), Some(second.as_str()));
    let verification = store.verify_statement_seals(None).await.expect("verify");
    assert!(verification.intact, "{verification:?}");
    let chain: Vec<_> = verification
        .sealed
        .iter()
        .map(|s| (s.month.as_str(), s.previous_seal.clone(), s.seal.clone()))
        .collect();
    assert_eq!(
        chain,
        vec![
            ("2026-10", "0".repeat(64), first.clone()),
            ("2026-11", first.clone(), second.clone()),
        ]
    );
    let through_october = store
        .verify_statement_seals(Some(october))
        .await
        .expect("verify");
    assert_eq!(through_october.sealed.len(), 1);
    assert!(
        db.raw(
            "UPDATE statement_seals SET closed_by = 'x'",
            "UPDATE statement_seals SET closed_by = 'x'"
        )
        .await
        .is_err(),
        "seals cannot be changed"
    );
}

async fn a_replaced_seal_breaks_the_chain_at_its_month(db: &TestDb) {
    let store = &db.store;
    let october = Month::new(2026, 10).expect("month");
    let empty_october =
        Statement::build(october, &Calendar::default(), &schedule(), &[]).expect("statement");
    store
        .close_statement_as(october, &empty_october, "token-a")
        .await
        .expect("close october");
    store
        .close_statement_as(november(), &statement_of(&november_usage()), "token-b")
        .await
        .expect("close november");
    let forged = "f".repeat(64);
    db.raw(
        leak(format!(
            "DROP TRIGGER statement_seals_no_update; \
             UPDATE statement_seals SET seal = '{forged}' WHERE month = '2026-10'"
        )),
        leak(format!(
            "ALTER TABLE statement_seals DISABLE TRIGGER statement_seals_append_only; \
             UPDATE statement_seals SET seal = '{forged}' WHERE month = '2026-10'"
        )),
    )
    .await
    .expect("forge");
    let verification = store.verify_statement_seals(None).await.expect("verify");
    assert!(!verification.intact);
    assert_eq!(verification.first_broken_month.as_deref(), Some("2026-10"));
}

async fn an_unbalanced_statement_is_refused(db: &TestDb) {
    let mut statement = statement_of(&november_usage());
    statement.lines[0].amount += Decimal::ONE;
    let err = db
        .store
        .close_statement(november(), &statement)
        .await
        .expect_err("refused");
    assert_eq!(err.metric_label(), "metering", "{err}");
    assert_eq!(db.store.closed_months().await.expect("months"), []);
}

async fn adjustments_need_a_closed_month_and_the_count_the_caller_saw(db: &TestDb) {
    let store = &db.store;
    let usage = november_usage();
    let closed = statement_of(&usage[..20]);
    let recomputed = statement_of(&usage);
    let corrections = adjustments(&closed, &[], &recomputed).expect("adjustments");
    assert!(!corrections.is_empty());

    let not_closed = store
        .add_adjustments(november(), 0, &corrections)
        .await
        .expect_err("not closed");
    assert_eq!(not_closed.metric_label(), "not_found", "{not_closed}");

    store
        .close_statement(november(), &closed)
        .await
        .expect("close");
    store
        .add_adjustments(november(), 0, &corrections)
        .await
        .expect("issue");
    assert_eq!(
        store.adjustments(november()).await.expect("read"),
        corrections
    );

    // A second correction run that computed against the same (empty) set must not land.
    let stale = store
        .add_adjustments(november(), 0, &corrections)
        .await
        .expect_err("stale");
    assert_eq!(stale.metric_label(), "conflict", "{stale}");
    let issued = store.adjustments(november()).await.expect("read");
    assert!(
        adjustments(&closed, &issued, &recomputed)
            .expect("none")
            .is_empty()
    );
    zhengyun_metering::check_adjusted(&closed, &issued, &recomputed).expect("balanced");

    let december = AdjustmentLine {
        month: Month::new(2026, 12).expect("month"),
        ..corrections[0].clone()
    };
    let wrong = store
        .add_adjustments(november(), issued.len(), &[december])
        .await
        .expect_err("wrong month");
    assert_eq!(wrong.metric_label(), "invalid");
    assert!(
        db.raw(
            "UPDATE statement_adjustments SET amount = '0'",
            "UPDATE statement_adjustments SET amount = '0'"
        )
        .await
        .is_err()
    );
    assert_eq!(
        store.closed_statement(november()).await.expect("read"),
        Some(closed)
    );
}

async fn ping_answers(db: &TestDb) {
    db.store.ping().await.expect("ping");
}

fn environment_request(bureau: &str, object: &str) -> NewRequest {
    NewRequest {
        kind: RequestKind::EnvironmentCreate,
        bureau: bureau.to_owned(),
        object: object.to_owned(),
        payload: json!({"name": object, "quota": {"cpu": "64"}, "note": "汛期值守"}),
        note: "needs cpu 32 more than 区卫生健康委员会 has left".to_owned(),
        requested_by: "0123456789abcdef".to_owned(),
    }
}

async fn a_change_request_is_pending_until_decided_once(db: &TestDb) {
    let filed = db
        .store
        .create_request(&environment_request("wjw", "wjw-prod"))
        .await
        .expect("file");
    assert_eq!(filed.state, RequestState::Pending);
    assert_eq!(filed.id.len(), 16);
    assert_eq!(filed.payload["note"], "汛期值守");
    assert_eq!(db.store.get_request(&filed.id).await.expect("get"), filed);

    let rejected = db
        .store
        .decide_request(&filed.id, RequestState::Rejected, "admin", Some("容量不足"))
        .await
        .expect("reject");
    assert_eq!(rejected.state, RequestState::Rejected);
    assert_eq!(rejected.decision_reason.as_deref(), Some("容量不足"));
    assert_eq!(rejected.decided_by.as_deref(), Some("admin"));
    assert!(rejected.decided_at.is_some());

    let again = db
        .store
        .decide_request(&filed.id, RequestState::Approved, "admin", None)
        .await;
    assert!(
        matches!(&again, Err(zhengyun_store::Error::Conflict(m)) if m.contains("already rejected")),
        "{again:?}"
    );
    let missing = db.store.get_request("ffffffffffffffff").await;
    assert!(matches!(missing, Err(zhengyun_store::Error::NotFound(_))));
}

async fn concurrent_decisions_on_one_request_let_exactly_one_win(db: &TestDb) {
    let filed = db
        .store
        .create_request(&environment_request("fgw", "fgw-test"))
        .await
        .expect("file");
    let decisions = (0..10).map(|i| {
        let store = db.store.clone();
        let id = filed.id.clone();
        tokio::spawn(async move {
            let state = if i % 2 == 0 {
                RequestState::Approved
            } else {
                RequestState::Rejected
            };
            store
                .decide_request(&id, state, &format!("admin-{i}"), Some("r"))
                .await
        })
    });
    let mut wins = 0;
    for decision in decisions {
        match decision.await.expect("join") {
            Ok(_) => wins += 1,
            Err(zhengyun_store::Error::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn change_requests_list_by_bureau_and_state_and_reopen_after_a_failed_apply(db: &TestDb) {
    let a = db
        .store
        .create_request(&environment_request("wjw", "wjw-dev"))
        .await
        .expect("a");
    let b = db
        .store
        .create_request(&environment_request("fgw", "fgw-dev"))
        .await
        .expect("b");
    let c = db
        .store
        .create_request(&environment_request("wjw", "wjw-test"))
        .await
        .expect("c");
    db.store
        .decide_request(&c.id, RequestState::Approved, "admin", None)
        .await
        .expect("approve");
    let ids = |list: Vec<zhengyun_store::ChangeRequest>| {
        list.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let all = db
        .store
        .list_requests(&RequestFilter::default())
        .await
        .expect("all");
    assert_eq!(ids(all), vec![a.id.clone(), b.id.clone(), c.id.clone()]);
    let wjw_pending = db
        .store
        .list_requests(&RequestFilter {
            bureau: Some("wjw".to_owned()),
            state: Some(RequestState::Pending),
        })
        .await
        .expect("filtered");
    assert_eq!(ids(wjw_pending), vec![a.id.clone()]);

    let reopened = db.store.reopen_request(&c.id).await.expect("reopen");
    assert_eq!(reopened.state, RequestState::Pending);
    assert_eq!(reopened.decided_by, None);
    assert_eq!(reopened.decided_at, None);
}

/// Compiles only if every store future is `Send`, as axum handlers and spawned tasks need.
#[allow(dead_code)]
fn store_futures_are_send(store: &Store, entry: &AuditEntry, batch: &[UsageInterval]) {
    fn send<T: Send>(_: T) {}
    let month = november();
    let statement = statement_of(&[]);
    send(store.create_token(Role::Finance, None, ""));
    send(store.authenticate(""));
    send(store.list_tokens());
    send(store.revoke_token(&TokenId::bootstrap()));
    send(store.bootstrap_admin(""));
    send(store.append_audit(entry));
    send(store.audit_log(&AuditFilter::default()));
    send(store.verify_audit());
    send(store.record_intervals(batch));
    send(store.checkpoint(""));
    send(store.intervals_between(range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")));
    send(store.usage_totals(range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"), None));
    send(store.close_statement(month, &statement));
    send(store.closed_statement(month));
    send(store.add_adjustments(month, 0, &[]));
    send(store.adjustments(month));
    send(store.ping());
}

// ---------------------------------------------------------------------------------------------
// Backend-specific: connection failures are "unavailable", not "bug".

#[tokio::test]
async fn an_unreachable_postgres_server_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let options = zhengyun_store::StoreOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let err = Store::connect_with("postgres://nobody@127.0.0.1:1/zhengyun", &options)
        .await
        .expect_err("nothing listens");
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.metric_label(), "unavailable");
}

#[tokio::test]
async fn a_server_that_does_not_speak_postgres_is_unavailable() {
    // An echo server: what a connection to a stopped local server's port meets when the kernel
    // connects it to itself. Its answer is no PostgreSQL message at all.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = socket.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    let options = zhengyun_store::StoreOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let err = Store::connect_with(
        &format!("postgres://nobody@127.0.0.1:{port}/zhengyun"),
        &options,
    )
    .await
    .expect_err("an echo is not PostgreSQL");
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn a_sqlite_file_that_cannot_be_opened_is_unavailable() {
    let err = Store::connect("sqlite:///nonexistent-dir-zhengyun/store.db?mode=rw")
        .await
        .expect_err("no such directory");
    assert!(err.is_unavailable(), "{err:?}");
}

/// Processes that start together on a new SQLite file (an API and an operator, or a test and
/// the operator it started) all open it: whoever loses the race to a migration waits for the
/// winner instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_ups_racing_on_a_new_sqlite_file_all_migrate_it() {
    let dir = std::env::temp_dir().join(format!("zhengyun-race-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for round in 0..5 {
        let url = format!("sqlite://{}/ledger-{round}.db?mode=rwc", dir.display());
        let starts = (0..4).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Store::connect(&url).await })
        });
        for start in futures::future::join_all(starts).await {
            let store = start.expect("task").expect("every start-up migrates");
            store.close().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// However much each connection's page cache could hold, what SQLite allocates in the process
/// is bounded: the bound is process-wide, so any connection reads it.
#[tokio::test]
async fn a_sqlite_store_bounds_what_sqlite_may_allocate_in_the_process() {
    let store = Store::in_memory().await.expect("store");
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect("sqlite::memory:")
        .await
        .expect("another connection");
    let limit: i64 = sqlx::query_scalar("PRAGMA soft_heap_limit")
        .fetch_one(&mut other)
        .await
        .expect("pragma");
    assert_eq!(limit, 32 << 20);
    store.close().await;
}

#[tokio::test]
async fn a_url_of_another_kind_is_invalid() {
    let err = Store::connect("mysql://root@localhost/zhengyun")
        .await
        .expect_err("unsupported");
    assert_eq!(err.metric_label(), "invalid");
    assert!(!err.to_string().contains("root@"), "{err}");
}

#[tokio::test]
async fn an_in_memory_store_works_for_the_layers_above() {
    let store = Store::in_memory().await.expect("memory");
    store
        .bootstrap_admin(&"x".repeat(40))
        .await
        .expect("bootstrap");
    store
        .append_audit(&entry(1, "wjw", "bureau.create"))
        .await
        .expect("append");
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 1 }
    );
}

#[tokio::test]
async fn two_stores_on_one_sqlite_file_migrate_once_and_share_the_chain() {
    let db = TestDb::sqlite().await;
    let second = Store::connect(db.url()).await.expect("second process");
    db.store
        .append_audit(&entry(1, "wjw", "a"))
        .await
        .expect("first");
    second
        .append_audit(&entry(2, "wjw", "b"))
        .await
        .expect("second");
    assert_eq!(
        db.store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 2 }
    );
    second.close().await;
    db.run(async |_| {}).await;
}

// ---------------------------------------------------------------------------------------------
// Statements and usage from the rollups

/// Awkward usage around November 2026 in Shanghai: intervals across the month's edges (16:00
/// UTC), across UTC midnights, several days long, of amount zero, beyond 64-bit sums, and two
/// tiers of one environment.
fn awkward_usage() -> Vec<UsageInterval> {
    let mut intervals = november_usage();
    let memory = meter(
        "jtj-prod",
        Resource::Memory,
        UsageKind::Reserved,
        Tier::Silver,
    );
    let spans = [
        ("2026-10-31T15:00:00Z", "2026-10-31T17:00:00Z", 1_000),
        ("2026-11-03T23:59:59Z", "2026-11-04T00:00:01Z", 7),
        ("2026-11-05T05:17:00Z", "2026-11-09T11:43:12Z", 3_001),
        ("2026-11-30T15:59:00Z", "2026-12-01T00:00:00Z", 123_456),
        ("2026-11-12T00:00:00Z", "2026-11-12T01:00:00Z", 0),
    ];
    for (start, end, amount) in spans {
        for m in [cpu("jtj-prod"), memory.clone()] {
            let interval = UsageInterval::new(m, ts(start), ts(end), amount);
            intervals.push(interval.expect("interval"));
        }
    }
    let bronze = meter("jtj-prod", Resource::Cpu, UsageKind::Reserved, Tier::Bronze);
    intervals.extend(hourly(&bronze, "2026-11-14T10:00:00Z", 20, 3));
    let huge = meter(
        "wjw-prod",
        Resource::Storage,
        UsageKind::Consumed,
        Tier::Gold,
    );
    intervals.push(
        UsageInterval::new(
            huge,
            ts("2026-10-20T00:00:00Z"),
            ts("2026-12-20T00:00:00Z"),
            u64::MAX >> 1,
        )
        .expect("interval"),
    );
    intervals
}

fn budgets(pairs: &[(&str, &str)]) -> BTreeMap<String, Decimal> {
    pairs
        .iter()
        .map(|(b, v)| ((*b).to_owned(), Decimal::from_str_exact(v).expect("budget")))
        .collect()
}

async fn a_month_statement_from_the_rollups_equals_the_statement_of_the_raw_intervals(db: &TestDb) {
    let store = &db.store;
    let intervals = awkward_usage();
    for chunk in intervals.chunks(7) {
        store.record_intervals(chunk).await.expect("record");
    }
    let calendar = Calendar::default();
    for zone_calendar in [
        calendar.clone(),
        Calendar::new("Asia/Kolkata").expect("zone"),
    ] {
        let mut expected = Statement::build(november(), &zone_calendar, &schedule(), &intervals)
            .expect("statement");
        let budgets = budgets(&[("wjw", "5.00"), ("jtj", "100000000000.00")]);
        // Flagged against November's share (30 days of 365) of twelve monthly budgets.
        let prorated = budgets
            .iter()
            .map(|(b, &m)| {
                let share = zhengyun_metering::month_budget(m, november(), &zone_calendar);
                (b.clone(), share.expect("share"))
            })
            .collect();
        expected.flag_budgets(&prorated).expect("flag");
        assert_eq!(
            prorated["wjw"],
            Decimal::from_str_exact("4.93").expect("fen")
        );
        let mut statement = store
            .month_statement(november(), &zone_calendar, &schedule(), &budgets)
            .await
            .expect("month statement");
        // Recorded without a checkpoint, the ledger never began: the month is one gap.
        assert_eq!(statement.gaps.len(), 1, "{:?}", statement.gaps);
        statement.gaps.clear();
        assert_eq!(statement, expected, "{}", zone_calendar.name());
        statement.check_conservation().expect("conserved");
        statement
            .check_against_usage(&intervals)
            .expect("nothing lost or doubled");
        let flagged: Vec<_> = statement
            .bureaus
            .iter()
            .map(|b| {
                (
                    b.bureau.as_str(),
                    b.budget.as_ref().map(|s| s.level.as_str()),
                )
            })
            .collect();
        assert_eq!(flagged, [("jtj", Some("ok")), ("wjw", Some("exceeded"))]);
        // The bureaus' amounts alone, without the lines, are the statement's to the fen.
        let amounts = store
            .month_amounts(november(), &zone_calendar, &schedule())
            .await
            .expect("month amounts");
        assert_eq!(
            amounts,
            statement.bureau_amounts(),
            "{}",
            zone_calendar.name()
        );
    }
}

async fn a_closed_month_statement_is_returned_unchanged_whatever_the_ledger_gets_later(
    db: &TestDb,
) {
    let store = &db.store;
    let calendar = Calendar::default();
    store
        .record_intervals(&november_usage())
        .await
        .expect("record");
    let open = store
        .month_statement(november(), &calendar, &schedule(), &BTreeMap::new())
        .await
        .expect("open statement");
    store
        .close_statement(november(), &open)
        .await
        .expect("close");
    let late = hourly(&cpu("wjw-test"), "2026-11-25T00:00:00Z", 4, 4_000);
    store.record_intervals(&late).await.expect("late usage");
    let again = store
        .month_statement(
            november(),
            &calendar,
            &schedule(),
            &budgets(&[("wjw", "1.00")]),
        )
        .await
        .expect("closed statement");
    assert_eq!(again, open);
    let amounts = store
        .month_amounts(november(), &calendar, &schedule())
        .await
        .expect("closed amounts");
    assert_eq!(amounts, open.bureau_amounts());
    // The late usage is in the ledger (for adjustments), just not on the closed statement.
    let month = calendar.month_range(november()).expect("range");
    let usage = store.bureau_usage("wjw", month).await.expect("usage");
    assert!(
        usage.iter().any(|u| u.environment == "wjw-test"),
        "{usage:?}"
    );
}

async fn usage_before_the_first_rate_card_fails_the_month_statement(db: &TestDb) {
    let store = &db.store;
    let early = hourly(&cpu("wjw-prod"), "2025-12-31T10:00:00Z", 3, 1_000);
    store.record_intervals(&early).await.expect("record");
    let december = Month::new(2025, 12).expect("month");
    let error = store
        .month_statement(
            december,
            &Calendar::default(),
            &schedule(),
            &BTreeMap::new(),
        )
        .await
        .expect_err("no card in force");
    assert_eq!(error.metric_label(), "metering", "{error}");
}

async fn bureau_usage_sums_each_environment_resource_and_kind_over_any_range(db: &TestDb) {
    let store = &db.store;
    let intervals = awkward_usage();
    store.record_intervals(&intervals).await.expect("record");
    let ranges = [
        range("2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z"),
        range("2026-11-04T00:00:00Z", "2026-11-04T00:00:01Z"),
        range("2026-11-03T12:34:56Z", "2026-11-09T01:02:03Z"),
        range("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ];
    for range in ranges {
        for bureau in ["jtj", "wjw", "nobody"] {
            let mut expected: BTreeMap<(String, Resource, UsageKind), u128> = BTreeMap::new();
            for i in intervals.iter().filter(|i| i.bureau() == bureau) {
                if i.range().intersection(&range).is_some() {
                    *expected
                        .entry((i.environment().to_owned(), i.resource(), i.kind()))
                        .or_default() += i.unit_seconds_within(&range);
                }
            }
            let expected: Vec<ResourceUsage> = expected
                .into_iter()
                .map(
                    |((environment, resource, kind), unit_seconds)| ResourceUsage {
                        environment,
                        resource,
                        kind,
                        unit_seconds,
                    },
                )
                .collect();
            let found = store.bureau_usage(bureau, range).await.expect("usage");
            assert_eq!(found, expected, "{bureau} over {range}");
        }
    }
    let refused = store.bureau_usage("WJW'; --", ranges[0]).await;
    assert_eq!(refused.expect_err("invalid").metric_label(), "invalid");
}

async fn replayed_intervals_add_nothing_to_the_rollups_or_the_counters(db: &TestDb) {
    let store = &db.store;
    let intervals = awkward_usage();
    store.record_intervals(&intervals).await.expect("record");
    let first = store.usage_counters().await.expect("counters");
    // A replay of everything, and a batch mixing old and new intervals.
    store.record_intervals(&intervals).await.expect("replay");
    let extra = hourly(&cpu("wjw-prod"), "2026-11-28T00:00:00Z", 2, 500);
    let mut mixed = intervals[..10].to_vec();
    mixed.extend(extra.iter().cloned());
    let recorded = store.record_intervals(&mixed).await.expect("mixed");
    assert_eq!((recorded.new, recorded.duplicates), (2, 10));
    let after = store.usage_counters().await.expect("counters");
    let wjw_cpu = |counters: &[UsageCounter]| {
        counters
            .iter()
            .find(|c| {
                c.bureau == "wjw" && c.resource == Resource::Cpu && c.kind == UsageKind::Reserved
            })
            .map(|c| c.unit_seconds)
            .unwrap_or(0)
    };
    assert_eq!(wjw_cpu(&after), wjw_cpu(&first) + 2 * 3_600 * 500);
    let month = Calendar::default().month_range(november()).expect("range");
    let mut all = intervals.clone();
    all.extend(extra);
    let statement = store
        .month_statement(
            november(),
            &Calendar::default(),
            &schedule(),
            &BTreeMap::new(),
        )
        .await
        .expect("statement");
    statement
        .check_against_usage(&all)
        .expect("each interval counted once");
    assert!(month.seconds() > 0);
}

async fn usage_counters_and_span_cover_the_whole_ledger(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.usage_span().await.expect("span"), None);
    assert!(store.usage_counters().await.expect("counters").is_empty());
    let intervals = awkward_usage();
    store.record_intervals(&intervals).await.expect("record");
    let mut expected: BTreeMap<(String, Resource, UsageKind), u128> = BTreeMap::new();
    for i in &intervals {
        *expected
            .entry((i.bureau().to_owned(), i.resource(), i.kind()))
            .or_default() += i.unit_seconds();
    }
    let expected: Vec<UsageCounter> = expected
        .into_iter()
        .map(|((bureau, resource, kind), unit_seconds)| UsageCounter {
            bureau,
            resource,
            kind,
            unit_seconds,
        })
        .collect();
    assert_eq!(store.usage_counters().await.expect("counters"), expected);
    assert_eq!(
        store.usage_span().await.expect("span"),
        // Rollup days run from midnight UTC+08:00.
        Some(range("2026-10-19T16:00:00Z", "2026-12-20T16:00:00Z"))
    );
}

async fn a_window_is_written_only_from_the_checkpoint_its_writer_expects(db: &TestDb) {
    let store = &db.store;
    let first = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 1, 1_000);
    let at = ts("2026-11-01T01:00:00Z");
    store
        .record_window(&first, "usage", None, at)
        .await
        .expect("first window");
    // A second writer that still believes there is no checkpoint writes nothing.
    let stale = hourly(&cpu("wjw-prod"), "2026-11-01T00:30:00Z", 1, 1_000);
    let error = store
        .record_window(&stale, "usage", None, ts("2026-11-01T01:30:00Z"))
        .await
        .expect_err("stale expectation");
    assert_eq!(error.metric_label(), "conflict", "{error}");
    assert_eq!(
        store.checkpoint("usage").await.expect("checkpoint"),
        Some(at)
    );
    let month = Calendar::default().month_range(november()).expect("range");
    let stored: Vec<UsageInterval> = store
        .intervals_between(month)
        .try_collect()
        .await
        .expect("intervals");
    assert_eq!(stored, first);
    // The writer that knows the checkpoint continues from it.
    let next = hourly(&cpu("wjw-prod"), "2026-11-01T01:00:00Z", 1, 1_000);
    let end = ts("2026-11-01T02:00:00Z");
    store
        .record_window(&next, "usage", Some(at), end)
        .await
        .expect("next window");
    assert_eq!(
        store.checkpoint("usage").await.expect("checkpoint"),
        Some(end)
    );
}

fn observed(uid: &str, generation: i64, budget: &str) -> Observed {
    Observed {
        kind: "Bureau".to_owned(),
        name: "wjw".to_owned(),
        uid: uid.to_owned(),
        generation,
        audited: json!({ "monthlyBudget": budget }),
    }
}

async fn an_observed_change_is_appended_once_and_remembered_with_it(db: &TestDb) {
    let store = &db.store;
    let first = observed("u1", 1, "100.00");
    let seen = std::sync::Mutex::new(Vec::new());
    let record = |now: Option<Observed>, n: u32| {
        let seen = &seen;
        async move {
            store
                .record_observed("Bureau", "wjw", now.as_ref(), |before| {
                    seen.lock().expect("lock").push(before.cloned());
                    vec![entry(n, "wjw", "bureau.budget")]
                })
                .await
                .expect("record")
        }
    };
    assert_eq!(record(Some(first.clone()), 1).await.len(), 1);
    // The same state again (a restart, a relist): nothing is asked, nothing appended.
    assert_eq!(record(Some(first.clone()), 2).await.len(), 0);
    let second = observed("u1", 2, "200.00");
    let appended = record(Some(second.clone()), 3).await;
    assert_eq!(appended.len(), 1);
    assert_eq!(appended[0].seq, 2);
    assert_eq!(
        store.observed("Bureau").await.expect("observed"),
        std::slice::from_ref(&second)
    );
    assert_eq!(store.observed("RateCard").await.expect("observed"), []);
    assert_eq!(record(None, 4).await.len(), 1);
    assert_eq!(record(None, 5).await.len(), 0);
    assert_eq!(store.observed("Bureau").await.expect("observed"), []);
    assert_eq!(
        *seen.lock().expect("lock"),
        [None, Some(first), Some(second)]
    );
    let actions: Vec<_> = store
        .audit_log(&AuditFilter::default())
        .await
        .expect("log")
        .into_iter()
        .map(|r| r.entry.request_id)
        .collect();
    assert_eq!(actions, ["req-1", "req-3", "req-4"]);
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { entries: 3 }
    );
}
// ---------------------------------------------------------------------------------------------
// Metering gaps

fn outage(from: &str, to: &str) -> Gap {
    Gap::new(
        ts(from),
        ts(to),
        GapKind::Unmetered,
        "the operator was down longer than --metering-max-backfill",
    )
}

async fn gaps_are_recorded_with_their_window_and_shown_until_finance_waives_them(db: &TestDb) {
    let store = &db.store;
    let calendar = Calendar::default();
    let month = calendar.month_range(november()).expect("range");
    let start = ts("2026-09-01T00:00:00Z");
    store
        .record_window(&[], "usage", None, start)
        .await
        .expect("the ledger begins");
    let gap = outage("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z");
    let at = ts("2026-11-10T00:00:00Z");
    store
        .record_window_with_gaps(&[], std::slice::from_ref(&gap), "usage", Some(start), at)
        .await
        .expect("window with a gap");
    assert_eq!(
        store.gaps_between("usage", month).await.expect("gaps"),
        std::slice::from_ref(&gap)
    );
    let shown = store
        .month_gaps("usage", november(), month)
        .await
        .expect("month gaps");
    assert_eq!(shown, std::slice::from_ref(&gap));
    let statement = store
        .computed_statement(november(), &calendar, &schedule(), &BTreeMap::new(), None)
        .await
        .expect("statement");
    assert_eq!(statement.gaps, std::slice::from_ref(&gap));

    let blank = store
        .waive_gaps("usage", november(), month, "finance", "  ")
        .await
        .expect_err("a waiver needs a reason");
    assert_eq!(blank.metric_label(), "invalid", "{blank}");
    let waived = store
        .waive_gaps(
            "usage",
            november(),
            month,
            "finance 财务科",
            "estimated from the invoices",
        )
        .await
        .expect("waive");
    assert_eq!(waived.gaps.len(), 1);
    let shown = store
        .month_gaps("usage", november(), month)
        .await
        .expect("month gaps");
    let waiver = shown[0].waived.as_ref().expect("waived");
    assert_eq!(
        (waiver.by.as_str(), waiver.reason.as_str()),
        ("finance 财务科", "estimated from the invoices")
    );
    // October's gaps are not November's waiver's business.
    let october = calendar
        .month_range(Month::new(2026, 10).expect("month"))
        .expect("range");
    assert!(
        store
            .month_gaps("usage", Month::new(2026, 10).expect("month"), october)
            .await
            .expect("gaps")
            .is_empty()
    );

    // A gap recorded after the waiver needs one of its own.
    let later = outage("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z");
    store
        .record_window_with_gaps(
            &[],
            std::slice::from_ref(&later),
            "usage",
            Some(at),
            ts("2026-11-22T00:00:00Z"),
        )
        .await
        .expect("second gap");
    let shown = store
        .month_gaps("usage", november(), month)
        .await
        .expect("month gaps");
    assert_eq!(shown.len(), 2);
    assert!(shown[0].waived.is_some());
    assert_eq!((shown[1].from, shown[1].waived.clone()), (later.from, None));
}

async fn gaps_and_waivers_cannot_be_changed(db: &TestDb) {
    let store = &db.store;
    let month = Calendar::default().month_range(november()).expect("range");
    let gap = outage("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z");
    store
        .record_window_with_gaps(&[], &[gap], "usage", None, ts("2026-11-10T00:00:00Z"))
        .await
        .expect("gap");
    store
        .waive_gaps("usage", november(), month, "finance", "accepted")
        .await
        .expect("waive");
    for (sqlite, postgres) in [
        (
            "UPDATE metering_gaps SET end_s = start_s + 1",
            "UPDATE metering_gaps SET end_s = start_s + 1",
        ),
        ("DELETE FROM metering_gaps", "TRUNCATE metering_gaps"),
        (
            "DELETE FROM metering_gaps WHERE seq = 1",
            "DELETE FROM metering_gaps WHERE seq = 1",
        ),
        (
            "UPDATE metering_gap_waivers SET through_seq = 99",
            "UPDATE metering_gap_waivers SET through_seq = 99",
        ),
        (
            "DELETE FROM metering_gap_waivers",
            "DELETE FROM metering_gap_waivers",
        ),
    ] {
        let refused = db.raw(sqlite, postgres).await;
        assert!(refused.is_err(), "{sqlite}: {refused:?}");
    }
    assert_eq!(
        store
            .gaps_between("usage", month)
            .await
            .expect("gaps")
            .len(),
        1
    );
}

async fn a_gap_beyond_the_checkpoint_it_moves_with_is_refused(db: &TestDb) {
    let store = &db.store;
    let gap = outage("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z");
    let refused = store
        .record_window_with_gaps(&[], &[gap], "usage", None, ts("2026-11-02T00:00:00Z"))
        .await
        .expect_err("beyond the checkpoint");
    assert_eq!(refused.metric_label(), "invalid", "{refused}");
    assert_eq!(store.checkpoint("usage").await.expect("checkpoint"), None);
}

async fn the_ledger_begins_at_its_first_window_and_earlier_time_is_a_gap(db: &TestDb) {
    let store = &db.store;
    let calendar = Calendar::default();
    let month = calendar.month_range(november()).expect("range");
    assert_eq!(store.ledger_origin("usage").await.expect("origin"), None);
    let whole = store
        .month_gaps("usage", november(), month)
        .await
        .expect("gaps");
    assert_eq!((whole[0].from, whole[0].to), (month.start(), month.end()));
    let begins = ts("2026-11-15T08:00:00Z");
    store
        .record_window(&[], "usage", None, begins)
        .await
        .expect("first window");
    store
        .record_window(&[], "usage", Some(begins), ts("2026-11-15T09:00:00Z"))
        .await
        .expect("second window");
    assert_eq!(
        store.ledger_origin("usage").await.expect("origin"),
        Some(begins)
    );
    let head = store
        .month_gaps("usage", november(), month)
        .await
        .expect("gaps");
    assert_eq!(head.len(), 1);
    assert_eq!(
        (head[0].from, head[0].to, head[0].kind),
        (month.start(), begins, GapKind::Unmetered)
    );
    let december = Month::new(2026, 12).expect("month");
    let range = calendar.month_range(december).expect("range");
    assert!(
        store
            .month_gaps("usage", december, range)
            .await
            .expect("gaps")
            .is_empty()
    );
}

async fn intervals_keep_the_uid_of_their_environment(db: &TestDb) {
    let store = &db.store;
    let old = hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 1, 1_000)
        .into_iter()
        .map(|i| i.with_environment_uid("3c1e0a52-old"))
        .collect::<Vec<_>>();
    let new = hourly(&cpu("wjw-prod"), "2026-11-01T01:00:00Z", 1, 2_000)
        .into_iter()
        .map(|i| i.with_environment_uid("9f4b7d10-new"))
        .collect::<Vec<_>>();
    // Same name, the next hour, another Environment object.
    store.record_intervals(&old).await.expect("old");
    store.record_intervals(&new).await.expect("new");
    let month = Calendar::default().month_range(november()).expect("range");
    let mut stored: Vec<UsageInterval> = store
        .intervals_between(month)
        .try_collect()
        .await
        .expect("intervals");
    stored.sort_by_key(UsageInterval::amount);
    assert_eq!(stored, [old[0].clone(), new[0].clone()]);
    assert_eq!(stored[0].environment_uid(), Some("3c1e0a52-old"));
}

async fn a_window_in_batches_is_stored_whole_or_not_at_all(db: &TestDb) {
    let store = &db.store;
    let month = Calendar::default().month_range(november()).expect("range");
    let start = ts("2026-11-01T00:00:00Z");
    let at = ts("2026-11-01T02:00:00Z");
    let batches = [
        hourly(&cpu("jtj-dev"), "2026-11-01T01:00:00Z", 1, 20),
        hourly(&cpu("wjw-prod"), "2026-11-01T00:00:00Z", 2, 1_000),
        hourly(&cpu("jtj-prod"), "2026-11-01T00:00:00Z", 2, 10),
    ];

    // A later batch that contradicts what an earlier one stored: nothing of any is kept, and
    // the checkpoint stays where it was.
    let mut contradicting = batches.to_vec();
    contradicting.push(hourly(&cpu("wjw-prod"), "2026-11-01T01:00:00Z", 1, 1_001));
    let error = store
        .record_window_in_batches(contradicting.iter(), &[], "usage", None, at)
        .await
        .expect_err("conflict");
    assert_eq!(error.metric_label(), "conflict", "{error}");
    assert_eq!(store.checkpoint("usage").await.expect("checkpoint"), None);
    let stored: Vec<UsageInterval> = store
        .intervals_between(month)
        .try_collect()
        .await
        .expect("intervals");
    assert!(stored.is_empty(), "{stored:?}");

    // The same window in batches stores every interval and moves the checkpoint with them.
    let recorded = store
        .record_window_in_batches(batches.iter(), &[], "usage", None, at)
        .await
        .expect("window");
    assert_eq!((recorded.new, recorded.duplicates), (5, 0));
    assert_eq!(
        store.checkpoint("usage").await.expect("checkpoint"),
        Some(at)
    );
    let mut stored: Vec<UsageInterval> = store
        .intervals_between(month)
        .try_collect()
        .await
        .expect("intervals");
    let mut expected: Vec<UsageInterval> = batches.concat();
    stored.sort_by(|a, b| a.key().cmp(b.key()));
    expected.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(stored, expected);
    let totals = store
        .usage_totals(range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"), None)
        .await
        .expect("totals");
    let unit_seconds: u128 = totals.iter().map(|t| t.unit_seconds).sum();
    assert_eq!(unit_seconds, (2 * 1_000 + 2 * 10 + 20) * 3_600);
    // The ledger begins where the window's earliest interval does, whichever batch held it.
    assert_eq!(
        store.ledger_origin("usage").await.expect("origin"),
        Some(start)
    );
}

/// Settles with the fixture schedule's card, a 40 % burst price and a 70 % lenders' share.
/// The hour from 2026-11-01T00:00Z in which wjw borrows 4 cores (burst) while cgj reserved 8
/// and used 2: one interval list per meter.
fn borrowing_window() -> [Vec<UsageInterval>; 3] {
    let hour = |environment: &str, kind, amount| {
        hourly(
            &meter(environment, Resource::Cpu, kind, Tier::Gold),
            "2026-11-01T00:00:00Z",
            1,
            amount,
        )
    };
    [
        hour("wjw-prod", UsageKind::Burst, 4_000),
        hour("cgj-prod", UsageKind::Reserved, 8_000),
        hour("cgj-prod", UsageKind::Consumed, 2_000),
    ]
}

struct FixtureSettle(zhengyun_metering::settlement::WindowSettler, RateSchedule);

impl zhengyun_store::Settle for FixtureSettle {
    fn observe(&mut self, batch: &[UsageInterval]) {
        for interval in batch {
            self.0.add(interval, &Calendar::default()).expect("add");
        }
    }

    fn settled(&mut self) -> Result<Vec<zhengyun_metering::settlement::Settled>, String> {
        let settler = std::mem::take(&mut self.0);
        let terms = zhengyun_metering::settlement::WindowTerms {
            card: &self.1.cards()[0],
            burst_price_percent: 40,
            lender_share_percent: 70,
        };
        settler.settle(&terms).map_err(|e| e.to_string())
    }
}

async fn a_window_is_settled_in_its_own_transaction_and_the_statement_shows_the_settlement(
    db: &TestDb,
) {
    use zhengyun_metering::settlement::Role as Side;
    let store = &db.store;
    let at = ts("2026-11-01T01:00:00Z");
    let window = borrowing_window();
    let settle = || FixtureSettle(Default::default(), schedule());

    // Burst usage is never stored as an interval without its settlement.
    let error = store
        .record_intervals(&window[0])
        .await
        .expect_err("burst without a settlement");
    assert!(error.to_string().contains("kind"), "{error}");

    let recorded = store
        .record_settled_window_in_batches(window.iter(), &[], "usage", None, at, &mut settle())
        .await
        .expect("window");
    assert_eq!(recorded.new, 2, "the burst interval is not usage");
    // A writer with a stale checkpoint stores nothing, settlement included.
    let error = store
        .record_settled_window_in_batches(window.iter(), &[], "usage", None, at, &mut settle())
        .await
        .expect_err("stale checkpoint");
    assert_eq!(error.metric_label(), "conflict", "{error}");

    let lines = store
        .month_settlement(november())
        .await
        .expect("settlement");
    let found: Vec<(Side, Option<&str>, String)> = lines
        .iter()
        .map(|l| (l.role, l.bureau.as_deref(), l.amount.to_string()))
        .collect();
    // 4 core-hours × 0.08 × 40 % = 12.8 fen → 0.13; 70 % of 12.8 fen = 8.96 → 8 fen to cgj
    // (credits round down); 5 kept.
    assert_eq!(
        found,
        [
            (Side::Burst, Some("wjw"), "0.13".to_owned()),
            (Side::Lent, Some("cgj"), "-0.08".to_owned()),
            (Side::Platform, None, "0.05".to_owned()),
        ]
    );
    assert_eq!(lines[0].environment.as_deref(), Some("wjw-prod"));
    assert_eq!(lines[1].unit_seconds, 6 * 1000 * 3600);

    let statement = store
        .computed_statement(
            november(),
            &Calendar::default(),
            &schedule(),
            &BTreeMap::new(),
            None,
        )
        .await
        .expect("statement");
    assert_eq!(statement.settlement, lines);
    assert!(
        statement
            .lines
            .iter()
            .all(|l| l.key.meter.kind() != UsageKind::Burst)
    );
    statement.check_conservation().expect("conservation");
    let (payable, platform) = zhengyun_metering::payable(&statement, &[]).expect("payable");
    assert_eq!(payable["wjw"].settlement.to_string(), "0.13");
    assert_eq!(payable["cgj"].settlement.to_string(), "-0.08");
    assert_eq!(platform.settlement.to_string(), "0.05");
    assert_eq!(
        payable["cgj"].payable,
        payable["cgj"].lines - Decimal::new(8, 2)
    );
    let amounts = store
        .month_amounts(november(), &Calendar::default(), &schedule())
        .await
        .expect("amounts");
    assert_eq!(
        amounts["wjw"],
        Decimal::new(13, 2),
        "wjw reserved and consumed nothing"
    );
}

async fn a_reclaim_is_recorded_once_completed_once_and_listed_to_both_bureaus(db: &TestDb) {
    use zhengyun_store::{Reclaim, ReclaimCause};
    let store = &db.store;
    let started = ts("2026-11-05T08:00:00Z");
    let preempted = Reclaim {
        pod_uid: "uid-1".to_owned(),
        namespace: "cgj-prod".to_owned(),
        pod: "report-0".to_owned(),
        bureau: "cgj".to_owned(),
        cause: ReclaimCause::Preempted,
        beneficiary: None,
        started,
        freed: None,
    };
    assert!(store.record_reclaim(&preempted).await.expect("record"));
    assert!(
        !store.record_reclaim(&preempted).await.expect("again"),
        "once"
    );
    let waiting = store
        .reclaims_awaiting_beneficiary(started - SignedDuration::from_mins(10))
        .await
        .expect("awaiting");
    assert_eq!(waiting, std::slice::from_ref(&preempted));
    // Completed once: the first end and the first beneficiary stay.
    let freed = started + SignedDuration::from_secs(12);
    assert!(store.reclaim_freed("uid-1", freed).await.expect("freed"));
    assert!(
        store
            .reclaim_freed("uid-1", freed + SignedDuration::from_secs(60))
            .await
            .expect("freed again")
    );
    let mut named = preempted.clone();
    named.beneficiary = Some("wjw".to_owned());
    store.record_reclaim(&named).await.expect("beneficiary");
    named.beneficiary = Some("jyj".to_owned());
    store
        .record_reclaim(&named)
        .await
        .expect("another beneficiary");
    // A pod deleted by its own bureau was never reclaimed.
    assert!(
        !store
            .reclaim_freed("uid-unknown", freed)
            .await
            .expect("unknown")
    );

    let day = (
        started - SignedDuration::from_hours(1),
        started + SignedDuration::from_hours(1),
    );
    let listed = |bureau: Option<&'static str>| async move {
        store
            .list_reclaims(bureau, day.0, day.1)
            .await
            .expect("list")
    };
    let all = listed(None).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].freed, Some(freed));
    assert_eq!(all[0].beneficiary.as_deref(), Some("wjw"));
    assert_eq!(listed(Some("cgj")).await.len(), 1, "the borrower sees it");
    assert_eq!(
        listed(Some("wjw")).await.len(),
        1,
        "the beneficiary sees it"
    );
    assert!(listed(Some("jyj")).await.is_empty());
    assert!(
        store
            .reclaims_awaiting_beneficiary(started - SignedDuration::from_mins(10))
            .await
            .expect("awaiting")
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Performance evaluation

/// The sample schedule with a second, dearer card from 6 November (local time), so that ranges
/// across it have two rate periods.
fn two_card_schedule() -> RateSchedule {
    let price = |s: &str| Decimal::from_str_exact(s).expect("price");
    let mut cards = schedule().cards().to_vec();
    let mut dear = RateCard::new("2026-11-06".parse().expect("date"), "CNY");
    for tier in [Tier::Gold, Tier::Silver, Tier::Bronze] {
        dear = dear
            .with_prices(tier, Resource::Cpu, price("0.16"), price("0.08"))
            .and_then(|c| c.with_prices(tier, Resource::Memory, price("0.03"), price("0.01")))
            .expect("prices");
    }
    cards.push(dear);
    RateSchedule::new(cards).expect("schedule")
}

async fn efficiency_from_the_rollups_equals_efficiency_of_the_raw_intervals_period_by_period(
    db: &TestDb,
) {
    use zhengyun_metering::efficiency::{EfficiencyBuilder, MeterSum};
    let store = &db.store;
    let mut intervals = awkward_usage();
    // Consumption beside wjw-prod's reservation, so that some of it is not idle.
    intervals.extend(hourly(
        &meter("wjw-prod", Resource::Cpu, UsageKind::Consumed, Tier::Gold),
        "2026-11-01T10:00:00Z",
        30,
        600,
    ));
    store.record_intervals(&intervals).await.expect("record");
    let calendar = Calendar::default();
    let schedule = two_card_schedule();
    for range in [
        range("2026-10-31T16:00:00Z", "2026-11-30T16:00:00Z"),
        range("2026-11-01T12:34:56Z", "2026-11-09T01:02:03Z"),
    ] {
        for bureau in [None, Some("wjw"), Some("jtj")] {
            let mut expected = EfficiencyBuilder::new();
            for period in schedule.periods(range, &calendar).expect("periods") {
                let mut sums: BTreeMap<(String, String, Resource, UsageKind, Tier), u128> =
                    BTreeMap::new();
                for i in &intervals {
                    if bureau.is_some_and(|b| b != i.bureau()) {
                        continue;
                    }
                    let within = i.unit_seconds_within(&period.range);
                    if within > 0 {
                        *sums
                            .entry((
                                i.bureau().to_owned(),
                                i.environment().to_owned(),
                                i.resource(),
                                i.kind(),
                                i.tier(),
                            ))
                            .or_default() += within;
                    }
                }
                expected
                    .add_period(
                        period.card,
                        sums.iter()
                            .map(|((b, e, resource, kind, tier), us)| MeterSum {
                                bureau: b,
                                environment: e,
                                resource: *resource,
                                kind: *kind,
                                tier: *tier,
                                unit_seconds: *us,
                            }),
                    )
                    .expect("period");
            }
            let expected = expected.finish().expect("expected");
            let found = store
                .efficiency(range, bureau, &schedule, &calendar)
                .await
                .expect("efficiency");
            assert_eq!(found, expected, "{bureau:?} over {range}");
            if bureau != Some("jtj") {
                let prod = &found.environments[&("wjw".to_owned(), "wjw-prod".to_owned())];
                assert!(prod.idle_cost > Decimal::ZERO, "{prod:?}");
                assert!(prod.idle_cost < prod.reservation_cost, "{prod:?}");
            }
        }
    }
    let refused = store
        .efficiency(
            range("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
            Some("WJW'; --"),
            &schedule,
            &calendar,
        )
        .await;
    assert_eq!(refused.expect_err("invalid").metric_label(), "invalid");
}

async fn environment_intervals_are_the_environments_own_overlapping_intervals_oldest_first(
    db: &TestDb,
) {
    let store = &db.store;
    let intervals = awkward_usage();
    store.record_intervals(&intervals).await.expect("record");
    let range = range("2026-11-01T05:30:00Z", "2026-11-01T08:00:00Z");
    let found = store
        .environment_intervals("wjw-prod", range)
        .await
        .expect("intervals");
    let mut expected: Vec<&UsageInterval> = intervals
        .iter()
        .filter(|i| i.environment() == "wjw-prod" && i.range().intersection(&range).is_some())
        .collect();
    expected.sort_by_key(|i| (i.start(), i.end()));
    assert!(!expected.is_empty());
    let found: Vec<_> = found
        .iter()
        .map(|i| (i.key().clone(), i.amount()))
        .collect();
    let expected: Vec<_> = expected
        .iter()
        .map(|i| (i.key().clone(), i.amount()))
        .collect();
    assert_eq!(found, expected);
}

// ---------------------------------------------------------------------------------------------
// Availability

fn presence(environment: &str, tier: Tier) -> zhengyun_store::availability::Presence {
    let (bureau, _) = zhengyun_model::names::parse_environment_name(environment).expect("name");
    zhengyun_store::availability::Presence {
        environment: environment.to_owned(),
        bureau: bureau.to_owned(),
        tier,
    }
}

fn bad_slice(
    environment: &str,
    minute: Timestamp,
    counted: bool,
) -> zhengyun_store::availability::Slice {
    zhengyun_store::availability::Slice {
        of: presence(environment, Tier::Gold),
        minute,
        counted,
        cause: if counted { "node-not-ready" } else { "rollout" }.to_owned(),
        detail: "deployment web: 0 of 2 available".to_owned(),
    }
}

/// 100 measured minutes of wjw-prod (gold) from 2026-11-10T00:00Z, the 51st bad (counted).
async fn record_a_bad_minute_in_a_hundred_of_wjw_prod(store: &Store) {
    let batch = minutes(
        "2026-11-10T00:00:00Z",
        100,
        &[presence("wjw-prod", Tier::Gold)],
        |i, m| {
            if i == 50 {
                vec![bad_slice("wjw-prod", m, true)]
            } else {
                Vec::new()
            }
        },
    );
    store
        .record_availability(None, &batch, ts("2026-11-10T01:40:00Z"))
        .await
        .expect("minutes");
}

/// `count` minutes from `start`, the first opening `opened`, each with `slices(minute)`.
fn minutes(
    start: &str,
    count: i64,
    opened: &[zhengyun_store::availability::Presence],
    slices: impl Fn(i64, Timestamp) -> Vec<zhengyun_store::availability::Slice>,
) -> Vec<zhengyun_store::availability::MeasuredMinute> {
    let start = ts(start);
    (0..count)
        .map(|i| {
            let minute = start + SignedDuration::from_mins(i);
            zhengyun_store::availability::MeasuredMinute {
                minute,
                maintenance: false,
                opened: if i == 0 { opened.to_vec() } else { Vec::new() },
                closed: Vec::new(),
                slices: slices(i, minute),
            }
        })
        .collect()
}

async fn availability_minutes_are_recorded_once_from_the_checkpoint_their_writer_expects(
    db: &TestDb,
) {
    let store = &db.store;
    let first = minutes(
        "2026-11-10T00:00:00Z",
        3,
        &[presence("wjw-prod", Tier::Gold)],
        |i, m| {
            if i == 1 {
                vec![bad_slice("wjw-prod", m, true)]
            } else {
                Vec::new()
            }
        },
    );
    let after = ts("2026-11-10T00:03:00Z");
    store
        .record_availability(None, &first, after)
        .await
        .expect("first minutes");
    // A writer that thinks the stream has not started is refused, and records nothing.
    let again = store.record_availability(None, &first, after).await;
    assert_eq!(again.expect_err("stale").metric_label(), "conflict");
    assert_eq!(
        store
            .checkpoint(zhengyun_store::availability::AVAILABILITY_STREAM)
            .await
            .expect("checkpoint"),
        Some(after)
    );
    // A minute off the minute is refused.
    let crooked = minutes("2026-11-10T00:03:30Z", 1, &[], |_, _| Vec::new());
    let refused = store
        .record_availability(Some(after), &crooked, ts("2026-11-10T00:05:00Z"))
        .await;
    assert_eq!(refused.expect_err("crooked").metric_label(), "invalid");
    let range = range("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let slices = store
        .availability_slices(range, Some("wjw-prod"), None, 100)
        .await
        .expect("slices");
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].minute, ts("2026-11-10T00:01:00Z"));
    assert!(slices[0].counted);
    let open = store.open_presence().await.expect("open");
    assert_eq!(open, vec![presence("wjw-prod", Tier::Gold)]);
}

async fn a_months_measures_count_measured_minutes_of_each_presence_and_its_counted_slices(
    db: &TestDb,
) {
    let store = &db.store;
    // Ten minutes: wjw-prod measured throughout, 2 counted slices and 1 tenant slice;
    // jtj-test from minute 4, closed at minute 8 (4 minutes); minute 6 is maintenance.
    let mut batch = minutes(
        "2026-11-10T00:00:00Z",
        10,
        &[presence("wjw-prod", Tier::Gold)],
        |i, m| match i {
            2 | 3 => vec![bad_slice("wjw-prod", m, true)],
            5 => vec![bad_slice("wjw-prod", m, false)],
            _ => Vec::new(),
        },
    );
    batch[4].opened.push(presence("jtj-test", Tier::Silver));
    batch[8].closed.push("jtj-test".to_owned());
    batch[6].maintenance = true;
    store
        .record_availability(None, &batch, ts("2026-11-10T00:10:00Z"))
        .await
        .expect("record");
    let month = range("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let measures = store.month_measures(month, None).await.expect("measures");
    let got: Vec<(&str, Tier, u64, u64)> = measures
        .iter()
        .map(|m| {
            (
                m.environment.as_str(),
                m.tier,
                m.measured_minutes,
                m.bad_minutes,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("jtj-test", Tier::Silver, 3, 0),
            ("wjw-prod", Tier::Gold, 9, 2)
        ]
    );
    // One environment alone, the same.
    let one = store
        .month_measures(month, Some("jtj-test"))
        .await
        .expect("one");
    assert_eq!(one, measures[..1].to_vec());
    // Outside the range, nothing.
    let october = range("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z");
    let none = store.month_measures(october, None).await.expect("october");
    assert_eq!(none, Vec::new());
}

async fn a_month_below_its_objective_is_credited_on_the_statement_and_in_the_amounts(db: &TestDb) {
    let store = &db.store;
    let calendar = Calendar::default();
    store
        .record_intervals(&november_usage())
        .await
        .expect("usage");
    let levels = zhengyun_model::crd::ServiceLevels::default();
    store
        .record_service_levels(ts("2026-10-01T00:00:00Z"), &levels)
        .await
        .expect("levels");
    // Recording the same terms again adds nothing; the terms in force are read back.
    store
        .record_service_levels(ts("2026-10-02T00:00:00Z"), &levels)
        .await
        .expect("same levels");
    assert_eq!(
        store
            .service_levels_at(ts("2026-11-30T00:00:00Z"))
            .await
            .expect("read"),
        Some(levels)
    );
    // 100 measured minutes of wjw-prod (gold), 1 bad: 99 %, below 99.95 % (10 %) but not
    // below 99 % (25 %).
    record_a_bad_minute_in_a_hundred_of_wjw_prod(store).await;
    let statement = store
        .month_statement(november(), &calendar, &schedule(), &BTreeMap::new())
        .await
        .expect("statement");
    assert_eq!(
        statement.service_credits.len(),
        1,
        "{:?}",
        statement.service_credits
    );
    let credit = &statement.service_credits[0];
    let charged = statement.environment_amounts()["wjw-prod"];
    assert_eq!(credit.charges, charged);
    assert_eq!(credit.credit_percent, 10);
    assert_eq!(credit.availability, Decimal::new(99_000, 3));
    assert_eq!(
        credit.amount,
        -(charged / Decimal::from(10))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );
    let (bureaus, _) = zhengyun_metering::payable(&statement, &[]).expect("payable");
    assert_eq!(bureaus["wjw"].service_credits, credit.amount);
    let amounts = store
        .month_amounts(november(), &calendar, &schedule())
        .await
        .expect("amounts");
    assert_eq!(
        amounts["wjw"],
        statement.bureau_amounts()["wjw"] + credit.amount
    );
    // Closed, the credit is sealed with the statement and read back as it was.
    store
        .close_statement(november(), &statement)
        .await
        .expect("close");
    let closed = store
        .month_statement(november(), &calendar, &schedule(), &BTreeMap::new())
        .await
        .expect("closed");
    assert_eq!(closed.service_credits, statement.service_credits);
}

async fn a_kubeconfig_is_due_for_removal_once_expired_or_revoked_and_only_until_removed(
    db: &TestDb,
) {
    let store = &db.store;
    use zhengyun_store::NewKubeconfig;
    let issue =
        |environment: &'static str, issued: &'static str, expires: &'static str| NewKubeconfig {
            bureau: "wjw",
            environment,
            namespace: environment,
            account: "zhengyun-kubeconfig-admin",
            issued_to: "token 0123456789abcdef",
            issued_at: ts(issued),
            expires_at: ts(expires),
        };
    let short = store
        .record_kubeconfig(&issue(
            "wjw-dev",
            "2026-11-10T08:00:00Z",
            "2026-11-10T09:00:00Z",
        ))
        .await
        .expect("short");
    let long = store
        .record_kubeconfig(&issue(
            "wjw-dev",
            "2026-11-10T08:30:00Z",
            "2026-11-10T16:30:00Z",
        ))
        .await
        .expect("long");
    let other = store
        .record_kubeconfig(&issue(
            "wjw-prod",
            "2026-11-10T08:00:00Z",
            "2026-11-10T16:00:00Z",
        ))
        .await
        .expect("other");
    assert_eq!(short.secret, format!("zhengyun-kubeconfig-{}", short.id));
    assert_ne!(short.id, long.id);
    // An expiry not after the issue is refused.
    assert!(
        store
            .record_kubeconfig(&issue(
                "wjw-dev",
                "2026-11-10T08:00:00Z",
                "2026-11-10T08:00:00Z"
            ))
            .await
            .is_err()
    );
    // Listed per environment, newest first.
    let listed = store.kubeconfigs_of("wjw", "wjw-dev").await.expect("list");
    assert_eq!(
        listed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        [long.id.as_str(), short.id.as_str()]
    );
    let ids =
        |due: Vec<zhengyun_store::Kubeconfig>| due.into_iter().map(|k| k.id).collect::<Vec<_>>();
    // Before any expiry nothing is due; at its expiry the short one is.
    assert!(
        ids(store
            .kubeconfigs_to_remove(ts("2026-11-10T08:59:59Z"), 10)
            .await
            .expect("due"))
        .is_empty()
    );
    assert_eq!(
        ids(store
            .kubeconfigs_to_remove(ts("2026-11-10T09:00:00Z"), 10)
            .await
            .expect("due")),
        [short.id.as_str()]
    );
    // A revoked one is due at once; revoking twice keeps the first time.
    let revoked = store
        .revoke_kubeconfig("wjw", "wjw-prod", &other.id, ts("2026-11-10T09:10:00Z"))
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at, Some(ts("2026-11-10T09:10:00Z")));
    let again = store
        .revoke_kubeconfig("wjw", "wjw-prod", &other.id, ts("2026-11-10T09:20:00Z"))
        .await
        .expect("revoke again");
    assert_eq!(again.revoked_at, Some(ts("2026-11-10T09:10:00Z")));
    // Another environment's id is not found through this one.
    assert!(
        store
            .revoke_kubeconfig("wjw", "wjw-dev", &other.id, ts("2026-11-10T09:20:00Z"))
            .await
            .is_err()
    );
    assert_eq!(
        ids(store
            .kubeconfigs_to_remove(ts("2026-11-10T09:30:00Z"), 10)
            .await
            .expect("due")),
        [short.id.as_str(), other.id.as_str()]
    );
    // The limit takes the longest overdue first.
    assert_eq!(
        ids(store
            .kubeconfigs_to_remove(ts("2026-11-10T09:30:00Z"), 1)
            .await
            .expect("due")),
        [short.id.as_str()]
    );
    // Once removed, never due again.
    store
        .kubeconfig_removed(&short.id, ts("2026-11-10T09:31:00Z"))
        .await
        .expect("removed");
    store
        .kubeconfig_removed(&other.id, ts("2026-11-10T09:31:00Z"))
        .await
        .expect("removed");
    assert_eq!(
        ids(store
            .kubeconfigs_to_remove(ts("2026-11-11T00:00:00Z"), 10)
            .await
            .expect("due")),
        [long.id.as_str()]
    );
    let listed = store.kubeconfigs_of("wjw", "wjw-dev").await.expect("list");
    assert_eq!(listed[1].removed_at, Some(ts("2026-11-10T09:31:00Z")));
}

async fn a_console_session_names_its_principal_until_it_ends_or_is_closed(db: &TestDb) {
    let store = &db.store;
    let principal = zhengyun_store::Principal {
        token: TokenId::signed_in("zhangwei", "sso.haidian.gov.cn"),
        role: Role::BureauAdmin,
        bureau: Some("wjw".to_owned()),
        bureau_uid: Some("uid-1".to_owned()),
        description: "张伟".to_owned(),
        expires_at: ts("2026-11-10T16:00:00Z"),
    };
    let (cookie, opened) = store
        .open_console_session(
            &principal,
            ts("2026-11-10T08:00:00Z"),
            ts("2026-11-10T16:00:00Z"),
        )
        .await
        .expect("open");
    let found = store
        .console_session(&cookie, ts("2026-11-10T09:00:00Z"))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found, opened);
    assert_eq!(found.principal, principal);
    // Another cookie, or the same one after the end, finds nothing.
    assert!(
        store
            .console_session("not-a-session", ts("2026-11-10T09:00:00Z"))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .console_session(&cookie, ts("2026-11-10T16:00:00Z"))
            .await
            .expect("read")
            .is_none()
    );
    // An expiry not after the start is refused.
    assert!(
        store
            .open_console_session(
                &principal,
                ts("2026-11-10T16:00:00Z"),
                ts("2026-11-10T16:00:00Z")
            )
            .await
            .is_err()
    );
    // Closed, it is gone.
    store
        .close_console_session(&cookie, ts("2026-11-10T09:00:00Z"))
        .await
        .expect("close");
    assert!(
        store
            .console_session(&cookie, ts("2026-11-10T09:00:00Z"))
            .await
            .expect("read")
            .is_none()
    );
}

async fn a_token_is_in_force_by_its_id_until_revoked_or_expired(db: &TestDb) {
    let store = &db.store;
    let (id, _) = store
        .issue_token_at(
            &NewToken {
                role: Role::BureauAdmin,
                bureau: Some("wjw"),
                bureau_uid: Some("uid-1"),
                description: "卫健委 CI",
                expires_at: ts("2026-12-10T08:00:00Z"),
            },
            ts("2026-11-10T08:00:00Z"),
        )
        .await
        .expect("issue");
    let found = store
        .token_in_force(&id, ts("2026-11-10T09:00:00Z"))
        .await
        .expect("read")
        .expect("in force");
    assert_eq!(found.token, id);
    assert_eq!(found.role, Role::BureauAdmin);
    assert_eq!(found.bureau.as_deref(), Some("wjw"));
    assert_eq!(found.bureau_uid.as_deref(), Some("uid-1"));
    // Expired at its expiry, unknown ids are in force nowhere, revoked is revoked.
    assert!(
        store
            .token_in_force(&id, ts("2026-12-10T08:00:00Z"))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .token_in_force(
                &"0123456789abcdef".parse().expect("id"),
                ts("2026-11-10T09:00:00Z")
            )
            .await
            .expect("read")
            .is_none()
    );
    store.revoke_token(&id).await.expect("revoke");
    assert!(
        store
            .token_in_force(&id, ts("2026-11-10T09:00:00Z"))
            .await
            .expect("read")
            .is_none()
    );
}

async fn a_console_language_is_remembered_per_principal_and_the_last_choice_wins(db: &TestDb) {
    let store = &db.store;
    let person = "zhangwei@sso.haidian.gov.cn";
    assert_eq!(store.console_language(person).await.expect("read"), None);
    store
        .set_console_language(person, "en", ts("2026-11-10T08:00:00Z"))
        .await
        .expect("set");
    store
        .set_console_language("0123456789abcdef", "zh-CN", ts("2026-11-10T08:00:00Z"))
        .await
        .expect("set");
    assert_eq!(
        store
            .console_language(person)
            .await
            .expect("read")
            .as_deref(),
        Some("en")
    );
    store
        .set_console_language(person, "zh-CN", ts("2026-11-10T09:00:00Z"))
        .await
        .expect("set again");
    assert_eq!(
        store
            .console_language(person)
            .await
            .expect("read")
            .as_deref(),
        Some("zh-CN")
    );
    assert_eq!(
        store
            .console_language("0123456789abcdef")
            .await
            .expect("read")
            .as_deref(),
        Some("zh-CN")
    );
    assert!(
        store
            .set_console_language(person, "", ts("2026-11-10T09:00:00Z"))
            .await
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// A bureau's statement, and sums kept between reads

/// November's usage; wjw borrowing 4 cores for an hour from cgj, settled with the window that
/// ends at the instant returned; and wjw-prod missing its objective, which earns a service credit.
async fn record_november_with_borrowing_and_a_service_credit(store: &Store) -> Timestamp {
    store
        .record_intervals(&november_usage())
        .await
        .expect("usage");
    let settled_at = ts("2026-11-01T01:00:00Z");
    store
        .record_settled_window_in_batches(
            borrowing_window().iter(),
            &[],
            "usage",
            None,
            settled_at,
            &mut FixtureSettle(Default::default(), schedule()),
        )
        .await
        .expect("window");
    store
        .record_service_levels(
            ts("2026-10-01T00:00:00Z"),
            &zhengyun_model::crd::ServiceLevels::default(),
        )
        .await
        .expect("levels");
    record_a_bad_minute_in_a_hundred_of_wjw_prod(store).await;
    settled_at
}

async fn a_bureaus_statement_is_its_part_of_the_districts_line_for_line(db: &TestDb) {
    let store = &db.store;
    let calendar = Calendar::default();
    record_november_with_borrowing_and_a_service_credit(store).await;
    let budgets = BTreeMap::from([
        ("wjw".to_owned(), Decimal::new(100, 2)),
        ("jtj".to_owned(), Decimal::new(1_000_000, 2)),
    ]);
    let district = store
        .computed_statement(november(), &calendar, &schedule(), &budgets, None)
        .await
        .expect("district");
    assert_eq!(district.bureaus.len(), 3, "{:?}", district.bureaus);
    assert_eq!(
        district.settlement.len(),
        3,
        "burst, lent and the platform's share"
    );
    assert_eq!(district.service_credits.len(), 1);
    let (payable, _) = zhengyun_metering::payable(&district, &[]).expect("payable");
    // "gaj" has no usage at all: an empty statement, totals zero.
    for bureau in ["wjw", "cgj", "jtj", "gaj"] {
        let own = store
            .computed_statement(november(), &calendar, &schedule(), &budgets, Some(bureau))
            .await
            .expect("the bureau's statement");
        let mut expected = district.clone();
        expected.keep_bureau(bureau);
        assert_eq!(own, expected, "{bureau}");
        let (own_payable, _) = zhengyun_metering::payable(&own, &[]).expect("payable");
        assert_eq!(own_payable.get(bureau), payable.get(bureau), "{bureau}");
    }
    let error = store
        .computed_statement(november(), &calendar, &schedule(), &budgets, Some("WJW!"))
        .await
        .expect_err("an invalid bureau code");
    assert_eq!(error.metric_label(), "invalid", "{error}");
}

async fn a_years_accounts_read_together_are_its_months_read_one_by_one(db: &TestDb) {
    let store = &db.store;
    let calendar = Calendar::default();
    let none = BTreeMap::new();
    let month = |m| Month::new(2026, m).expect("month");
    // October: usage, closed, then usage found late and corrected by adjustments.
    store
        .record_intervals(&hourly(&cpu("jtj-test"), "2026-10-05T00:00:00Z", 10, 500))
        .await
        .expect("october");
    let closed = store
        .computed_statement(month(10), &calendar, &schedule(), &none, None)
        .await
        .expect("october's statement");
    store
        .close_statement(month(10), &closed)
        .await
        .expect("close october");
    store
        .record_intervals(&hourly(&cpu("wjw-prod"), "2026-10-06T00:00:00Z", 5, 700))
        .await
        .expect("late usage");
    let recomputed = store
        .computed_statement(month(10), &calendar, &schedule(), &none, None)
        .await
        .expect("october again");
    let corrections = adjustments(&closed, &[], &recomputed).expect("adjustments");
    assert!(!corrections.is_empty());
    store
        .add_adjustments(month(10), 0, &corrections)
        .await
        .expect("adjust october");
    // November: usage, borrowing settled, a service credit and a waived gap.
    let settled_at = record_november_with_borrowing_and_a_service_credit(store).await;
    let gap = outage("2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z");
    store
        .record_window_with_gaps(
            &[],
            std::slice::from_ref(&gap),
            "usage",
            Some(settled_at),
            ts("2026-11-27T00:00:00Z"),
        )
        .await
        .expect("a gap");
    let november_range = calendar.month_range(month(11)).expect("range");
    store
        .waive_gaps("usage", month(11), november_range, "finance", "estimated")
        .await
        .expect("waive");
    // December: two hours so far.
    store
        .record_intervals(&hourly(&cpu("cgj-prod"), "2026-12-01T00:00:00Z", 2, 100))
        .await
        .expect("december");

    let months = [month(9), month(10), month(11), month(12)];
    for bureau in [None, Some("wjw"), Some("cgj"), Some("jtj"), Some("gaj")] {
        let accounts = store
            .month_accounts(month(9), month(12), &calendar, &schedule(), bureau)
            .await
            .expect("accounts");
        assert_eq!(accounts.len(), months.len(), "{bureau:?}");
        for (account, month) in accounts.iter().zip(months) {
            let mut statement = store
                .month_statement(month, &calendar, &schedule(), &none)
                .await
                .expect("statement");
            if let Some(bureau) = bureau {
                statement.keep_bureau(bureau);
            }
            assert_eq!(account.statement, statement, "{month}, {bureau:?}");
            let issued = store.adjustments(month).await.expect("adjustments");
            assert_eq!(account.adjustments, issued, "{month}, {bureau:?}");
        }
    }
    // The fixture has what the comparison is about.
    let district = store
        .month_accounts(month(9), month(12), &calendar, &schedule(), None)
        .await
        .expect("district");
    assert_eq!(district[1].statement, closed, "october as it was closed");
    assert_eq!(district[1].adjustments, corrections);
    let november = &district[2].statement;
    assert_eq!(november.settlement.len(), 3);
    assert_eq!(november.service_credits.len(), 1);
    assert!(
        november
            .gaps
            .iter()
            .any(|g| g.from == gap.from && g.waived.is_some()),
        "{:?}",
        november.gaps
    );
    assert_eq!(district[3].statement.bureaus.len(), 1, "cgj in december");
    assert!(
        store
            .month_accounts(month(12), month(11), &calendar, &schedule(), None)
            .await
            .expect("no months")
            .is_empty()
    );
}

async fn sums_read_again_include_usage_another_process_added_and_a_restored_ledger(db: &TestDb) {
    let store = &db.store;
    let calendar = Calendar::default();
    store
        .record_intervals(&november_usage())
        .await
        .expect("usage");
    let statement = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .computed_statement(
                    november(),
                    &Calendar::default(),
                    &schedule(),
                    &BTreeMap::new(),
                    Some("wjw"),
                )
                .await
                .expect("statement")
                .platform
                .amount
        }
    };
    let before = statement(store).await;
    assert_eq!(statement(store).await, before, "read twice, unchanged");
    let year = range("2026-01-01T00:00:00Z", "2026-12-01T00:00:00Z");
    let costs = store
        .daily_costs(year, "wjw", &schedule(), &calendar)
        .await
        .expect("costs");

    // Another process (the operator's sampler) records an hour more of wjw-prod.
    let sampler = db.second_store().await;
    sampler
        .record_intervals(&hourly(&cpu("wjw-prod"), "2026-11-05T00:00:00Z", 1, 1_000))
        .await
        .expect("an hour more");
    sampler.close().await;
    let after = statement(store).await;
    assert!(after > before, "{after} after {before}");
    assert_eq!(
        after,
        statement_of(
            &[
                november_usage(),
                hourly(&cpu("wjw-prod"), "2026-11-05T00:00:00Z", 1, 1_000)
            ]
            .concat()
        )
        .bureau_amounts()["wjw"]
    );
    let costs_after = store
        .daily_costs(year, "wjw", &schedule(), &calendar)
        .await
        .expect("costs");
    assert_ne!(costs_after, costs, "the day of the new hour costs more");

    // A backup from before that hour is restored under the running store: the usage and the
    // revision go back. Sums read at the later revision are not given for the earlier one.
    db.raw(
        "DELETE FROM usage_intervals WHERE start_s = 1793836800 AND amount = 1000; \
         DELETE FROM usage_daily WHERE day_s = 1793808000 \
           AND environment = 'wjw-prod' AND kind = 'reserved'; \
         UPDATE ledger_bounds SET revision = 1 WHERE id = 1",
        "DELETE FROM usage_intervals WHERE start_s = 1793836800 AND amount = 1000; \
         DELETE FROM usage_daily WHERE day_s = 1793808000 \
           AND environment = 'wjw-prod' AND kind = 'reserved'; \
         UPDATE ledger_bounds SET revision = 1 WHERE id = 1",
    )
    .await
    .expect("restore");
    assert_eq!(
        statement(store).await,
        before,
        "the restored ledger is read"
    );
}
