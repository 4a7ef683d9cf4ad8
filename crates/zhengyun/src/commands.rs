//! The everyday commands of bureau IT staff (and the platform admin's approvals), so nobody
//! needs curl: they call the API with the token from `ZHENGYUN_TOKEN`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};
use zhengyun_contract::{
    AuditView, AvailabilityView, BureauView, CreateEnvironment, CreateToken, Decision,
    EnvironmentView, IssueKubeconfig, IssuedKubeconfig, IssuedToken, KubeconfigView, Pending,
    PoolView, QuotaBody, QuotaIncrease, ReclaimView, RequestView, RightSizingView, SliceView,
    TokenView, UpdateEnvironment, Verification, WhoAmI,
    evaluation::{
        AnnualEvaluation, BureauEfficiencyView, BureauEvaluation, DailyCostsView, DayCostView,
        EfficiencyReport, ResourceEfficiencyView, ResourceRecommendation,
    },
    statements::{
        BureauTotalView, SealVerificationView, ServiceCreditView, SettlementLineView, Standing,
        StatementView,
    },
};
use zhengyun_model::quantity::Resource;

use crate::client::{ApiClient, Connection, decode, segment};
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

/// Quota amounts given on the command line, one flag per quota resource.
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
    /// Services of type LoadBalancer.
    #[arg(long)]
    loadbalancers: Option<String>,
    /// Persistent volume claims.
    #[arg(long)]
    persistentvolumeclaims: Option<String>,
    /// Services.
    #[arg(long)]
    services: Option<String>,
}

/// The quota flags, for messages.
const QUOTA_FLAGS: &str = "--cpu, --memory, --storage, --gpu, --pods, --loadbalancers, \
                           --persistentvolumeclaims, --services";

