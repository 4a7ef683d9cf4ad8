//! The JSON the API speaks: the contract's types (from `zhengyun-contract`, shared with the CLI
//! and the tests), and their translations from the store's records, which the contract does not
//! know.

use zhengyun_model::quantity::Quota;
use zhengyun_store::ChangeRequest;

pub use zhengyun_contract::{
    Approved, BureauStatusView, BureauView, ConditionView, CreateBureau, CreateEnvironment,
    Decision, EnvironmentView, Pending, QuotaBody, QuotaIncrease, RequestView, ServiceBody,
    UpdateBureau, UpdateEnvironment,
};

/// A quota as JSON for the audit log.
pub fn quota_json(quota: &Quota) -> serde_json::Value {
    serde_json::to_value(quota).unwrap_or_default()
}

/// A change request as the API shows it.
pub fn request_view(r: &ChangeRequest) -> RequestView {
    RequestView {
        id: r.id.clone(),
        kind: r.kind.as_str().to_owned(),
        bureau: r.bureau.clone(),
        object: r.object.clone(),
        payload: r.payload.clone(),
        note: r.note.clone(),
        state: r.state.as_str().to_owned(),
        requested_by: r.requested_by.clone(),
        requested_at: r.requested_at.to_string(),
        decided_by: r.decided_by.clone(),
        decided_at: r.decided_at.map(|t| t.to_string()),
        decision_reason: r.decision_reason.clone(),
    }
}
