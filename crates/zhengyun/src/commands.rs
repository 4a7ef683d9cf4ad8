//! The everyday commands of bureau IT staff (and the platform admin's approvals), so nobody
//! needs curl: they call the API with the token from `ZHENGYUN_TOKEN`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use crate::client::{ApiClient, Connection, segment};
use crate::terminal;

/// How to print answers.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// Options every API command shares.
#[derive(Clone, Debug, Args)]
pub struct Common {
    #[command(flatten)]
    connection: Connection,
    /// The bureau to act on; defaults to the token's own bureau.
    #[arg(long, env = "ZHENGYUN_BUREAU", global = true)]
    bureau: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', default_value = "table", global = true)]
    output: Output,
}

/// Quota amounts given on the command line.
#[derive(Clone, Debug, Default, Args)]
pub struct QuotaArgs {
    /// CPU cores, e.g. `2` or `500m`.
    #[arg(long)]
    cpu: Option<String>,
    /// Memory, e.g. `4Gi`.
    #[arg(long)]
    memory: Option<String>,
    /// Persistent storage, e.g. `20Gi`.
    #[arg(long)]
    storage: Option<String>,
    /// GPUs.
    #[arg(long)]
    gpu: Option<String>,
    /// Pods.
    #[arg(long)]
    pods: Option<String>,
}

impl QuotaArgs {
    fn to_json(&self) -> Value {
        let mut quota = Map::new();
        for (key, value) in [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("storage", &self.storage),
            ("gpu", &self.gpu),
            ("pods", &self.pods),
        ] {
            if let Some(value) = value {
                quota.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
        Value::Object(quota)
    }

    fn is_empty(&self) -> bool {
        self.to_json().as_object().is_none_or(Map::is_empty)
    }
}

/// The body of a quota request: the resources to change, each with its new total. One that
/// names no resource is refused before anything is sent.
fn quota_request(quota: &QuotaArgs, reason: &str) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !quota.is_empty(),
        "name the resources to change with at least one of --cpu, --memory, --storage, --gpu, \
         --pods; the others keep their quota"
    );
    Ok(json!({"quota": quota.to_json(), "reason": reason}))
}

