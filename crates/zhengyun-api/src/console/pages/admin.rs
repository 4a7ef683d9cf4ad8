//! Platform admins' pages: the approvals queue, and the bureaus (onboarding one, with its quota
//! and budget).

use axum::{
    Form,
    extract::Path,
    http::{Method, StatusCode},
    response::Response,
};
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::console::{
    Visitor,
    layout::{csrf_field, frame, notice, respond},
    pages::segment,
    svg,
};

/// `GET /console/admin/requests`: the change requests waiting for a decision.
pub async fn requests(visitor: Visitor) -> Response {
    render_requests(&visitor, None).await
}

async fn render_requests(
    visitor: &Visitor,
    outcome: Option<(StatusCode, Result<String, String>)>,
) -> Response {
    let lang = visitor.lang;
    let pending = match visitor.read("/api/v1/requests?state=pending").await {
        Ok(pending) => pending,
        Err(response) => return response,
    };
    let pending = pending.as_array().cloned().unwrap_or_default();
    // Names for codes and token ids; the codes and ids themselves when they cannot be read.
    let (bureaus, tokens) = tokio::join!(
        visitor.read("/api/v1/bureaus?limit=1000"),
        visitor.read("/api/v1/tokens?limit=1000"),
    );
    let names = names_by(&bureaus.unwrap_or_default(), "name", "displayName");
    let requesters = names_by(&tokens.unwrap_or_default(), "id", "description");
    let status = outcome.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    respond(
        status,
        frame(
            visitor,
            &lang.t("nav.approvals"),
            html! {
                @if let Some((_, outcome)) = &outcome { (notice(outcome)) }
                @if pending.is_empty() { p.muted { (lang.t("requests.none")) } }
                @else { div.table-wrap { table {
                    thead { tr {
                        th scope="col" { (lang.t("requests.created")) } th scope="col" { (lang.t("requests.bureau")) }
                        th scope="col" { (lang.t("requests.by")) }
                        th scope="col" { (lang.t("requests.kind")) } th scope="col" { (lang.t("requests.asked")) }
                        th scope="col" { (lang.t("requests.reason")) }
                        th scope="col" { (lang.t("env.actions")) }
                    } }
                    tbody { @for request in &pending {
                        @let id = request["id"].as_str().unwrap_or_default();
                        tr {
                            td { (request["requestedAt"].as_str().unwrap_or_default()) }
                            @let code = request["bureau"].as_str().unwrap_or_default();
                            @let by = request["requestedBy"].as_str().unwrap_or_default();
                            td { (names.get(code).map_or(code, String::as_str)) " " span.muted { (code) } }
                            td { @if let Some(name) = requesters.get(by) { (name) " " span.muted { (by) } } @else { (by) } }
                            td { (lang.word("request_kind", request["kind"].as_str().unwrap_or_default())) " " (request["object"].as_str().unwrap_or_default()) }
                            td { (asked(lang, &request["payload"])) }
                            td { (request["note"].as_str().unwrap_or_default()) }
                            td {
                                form.inline method="post" action={ "/console/admin/requests/" (id) "/approve" } {
                                    (csrf_field(visitor))
                                    button type="submit" { (lang.t("requests.approve")) }
                                }
                                " "
                                form.inline method="post" action={ "/console/admin/requests/" (id) "/reject" } {
                                    (csrf_field(visitor))
                                    label { (lang.t("requests.reason")) " " input type="text" name="reason" size="16"; }
                                    button.danger type="submit" { (lang.t("requests.reject")) }
                                }
                            }
                        }
                    } }
                } } }
            },
        ),
    )
}

/// `key` → `value` of each item of a JSON list (a bureau's code to its name, a token's id to
/// its description).
fn names_by(list: &Value, key: &str, value: &str) -> std::collections::HashMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            Some((
                item[key].as_str()?.to_owned(),
                item[value].as_str().filter(|v| !v.is_empty())?.to_owned(),
            ))
        })
        .collect()
}

