//! The language of quantities people write in resources (quotas, volume sizes, container
//! defaults), one per [`Unit`], and the pattern the CRDs publish for it.
//!
//! Kubernetes' own grammar ([`parse`](super::parse), kept for what the cluster writes) reaches
//! far beyond what an amount can hold (`1e30` cores) and allows forms that mean nothing for
//! some resources (`0.5` GPUs, `-0`). A pattern cannot see a value's range, so the written
//! language bounds it by form instead: a number with at most so many digits before the point
//! for each suffix, which keeps every value it admits below 2^63 base units. The checker below
//! and [`Unit::quota_pattern`] are two readings of one table, and tests (and a fuzz target)
//! hold them to the same answer on every string:
//!
//! - CPU: cores or millicores (`2`, `0.5`, `1500m`), at most 15 digits before the point for
//!   cores and 18 for millicores, at most 9 significant digits after it.
//! - Memory and storage: bytes with an optional decimal or binary suffix from `k`/`Ki` to
//!   `P`/`Pi` (`128Gi`, `1.5G`), at most 18, 15, 12, 9, 6, 3 digits before the point for none,
//!   `k`/`Ki`, `M`/`Mi`, `G`/`Gi`, `T`/`Ti`, `P`/`Pi`; at most 9 significant digits after it.
//! - Counts (GPUs, pods, load balancers, volume claims, services): a whole number of at most 18
//!   digits, without suffix or point.
//!
//! Leading zeros before the point and trailing zeros after it are free, an optional leading `+`
//! is allowed (as in Kubernetes), a `-` never is. Values finer than the base unit round up as in
//! [`parse`](super::parse).

use super::{QuantityError, Unit};

/// One written form of a unit: these suffixes, after at most `digits` digits before the point.
struct Form {
    suffixes: &'static [&'static str],
    digits: usize,
}

const CPU: &[Form] = &[
    Form {
        suffixes: &[""],
        digits: 15,
    },
    Form {
        suffixes: &["m"],
        digits: 18,
    },
];

const BYTES: &[Form] = &[
    Form {
        suffixes: &[""],
        digits: 18,
    },
    Form {
        suffixes: &["k", "Ki"],
        digits: 15,
    },
    Form {
        suffixes: &["M", "Mi"],
        digits: 12,
    },
    Form {
        suffixes: &["G", "Gi"],
        digits: 9,
    },
    Form {
        suffixes: &["T", "Ti"],
        digits: 6,
    },
    Form {
        suffixes: &["P", "Pi"],
        digits: 3,
    },
];

const COUNT: &[Form] = &[Form {
    suffixes: &[""],
    digits: 18,
}];

/// Significant digits allowed after the point (nanounits), where a point is allowed at all.
const FRACTION_DIGITS: usize = 9;

