//! Serde helpers for fields whose types cannot carry their own serde form here.

/// A [`Resource`](zhengyun_model::quantity::Resource) as its quota field name (`cpu`, `memory`…).
pub(crate) mod resource {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use zhengyun_model::quantity::Resource;

    pub(crate) fn serialize<S: Serializer>(resource: &Resource, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(resource.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Resource, D::Error> {
        let text = String::deserialize(d)?;
        crate::usage::parse_resource(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown resource {text:?}, expected e.g. cpu or memory"
            ))
        })
    }
}

/// A `u128` as a decimal string: JSON readers (JavaScript, spreadsheets) lose integers above
/// 2^53, and unit-seconds go far beyond that.
pub(crate) mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// An `i128` as a decimal string, for the same reason as [`u128_string`].
pub(crate) mod i128_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(value: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}
