//! A bureau's page, for its staff (and platform admins): quota against what is allocated and
//! used, the environments with their state in plain words, requests, deletion, kubeconfigs, the
//! change requests and the month's statement.

use axum::{
    Form,
    extract::{Path, Query},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use zhengyun_store::Role;

use crate::console::{
    Visitor,
    i18n::Lang,
    layout::{csrf_field, frame, notice, respond},
    svg,
};

const RESOURCES: [&str; 3] = ["cpu", "memory", "storage"];

/// `GET /console/bureaus/{bureau}`.
pub async fn page_of(
    visitor: &Visitor,
    bureau: &str,
    outcome: Option<(StatusCode, Result<String, String>)>,
) -> Response {
    match render(visitor, bureau, outcome.as_ref().map(|(_, o)| o)).await {
        Ok(markup) => respond(outcome.map_or(StatusCode::OK, |(status, _)| status), markup),
        Err(response) => response,
    }
}

/// What a form of the page did, named in the address the browser is sent to afterwards
/// (post/redirect/get: reloading the page repeats nothing). Only these fixed outcomes, with
/// a name that is an environment's, are shown: an address cannot put words of its own on the
/// page.
#[derive(Deserialize, Default)]
pub struct Done {
    done: Option<String>,
    name: Option<String>,
}

impl Done {
    /// The address of `bureau`'s page saying that `done` happened to environment `name`.
    fn link(bureau: &str, done: &str, name: &str) -> String {
        let seg = crate::console::pages::segment;
        format!(
            "/console/bureaus/{}?done={done}&name={}",
            seg(bureau),
            seg(name)
        )
    }

    /// The news this address names, in `lang`; nothing for anything else.
    fn notice(&self, lang: Lang) -> Option<String> {
        let name = self.name.as_deref().unwrap_or_default();
        zhengyun_model::names::parse_environment_name(name)?;
        let key = match self.done.as_deref()? {
            "created" => "request.created",
            "pending" => "request.filed",
            "resized" => "env.resized",
            "resize-pending" => "request.filed",
            "deleting" => "env.deleting",
            _ => return None,
        };
        Some(lang.tf(key, &[("name", name)]))
    }
}

/// `GET /console/bureaus/{bureau}`, with the news of the form just sent, if any.
pub async fn page(
    visitor: Visitor,
    Path(bureau): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let outcome = done
        .notice(visitor.lang)
        .map(|news| (StatusCode::OK, Ok(news)));
    page_of(&visitor, &bureau, outcome).await
}

/// After a form that succeeded: to the page, saying so (303, post/redirect/get).
fn see_page(bureau: &str, done: &str, name: &str) -> Response {
    Redirect::to(&Done::link(bureau, done, name)).into_response()
}

fn phase_words(lang: Lang, phase: &str) -> String {
    let key = format!("phase.{phase}");
    let words = lang.t(&key);
    if words == key {
        lang.t("phase.unknown")
    } else {
        words
    }
}

async fn render(
    visitor: &Visitor,
    bureau: &str,
    outcome: Option<&Result<String, String>>,
) -> Result<Markup, Response> {
    let lang = visitor.lang;
    let role = visitor.principal()?.role;
    let seg = crate::console::pages::segment(bureau);
    // The page's five reads are independent: made at once, the page costs the slowest.
    let paths = [
        format!("/api/v1/bureaus/{seg}"),
        format!("/api/v1/bureaus/{seg}/environments"),
        // Every state: the API filters by state only when asked to.
        format!("/api/v1/requests?bureau={seg}"),
        format!("/api/v1/statements?bureau={seg}"),
        // This month so far, day by day.
        format!("/api/v1/bureaus/{seg}/costs"),
    ];
    let (view, environments, requests, statement, days) = tokio::join!(
        visitor.read(&paths[0]),
        visitor.read(&paths[1]),
        visitor.read(&paths[2]),
        visitor.api(Method::GET, &paths[3], None),
        visitor.read(&paths[4]),
    );
    let (view, environments, requests) = (view?, environments?, requests?);
    // The statement and the chart are left out when they cannot be read (no rate card yet),
    // and the page says why instead of a total.
    let statement = statement?;
    let (total, statement_refusal) = statement_total(lang, &statement);
    let days = days.ok();
    let name = view["displayName"].as_str().unwrap_or(bureau).to_owned();
    let may_change = matches!(role, Role::BureauAdmin | Role::PlatformAdmin);
    let may_kubeconfig = matches!(role, Role::BureauAdmin | Role::BureauViewer);
    let envs = environments.as_array().cloned().unwrap_or_default();
    let columns: Vec<svg::Column> = days
        .as_ref()
        .and_then(|d| d["days"].as_array())
        .into_iter()
        .flatten()
        .map(|day| svg::Column {
            label: day["date"]
                .as_str()
                .and_then(|d| d.rsplit('-').next())
                .unwrap_or_default()
                .trim_start_matches('0')
                .to_owned(),
            lower: number(&day["reserved"]),
            upper: number(&day["consumed"]),
        })
        .collect();
    let content = html! {
        @if let Some(outcome) = outcome { (notice(outcome)) }
        h2 { (lang.t("quota.title")) }
        div.table-wrap { table.gauges {
            thead { tr {
                th scope="col" { (lang.t("quota.resource")) }
                th scope="col" { (lang.t("quota.allocated")) " / " (lang.t("quota.used")) }
                th.num scope="col" { (lang.t("quota.quota")) }
                th.num scope="col" { (lang.t("quota.allocated")) }
                th.num scope="col" { (lang.t("quota.used")) }
            } }
            tbody { @for resource in RESOURCES {
                @let quota = view["quota"][resource].as_str().unwrap_or("0");
                @let allocated = view["status"]["allocated"][resource].as_str().unwrap_or("0");
                @let used = view["status"]["used"][resource].as_str().unwrap_or("0");
                @let label = lang.t(&format!("resource.{resource}"));
                tr {
                    th scope="row" { (label) }
                    td { (svg::gauge(&label, svg::amount(quota).unwrap_or(0.0), svg::amount(allocated).unwrap_or(0.0), svg::amount(used).unwrap_or(0.0))) }
                    td.num { (quota) } td.num { (allocated) } td.num { (used) }
                }
            } }
        } }
        h2 { (lang.t("env.title")) }
        @if envs.is_empty() { p.muted { (lang.t("env.none")) } }
        @else { div.table-wrap { table {
            thead { tr {
                th scope="col" { (lang.t("env.name")) } th scope="col" { (lang.t("env.purpose")) }
                th scope="col" { (lang.t("env.tier")) } th scope="col" { (lang.t("env.phase")) }
                th.num scope="col" { (lang.t("resource.cpu")) } th.num scope="col" { (lang.t("resource.memory")) }
                th scope="col" { (lang.t("env.conditions")) } th scope="col" { (lang.t("env.actions")) }
            } }
            tbody { @for env in &envs {
                @let env_name = env["name"].as_str().unwrap_or_default();
                tr {
                    td { (env_name) }
                    td { (lang.word("purpose", env["purpose"].as_str().unwrap_or_default())) }
                    td { (lang.word("tier", env["tier"].as_str().unwrap_or_default())) }
                    td { (phase_words(lang, env["phase"].as_str().unwrap_or_default())) }
                    td.num { (env["quota"]["cpu"].as_str().unwrap_or("")) }
                    td.num { (env["quota"]["memory"].as_str().unwrap_or("")) }
                    td { ul { @for condition in env["conditions"].as_array().into_iter().flatten() {
                        @let message = condition["message"].as_str().unwrap_or_default();
                        li title=(message) {
                            (lang.word("condition", condition["type"].as_str().unwrap_or_default())) (lang.t("problem.separator"))
                            @match lang {
                                Lang::Zh => (lang.word("reason", condition["reason"].as_str().unwrap_or_default())),
                                Lang::En => (message),
                            }
                        }
                    } } }
                    td {
                        @if may_kubeconfig {
                            form.inline method="post" action={ "/console/bureaus/" (bureau) "/environments/" (env_name) "/kubeconfig" } {
                                (csrf_field(visitor))
                                label { (lang.t("env.ttl")) " "
                                    select name="ttl" { option value="1h" { "1h" } option value="2h" { "2h" } option value="8h" selected { "8h" } }
                                }
                                button type="submit" { (lang.t("env.kubeconfig")) }
                            }
                        }
                        @if may_change {
                            form.inline method="post" action={ "/console/bureaus/" (bureau) "/environments/" (env_name) "/resize" } {
                                (csrf_field(visitor))
                                label { (lang.t("resource.cpu")) " " input type="text" name="cpu" size="4" value=(env["quota"]["cpu"].as_str().unwrap_or("")); }
                                label { (lang.t("resource.memory")) " " input type="text" name="memory" size="5" value=(env["quota"]["memory"].as_str().unwrap_or("")); }
                                button type="submit" { (lang.t("env.resize")) }
                            }
                            form.inline method="post" action={ "/console/bureaus/" (bureau) "/environments/" (env_name) "/delete" } {
                                (csrf_field(visitor))
                                label { input type="checkbox" name="confirm" value="yes" required; " " (lang.t("env.delete_confirm")) }
                                button.danger type="submit" { (lang.t("env.delete")) }
                            }
                        }
                    }
                }
            } }
        } } }
        @if may_change {
            h2 { (lang.t("request.title")) }
            form method="post" action={ "/console/bureaus/" (bureau) "/environments" } {
                (csrf_field(visitor))
                fieldset {
                    label { (lang.t("env.purpose")) " " select name="purpose" {
                        @for purpose in ["dev", "test", "staging", "prod"] { option value=(purpose) { (lang.t(&format!("purpose.{purpose}"))) } }
                    } }
                    label { (lang.t("env.tier")) " " select name="tier" {
                        @for tier in ["silver", "gold", "bronze"] { option value=(tier) { (lang.t(&format!("tier.{tier}"))) } }
                    } }
                    label { (lang.t("resource.cpu")) " " input type="text" name="cpu" size="6" required placeholder="2"; }
                    label { (lang.t("resource.memory")) " " input type="text" name="memory" size="6" required placeholder="4Gi"; }
                    label { (lang.t("resource.storage")) " " input type="text" name="storage" size="6" placeholder="20Gi"; }
                    button type="submit" { (lang.t("request.submit")) }
                }
            }
        }
        h2 { (lang.t("requests.title")) }
        @let requests = requests.as_array().cloned().unwrap_or_default();
        @if requests.is_empty() { p.muted { (lang.t("requests.none")) } }
        @else { div.table-wrap { table {
            thead { tr {
                th scope="col" { (lang.t("requests.created")) } th scope="col" { (lang.t("requests.kind")) }
                th scope="col" { (lang.t("requests.asked")) } th scope="col" { (lang.t("requests.state")) }
                th scope="col" { (lang.t("requests.reason")) } th scope="col" { (lang.t("requests.decision")) }
            } }
            tbody { @for request in &requests { tr {
                td { (request["requestedAt"].as_str().unwrap_or_default()) }
                td { (lang.word("request_kind", request["kind"].as_str().unwrap_or_default())) " " (request["object"].as_str().unwrap_or_default()) }
                td { (crate::console::pages::admin::asked(lang, &request["payload"])) }
                td { (lang.word("request_state", request["state"].as_str().unwrap_or_default())) }
                td { (request["note"].as_str().unwrap_or_default()) }
                td { (request["decisionReason"].as_str().unwrap_or_default()) }
            } } }
        } } }
        @if let Some(total) = &total {
            h2 { (lang.t("statement.title")) " · " (lang.t("statement.total")) " " (total) " " (lang.t("finance.currency")) }
        } @else {
            h2 { (lang.t("statement.title")) }
        }
        @if let Some(refusal) = &statement_refusal { p.notice.error role="status" { (refusal) } }
        @if !columns.is_empty() {
            (svg::columns(&lang.t("statement.by_day"), &columns,
                [&lang.t("finance.reserved"), &lang.t("finance.consumed")], &lang.t("finance.currency")))
        }
    };
    Ok(frame(visitor, &name, content))
}

/// The environment request form.
#[derive(Deserialize)]
pub struct RequestForm {
    csrf: Option<String>,
    purpose: String,
    tier: String,
    cpu: String,
    memory: String,
    #[serde(default)]
    storage: String,
}

/// `POST /console/bureaus/{bureau}/environments`: requests an environment; created at once or
/// sent for approval, as the API decides.
pub async fn request(
    visitor: Visitor,
    Path(bureau): Path<String>,
    Form(form): Form<RequestForm>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let lang = visitor.lang;
    let quota = crate::console::pages::quota_of(&[
        ("cpu", &form.cpu),
        ("memory", &form.memory),
        ("storage", &form.storage),
    ]);
    let body = json!({"purpose": form.purpose, "tier": form.tier, "quota": quota});
    let path = format!(
        "/api/v1/bureaus/{}/environments",
        crate::console::pages::segment(&bureau)
    );
    let reply = match visitor.api(Method::POST, &path, Some(&body)).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    match reply.status {
        StatusCode::CREATED => see_page(
            &bureau,
            "created",
            reply.body["name"].as_str().unwrap_or_default(),
        ),
        StatusCode::ACCEPTED => see_page(
            &bureau,
            "pending",
            reply.body["request"]["object"].as_str().unwrap_or_default(),
        ),
        _ => {
            let outcome = Err(lang.tf(
                "request.refused",
                &[("detail", &reply.detail(visitor.lang))],
            ));
            page_of(&visitor, &bureau, Some((reply.status, outcome))).await
        }
    }
}

/// A form with a confirmation.
#[derive(Deserialize)]
pub struct Confirmed {
    csrf: Option<String>,
    confirm: Option<String>,
}

/// `POST …/environments/{environment}/delete`: deletes an environment once confirmed.
pub async fn delete(
    visitor: Visitor,
    Path((bureau, environment)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    if form.confirm.as_deref() != Some("yes") {
        let outcome = Err(visitor.lang.t("env.delete_confirm"));
        return page_of(
            &visitor,
            &bureau,
            Some((StatusCode::UNPROCESSABLE_ENTITY, outcome)),
        )
        .await;
    }
    let seg = crate::console::pages::segment;
    let path = format!(
        "/api/v1/bureaus/{}/environments/{}",
        seg(&bureau),
        seg(&environment)
    );
    let reply = match visitor.api(Method::DELETE, &path, None).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if reply.status.is_success() {
        return see_page(&bureau, "deleting", &environment);
    }
    let outcome = Err(reply.detail(visitor.lang));
    page_of(&visitor, &bureau, Some((reply.status, outcome))).await
}

/// The kubeconfig form.
#[derive(Deserialize)]
pub struct KubeconfigForm {
    csrf: Option<String>,
    ttl: Option<String>,
}

/// `POST …/environments/{environment}/kubeconfig`: the kubeconfig, as a file to save.
pub async fn kubeconfig(
    visitor: Visitor,
    Path((bureau, environment)): Path<(String, String)>,
    Form(form): Form<KubeconfigForm>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let seg = crate::console::pages::segment;
    let path = format!(
        "/api/v1/bureaus/{}/environments/{}/kubeconfig",
        seg(&bureau),
        seg(&environment)
    );
    let body = json!({"ttl": form.ttl.filter(|t| !t.is_empty())});
    let reply = match visitor.api(Method::POST, &path, Some(&body)).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if reply.status != StatusCode::CREATED {
        let detail = reply.detail(visitor.lang);
        return page_of(&visitor, &bureau, Some((reply.status, Err(detail)))).await;
    }
    let file = reply.body["kubeconfig"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let disposition = format!("attachment; filename=\"{environment}.kubeconfig\"");
    (
        [
            (
                header::CONTENT_TYPE,
                "application/yaml; charset=utf-8".to_owned(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        file,
    )
        .into_response()
}

/// The resize form: new totals of the resources given (the others keep theirs).
#[derive(Deserialize)]
pub struct ResizeForm {
    csrf: Option<String>,
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    memory: String,
}

/// `POST …/environments/{environment}/resize`: changes its quota at once, or files a change
/// request when it grows beyond what the bureau has left, as the API decides.
pub async fn resize(
    visitor: Visitor,
    Path((bureau, environment)): Path<(String, String)>,
    Form(form): Form<ResizeForm>,
) -> Response {
    if let Err(refused) = visitor.check_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let lang = visitor.lang;
    let seg = crate::console::pages::segment;
    let path = format!(
        "/api/v1/bureaus/{}/environments/{}",
        seg(&bureau),
        seg(&environment)
    );
    let current = match visitor.read(&path).await {
        Ok(current) => current,
        Err(response) => return response,
    };
    let mut quota = current["quota"].as_object().cloned().unwrap_or_default();
    for (key, value) in [("cpu", &form.cpu), ("memory", &form.memory)] {
        if !value.trim().is_empty() {
            quota.insert(key.to_owned(), json!(value.trim()));
        }
    }
    let reply = match visitor
        .api(Method::PATCH, &path, Some(&json!({"quota": quota})))
        .await
    {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    match reply.status {
        StatusCode::ACCEPTED => see_page(&bureau, "resize-pending", &environment),
        status if status.is_success() => see_page(&bureau, "resized", &environment),
        _ => {
            let outcome = Err(lang.tf(
                "request.refused",
                &[("detail", &reply.detail(visitor.lang))],
            ));
            page_of(&visitor, &bureau, Some((reply.status, outcome))).await
        }
    }
}

/// The month's total of the bureau's statement, or, when it cannot be read, why not.
fn statement_total(lang: Lang, reply: &crate::console::Reply) -> (Option<String>, Option<String>) {
    if !reply.status.is_success() {
        let why = lang.tf("statement.unavailable", &[("detail", &reply.detail(lang))]);
        return (None, Some(why));
    }
    let total = reply.body["bureaus"]
        .as_array()
        .and_then(|b| b.first())
        .and_then(|b| b["amount"].as_str())
        .unwrap_or("0.00")
        .to_owned();
    (Some(total), None)
}

/// A decimal string of the API as a number for a chart; zero when it is not one.
fn number(value: &serde_json::Value) -> f64 {
    value.as_str().and_then(|a| a.parse().ok()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use serde_json::json;

    use super::*;
    use crate::console::Reply;

    fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
        Reply {
            status,
            raw: body.to_string().into(),
            body,
            headers: HeaderMap::new(),
        }
    }

    #[test]
    fn a_statement_that_cannot_be_read_says_why_instead_of_a_zero_total() {
        let refused = reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": "no rate card is in force"}),
        );
        let (total, why) = statement_total(Lang::En, &refused);
        assert_eq!(total, None);
        let why = why.expect("a reason");
        assert!(why.contains("no rate card is in force"), "{why}");
        let read = reply(StatusCode::OK, json!({"bureaus": [{"amount": "12.34"}]}));
        assert_eq!(
            statement_total(Lang::En, &read),
            (Some("12.34".to_owned()), None)
        );
        let empty = reply(StatusCode::OK, json!({"bureaus": []}));
        assert_eq!(statement_total(Lang::En, &empty).0.as_deref(), Some("0.00"));
    }

    #[test]
    fn a_form_that_succeeded_sends_the_browser_to_the_page_naming_only_a_known_outcome() {
        let link = Done::link("wjw", "created", "wjw-dev");
        assert_eq!(link, "/console/bureaus/wjw?done=created&name=wjw-dev");
        let done = |done: &str, name: &str| Done {
            done: Some(done.to_owned()),
            name: Some(name.to_owned()),
        };
        assert_eq!(
            done("created", "wjw-dev").notice(Lang::En).as_deref(),
            Some("Environment wjw-dev was created; its namespace is being prepared.")
        );
        assert!(
            done("deleting", "wjw-dev")
                .notice(Lang::Zh)
                .is_some_and(|n| n.contains("正在删除"))
        );
        // Words an address makes up are not shown.
        assert_eq!(done("hacked", "wjw-dev").notice(Lang::En), None);
        assert_eq!(done("created", "Call 12345 now").notice(Lang::En), None);
        assert_eq!(Done::default().notice(Lang::En), None);
    }
}
