//! Pure validation of Zhengyun objects, kept apart from any transport.
//!
//! Every check reports the JSON path of the offending field relative to the resource root
//! (`spec.quota.cpu`, `metadata.name`, `spec.services[0].name`) and what is wrong with it, so
//! the HTTP API can answer 422 naming the field and the operator can put the same text in a
//! condition. Checks that need other objects (does the bureau exist, does the quota fit) are not
//! here: they belong to the admitting operator.

use std::fmt;

use serde::Serialize;

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// JSON path of the field relative to the resource root, e.g. `spec.quota.cpu`.
    pub field: String,
    /// What is wrong, phrased for a human, e.g. `must not be negative`.
    pub message: String,
}

/// All the fields of one object that failed validation, in the order they were checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// An empty collection, to push errors into.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is invalid because of `message`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records `result`'s error, if any, against `field`.
    pub fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(field, message);
        }
    }

    /// Whether no field failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The failed fields.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether some error names exactly `field`.
    pub fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// `Ok(())` when empty, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl IntoIterator for ValidationErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A pure, self-contained check of one object.
pub trait Validate {
    /// Checks every field and reports all failures at once, not just the first.
    fn validate(&self) -> Result<(), ValidationErrors>;
}

/// Joins a parent path and a field name: `field_path("spec", "quota")` is `spec.quota`.
pub(crate) fn field_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// Whether `value` is a non-negative decimal with at most `max_scale` fractional digits
/// (`12000.00`, `0.035`, `7`). No sign, exponent, grouping or leading/trailing dot: money is
/// written the way an accountant writes it, and parsed exactly later (never as a float).
pub fn check_decimal(value: &str, max_scale: usize) -> Result<(), String> {
    let (int, frac) = match value.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (value, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(format!(
            "must be a non-negative decimal such as \"12000.00\", got {value:?}"
        ));
    }
    if int.len() > MAX_DECIMAL_INTEGER_DIGITS {
        return Err(format!(
            "must have at most {MAX_DECIMAL_INTEGER_DIGITS} integer digits"
        ));
    }
    match frac {
        Some(f) if f.len() > max_scale => Err(format!(
            "must have at most {max_scale} digits after the decimal point"
        )),
        _ => Ok(()),
    }
}

/// Integer digits allowed in a decimal amount: 10^15 CNY is far beyond any budget and keeps
/// every amount exactly representable by `rust_decimal` with room for the fraction.
pub const MAX_DECIMAL_INTEGER_DIGITS: usize = 15;

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("12000.00", 2, true)]
    #[case("0", 2, true)]
    #[case("0.5", 2, true)]
    #[case("0.035", 6, true)]
    #[case("999999999999999.99", 2, true)]
    #[case("1000000000000000", 2, false)]
    #[case("12000.001", 2, false)]
    #[case("-1.00", 2, false)]
    #[case("+1.00", 2, false)]
    #[case("1e3", 2, false)]
    #[case("1,000.00", 2, false)]
    #[case(".5", 2, false)]
    #[case("5.", 2, false)]
    #[case("", 2, false)]
    #[case("１２", 2, false)]
    fn decimal_amounts(#[case] value: &str, #[case] scale: usize, #[case] ok: bool) {
        assert_eq!(check_decimal(value, scale).is_ok(), ok, "{value}");
    }

    #[test]
    fn errors_render_field_and_message_in_order() {
        let mut errors = ValidationErrors::new();
        errors.push("spec.quota.cpu", "must not be negative");
        errors.check("spec.displayName", Err("must not be empty".into()));
        errors.check("spec.kind", Ok(()));
        assert_eq!(
            errors.to_string(),
            "spec.quota.cpu: must not be negative; spec.displayName: must not be empty"
        );
        assert!(errors.has_field("spec.displayName"));
        assert!(errors.into_result().is_err());
    }

    #[test]
    fn field_paths_join_with_dots() {
        assert_eq!(field_path("", "cpu"), "cpu");
        assert_eq!(field_path("spec.quota", "cpu"), "spec.quota.cpu");
    }
}
