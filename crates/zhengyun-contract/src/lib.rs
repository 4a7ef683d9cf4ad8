//! The contract of Zhengyun's HTTP API: every request body and every response body of
//! `/api/v1`, as plain serde types with their OpenAPI schemas.
//!
//! The API (`zhengyun-api`) answers with these types, the CLI (`zhengyun env …`) sends and
//! reads them, and the end-to-end tests decode answers into them, so that the three cannot
//! drift apart and `openapi/openapi.json` documents exactly what is sent. They are the API's
//! own types, translated from the custom resources (`From<&Bureau>`, `From<&Environment>`) and
//! from the ledger's records, so the HTTP surface stays stable while those evolve.
//!
//! The crate does no I/O: it depends on the pure model only (for the translations from the
//! custom resources), never on the store, the cluster client or the HTTP server.

pub mod audit;
pub mod availability;
pub mod bureaus;
pub mod environments;
pub mod evaluation;
pub mod kubeconfigs;
pub mod pool;
pub mod quota;
pub mod reclaims;
pub mod requests;
pub mod statements;
pub mod tokens;

pub use audit::{AuditHeadView, AuditView, Verification};
pub use availability::{AvailabilityView, SliceView};
pub use bureaus::{
    BureauStatusView, BureauView, ConditionView, CreateBureau, QuotaIncrease, UpdateBureau,
};
pub use environments::{CreateEnvironment, EnvironmentView, ServiceBody, UpdateEnvironment};
pub use evaluation::{AnnualEvaluation, DailyCostsView, EfficiencyReport, RightSizingView};
pub use kubeconfigs::{IssueKubeconfig, IssuedKubeconfig, KubeconfigView};
pub use pool::PoolView;
pub use quota::QuotaBody;
pub use reclaims::ReclaimView;
pub use requests::{Approved, Decision, Pending, RequestView};
pub use statements::{StatementView, Usage};
pub use tokens::{CreateToken, IssuedToken, SignInProvider, TokenView, WhoAmI};

/// The header naming the `after` of the next page of a list (`GET /api/v1/audit`,
/// `/api/v1/tokens`, `/api/v1/requests`, the bureaus and environments).
pub const NEXT_AFTER_HEADER: &str = "x-next-after";
