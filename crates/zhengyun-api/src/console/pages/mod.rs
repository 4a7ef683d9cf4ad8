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
