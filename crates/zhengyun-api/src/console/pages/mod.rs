//! The console's pages, one module per audience.

pub mod admin;
pub mod audit;
pub mod bureau;
pub mod finance;
pub mod sign_in;

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