impl Unit {
    fn forms(self) -> &'static [Form] {
        match self {
            Unit::Millicores => CPU,
            Unit::Bytes => BYTES,
            Unit::Count => COUNT,
        }
    }

    fn fraction_digits(self) -> usize {
        match self {
            Unit::Count => 0,
            Unit::Millicores | Unit::Bytes => FRACTION_DIGITS,
        }
    }

    /// The pattern the CRDs publish for quantities of this unit that people write; it accepts
    /// exactly the strings [`Unit::parse_written`] accepts.
    pub fn quota_pattern(self) -> String {
        let fraction = self.fraction_digits();
        let branches: Vec<String> = self
            .forms()
            .iter()
            .map(|form| {
                let number = if fraction == 0 {
                    format!("0*[0-9]{{1,{}}}", form.digits)
                } else {
                    format!(
                        "0*([0-9]{{1,{d}}}(\\.[0-9]{{0,{fraction}}}0*)?|\\.[0-9]{{1,{fraction}}}0*)",
                        d = form.digits
                    )
                };
                match form.suffixes {
                    [""] => number,
                    suffixes => format!("{number}({})", suffixes.join("|")),
                }
            })
            .collect();
        format!("^\\+?({})$", branches.join("|"))
    }

    /// Parses a quantity somebody wrote into a resource (see the module documentation): the
    /// written language of this unit, then [`parse`](super::parse) for its value.
    pub fn parse_written(self, text: &str) -> Result<u64, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        if text.starts_with('-') {
            return Err(QuantityError::Negative);
        }
        if self.is_written_form(text) {
            return self.parse(text);
        }
        // Say why in Kubernetes' terms where that is precise, else name this unit's forms.
        match self.parse(text) {
            Err(e @ (QuantityError::Fractional | QuantityError::OutOfRange)) => Err(e),
            _ => Err(QuantityError::Unwritten(self)),
        }
    }

    /// Whether `text` is in this unit's written language (form only; see the module docs).
    fn is_written_form(self, text: &str) -> bool {
        let text = text.strip_prefix('+').unwrap_or(text);
        let number_len = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(number_len);
        let Some(form) = self.forms().iter().find(|f| f.suffixes.contains(&suffix)) else {
            return false;
        };
        let (int, fraction) = match number.split_once('.') {
            Some((int, fraction)) => (int, Some(fraction)),
            None => (number, None),
        };
        let fraction_len = fraction.map(|f| f.trim_end_matches('0').len());
        match fraction {
            _ if self.fraction_digits() == 0 && fraction.is_some() => false,
            Some(f) if f.contains('.') => false,
            Some("") | None if int.is_empty() => false,
            _ => {
                int.trim_start_matches('0').len() <= form.digits
                    && fraction_len.unwrap_or(0) <= self.fraction_digits()
            }
        }
    }

    /// How quantities of this unit are written, for error messages.
    pub(super) fn written_forms(self) -> &'static str {
        match self {
            Unit::Millicores => {
                "must be cores or millicores such as \"2\", \"0.5\" or \"1500m\" (at most 15 digits \
                 before the point for cores, 18 for millicores, 9 after it)"
            }
            Unit::Bytes => {
                "must be bytes with an optional suffix k, M, G, T, P, Ki, Mi, Gi, Ti or Pi such as \
                 \"128Gi\" or \"1.5G\" (at most 18 digits before the point without a suffix, 3 fewer \
                 per step from k/Ki to P/Pi; 9 after it)"
            }
            Unit::Count => "must be a whole number of at most 18 digits, without a suffix",
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::quantity::MAX_BASE_UNITS;

    /// The largest value of each form is still in range, so the form alone bounds the value.
    #[rstest]
    #[case(Unit::Millicores)]
    #[case(Unit::Bytes)]
    #[case(Unit::Count)]
    fn the_largest_value_of_every_form_is_in_range(#[case] unit: Unit) {
        let fraction = if unit.fraction_digits() > 0 {
            format!(".{}", "9".repeat(unit.fraction_digits()))
        } else {
            String::new()
        };
        for form in unit.forms() {
            for suffix in form.suffixes {
                let text = format!("{}{fraction}{suffix}", "9".repeat(form.digits));
                let value = unit.parse_written(&text);
                assert!(
                    value.is_ok_and(|v| v <= MAX_BASE_UNITS),
                    "{text}: {value:?}"
                );
                let one_more = format!("1{}{suffix}", "0".repeat(form.digits));
                assert!(unit.parse_written(&one_more).is_err(), "{one_more}");
            }
        }
    }

    #[rstest]
    #[case(Unit::Millicores)]
    #[case(Unit::Bytes)]
    #[case(Unit::Count)]
    fn canonical_renderings_below_the_bound_are_written_forms(#[case] unit: Unit) {
        let samples = [
            0,
            1,
            7,
            999,
            1000,
            1001,
            1024,
            1536 << 20,
            3 << 40,
            10u64.pow(17),
        ];
        for value in samples {
            let text = unit.format(value);
            assert_eq!(unit.parse_written(&text), Ok(value), "{value} as {text}");
        }
    }

    #[rstest]
    #[case(Unit::Millicores, "-0", QuantityError::Negative)]
    #[case(Unit::Millicores, "", QuantityError::Empty)]
    #[case(Unit::Millicores, "1e30", QuantityError::OutOfRange)]
    #[case(Unit::Millicores, "1e3", QuantityError::Unwritten(Unit::Millicores))]
    #[case(Unit::Count, "0.5", QuantityError::Fractional)]
    #[case(Unit::Count, "1k", QuantityError::Unwritten(Unit::Count))]
    #[case(Unit::Bytes, "1gi", QuantityError::Unwritten(Unit::Bytes))]
    #[case(
        Unit::Bytes,
        "9000000000000000000",
        QuantityError::Unwritten(Unit::Bytes)
    )]
    fn refusals_say_why(#[case] unit: Unit, #[case] text: &str, #[case] error: QuantityError) {
        assert_eq!(unit.parse_written(text), Err(error));
    }
}