/// What a change request asks for, in words: the environment's purpose and tier when it names
/// them, and each resource with the total asked (a quota is the payload itself, or its `quota`).
pub(crate) fn asked(lang: crate::console::i18n::Lang, payload: &Value) -> String {
    let quota = payload
        .get("quota")
        .and_then(Value::as_object)
        .or_else(|| payload.as_object().filter(|p| !p.contains_key("purpose")));
    let mut parts: Vec<String> = Vec::new();
    for (group, field) in [("purpose", "purpose"), ("tier", "tier")] {
        if let Some(value) = payload.get(field).and_then(Value::as_str) {
            parts.push(lang.word(group, value));
        }
    }
    for resource in zhengyun_model::quantity::Resource::ALL {
        if let Some(amount) = quota
            .and_then(|q| q.get(resource.as_str()))
            .and_then(Value::as_str)
        {
            parts.push(format!(
                "{} {amount}",
                lang.word("resource", resource.as_str())
            ));
        }
    }
    parts.join(" · ")
}

/// A decision.
#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /console/admin/requests/{id}/{approve|reject}`.
pub async fn decide(
    visitor: Visitor,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let decision = if decision == "approve" {
        "approve"
    } else {
        "reject"
    };
    let body = if form.reason.trim().is_empty() {
        json!({})
    } else {
        json!({"reason": form.reason.trim()})
    };
    let path = format!("/api/v1/requests/{}/{decision}", segment(&id));
    let reply = match visitor.api(Method::POST, &path, Some(&body)).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    let outcome = if reply.status.is_success() {
        let state = reply.body["state"]
            .as_str()
            .or(reply.body["request"]["state"].as_str())
            .unwrap_or(decision);
        let state = visitor.lang.word("request_state", state);
        Ok(visitor
            .lang
            .tf("requests.decided", &[("id", &id), ("state", &state)]))
    } else {
        Err(reply.detail(visitor.lang))
    };
    render_requests(&visitor, Some((reply.status, outcome))).await
}

/// `GET /console/admin/bureaus`.
pub async fn bureaus(visitor: Visitor) -> Response {
    render_bureaus(&visitor, None).await
}

async fn render_bureaus(
    visitor: &Visitor,
    outcome: Option<(StatusCode, Result<String, String>)>,
) -> Response {
    let lang = visitor.lang;
    let list = match visitor.read("/api/v1/bureaus").await {
        Ok(list) => list,
        Err(response) => return response,
    };
    let list = list.as_array().cloned().unwrap_or_default();
    // The pool is shown when it can be read (there may be none yet).
    let pool = visitor.read("/api/v1/pool").await.ok();
    let status = outcome.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let cell = |b: &Value, r: &str| b["quota"][r].as_str().unwrap_or("").to_owned();
    respond(
        status,
        frame(
            visitor,
            &lang.t("admin.bureaus"),
            html! {
                @if let Some((_, outcome)) = &outcome { (notice(outcome)) }
                @if let Some(pool) = &pool { (pool_table(visitor, pool)) }
                h2 { (lang.t("admin.create")) }
                form method="post" action="/console/admin/bureaus" {
                    (csrf_field(visitor))
                    fieldset {
                        label { (lang.t("admin.code")) " " input type="text" name="name" size="10" required placeholder="tjj"; }
                        label { (lang.t("admin.name")) " " input type="text" name="display_name" size="18" required placeholder="区统计局"; }
                        label { (lang.t("admin.kind")) " " select name="kind" {
                            @for kind in zhengyun_model::names::BureauKind::ALL { option value=(kind.as_str()) { (lang.word("kind", kind.as_str())) } }
                        } }
                        label { (lang.t("resource.cpu")) " " input type="text" name="cpu" size="5" placeholder="16"; }
                        label { (lang.t("resource.memory")) " " input type="text" name="memory" size="6" placeholder="64Gi"; }
                        label { (lang.t("resource.storage")) " " input type="text" name="storage" size="6" placeholder="512Gi"; }
                        label { (lang.t("finance.budget")) " " input type="text" name="monthly_budget" size="8" placeholder="8000.00"; }
                        button type="submit" { (lang.t("admin.save")) }
                    }
                }
                div.table-wrap { table {
                    thead { tr {
                        th scope="col" { (lang.t("admin.code")) } th scope="col" { (lang.t("admin.name")) }
                        th.num scope="col" { (lang.t("resource.cpu")) } th.num scope="col" { (lang.t("resource.memory")) }
                        th.num scope="col" { (lang.t("resource.storage")) } th.num scope="col" { (lang.t("finance.budget")) }
                        th scope="col" { (lang.t("admin.edit")) }
                    } }
                    tbody { @for bureau in &list {
                        @let code = bureau["name"].as_str().unwrap_or_default();
                        @let form_id = format!("edit-{code}");
                        tr {
                            td { a href={ "/console/bureaus/" (code) } { (code) } }
                            td { (bureau["displayName"].as_str().unwrap_or_default()) }
                            @for resource in ["cpu", "memory", "storage"] {
                                td.num { input form=(form_id) type="text" name=(resource) size="6" value=(cell(bureau, resource))
                                    aria-label={ (bureau["displayName"].as_str().unwrap_or(code)) " " (lang.t(&format!("resource.{resource}"))) }; }
                            }
                            td.num { input form=(form_id) type="text" name="monthly_budget" size="9" value=(bureau["monthlyBudget"].as_str().unwrap_or(""))
                                aria-label={ (bureau["displayName"].as_str().unwrap_or(code)) " " (lang.t("finance.budget")) }; }
                            td { form.inline id=(form_id) method="post" action={ "/console/admin/bureaus/" (segment(code)) } {
                                (csrf_field(visitor))
                                input type="hidden" name="shown" value=(shown(bureau));
                                button type="submit" { (lang.t("admin.save")) }
                            } }
                        }
                    } }
                } }
            },
        ),
    )
}

