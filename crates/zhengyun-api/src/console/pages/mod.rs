//! The console's pages, one module per audience.

pub mod admin;
pub mod audit;
pub mod bureau;
pub mod evaluation;
pub mod finance;
pub mod sign_in;

use axum::{
    http::{Method, header},
    response::{IntoResponse, Response},
};

use crate::console::{Visitor, layout::problem_page};

/// `text` escaped for a path segment or a query value.
pub fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A quota body from a form's `(resource, amount)` fields, leaving out the empty ones.
pub fn quota_of(fields: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(key, value)| ((*key).to_owned(), serde_json::json!(value.trim())))
        .collect()
}

/// The API's CSV at `path`, as a download named `file`; the API's refusal as a page.
pub async fn csv_download(visitor: &Visitor, path: &str, file: &str) -> Response {
    let reply = match visitor.api_as(Method::GET, path, None, "text/csv").await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if !reply.status.is_success() {
        return problem_page(visitor, &reply);
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", segment(file)),
            ),
        ],
        reply.raw,
    )
        .into_response()
}