/// Commands on a bureau's environments.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the bureau's environments with phase and quota.
    List,
    /// Show one environment with its conditions.
    Show {
        /// Environment name, e.g. `wjw-prod`.
        name: String,
    },
    /// Request a new environment (created at once if it fits, otherwise sent for approval).
    Request {
        /// `dev`, `test`, `staging` or `prod`.
        purpose: String,
        /// Name, if not `<bureau>-<purpose>` (e.g. `wjw-dev-2`).
        #[arg(long)]
        name: Option<String>,
        /// `gold`, `silver` or `bronze`.
        #[arg(long)]
        tier: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Change an environment's quota.
    Resize {
        /// Environment name.
        name: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Delete an environment and everything in its namespace.
    Delete {
        /// Environment name.
        name: String,
    },
}

/// Commands on change requests.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// List change requests (pending ones by default).
    List {
        /// `pending`, `approved`, `rejected` or `all`.
        #[arg(long, default_value = "pending")]
        state: String,
    },
    /// Approve a request and apply it (platform admin).
    Approve {
        /// Request id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a request (platform admin).
    Reject {
        /// Request id.
        id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
}

/// Commands on API tokens (platform admin).
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; its secret is printed once.
    Create {
        /// `platform-admin`, `bureau-admin`, `bureau-viewer`, `finance` or `auditor`.
        #[arg(long)]
        role: String,
        /// The bureau, for bureau roles.
        #[arg(long = "for-bureau")]
        for_bureau: Option<String>,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Days the token lives (the API's default, 90 days unless configured, when absent).
        #[arg(long = "lifetime-days")]
        lifetime_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// The API commands.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Request, list, show, resize and delete environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Show the bureau's quota, what is allocated and what is used.
    Quota,
    /// Ask a platform admin to change the bureau's quota.
    ///
    /// Name each resource to change with its new total (at least one); the others keep their
    /// quota.
    RequestQuota {
        #[command(flatten)]
        quota: QuotaArgs,
        /// Why the bureau needs it.
        #[arg(long)]
        reason: String,
    },
    /// Show a month's statement (this month by default).
    Statement {
        /// `YYYY-MM`.
        #[arg(long)]
        month: Option<String>,
        /// Print CSV instead (UTF-8 with BOM, for spreadsheets).
        #[arg(long)]
        csv: bool,
    },
    /// List, approve or reject change requests.
    #[command(subcommand)]
    Requests(RequestCommand),
    /// Show who the token belongs to.
    Whoami,
    /// Issue, list and revoke API tokens (platform admin).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log, or verify its hash chain (auditor, platform admin).
    Audit {
        #[command(subcommand)]
        verify: Option<AuditCommand>,
        /// Only this bureau's entries.
        #[arg(long = "of-bureau")]
        of_bureau: Option<String>,
        /// Only this action, e.g. `environment.create`.
        #[arg(long)]
        action: Option<String>,
        /// Only entries after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        /// At most this many entries (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and name the first broken entry.
    Verify,
}

impl ApiCommand {
    /// Runs the command and prints its answer.
    pub async fn run(self, common: Common) -> anyhow::Result<()> {
        let api = ApiClient::new(&common.connection)?;
        let out = common.output;
        match self {
            ApiCommand::Whoami => print(
                out,
                &api.get("/api/v1/whoami").await?.body,
                &[("token", "token"), ("role", "role"), ("bureau", "bureau")],
            ),
            ApiCommand::Env(command) => {
                let bureau = bureau_of(&api, common.bureau).await?;
                env(&api, &bureau, command, out).await
            }
            ApiCommand::Quota => {
                let bureau = bureau_of(&api, common.bureau).await?;
                let body = api
                    .get(&format!("/api/v1/bureaus/{}", segment(&bureau)))
                    .await?
                    .body;
                quota(out, &body);
                Ok(())
            }
            ApiCommand::RequestQuota { quota, reason } => {
                let body = quota_request(&quota, &reason)?;
                let bureau = bureau_of(&api, common.bureau).await?;
                let path = format!("/api/v1/bureaus/{}/quota-requests", segment(&bureau));
                let answer = api.send_json(Method::POST, &path, &body).await?;
                say(
                    out,
                    &answer.body,
                    &terminal::line(answer.body["message"].as_str().unwrap_or("")),
                );
                Ok(())
            }
            ApiCommand::Statement { month, csv } => {
                statement(&api, common.bureau, month, csv, out).await
            }
            ApiCommand::Requests(command) => requests(&api, command, out).await,
            ApiCommand::Token(command) => tokens(&api, command, out).await,
            ApiCommand::Audit {
                verify: Some(AuditCommand::Verify),
                ..
            } => {
                let body = api.get("/api/v1/audit/verify").await?.body;
                let seals = api.get("/api/v1/statements/verify").await?.body;
                let audit = if body["intact"] == true {
                    format!(
                        "the audit log is intact: {} entries verified",
                        text(&body["entries"])
                    )
                } else {
                    format!(
                        "the audit log is BROKEN at entry {}: {}",
                        text(&body["firstBrokenSeq"]),
                        text(&body["reason"])
                    )
                };
                let sealed = seals["sealed"].as_array().map_or(0, Vec::len);
                let unsealed = seals["unsealed"].as_array().map_or(0, Vec::len);
                let statements = if seals["intact"] == true {
                    format!(
                        "the closed statements are intact: {sealed} sealed months verified, \
                         {unsealed} closed before statements were sealed"
                    )
                } else {
                    format!(
                        "the closed statements are BROKEN at {}: {}",
                        text(&seals["firstBrokenMonth"]),
                        text(&seals["reason"])
                    )
                };
                let both = serde_json::json!({"audit": body, "statements": seals});
                say(out, &both, &format!("{audit}\n{statements}"));
                anyhow::ensure!(body["intact"] == true, "audit chain verification failed");
                anyhow::ensure!(
                    seals["intact"] == true,
                    "statement seal verification failed"
                );
                Ok(())
            }
            ApiCommand::Audit {
                verify: None,
                of_bureau,
                action,
                after,
                limit,
            } => {
                let mut query = vec![format!("limit={limit}")];
                if let Some(bureau) = of_bureau {
                    query.push(format!("bureau={}", segment(&bureau)));
                }
                if let Some(action) = action {
                    query.push(format!("action={}", segment(&action)));
                }
                if let Some(after) = after {
                    query.push(format!("after={after}"));
                }
                let answer = api
                    .get(&format!("/api/v1/audit?{}", query.join("&")))
                    .await?;
                let body = answer.body;
                if let Some(next) = answer.next {
                    // A page cut short by its size in bytes: say where the next one starts.
                    eprintln!("more entries follow: repeat with --after {next}");
                }
                table(
                    out,
                    &body,
                    &[
                        ("SEQ", "seq"),
                        ("AT", "at"),
                        ("PRINCIPAL", "principal"),
                        ("ROLE", "role"),
                        ("BUREAU", "bureau"),
                        ("ACTION", "action"),
                        ("OBJECT", "object"),
                        ("RESULT", "result"),
                        ("WHO", "principalLabel"),
                    ],
                );
                Ok(())
            }
        }
    }
}

/// The bureau to act on: the flag, or the token's own.
async fn bureau_of(api: &ApiClient, flag: Option<String>) -> anyhow::Result<String> {
    if let Some(bureau) = flag {
        return Ok(bureau);
    }
    let me = api.get("/api/v1/whoami").await?.body;
    me["bureau"]
        .as_str()
        .map(str::to_owned)
        .context("this token belongs to no bureau: pass --bureau or set ZHENGYUN_BUREAU")
}

const ENV_COLUMNS: [(&str, &str); 7] = [
    ("NAME", "name"),
    ("PURPOSE", "purpose"),
    ("TIER", "tier"),
    ("PHASE", "phase"),
    ("CPU", "quota.cpu"),
    ("MEMORY", "quota.memory"),
    ("STORAGE", "quota.storage"),
];

async fn env(
    api: &ApiClient,
    bureau: &str,
    command: EnvCommand,
    out: Output,
) -> anyhow::Result<()> {
    let base = format!("/api/v1/bureaus/{}/environments", segment(bureau));
    match command {
        EnvCommand::List => {
            let body = api.get_all(&base).await?;
            table(out, &body, &ENV_COLUMNS);
        }
        EnvCommand::Show { name } => {
            let body = api.get(&format!("{base}/{}", segment(&name))).await?.body;
            print(out, &body, &ENV_COLUMNS)?;
            if matches!(out, Output::Table) {
                for condition in body["conditions"].as_array().into_iter().flatten() {
                    println!(
                        "  {} = {} ({}): {}",
                        text(&condition["type"]),
                        text(&condition["status"]),
                        text(&condition["reason"]),
                        text(&condition["message"])
                    );
                }
            }
        }
        EnvCommand::Request {
            purpose,
            name,
            tier,
            quota,
        } => {
            let mut body = json!({"purpose": purpose, "quota": quota.to_json()});
            if let Some(name) = name {
                body["name"] = Value::String(name);
            }
            if let Some(tier) = tier {
                body["tier"] = Value::String(tier);
            }
            let answer = api.send_json(Method::POST, &base, &body).await?;
            if answer.status == http::StatusCode::ACCEPTED {
                say(
                    out,
                    &answer.body,
                    &terminal::line(answer.body["message"].as_str().unwrap_or("")),
                );
            } else {
                say(
                    out,
                    &answer.body,
                    &format!(
                        "environment {} requested; the operator admits it and creates its namespace \
                         (see `zhengyun env show {}`)",
                        text(&answer.body["name"]),
                        text(&answer.body["name"])
                    ),
                );
            }
        }
        EnvCommand::Resize { name, quota } => {
            anyhow::ensure!(
                !quota.is_empty(),
                "give at least one of --cpu, --memory, --storage, --gpu, --pods"
            );
            let path = format!("{base}/{}", segment(&name));
            let current = api.get(&path).await?.body;
            let mut merged = current["quota"].as_object().cloned().unwrap_or_default();
            if let Some(new) = quota.to_json().as_object() {
                merged.extend(new.clone());
            }
            let answer = api
                .send_json(Method::PATCH, &path, &json!({"quota": merged}))
                .await?;
            let message = match answer.status {
                http::StatusCode::ACCEPTED => {
                    answer.body["message"].as_str().unwrap_or("").to_owned()
                }
                _ => format!("environment {name} resized"),
            };
            say(out, &answer.body, &message);
        }
        EnvCommand::Delete { name } => {
            let answer = api.delete(&format!("{base}/{}", segment(&name))).await?;
            say(
                out,
                &answer.body,
                &format!("environment {name} is being deleted"),
            );
        }
    }
    Ok(())
}

async fn statement(
    api: &ApiClient,
    bureau: Option<String>,
    month: Option<String>,
    csv: bool,
    out: Output,
) -> anyhow::Result<()> {
    let mut path = "/api/v1/statements".to_owned();
    let mut query = Vec::new();
    if let Some(month) = month {
        query.push(format!("month={}", segment(&month)));
    }
    if let Some(bureau) = bureau {
        query.push(format!("bureau={}", segment(&bureau)));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    if csv {
        let answer = api.get_as(&path, "text/csv").await?;
        print!("{}", terminal::lines(&String::from_utf8_lossy(&answer.raw)));
        return Ok(());
    }
    let body = api.get(&path).await?.body;
    match out {
        Output::Json => println!("{}", pretty(&body)),
        Output::Table => {
            let standing = if body["status"] == "closed" {
                format!(
                    "closed at {} by {}, seal {}",
                    text(&body["closedAt"]),
                    text(&body["closedBy"]),
                    text(&body["seal"])
                )
            } else {
                format!(
                    "PROVISIONAL: the ledger covers the month until {}; it may still change",
                    text(&body["coveredUntil"])
                )
            };
            println!(
                "month {}  currency {}  {}",
                text(&body["month"]),
                text(&body["currency"]),
                standing
            );
            table(
                out,
                &body["bureaus"],
                &[
                    ("BUREAU", "bureau"),
                    ("NAME", "displayName"),
                    ("AMOUNT", "amount"),
                    ("ADJUSTMENTS", "adjustmentsAmount"),
                    ("PAYABLE", "payable"),
                    ("BUDGET", "budget.budget"),
                    ("USED", "budget.ratio"),
                    ("LEVEL", "budget.level"),
                ],
            );
            println!(
                "total {} {}, payable with adjustments {} {} ({})",
                text(&body["platform"]["amount"]),
                text(&body["currency"]),
                text(&body["platform"]["payable"]),
                text(&body["currency"]),
                text(&body["status"])
            );
        }
    }
    Ok(())
}

async fn requests(api: &ApiClient, command: RequestCommand, out: Output) -> anyhow::Result<()> {
    match command {
        RequestCommand::List { state } => {
            let path = match state.as_str() {
                "all" => "/api/v1/requests".to_owned(),
                s => format!("/api/v1/requests?state={}", segment(s)),
            };
            let body = api.get_all(&path).await?;
            table(
                out,
                &body,
                &[
                    ("ID", "id"),
                    ("KIND", "kind"),
                    ("BUREAU", "bureau"),
                    ("OBJECT", "object"),
                    ("STATE", "state"),
                    ("NOTE", "note"),
                ],
            );
        }
        RequestCommand::Approve { id, reason } => {
            let path = format!("/api/v1/requests/{}/approve", segment(&id));
            let answer = api
                .send_json(Method::POST, &path, &json!({"reason": reason}))
                .await?;
            say(
                out,
                &answer.body,
                &format!("request {id} approved and applied"),
            );
        }
        RequestCommand::Reject { id, reason } => {
            let path = format!("/api/v1/requests/{}/reject", segment(&id));
            let answer = api
                .send_json(Method::POST, &path, &json!({"reason": reason}))
                .await?;
            say(out, &answer.body, &format!("request {id} rejected"));
        }
    }
    Ok(())
}

async fn tokens(api: &ApiClient, command: TokenCommand, out: Output) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            role,
            for_bureau,
            description,
            lifetime_days,
        } => {
            let mut body = json!({"role": role, "bureau": for_bureau, "description": description});
            if let Some(days) = lifetime_days {
                body["lifetimeDays"] = json!(days);
            }
            let answer = api.send_json(Method::POST, "/api/v1/tokens", &body).await?;
            say(
                out,
                &answer.body,
                &format!(
                    "token {} issued, expires {}; its secret is shown once:\n{}",
                    text(&answer.body["id"]),
                    text(&answer.body["expiresAt"]),
                    text(&answer.body["secret"])
                ),
            );
        }
        TokenCommand::List => {
            let body = api.get_all("/api/v1/tokens").await?;
            table(
                out,
                &body,
                &[
                    ("ID", "id"),
                    ("ROLE", "role"),
                    ("BUREAU", "bureau"),
                    ("CREATED", "createdAt"),
                    ("EXPIRES", "expiresAt"),
                    ("REVOKED", "revokedAt"),
                    ("DESCRIPTION", "description"),
                ],
            );
        }
        TokenCommand::Revoke { id } => {
            let answer = api
                .delete(&format!("/api/v1/tokens/{}", segment(&id)))
                .await?;
            say(out, &answer.body, &format!("token {id} revoked"));
        }
    }
    Ok(())
}

fn quota(out: Output, bureau: &Value) {
    if matches!(out, Output::Json) {
        println!("{}", pretty(bureau));
        return;
    }
    println!(
        "{} ({})",
        text(&bureau["displayName"]),
        text(&bureau["name"])
    );
    let resources = ["cpu", "memory", "storage", "gpu", "pods"];
    let rows: Vec<Value> = resources
        .iter()
        .filter(|r| {
            !bureau["quota"][**r].is_null() || !bureau["status"]["allocated"][**r].is_null()
        })
        .map(|r| {
            json!({
                "resource": r,
                "quota": bureau["quota"][*r],
                "allocated": bureau["status"]["allocated"][*r],
                "used": bureau["status"]["used"][*r],
            })
        })
        .collect();
    table(
        out,
        &Value::Array(rows),
        &[
            ("RESOURCE", "resource"),
            ("QUOTA", "quota"),
            ("ALLOCATED", "allocated"),
            ("USED", "used"),
        ],
    );
}

fn say(out: Output, body: &Value, message: &str) {
    match out {
        Output::Json => println!("{}", pretty(body)),
        Output::Table => println!("{}", terminal::lines(message)),
    }
}

fn print(out: Output, body: &Value, columns: &[(&str, &str)]) -> anyhow::Result<()> {
    match out {
        Output::Json => println!("{}", pretty(body)),
        Output::Table => table(out, &Value::Array(vec![body.clone()]), columns),
    }
    Ok(())
}

fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| &v[key])
}