/// A bureau's quota and monthly budget as a form gives them.
#[derive(Deserialize)]
pub struct Allotment {
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    memory: String,
    #[serde(default)]
    storage: String,
    #[serde(default)]
    monthly_budget: String,
}

impl Allotment {
    /// Sets `quota` (the resources given, when any is) and `monthlyBudget` (when given) on
    /// `body`.
    fn fill(&self, body: &mut Value) {
        let quota = crate::console::pages::quota_of(&[
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("storage", &self.storage),
        ]);
        if !quota.is_empty() {
            body["quota"] = Value::Object(quota);
        }
        let budget = self.monthly_budget.trim();
        if !budget.is_empty() {
            body["monthlyBudget"] = json!(budget);
        }
    }
}

/// The onboarding form.
#[derive(Deserialize)]
pub struct BureauForm {
    csrf: Option<String>,
    name: String,
    display_name: String,
    kind: String,
    #[serde(flatten)]
    allotment: Allotment,
}

/// `POST /console/admin/bureaus`: onboards a bureau.
pub async fn create_bureau(visitor: Visitor, Form(form): Form<BureauForm>) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let mut body = json!({
        "name": form.name.trim(), "displayName": form.display_name.trim(), "kind": form.kind,
        "adminGroups": [format!("{}-admins", form.name.trim())],
        "viewerGroups": [format!("{}-viewers", form.name.trim())],
    });
    form.allotment.fill(&mut body);
    let reply = match visitor
        .api(Method::POST, "/api/v1/bureaus", Some(&body))
        .await
    {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    let outcome = if reply.status.is_success() {
        Ok(visitor
            .lang
            .tf("admin.created", &[("name", form.display_name.trim())]))
    } else {
        Err(reply.detail(visitor.lang))
    };
    render_bureaus(&visitor, Some((reply.status, outcome))).await
}