impl QuotaArgs {
    /// The resources given, as the API's quota.
    fn body(&self) -> QuotaBody {
        QuotaBody {
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            storage: self.storage.clone(),
            gpu: self.gpu.clone(),
            pods: self.pods.clone(),
            loadbalancers: self.loadbalancers.clone(),
            persistentvolumeclaims: self.persistentvolumeclaims.clone(),
            services: self.services.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.body().is_empty()
    }
}

/// The body of a quota request: the resources to change, each with its new total. One that
/// names no resource is refused before anything is sent.
fn quota_request(quota: &QuotaArgs, reason: &str) -> anyhow::Result<QuotaIncrease> {
    anyhow::ensure!(
        !quota.is_empty(),
        "name the resources to change with at least one of {QUOTA_FLAGS}; the others keep \
         their quota"
    );
    Ok(QuotaIncrease {
        quota: quota.body(),
        reason: reason.to_owned(),
    })
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
    /// Show an environment's measured availability this month (or `--month`), the credit it
    /// earns so far, and every minute it was unavailable with the cause.
    Availability {
        /// Environment name.
        name: String,
        /// `YYYY-MM`.
        #[arg(long)]
        month: Option<String>,
    },
    /// Print a kubeconfig for the environment's namespace (tenant-admin for a bureau admin,
    /// tenant-viewer for a viewer) that works for `--ttl`: `zhengyun env kubeconfig wjw-dev >
    /// wjw-dev.kubeconfig`.
    Kubeconfig {
        /// Environment name.
        name: String,
        /// How long it works: `30m`, `2h`, `8h` (the platform's default, 8 hours unless it
        /// chose another, cut to what is left of your sign-in or token; at most the platform's
        /// maximum, 24 hours unless it chose another, and never past your sign-in or token).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List the kubeconfigs issued for an environment (never their tokens).
    Kubeconfigs {
        /// Environment name.
        name: String,
    },
    /// Revoke a kubeconfig issued for an environment: it stops working within seconds.
    RevokeKubeconfig {
        /// Environment name.
        name: String,
        /// The kubeconfig's id (`zhengyun env kubeconfigs NAME`).
        id: String,
    },
    /// Show the quota an environment's last 30 days of consumption call for, and what it would
    /// save a month; `--apply` resizes the environment to it.
    Rightsize {
        /// Environment name.
        name: String,
        /// Resize the environment to the recommendation (a change request when it grows
        /// beyond what the bureau has left).
        #[arg(long)]
        apply: bool,
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
    /// List the burst pods whose room was taken back in a month (this month by default): who
    /// borrowed, who got the room back, how long it took.
    Reclaims {
        /// `YYYY-MM`.
        #[arg(long)]
        month: Option<String>,
    },
    /// Show efficiency and idle cost over a range (this month so far by default): reserved
    /// against consumed, and what the idle reservations cost, with the bureaus ranked by it.
    Efficiency {
        #[command(flatten)]
        range: RangeArgs,
        /// Show each environment's resources too.
        #[arg(long)]
        environments: bool,
        /// Print CSV instead (one row per environment and resource).
        #[arg(long)]
        csv: bool,
    },
    /// Show what the bureau's reservations and consumption cost day by day (this month so far
    /// by default). Each day is rounded on its own; the month's statement is what is owed.
    Costs {
        #[command(flatten)]
        range: RangeArgs,
        /// Print CSV instead (one row per day).
        #[arg(long)]
        csv: bool,
    },
    /// Show the capacity pool against the bureaus' quotas: capacity, what quotas may add up to
    /// (with overcommit), what is allocated and what is left (platform admins, finance,
    /// auditors).
    Pool,
    /// Show the annual performance evaluation (this year by default): spending against budget
    /// by month, efficiency and idle cost, availability against objectives with the credits
    /// received, borrowed and lent capacity, and the bureaus ranked by idle cost.
    Evaluation {
        /// The year.
        #[arg(long)]
        year: Option<i16>,
        /// Print CSV instead (a row per bureau and month, per bureau for the year, and the
        /// district's).
        #[arg(long)]
        csv: bool,
    },
    /// List, approve or reject change requests.
    #[command(subcommand)]
    Requests(RequestCommand),
    /// Show who the token belongs to.
    Whoami,
    /// Sign in with the district's identity provider: prints an address to open in a browser
    /// (or, with `--device`, a code to enter on any device) and keeps the session for the
    /// commands that follow, for this API.
    Login {
        /// The identity provider's issuer URL, when the API accepts more than one.
        #[arg(long)]
        issuer: Option<String>,
        /// Sign in with a code entered on another device, for machines without a browser.
        #[arg(long)]
        device: bool,
    },
    /// Forget the signed-in session.
    Logout,
    /// Print the signed-in session's token as a kubectl credential (an `ExecCredential`), for
    /// a kubeconfig's `exec` user: `kubectl` then uses the same sign-in.
    Credential,
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
        let out = common.output;
        match self {
            ApiCommand::Login { issuer, device } => {
                return sign_in(&common.connection, issuer.as_deref(), device, out).await;
            }
            ApiCommand::Logout => {
                let had = crate::login::forget_session()?;
                say(
                    out,
                    &json!({"signedOut": had}),
                    if had { "signed out" } else { "not signed in" },
                );
                return Ok(());
            }
            ApiCommand::Credential => return credential(&common.connection).await,
            _ => {}
        }
        let api = ApiClient::connect(&common.connection).await?;
        match self {
            ApiCommand::Login { .. } | ApiCommand::Logout | ApiCommand::Credential => Ok(()),
            ApiCommand::Whoami => {
                let answer = api.get("/api/v1/whoami").await?;
                let me: WhoAmI = answer.decode()?;
                let columns: [Column<WhoAmI>; 3] = [
                    ("token", |m| Some(m.token.clone())),
                    ("role", |m| Some(m.role.clone())),
                    ("bureau", |m| m.bureau.clone()),
                ];
                show(out, &answer.body, &[me], &columns);
                Ok(())
            }
            ApiCommand::Env(command) => {
                let bureau = bureau_of(&api, common.bureau).await?;
                env(&api, &bureau, command, out).await
            }
            ApiCommand::Quota => {
                let bureau = bureau_of(&api, common.bureau).await?;
                let answer = api
                    .get(&format!("/api/v1/bureaus/{}", segment(&bureau)))
                    .await?;
                quota(out, &answer.body, &answer.decode()?);
                Ok(())
            }
            ApiCommand::RequestQuota { quota, reason } => {
                let body = quota_request(&quota, &reason)?;
                let bureau = bureau_of(&api, common.bureau).await?;
                let path = format!("/api/v1/bureaus/{}/quota-requests", segment(&bureau));
                let answer = api.send_json(Method::POST, &path, &body).await?;
                let pending: Pending = answer.decode()?;
                say(out, &answer.body, &terminal::line(&pending.message));
                Ok(())
            }
            ApiCommand::Statement { month, csv } => {
                statement(&api, common.bureau, month, csv, out).await
            }
            ApiCommand::Reclaims { month } => reclaims(&api, common.bureau, month, out).await,
            ApiCommand::Efficiency {
                range,
                environments,
                csv,
            } => {
                let mut query = range.query();
                if let Some(bureau) = common.bureau {
                    query.push(format!("bureau={}", segment(&bureau)));
                }
                let path = if query.is_empty() {
                    "/api/v1/efficiency".to_owned()
                } else {
                    format!("/api/v1/efficiency?{}", query.join("&"))
                };
                efficiency(&api, &path, environments, csv, out).await
            }
            ApiCommand::Costs { range, csv } => {
                let bureau = bureau_of(&api, common.bureau).await?;
                let query = range.query();
                let mut path = format!("/api/v1/bureaus/{}/costs", segment(&bureau));
                if !query.is_empty() {
                    path = format!("{path}?{}", query.join("&"));
                }
                costs(&api, &path, csv, out).await
            }
            ApiCommand::Pool => {
                let answer = api.get("/api/v1/pool").await?;
                let pool: PoolView = answer.decode()?;
                say(out, &answer.body, &pool_report(&pool));
                Ok(())
            }
            ApiCommand::Evaluation { year, csv } => {
                let mut query = Vec::new();
                if let Some(year) = year {
                    query.push(format!("year={year}"));
                }
                if let Some(bureau) = common.bureau {
                    query.push(format!("bureau={}", segment(&bureau)));
                }
                let path = if query.is_empty() {
                    "/api/v1/evaluation".to_owned()
                } else {
                    format!("/api/v1/evaluation?{}", query.join("&"))
                };
                evaluation(&api, &path, csv, out).await
            }
            ApiCommand::Requests(command) => requests(&api, command, out).await,
            ApiCommand::Token(command) => tokens(&api, command, out).await,
            ApiCommand::Audit {
                verify: Some(AuditCommand::Verify),
                ..
            } => {
                let chain = api.get("/api/v1/audit/verify").await?;
                let seals = api.get("/api/v1/statements/verify").await?;
                let audit: Verification = chain.decode()?;
                let statements: SealVerificationView = seals.decode()?;
                let both = json!({"audit": chain.body, "statements": seals.body});
                say(out, &both, &verification_report(&audit, &statements));
                anyhow::ensure!(audit.intact, "audit chain verification failed");
                anyhow::ensure!(statements.intact, "statement seal verification failed");
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
                if let Some(next) = &answer.next {
                    // More entries match after this page: say where the next one starts.
                    eprintln!("more entries follow: repeat with --after {next}");
                }
                let entries: Vec<AuditView> = answer.decode()?;
                let columns: [Column<AuditView>; 9] = [
                    ("SEQ", |e| Some(e.seq.to_string())),
                    ("AT", |e| Some(e.at.clone())),
                    ("PRINCIPAL", |e| Some(e.principal.clone())),
                    ("ROLE", |e| e.role.clone()),
                    ("BUREAU", |e| e.bureau.clone()),
                    ("ACTION", |e| Some(e.action.clone())),
                    ("OBJECT", |e| Some(e.object.clone())),
                    ("RESULT", |e| Some(e.result.clone())),
                    ("WHO", |e| e.principal_label.clone()),
                ];
                show(out, &answer.body, &entries, &columns);
                Ok(())
            }
        }
    }
}

/// What verifying the audit chain and the statement seals found, in two lines.
fn verification_report(audit: &Verification, seals: &SealVerificationView) -> String {
    let audit = if audit.intact {
        format!(
            "the audit log is intact: {} entries verified",
            cell(audit.entries.map(|n| n.to_string()))
        )
    } else {
        format!(
            "the audit log is BROKEN at entry {}: {}",
            cell(audit.first_broken_seq.map(|n| n.to_string())),
            cell(audit.reason.clone())
        )
    };
    let statements = if seals.intact {
        format!(
            "the closed statements are intact: {} sealed months verified, {} closed before \
             statements were sealed",
            seals.sealed.len(),
            seals.unsealed.len()
        )
    } else {
        format!(
            "the closed statements are BROKEN at {}: {}",
            cell(seals.first_broken_month.clone()),
            cell(seals.reason.clone())
        )
    };
    format!("{audit}\n{statements}")
}

/// The bureau to act on: the flag, or the token's own.
async fn bureau_of(api: &ApiClient, flag: Option<String>) -> anyhow::Result<String> {
    if let Some(bureau) = flag {
        return Ok(bureau);
    }
    let me: WhoAmI = api.get("/api/v1/whoami").await?.decode()?;
    me.bureau
        .context("this token belongs to no bureau: pass --bureau or set ZHENGYUN_BUREAU")
}

const ENV_COLUMNS: [Column<EnvironmentView>; 7] = [
    ("NAME", |e| Some(e.name.clone())),
    ("PURPOSE", |e| Some(e.purpose.clone())),
    ("TIER", |e| Some(e.tier.clone())),
    ("PHASE", |e| Some(e.phase.clone())),
    ("CPU", |e| e.quota.cpu.clone()),
    ("MEMORY", |e| e.quota.memory.clone()),
    ("STORAGE", |e| e.quota.storage.clone()),
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
            let environments: Vec<EnvironmentView> = decode(&body)?;
            show(out, &body, &environments, &ENV_COLUMNS);
        }
        EnvCommand::Show { name } => {
            let answer = api.get(&format!("{base}/{}", segment(&name))).await?;
            let environment: EnvironmentView = answer.decode()?;
            show(
                out,
                &answer.body,
                std::slice::from_ref(&environment),
                &ENV_COLUMNS,
            );
            if matches!(out, Output::Table) {
                for condition in &environment.conditions {
                    println!(
                        "  {} = {} ({}): {}",
                        terminal::line(&condition.kind),
                        terminal::line(&condition.status),
                        terminal::line(&condition.reason),
                        terminal::line(&condition.message)
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
            let body = CreateEnvironment {
                name,
                purpose,
                tier,
                quota: quota.body(),
                services: Vec::new(),
                expires_at: None,
            };
            let answer = api.send_json(Method::POST, &base, &body).await?;
            let message = if answer.status == http::StatusCode::ACCEPTED {
                terminal::line(&answer.decode::<Pending>()?.message).into_owned()
            } else {
                let created: EnvironmentView = answer.decode()?;
                let name = terminal::line(&created.name);
                format!(
                    "environment {name} requested; the operator admits it and creates its \
                     namespace (see `zhengyun env show {name}`)"
                )
            };
            say(out, &answer.body, &message);
        }
        EnvCommand::Resize { name, quota } => {
            anyhow::ensure!(!quota.is_empty(), "give at least one of {QUOTA_FLAGS}");
            let path = format!("{base}/{}", segment(&name));
            let current: EnvironmentView = api.get(&path).await?.decode()?;
            let body = UpdateEnvironment {
                quota: Some(current.quota.merged_with(&quota.body())),
                services: None,
            };
            let answer = api.send_json(Method::PATCH, &path, &body).await?;
            let message = match answer.status {
                http::StatusCode::ACCEPTED => answer.decode::<Pending>()?.message,
                _ => format!("environment {name} resized"),
            };
            say(out, &answer.body, &message);
        }
        EnvCommand::Availability { name, month } => {
            let mut path = format!("{base}/{}/availability", segment(&name));
            if let Some(month) = month {
                path = format!("{path}?month={}", segment(&month));
            }
            let answer = api.get(&path).await?;
            if matches!(out, Output::Json) {
                println!("{}", pretty(&answer.body));
                return Ok(());
            }
            let view: AvailabilityView = answer.decode()?;
            println!(
                "{} {}: {} of {} minutes bad, availability {} % (objective {} %), credit {} %",
                terminal::line(&view.environment),
                terminal::line(&view.month),
                view.bad_minutes,
                view.measured_minutes,
                cell(view.availability.clone()),
                cell(view.objective.clone()),
                view.credit_percent
            );
            let columns: [Column<SliceView>; 4] = [
                ("MINUTE", |s| Some(s.minute.clone())),
                ("COUNTED", |s| Some(s.counted.to_string())),
                ("CAUSE", |s| Some(s.cause.clone())),
                ("DETAIL", |s| Some(s.detail.clone())),
            ];
            table(&view.slices, &columns);
        }
        EnvCommand::Kubeconfig { name, ttl } => {
            let path = format!("{base}/{}/kubeconfig", segment(&name));
            let answer = api
                .send_json(Method::POST, &path, &IssueKubeconfig { ttl })
                .await?;
            if matches!(out, Output::Json) {
                println!("{}", pretty(&answer.body));
                return Ok(());
            }
            let issued: IssuedKubeconfig = answer.decode()?;
            // The file on standard output, what it is on standard error: redirecting the first
            // to a file gives a kubeconfig and nothing else.
            print!("{}", issued.kubeconfig);
            eprintln!(
                "kubeconfig {} for namespace {} ({} access), valid until {}",
                terminal::line(&issued.id),
                terminal::line(&issued.namespace),
                terminal::line(&issued.access),
                terminal::line(&issued.expires_at)
            );
        }
        EnvCommand::Kubeconfigs { name } => {
            let path = format!("{base}/{}/kubeconfigs", segment(&name));
            let answer = api.get(&path).await?;
            let issued: Vec<KubeconfigView> = answer.decode()?;
            let columns: [Column<KubeconfigView>; 6] = [
                ("ID", |k| Some(k.id.clone())),
                ("ACCESS", |k| Some(k.access.clone())),
                ("STATE", |k| Some(k.state.clone())),
                ("ISSUED TO", |k| Some(k.issued_to.clone())),
                ("ISSUED", |k| Some(k.issued_at.clone())),
                ("EXPIRES", |k| Some(k.expires_at.clone())),
            ];
            show(out, &answer.body, &issued, &columns);
        }
        EnvCommand::RevokeKubeconfig { name, id } => {
            let path = format!("{base}/{}/kubeconfigs/{}", segment(&name), segment(&id));
            let answer = api.delete(&path).await?;
            say(
                out,
                &answer.body,
                &format!("kubeconfig {id} of {name} revoked; it stops working within seconds"),
            );
        }
        EnvCommand::Rightsize { name, apply } => {
            let path = format!("{base}/{}/rightsizing", segment(&name));
            let answer = api.get(&path).await?;
            let view: RightSizingView = answer.decode()?;
            if !apply {
                if matches!(out, Output::Json) {
                    println!("{}", pretty(&answer.body));
                } else {
                    rightsizing(&view);
                }
                return Ok(());
            }
            let answer = api.send_json(Method::POST, &path, &json!({})).await?;
            let message = match answer.status {
                http::StatusCode::ACCEPTED => answer.decode::<Pending>()?.message,
                _ => format!(
                    "environment {name} resized to its recommendation, saving {} {} a month",
                    terminal::line(&view.monthly_saving),
                    terminal::line(&view.currency)
                ),
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

/// `zhengyun login`: signs in and says as whom.
async fn sign_in(
    connection: &Connection,
    issuer: Option<&str>,
    device: bool,
    out: Output,
) -> anyhow::Result<()> {
    let http = connection.http()?;
    let flow = if device {
        crate::login::Flow::Device
    } else {
        crate::login::Flow::Browser
    };
    let session = crate::login::login(&http, &connection.base(), issuer, flow).await?;
    let signed_in = Connection {
        token: Some(session.id_token.clone()),
        ..connection.clone()
    };
    let me: WhoAmI = ApiClient::connect(&signed_in)
        .await?
        .get("/api/v1/whoami")
        .await?
        .decode()?;
    let scope = me
        .bureau
        .as_deref()
        .map(|b| format!(" of {b}"))
        .unwrap_or_default();
    say(
        out,
        &serde_json::to_value(&me)?,
        &format!(
            "signed in as {} ({}{scope}) until {}",
            terminal::line(&me.token),
            terminal::line(&me.role),
            terminal::line(&me.expires_at)
        ),
    );
    Ok(())
}

/// `zhengyun credential`: the session's token as a `client.authentication.k8s.io/v1`
/// ExecCredential.
async fn credential(connection: &Connection) -> anyhow::Result<()> {
    let http = connection.http()?;
    let base = connection.base();
    let token = crate::login::session_token(&http, &base)
        .await?
        .with_context(|| format!("not signed in to {base}: run `zhengyun login`"))?;
    let session = crate::login::load_session()?.context("not signed in: run `zhengyun login`")?;
    let expires = jiff::Timestamp::from_second(session.expires_at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    println!(
        "{}",
        json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": token, "expirationTimestamp": expires},
        })
    );
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
        print_csv(&api.get_as(&path, "text/csv").await?.raw);
        return Ok(());
    }
    let answer = api.get(&path).await?;
    if matches!(out, Output::Json) {
        println!("{}", pretty(&answer.body));
        return Ok(());
    }
    let statement: StatementView = answer.decode()?;
    let (status, standing) = match &statement.standing {
        Standing::Closed {
            closed_at,
            closed_by,
        } => (
            "closed",
            format!(
                "closed at {} by {}, seal {}",
                terminal::line(closed_at),
                terminal::line(closed_by),
                cell(statement.seal.clone())
            ),
        ),
        Standing::Provisional { covered_until } => (
            "provisional",
            format!(
                "PROVISIONAL: the ledger covers the month until {}; it may still change",
                cell(covered_until.clone())
            ),
        ),
    };
    let currency = terminal::line(&statement.currency);
    println!(
        "month {}  currency {currency}  {standing}",
        terminal::line(&statement.month)
    );
    let columns: [Column<BureauTotalView>; 10] = [
        ("BUREAU", |b| Some(b.bureau.clone())),
        ("NAME", |b| b.display_name.clone()),
        ("AMOUNT", |b| Some(b.amount.clone())),
        ("BURST/LENT", |b| b.settlement_amount.clone()),
        ("SLA CREDIT", |b| b.service_credits_amount.clone()),
        ("ADJUSTMENTS", |b| b.adjustments_amount.clone()),
        ("PAYABLE", |b| b.payable.clone()),
        ("BUDGET", |b| b.budget.as_ref().map(|b| b.budget.clone())),
        ("USED", |b| b.budget.as_ref().and_then(|b| b.ratio.clone())),
        ("LEVEL", |b| b.budget.as_ref().map(|b| b.level.clone())),
    ];
    table(&statement.bureaus, &columns);
    if !statement.settlement.is_empty() {
        println!("borrowed capacity settled ({currency}; lent is a credit):");
        let columns: [Column<SettlementLineView>; 7] = [
            ("KIND", |l| Some(l.role.clone())),
            ("BUREAU", |l| l.bureau.clone()),
            ("ENVIRONMENT", |l| l.environment.clone()),
            ("RESOURCE", |l| Some(l.resource.clone())),
            ("QUANTITY", |l| Some(l.quantity.clone())),
            ("UNIT", |l| Some(l.unit.clone())),
            ("AMOUNT", |l| Some(l.amount.clone())),
        ];
        table(&statement.settlement, &columns);
    }
    if !statement.service_credits.is_empty() {
        println!("service credits ({currency}; an environment below its tier's objective):");
        let columns: [Column<ServiceCreditView>; 7] = [
            ("BUREAU", |c| Some(c.bureau.clone())),
            ("ENVIRONMENT", |c| Some(c.environment.clone())),
            ("OBJECTIVE %", |c| Some(c.objective.clone())),
            ("AVAILABILITY %", |c| Some(c.availability.clone())),
            ("BAD MINUTES", |c| {
                Some(format!("{} of {}", c.bad_minutes, c.measured_minutes))
            }),
            ("CREDIT", |c| {
                Some(format!("{}% of {}", c.credit_percent, c.charges))
            }),
            ("AMOUNT", |c| Some(c.amount.clone())),
        ];
        table(&statement.service_credits, &columns);
    }
    println!(
        "total {} {currency}, payable with borrowing, credits and adjustments {} {currency} ({status})",
        terminal::line(&statement.platform.amount),
        terminal::line(&statement.platform.payable),
    );
    Ok(())
}

/// Prints a right-sizing recommendation as a table.
fn rightsizing(view: &RightSizingView) {
    println!(
        "{}: p{} of consumption over {} .. {}, plus {} %",
        terminal::line(&view.environment),
        view.percentile,
        terminal::line(&view.from),
        terminal::line(&view.to),
        view.margin_percent
    );
    let columns: [Column<ResourceRecommendation>; 7] = [
        ("RESOURCE", |r| Some(r.resource.clone())),
        ("QUOTA", |r| Some(r.current.clone())),
        ("USED (P95)", |r| r.percentile_used.clone()),
        ("PEAK", |r| r.peak.clone()),
        ("RECOMMENDED", |r| r.recommended.clone()),
        ("SAVING/MONTH", |r| r.monthly_saving.clone()),
        ("NOTE", |r| r.reason.clone()),
    ];
    table(&view.resources, &columns);
    println!(
        "saving {} {} a month; apply with `zhengyun env rightsize {} --apply`",
        terminal::line(&view.monthly_saving),
        terminal::line(&view.currency),
        terminal::line(&view.environment)
    );
}

async fn efficiency(
    api: &ApiClient,
    path: &str,
    environments: bool,
    csv: bool,
    out: Output,
) -> anyhow::Result<()> {
    let Some(answer) = report_or_print(api, path, csv, out).await? else {
        return Ok(());
    };
    let report: EfficiencyReport = answer.decode()?;
    let currency = terminal::line(&report.currency);
    println!(
        "{} .. {}  currency {currency}",
        terminal::line(&report.from),
        terminal::line(&report.to)
    );
    let columns: [Column<BureauEfficiencyView>; 5] = [
        ("RANK", |b| Some(b.rank.to_string())),
        ("BUREAU", |b| Some(b.bureau.clone())),
        ("RESERVED COST", |b| Some(b.reservation_cost.clone())),
        ("IDLE COST", |b| Some(b.idle_cost.clone())),
        ("EFFICIENCY", |b| b.efficiency.clone()),
    ];
    table(&report.bureaus, &columns);
    if environments {
        let rows: Vec<(String, ResourceEfficiencyView)> = report
            .environments
            .iter()
            .flat_map(|e| {
                e.resources
                    .iter()
                    .map(|r| (e.environment.clone(), r.clone()))
            })
            .collect();
        let columns: [Column<(String, ResourceEfficiencyView)>; 8] = [
            ("ENVIRONMENT", |(e, _)| Some(e.clone())),
            ("RESOURCE", |(_, r)| Some(r.resource.clone())),
            ("UNIT", |(_, r)| Some(r.unit.clone())),
            ("RESERVED", |(_, r)| Some(r.reserved_unit_hours.clone())),
            ("CONSUMED", |(_, r)| Some(r.consumed_unit_hours.clone())),
            ("EFFICIENCY", |(_, r)| r.efficiency.clone()),
            ("RESERVED COST", |(_, r)| Some(r.reservation_cost.clone())),
            ("IDLE COST", |(_, r)| Some(r.idle_cost.clone())),
        ];
        table(&rows, &columns);
    }
    Ok(())
}

async fn costs(api: &ApiClient, path: &str, csv: bool, out: Output) -> anyhow::Result<()> {
    let Some(answer) = report_or_print(api, path, csv, out).await? else {
        return Ok(());
    };
    let costs: DailyCostsView = answer.decode()?;
    println!(
        "{}  {} .. {}  currency {}",
        terminal::line(&costs.bureau),
        terminal::line(&costs.from),
        terminal::line(&costs.to),
        terminal::line(&costs.currency)
    );
    let columns: [Column<DayCostView>; 4] = [
        ("DATE", |d| Some(d.date.clone())),
        ("RESERVED", |d| Some(d.reserved.clone())),
        ("CONSUMED", |d| Some(d.consumed.clone())),
        ("AMOUNT", |d| Some(d.amount.clone())),
    ];
    table(&costs.days, &columns);
    Ok(())
}

/// The pool as a table of resources: capacity, allocatable, allocated, unallocated.
fn pool_report(pool: &PoolView) -> String {
    let cell = |quota: &QuotaBody, resource: Resource| {
        terminal::line(quota.get(resource).unwrap_or("-")).into_owned()
    };
    let mut text = format!(
        "{:<24} {:>12} {:>12} {:>12} {:>12}\n",
        "RESOURCE", "CAPACITY", "ALLOCATABLE", "ALLOCATED", "UNALLOCATED"
    );
    for resource in Resource::ALL {
        if pool.capacity.get(resource).is_none() && pool.allocated.get(resource).is_none() {
            continue;
        }
        text.push_str(&format!(
            "{:<24} {:>12} {:>12} {:>12} {:>12}\n",
            resource.as_str(),
            cell(&pool.capacity, resource),
            cell(&pool.allocatable, resource),
            cell(&pool.allocated, resource),
            cell(&pool.unallocated, resource),
        ));
    }
    text.push_str(&format!(
        "{} bureaus hold quota; borrowing {}",
        pool.bureaus,
        if pool.borrowing { "on" } else { "off" }
    ));
    text
}

/// Prints the API's CSV: its byte order mark (which spreadsheets read the encoding from) as it
/// is, and every hiding character after it escaped.
fn print_csv(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    match text.strip_prefix('\u{feff}') {
        Some(rest) => print!("\u{feff}{}", terminal::lines(rest)),
        None => print!("{}", terminal::lines(&text)),
    }
}

/// A report's range: a month, or from/to (this month so far when none is given).
#[derive(Args, Debug, Clone, Default)]
pub struct RangeArgs {
    /// `YYYY-MM`: that whole month.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    month: Option<String>,
    /// From this instant (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// To this instant (RFC 3339), exclusive.
    #[arg(long)]
    to: Option<String>,
}

impl RangeArgs {
    /// The query parameters the range gives, escaped.
    fn query(self) -> Vec<String> {
        [("month", self.month), ("from", self.from), ("to", self.to)]
            .into_iter()
            .filter_map(|(key, value)| Some(format!("{key}={}", segment(&value?))))
            .collect()
    }
}

/// `GET path` of a report: printed at once as CSV (`csv`) or JSON (`-o json`), or returned to be
/// printed as tables.
async fn report_or_print(
    api: &ApiClient,
    path: &str,
    csv: bool,
    out: Output,
) -> anyhow::Result<Option<crate::client::Answer>> {
    if csv {
        print_csv(&api.get_as(path, "text/csv").await?.raw);
        return Ok(None);
    }
    let answer = api.get(path).await?;
    if matches!(out, Output::Json) {
        println!("{}", pretty(&answer.body));
        return Ok(None);
    }
    Ok(Some(answer))
}

async fn evaluation(api: &ApiClient, path: &str, csv: bool, out: Output) -> anyhow::Result<()> {
    let Some(answer) = report_or_print(api, path, csv, out).await? else {
        return Ok(());
    };
    let report: AnnualEvaluation = answer.decode()?;
    let currency = terminal::line(&report.currency);
    println!(
        "{} ({} .. {})  currency {currency}",
        report.year,
        terminal::line(&report.from),
        terminal::line(&report.to)
    );
    let columns: [Column<BureauEvaluation>; 10] = [
        ("IDLE RANK", |b| Some(b.idle_rank.to_string())),
        ("BUREAU", |b| Some(b.bureau.clone())),
        ("NAME", |b| b.display_name.clone()),
        ("SPENT", |b| Some(b.spent.clone())),
        ("BUDGET", |b| b.budget.clone()),
        ("IDLE COST", |b| Some(b.idle_cost.clone())),
        ("EFFICIENCY", |b| b.efficiency.clone()),
        ("BELOW OBJECTIVE", |b| {
            let below = b.environments.iter().filter(|e| !e.met).count();
            Some(format!("{below} of {}", b.environments.len()))
        }),
        ("SLA CREDITS", |b| Some(b.service_credits.clone())),
        ("BURST/LENT", |b| {
            Some(format!("{}/{}", b.burst_charges, b.lent_credits))
        }),
    ];
    table(&report.bureaus, &columns);
    let d = &report.district;
    println!(
        "district: spent {} of {} budgeted, idle {} of {} reserved ({}), credits {}, burst {}, lent {}",
        terminal::line(&d.spent),
        terminal::line(&d.budget),
        terminal::line(&d.idle_cost),
        terminal::line(&d.reservation_cost),
        cell(d.efficiency.clone()),
        terminal::line(&d.service_credits),
        terminal::line(&d.burst_charges),
        terminal::line(&d.lent_credits),
    );
    Ok(())
}

async fn reclaims(
    api: &ApiClient,
    bureau: Option<String>,
    month: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(month) = month {
        query.push(format!("month={}", segment(&month)));
    }
    if let Some(bureau) = bureau {
        query.push(format!("bureau={}", segment(&bureau)));
    }
    let path = if query.is_empty() {
        "/api/v1/reclaims".to_owned()
    } else {
        format!("/api/v1/reclaims?{}", query.join("&"))
    };
    let body = api.get_all(&path).await?;
    if matches!(out, Output::Json) {
        println!("{}", pretty(&body));
        return Ok(());
    }
    let reclaims: Vec<ReclaimView> = decode(&body)?;
    let columns: [Column<ReclaimView>; 7] = [
        ("STARTED", |r| Some(r.started.clone())),
        ("CAUSE", |r| Some(r.cause.clone())),
        ("BUREAU", |r| Some(r.bureau.clone())),
        ("POD", |r| Some(format!("{}/{}", r.namespace, r.pod))),
        ("ROOM BACK TO", |r| r.beneficiary.clone()),
        ("SECONDS", |r| r.seconds.map(|s| s.to_string())),
        ("FREED", |r| r.freed.clone()),
    ];
    table(&reclaims, &columns);
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
            let requests: Vec<RequestView> = decode(&body)?;
            let columns: [Column<RequestView>; 6] = [
                ("ID", |r| Some(r.id.clone())),
                ("KIND", |r| Some(r.kind.clone())),
                ("BUREAU", |r| Some(r.bureau.clone())),
                ("OBJECT", |r| Some(r.object.clone())),
                ("STATE", |r| Some(r.state.clone())),
                ("NOTE", |r| Some(r.note.clone())),
            ];
            show(out, &body, &requests, &columns);
        }
        RequestCommand::Approve { id, reason } => {
            let path = format!("/api/v1/requests/{}/approve", segment(&id));
            let answer = api
                .send_json(Method::POST, &path, &Decision { reason })
                .await?;
            say(
                out,
                &answer.body,
                &format!("request {id} approved and applied"),
            );
        }
        RequestCommand::Reject { id, reason } => {
            let path = format!("/api/v1/requests/{}/reject", segment(&id));
            let decision = Decision {
                reason: Some(reason),
            };
            let answer = api.send_json(Method::POST, &path, &decision).await?;
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
            let body = CreateToken {
                role,
                bureau: for_bureau,
                description,
                lifetime_days,
            };
            let answer = api.send_json(Method::POST, "/api/v1/tokens", &body).await?;
            let issued: IssuedToken = answer.decode()?;
            say(
                out,
                &answer.body,
                &format!(
                    "token {} issued, expires {}; its secret is shown once:\n{}",
                    terminal::line(&issued.id),
                    terminal::line(&issued.expires_at),
                    terminal::line(&issued.secret)
                ),
            );
        }
        TokenCommand::List => {
            let body = api.get_all("/api/v1/tokens").await?;
            let tokens: Vec<TokenView> = decode(&body)?;
            let columns: [Column<TokenView>; 7] = [
                ("ID", |t| Some(t.id.clone())),
                ("ROLE", |t| Some(t.role.clone())),
                ("BUREAU", |t| t.bureau.clone()),
                ("CREATED", |t| Some(t.created_at.clone())),
                ("EXPIRES", |t| Some(t.expires_at.clone())),
                ("REVOKED", |t| t.revoked_at.clone()),
                ("DESCRIPTION", |t| Some(t.description.clone())),
            ];
            show(out, &body, &tokens, &columns);
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

/// One row of `zhengyun quota`: a resource with its quota, what is allocated and what is used.
#[derive(Debug)]
struct QuotaRow {
    resource: Resource,
    quota: Option<String>,
    allocated: Option<String>,
    used: Option<String>,
    burst: Option<String>,
    burst_used: Option<String>,
}

/// The rows of `zhengyun quota`: every quota resource the bureau has a quota or an allocation
/// of, in the order quotas list them.
fn quota_rows(bureau: &BureauView) -> Vec<QuotaRow> {
    Resource::ALL
        .into_iter()
        .map(|resource| QuotaRow {
            resource,
            quota: bureau.quota.get(resource).map(str::to_owned),
            allocated: bureau.status.allocated.get(resource).map(str::to_owned),
            used: bureau.status.used.get(resource).map(str::to_owned),
            burst: bureau
                .status
                .burst_allowance
                .get(resource)
                .map(str::to_owned),
            burst_used: bureau.status.burst_used.get(resource).map(str::to_owned),
        })
        .filter(|row| row.quota.is_some() || row.allocated.is_some())
        .collect()
}

fn quota(out: Output, raw: &Value, bureau: &BureauView) {
    if matches!(out, Output::Json) {
        println!("{}", pretty(raw));
        return;
    }
    println!(
        "{} ({})",
        terminal::line(&bureau.display_name),
        terminal::line(&bureau.name)
    );
    let rows = quota_rows(bureau);
    let columns: [Column<QuotaRow>; 4] = [
        ("RESOURCE", |r| Some(r.resource.as_str().to_owned())),
        ("QUOTA", |r| r.quota.clone()),
        ("ALLOCATED", |r| r.allocated.clone()),
        ("USED", |r| r.used.clone()),
    ];
    // The burst columns only while the pool lends the bureau something.
    let lends = rows.iter().any(|r| r.burst.is_some());
    if lends {
        let with_burst: [Column<QuotaRow>; 6] = [
            columns[0],
            columns[1],
            columns[2],
            columns[3],
            ("BURST ALLOWANCE", |r| r.burst.clone()),
            ("BURST USED", |r| r.burst_used.clone()),
        ];
        table(&rows, &with_burst);
    } else {
        table(&rows, &columns);
    }
    let status = &bureau.status;
    if status.burst_charges_this_month.is_some() || status.lent_credits_this_month.is_some() {
        let amount =
            |a: &Option<String>| terminal::line(a.as_deref().unwrap_or("0.00")).into_owned();
        println!(
            "this month: borrowed (burst charges) {} CNY, lent (credits) {} CNY",
            amount(&status.burst_charges_this_month),
            amount(&status.lent_credits_this_month),
        );
    }
}

fn say(out: Output, body: &Value, message: &str) {
    match out {
        Output::Json => println!("{}", pretty(body)),
        Output::Table => println!("{}", terminal::lines(message)),
    }
}

/// One column of a table: its title, and what a row shows in it (`None` shows as `-`).
type Column<T> = (&'static str, fn(&T) -> Option<String>);

/// The API's JSON `raw` for `--output json`, or `rows` (the same answer as contract types) as
/// a table.
fn show<T>(out: Output, raw: &Value, rows: &[T], columns: &[Column<T>]) {
    match out {
        Output::Json => println!("{}", pretty(raw)),
        Output::Table => table(rows, columns),
    }
}

/// A value as one table cell or line: `-` when absent, what it hides from a terminal escaped
/// ([`terminal::line`]).
fn cell(value: Option<String>) -> String {
    match value {
        None => "-".to_owned(),
        Some(text) => terminal::line(&text).into_owned(),
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

fn table<T>(rows: &[T], columns: &[Column<T>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, show)| cell(show(row))).collect())
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
        let name = "区卫生\u{202E}委员会\u{1B}[2J\u{200B}\n".to_owned();
        assert_eq!(
            cell(Some(name)),
            "区卫生\\u{202e}委员会\\u{1b}[2J\\u{200b}\\u{a}"
        );
        assert_eq!(
            cell(Some("海淀区 卫生健康委员会（试点）".to_owned())),
            "海淀区 卫生健康委员会（试点）"
        );
        assert_eq!(cell(None), "-");
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
        let body = quota_request(&named, "扩容").expect("a body");
        assert_eq!(
            serde_json::to_value(body).expect("json"),
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
        assert_eq!(
            serde_json::to_value(quota.body()).expect("json"),
            json!({"cpu": "2", "memory": "4Gi"})
        );
        assert!(QuotaArgs::default().is_empty());
    }

    #[test]
    fn every_quota_resource_has_a_flag() {
        let all = QuotaArgs {
            cpu: Some("1".into()),
            memory: Some("1Gi".into()),
            storage: Some("1Gi".into()),
            gpu: Some("1".into()),
            pods: Some("1".into()),
            loadbalancers: Some("1".into()),
            persistentvolumeclaims: Some("1".into()),
            services: Some("1".into()),
        };
        let body = all.body();
        for resource in Resource::ALL {
            assert!(body.get(resource).is_some(), "{resource:?} has no flag");
            assert!(QUOTA_FLAGS.contains(&format!("--{}", resource.as_str())));
        }
    }

    #[test]
    fn the_quota_shows_every_resource_the_bureau_has_a_quota_or_an_allocation_of() {
        let bureau: BureauView = serde_json::from_value(json!({
            "name": "wjw", "displayName": "卫健委", "kind": "bureau",
            "quota": {"cpu": "8", "services": "10"},
            "adminGroups": [], "viewerGroups": [],
            "status": {
                "allocated": {"cpu": "2", "loadbalancers": "1"},
                "used": {"cpu": "1"},
                "environments": 1, "conditions": []
            },
            "resourceVersion": "1"
        }))
        .expect("a bureau");
        let shown: Vec<&str> = quota_rows(&bureau)
            .iter()
            .map(|r| r.resource.as_str())
            .collect();
        assert_eq!(shown, ["cpu", "loadbalancers", "services"]);
        assert!(
            quota_rows(&bureau).iter().all(|r| r.burst.is_none()),
            "no burst figures while the pool does not lend"
        );
    }

    #[test]
    fn the_quota_shows_the_burst_allowance_and_what_burst_pods_use_while_the_pool_lends() {
        let bureau: BureauView = serde_json::from_value(json!({
            "name": "wjw", "displayName": "卫健委", "kind": "bureau",
            "quota": {"cpu": "8", "memory": "16Gi"},
            "adminGroups": [], "viewerGroups": [],
            "status": {
                "allocated": {"cpu": "8", "memory": "16Gi"},
                "used": {"cpu": "9500m"},
                "burstAllowance": {"cpu": "4", "memory": "8Gi"},
                "burstUsed": {"cpu": "1500m", "memory": "0"},
                "environments": 1, "conditions": []
            },
            "resourceVersion": "1"
        }))
        .expect("a bureau");
        let rows = quota_rows(&bureau);
        let cpu = rows
            .iter()
            .find(|r| r.resource == Resource::Cpu)
            .expect("cpu");
        assert_eq!(cpu.burst.as_deref(), Some("4"));
        assert_eq!(cpu.burst_used.as_deref(), Some("1500m"));
    }
}