/// A value as one table cell or line: what it hides from a terminal escaped
/// ([`terminal::line`]).
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => terminal::line(s).into_owned(),
        other => terminal::line(&other.to_string()).into_owned(),
    }
}

/// A value as pretty JSON, with what it hides from a terminal escaped ([`terminal::json`]).
fn pretty(value: &Value) -> String {
    let document = serde_json::to_string_pretty(value).unwrap_or_default();
    terminal::json(&document).into_owned()
}

/// Display width: CJK characters take two columns in a terminal.
fn width(text: &str) -> usize {
    text.chars()
        .map(|c| {
            if ('\u{1100}'..='\u{ffdc}').contains(&c) && !c.is_ascii() {
                2
            } else {
                1
            }
        })
        .sum()
}

fn table(out: Output, rows: &Value, columns: &[(&str, &str)]) {
    if matches!(out, Output::Json) {
        println!("{}", pretty(rows));
        return;
    }
    let rows: Vec<Vec<String>> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            columns
                .iter()
                .map(|(_, path)| text(lookup(row, path)))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|(title, _)| title.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            text.push_str(cell);
            text.push_str(&" ".repeat(w - width(cell) + 2));
        }
        println!("{}", text.trim_end());
    };
    line(
        columns
            .iter()
            .map(|(title, _)| (*title).to_owned())
            .collect(),
    );
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_control_and_format_characters_escaped() {
        let name = json!("区卫生\u{202E}委员会\u{1B}[2J\u{200B}\n");
        assert_eq!(
            text(&name),
            "区卫生\\u{202e}委员会\\u{1b}[2J\\u{200b}\\u{a}"
        );
        assert_eq!(
            text(&json!("海淀区 卫生健康委员会（试点）")),
            "海淀区 卫生健康委员会（试点）"
        );
    }

    #[test]
    fn messages_from_the_server_show_control_and_format_characters_escaped() {
        let body = json!({
            "title": "Invalid\u{1B}]0;pwned\u{7}",
            "detail": "bureau \u{2066}hd\u{2069} exists",
            "errors": [
                {"field": "a", "message": "x\ny"},
                {"field": "b\u{FEFF}", "message": "z"},
            ],
            "requestId": "r\u{202E}1",
        });
        let message = crate::client::describe_problem(http::StatusCode::CONFLICT, &body);
        assert!(
            !message
                .chars()
                .any(|c| c != '\n' && zhengyun_model::names::hides_text(c)),
            "{message:?}"
        );
        assert_eq!(message.lines().count(), 4, "{message}");
        assert!(
            message.contains("bureau \\u{2066}hd\\u{2069} exists"),
            "{message}"
        );
    }

    #[test]
    fn json_output_escapes_format_characters_and_stays_the_same_json() {
        let value = json!({"displayName": "区\u{202E}卫\u{E0001}", "n": 1});
        let printed = pretty(&value);
        assert!(
            !printed
                .chars()
                .any(|c| c != '\n' && zhengyun_model::names::hides_text(c)),
            "{printed}"
        );
        assert_eq!(serde_json::from_str::<Value>(&printed).ok(), Some(value));
    }

    #[test]
    fn chinese_characters_take_two_columns() {
        assert_eq!(width("wjw"), 3);
        assert_eq!(width("卫健委"), 6);
        assert_eq!(width("区卫生健康委员会 (wjw)"), 22);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("wjw-prod"), "wjw-prod");
        assert_eq!(segment("卫"), "%E5%8D%AB");
        assert_eq!(segment("a/b"), "a%2Fb");
    }

    #[test]
    fn a_quota_request_that_names_no_resource_is_refused_before_it_is_sent() {
        let error = quota_request(&QuotaArgs::default(), "扩容").expect_err("refused");
        assert!(error.to_string().contains("--cpu"), "{error}");
        let named = QuotaArgs {
            cpu: Some("32".into()),
            ..Default::default()
        };
        assert_eq!(
            quota_request(&named, "扩容").expect("a body"),
            json!({"quota": {"cpu": "32"}, "reason": "扩容"})
        );
    }

    #[test]
    fn only_the_given_quota_flags_are_sent() {
        let quota = QuotaArgs {
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
            ..Default::default()
        };
        assert_eq!(quota.to_json(), json!({"cpu": "2", "memory": "4Gi"}));
        assert!(QuotaArgs::default().is_empty());
    }
}
