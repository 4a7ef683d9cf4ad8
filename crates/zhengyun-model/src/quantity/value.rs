//! [`Quantity`], the string form of an amount as it appears in custom resources.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, de};

use super::{QuantityError, Unit};

/// Pattern of a non-negative Kubernetes quantity in Kubernetes' own grammar: the schema of
/// quantities the cluster or the operator writes (status fields). Quantities people write have
/// a narrower language per unit ([`Unit::quota_pattern`]). Exponents are integers (Kubernetes'
/// parser rejects `1e1.5` although its published pattern does not).
pub const QUANTITY_PATTERN: &str =
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$";

/// An amount as written in a resource: `"8"`, `32Gi`, `500m`. Stored verbatim so that an
/// object with a bad value still deserializes (and can be reported on) instead of breaking a
/// watch; convert with [`Quantity::parse`] or [`Quota::to_amounts`](super::Quota::to_amounts).
///
/// Accepts YAML/JSON integers as well as strings (`cpu: 8` and `cpu: "8"`), like the
/// Kubernetes `Quantity` type, and always serializes as a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(String);

impl Quantity {
    /// Wraps `text` without checking it.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses into an integer number of `unit`s, in Kubernetes' grammar: for amounts the cluster
    /// or the operator wrote.
    pub fn parse(&self, unit: Unit) -> Result<u64, QuantityError> {
        unit.parse(&self.0)
    }

    /// Parses into an integer number of `unit`s, in the written language of `unit` (see
    /// [`Unit::parse_written`]): for amounts people write, which the CRDs hold to the same
    /// language.
    pub fn parse_written(&self, unit: Unit) -> Result<u64, QuantityError> {
        unit.parse_written(&self.0)
    }

    /// The canonical quantity for `value` base units of `unit`.
    pub fn from_base_units(value: u64, unit: Unit) -> Self {
        Self(unit.format(value))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Quantity {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

struct QuantityVisitor;

impl de::Visitor<'_> for QuantityVisitor {
    type Value = Quantity;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity string such as \"500m\" or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
        Ok(Quantity::new(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
        Ok(Quantity(v.to_string()))
    }

    // Kept as text so that validation, not deserialization, reports the negative value.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
        Ok(Quantity(v.to_string()))
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A non-negative Kubernetes quantity, e.g. \"8\", \"500m\", \"32Gi\".",
            "x-kubernetes-int-or-string": true,
            "pattern": QUANTITY_PATTERN,
        })
    }
}

/// Schema of a quantity somebody writes in `unit`: int-or-string with the unit's pattern.
fn written_schema(unit: Unit, description: &str) -> Schema {
    json_schema!({
        "description": description,
        "x-kubernetes-int-or-string": true,
        "pattern": unit.quota_pattern(),
    })
}

/// Schema of a written CPU amount (`schema_with` for CRD fields).
pub fn written_cpu_schema(_: &mut SchemaGenerator) -> Schema {
    written_schema(
        Unit::Millicores,
        "CPU cores or millicores, e.g. \"2\", \"0.5\", \"500m\".",
    )
}

/// Schema of a written amount of bytes (`schema_with` for CRD fields).
pub fn written_bytes_schema(_: &mut SchemaGenerator) -> Schema {
    written_schema(
        Unit::Bytes,
        "Bytes with an optional suffix, e.g. \"128Gi\", \"1.5G\".",
    )
}

/// Schema of a written count (`schema_with` for CRD fields).
pub fn written_count_schema(_: &mut SchemaGenerator) -> Schema {
    written_schema(Unit::Count, "A whole number, e.g. \"2\".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_both_deserialize_and_serialize_as_strings() {
        let from_int: Quantity = serde_yaml::from_str("8").expect("integer");
        let from_str: Quantity = serde_yaml::from_str("32Gi").expect("string");
        let negative: Quantity = serde_json::from_str("-1").expect("negative integer");
        assert_eq!(from_int.as_str(), "8");
        assert_eq!(from_str.as_str(), "32Gi");
        assert_eq!(
            negative.parse(Unit::Millicores),
            Err(QuantityError::Negative)
        );
        assert_eq!(
            serde_json::to_string(&from_int).ok().as_deref(),
            Some("\"8\"")
        );
    }

    #[rstest::rstest]
    #[case("500m", true)]
    #[case("2", true)]
    #[case("+1.5", true)]
    #[case(".5Gi", true)]
    #[case("1.", true)]
    #[case("1e3", true)]
    #[case("1E-3", true)]
    #[case("128Gi", true)]
    #[case("100n", true)]
    #[case("-1", false)]
    #[case("", false)]
    #[case(".", false)]
    #[case("1gi", false)]
    #[case("1e1.5", false)]
    #[case("1 Gi", false)]
    #[case("Gi", false)]
    fn schema_pattern_agrees_with_the_parser(#[case] text: &str, #[case] valid: bool) {
        let pattern = regex::Regex::new(QUANTITY_PATTERN).expect("pattern compiles");
        assert_eq!(pattern.is_match(text), valid, "pattern on {text:?}");
        assert_eq!(Unit::Bytes.parse(text).is_ok(), valid, "parser on {text:?}");
    }

    #[test]
    fn floats_are_refused_rather_than_rounded() {
        assert!(serde_json::from_str::<Quantity>("1.5").is_err());
    }
}