/// The pool against the bureaus' quotas: a gauge per resource of what is allocated of what may
/// be.
fn pool_table(visitor: &Visitor, pool: &Value) -> maud::Markup {
    let lang = visitor.lang;
    html! {
        h2 { (lang.t("pool.title")) }
        div.table-wrap { table.gauges {
            thead { tr {
                th scope="col" { (lang.t("quota.resource")) }
                th scope="col" { (lang.t("pool.allocated")) " / " (lang.t("pool.allocatable")) }
                th.num scope="col" { (lang.t("pool.capacity")) }
                th.num scope="col" { (lang.t("pool.allocatable")) }
                th.num scope="col" { (lang.t("pool.allocated")) }
                th.num scope="col" { (lang.t("pool.unallocated")) }
            } }
            tbody { @for resource in ["cpu", "memory", "storage"] {
                @let label = lang.t(&format!("resource.{resource}"));
                @let value = |part: &str| pool[part][resource].as_str().unwrap_or("0").to_owned();
                @let (allocatable, allocated) = (value("allocatable"), value("allocated"));
                @let share = |q: &str| svg::amount(q).unwrap_or(0.0);
                tr {
                    th scope="row" { (label) }
                    td { (svg::gauge(&label, share(&allocatable), share(&allocated), 0.0)) }
                    td.num { (value("capacity")) } td.num { (allocatable) }
                    td.num { (allocated) } td.num { (value("unallocated")) }
                }
            } }
        } }
        p.muted { (lang.tf("pool.summary", &[("bureaus", &pool["bureaus"].to_string())]))
            " · " @if pool["borrowing"] == true { (lang.t("pool.borrowing_on")) } @else { (lang.t("pool.borrowing_off")) } }
    }
}

/// The quota and budget of `bureau` (the API's view) as the edit form shows them, in one
/// string: what an edit is checked against.
fn shown(bureau: &Value) -> String {
    let quota = |r: &str| bureau["quota"][r].as_str().unwrap_or("").to_owned();
    [
        quota("cpu"),
        quota("memory"),
        quota("storage"),
        bureau["monthlyBudget"].as_str().unwrap_or("").to_owned(),
    ]
    .join("|")
}

/// The edit form of a bureau's quota and budget.
#[derive(Deserialize)]
pub struct EditForm {
    csrf: Option<String>,
    /// The values the form showed (see [`shown`]).
    #[serde(default)]
    shown: String,
    #[serde(flatten)]
    allotment: Allotment,
}

/// `POST /console/admin/bureaus/{bureau}`: changes a bureau's quota and budget, refused when
/// someone changed them since the page showed them. (Not the API's `If-Match` on the
/// resourceVersion: the operator writes each bureau's status every few seconds, which would
/// refuse nearly every edit of a busy bureau.)
pub async fn edit_bureau(
    visitor: Visitor,
    Path(bureau): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let path = format!("/api/v1/bureaus/{}", segment(&bureau));
    let current = match visitor.read(&path).await {
        Ok(current) => current,
        Err(response) => return response,
    };
    if shown(&current) != form.shown {
        let outcome = Err(visitor.lang.t("problem.412"));
        return render_bureaus(&visitor, Some((StatusCode::CONFLICT, outcome))).await;
    }
    let mut body = json!({});
    form.allotment.fill(&mut body);
    let reply = match visitor.api(Method::PATCH, &path, Some(&body)).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    let outcome = if reply.status.is_success() {
        Ok(visitor.lang.tf("admin.updated", &[("name", &bureau)]))
    } else {
        Err(reply.detail(visitor.lang))
    };
    render_bureaus(&visitor, Some((reply.status, outcome))).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::console::i18n::Lang;

    #[test]
    fn a_request_shows_the_quota_it_asks_for_whatever_its_kind() {
        let create = json!({"name": "wjw-dev", "purpose": "dev", "tier": "gold",
            "quota": {"cpu": "4", "memory": "8Gi"}});
        assert_eq!(
            asked(Lang::En, &create),
            "dev · gold · CPU (cores) 4 · Memory 8Gi"
        );
        let resize = json!({"quota": {"memory": "16Gi"}});
        assert_eq!(asked(Lang::En, &resize), "Memory 16Gi");
        let bureau_quota = json!({"cpu": "64", "storage": "2Ti"});
        assert_eq!(
            asked(Lang::En, &bureau_quota),
            "CPU (cores) 64 · Storage 2Ti"
        );
        assert_eq!(asked(Lang::En, &json!(null)), "");
    }

    #[test]
    fn codes_and_ids_are_named_from_their_lists_and_blank_names_are_left_out() {
        let list = json!([{"name": "wjw", "displayName": "区卫生健康委员会"},
            {"name": "jw", "displayName": ""}, {"displayName": "x"}]);
        let names = names_by(&list, "name", "displayName");
        assert_eq!(
            names.get("wjw").map(String::as_str),
            Some("区卫生健康委员会")
        );
        assert_eq!(names.len(), 1);
    }
}
