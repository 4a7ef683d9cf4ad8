//! Exact parsing and rendering of Kubernetes quantity strings, without floating point.
//!
//! A quantity is `<sign><number><suffix>` where the suffix is a binary SI suffix (`Ki`…`Ei`), a
//! decimal SI suffix (`n`, `u`, `m`, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`,
//! `E-2`). It is read as `mantissa × 10^exp10 × 2^exp2` in 128-bit integers and then scaled to the
//! requested base unit.
//!
//! Rounding: a value finer than the base unit is **rounded up** (`0.1m` CPU is 1 millicore,
//! `0.5` bytes is 1 byte), exactly as Kubernetes' own `Quantity.MilliValue()` / `Value()` do, so
//! that numbers read from the cluster (which stores e.g. a memory request of `0.5` as `500m`)
//! always parse, and a quota is never silently smaller than what was written. Counts (pods, GPUs,
//! services…) are the exception: a fractional count is an error, since `1.5` GPUs is a mistake.
//!
//! Precision: the significant digits must fit in 128 bits (38 digits; trailing fractional zeros
//! do not count). Anything more precise is refused as out of range rather than approximated.

use super::{MAX_BASE_UNITS, QuantityError, Unit};

/// A parsed quantity before scaling: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    mantissa: u128,
    exp10: i64,
    exp2: u32,
}

/// Parses `text` into an integer number of `unit`s; see the module documentation for rounding.
pub fn parse(text: &str, unit: Unit) -> Result<u64, QuantityError> {
    let (negative, unsigned) = split_sign(text)?;
    let parts = parse_unsigned(unsigned)?;
    if negative && parts.mantissa != 0 {
        return Err(QuantityError::Negative);
    }
    let (value, exact) = scale(&parts, unit.decimal_scale())?;
    if unit == Unit::Count && !exact {
        return Err(QuantityError::Fractional);
    }
    u64::try_from(value)
        .ok()
        .filter(|v| *v <= MAX_BASE_UNITS)
        .ok_or(QuantityError::OutOfRange)
}

fn split_sign(text: &str) -> Result<(bool, &str), QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    Ok(match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    })
}

fn parse_unsigned(text: &str) -> Result<Parts, QuantityError> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    let (mantissa, fraction_digits) = parse_number(number)?;
    let (exp10, exp2) = parse_suffix(suffix)?;
    Ok(Parts {
        mantissa,
        exp10: exp10 - fraction_digits,
        exp2,
    })
}

/// Reads `123`, `1.5`, `1.`, `.5` into an integer mantissa and the number of fractional digits.
/// Trailing fractional zeros are dropped so that `1.000…0` never overflows the mantissa.
fn parse_number(number: &str) -> Result<(u128, i64), QuantityError> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let frac = frac.trim_end_matches('0');
    if int.is_empty() && frac.is_empty() && !number.contains(|c: char| c.is_ascii_digit()) {
        return Err(QuantityError::Malformed);
    }
    if frac.contains('.') {
        return Err(QuantityError::Malformed);
    }
    let mantissa = int
        .bytes()
        .chain(frac.bytes())
        .try_fold(0u128, |acc, digit| {
            acc.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
        });
    let fraction_digits = i64::try_from(frac.len()).map_err(|_| QuantityError::OutOfRange)?;
    Ok((mantissa.ok_or(QuantityError::OutOfRange)?, fraction_digits))
}

/// Returns the decimal and binary exponents a suffix stands for.
fn parse_suffix(suffix: &str) -> Result<(i64, u32), QuantityError> {
    let decimal = |e: i64| Ok((e, 0));
    let binary = |e: u32| Ok((0, e));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => parse_exponent(suffix).map(|e| (e, 0)),
    }
}

/// Reads a decimal exponent suffix such as `e3`, `E-2` or `e+6`.
fn parse_exponent(suffix: &str) -> Result<i64, QuantityError> {
    let digits = suffix
        .strip_prefix(['e', 'E'])
        .ok_or(QuantityError::Malformed)?;
    let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Malformed);
    }
    let exponent: i64 = digits.parse().map_err(|_| QuantityError::OutOfRange)?;
    if exponent.unsigned_abs() > MAX_EXPONENT {
        return Err(QuantityError::OutOfRange);
    }
    Ok(exponent)
}

/// Exponents beyond this are certainly out of range (or certainly round to one unit); capping
/// them keeps the arithmetic below free of overflow.
const MAX_EXPONENT: u64 = 1000;

/// Computes `parts` in units of `10^-unit_scale`, rounding up; reports whether it was exact.
fn scale(parts: &Parts, unit_scale: i64) -> Result<(u128, bool), QuantityError> {
    let value = parts
        .mantissa
        .checked_mul(1u128 << parts.exp2)
        .ok_or(QuantityError::OutOfRange)?;
    let exp10 = parts.exp10 + unit_scale;
    if value == 0 {
        return Ok((0, true));
    }
    let magnitude = pow10(exp10.unsigned_abs());
    if exp10 >= 0 {
        let scaled = magnitude.and_then(|m| value.checked_mul(m));
        return scaled.map(|v| (v, true)).ok_or(QuantityError::OutOfRange);
    }
    // A divisor beyond u128 exceeds any mantissa: the value is a positive sliver of one unit.
    Ok(magnitude.map_or((1, false), |m| (value.div_ceil(m), value % m == 0)))
}

fn pow10(exponent: u64) -> Option<u128> {
    10u128.checked_pow(u32::try_from(exponent).ok()?)
}

/// Renders millicores: whole cores as `2`, anything else as `1500m` (as Kubernetes does).
pub fn format_cpu(millicores: u64) -> String {
    if millicores.is_multiple_of(1000) {
        (millicores / 1000).to_string()
    } else {
        format!("{millicores}m")
    }
}

/// Renders bytes with the largest binary suffix that divides them exactly (`128Gi`), else the
/// largest exact decimal suffix (`1G`), else plain bytes.
pub fn format_bytes(bytes: u64) -> String {
    const BINARY: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    const DECIMAL: [(&str, u32); 6] = [
        ("E", 18),
        ("P", 15),
        ("T", 12),
        ("G", 9),
        ("M", 6),
        ("k", 3),
    ];
    if bytes == 0 {
        return "0".to_owned();
    }
    let binary = BINARY.iter().map(|&(s, e)| (s, 1u64 << e));
    let decimal = DECIMAL.iter().map(|&(s, e)| (s, 10u64.pow(e)));
    binary
        .chain(decimal)
        .find(|(_, factor)| bytes.is_multiple_of(*factor))
        .map_or_else(|| bytes.to_string(), |(s, f)| format!("{}{s}", bytes / f))
}

/// Renders a count as a plain integer.
pub fn format_count(count: u64) -> String {
    count.to_string()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const MAX: u64 = MAX_BASE_UNITS;

    #[rstest]
    #[case("500m", 500)]
    #[case("2", 2000)]
    #[case("1.5", 1500)]
    #[case("0", 0)]
    #[case("0.0", 0)]
    #[case("-0", 0)]
    #[case("+2", 2000)]
    #[case("1e3", 1_000_000)]
    #[case("1E3", 1_000_000)]
    #[case("2e-3", 2)]
    #[case("1k", 1_000_000)]
    #[case("1.", 1000)]
    #[case(".5", 500)]
    #[case("0.1m", 1)] // rounded up, like Kubernetes
    #[case("1500001n", 2)] // 1.500001m rounds up to 2m
    #[case("250000000n", 250)]
    #[case("100u", 1)]
    #[case("1Ki", 1_024_000)]
    #[case("1.000000000000000000000000000001", 1001)]
    #[case("0000000000000000000000000000000000000000000008", 8000)]
    #[case("1e-1000", 1)]
    #[case("9223372036854775807m", MAX)]
    #[case("9223372036854775.807", MAX)]
    fn cpu_in_millicores(#[case] text: &str, #[case] millicores: u64) {
        assert_eq!(parse(text, Unit::Millicores), Ok(millicores), "{text}");
    }

    #[rstest]
    #[case("128Gi", 128 << 30)]
    #[case("1G", 1_000_000_000)]
    #[case("1.5Gi", 1536 << 20)]
    #[case("96Gi", 96 << 30)]
    #[case("64Ti", 64 << 40)]
    #[case("8000Gi", 8000 << 30)]
    #[case("1e3", 1000)]
    #[case("1", 1)]
    #[case("500m", 1)] // half a byte rounds up to one byte
    #[case("1001m", 2)]
    #[case("7Ei", 7 << 60)]
    #[case("9223372036854775807", MAX)]
    fn memory_in_bytes(#[case] text: &str, #[case] bytes: u64) {
        assert_eq!(parse(text, Unit::Bytes), Ok(bytes), "{text}");
    }

    #[rstest]
    #[case("10", 10)]
    #[case("1k", 1000)]
    #[case("1.0", 1)]
    #[case("1000m", 1)]
    #[case("2e2", 200)]
    fn counts(#[case] text: &str, #[case] count: u64) {
        assert_eq!(parse(text, Unit::Count), Ok(count), "{text}");
    }

    #[rstest]
    #[case("", Unit::Millicores, QuantityError::Empty)]
    #[case("-1", Unit::Millicores, QuantityError::Negative)]
    #[case("-500m", Unit::Bytes, QuantityError::Negative)]
    #[case("-0.1Gi", Unit::Bytes, QuantityError::Negative)]
    #[case("abc", Unit::Millicores, QuantityError::Malformed)]
    #[case("1.2.3", Unit::Millicores, QuantityError::Malformed)]
    #[case(".", Unit::Millicores, QuantityError::Malformed)]
    #[case("m", Unit::Millicores, QuantityError::Malformed)]
    #[case("+", Unit::Millicores, QuantityError::Malformed)]
    #[case("1 Gi", Unit::Bytes, QuantityError::Malformed)]
    #[case(" 1", Unit::Bytes, QuantityError::Malformed)]
    #[case("1gi", Unit::Bytes, QuantityError::Malformed)]
    #[case("1GB", Unit::Bytes, QuantityError::Malformed)]
    #[case("1KI", Unit::Bytes, QuantityError::Malformed)]
    #[case("1K", Unit::Bytes, QuantityError::Malformed)]
    #[case("1e", Unit::Bytes, QuantityError::Malformed)]
    #[case("1e+", Unit::Bytes, QuantityError::Malformed)]
    #[case("1e1.5", Unit::Bytes, QuantityError::Malformed)]
    #[case("1ee3", Unit::Bytes, QuantityError::Malformed)]
    #[case("--1", Unit::Bytes, QuantityError::Malformed)]
    #[case("１", Unit::Bytes, QuantityError::Malformed)]
    #[case("0x10", Unit::Count, QuantityError::Malformed)]
    #[case("1.5", Unit::Count, QuantityError::Fractional)]
    #[case("500m", Unit::Count, QuantityError::Fractional)]
    #[case("9223372036854775808", Unit::Bytes, QuantityError::OutOfRange)]
    #[case("9223372036854775807", Unit::Millicores, QuantityError::OutOfRange)]
    #[case("9223372036854776", Unit::Millicores, QuantityError::OutOfRange)]
    #[case("8Ei", Unit::Bytes, QuantityError::OutOfRange)]
    #[case("1e19", Unit::Bytes, QuantityError::OutOfRange)]
    #[case("1e1001", Unit::Bytes, QuantityError::OutOfRange)]
    #[case("1e99999999999999999999", Unit::Bytes, QuantityError::OutOfRange)]
    #[case(
        "340282366920938463463374607431768211456",
        Unit::Bytes,
        QuantityError::OutOfRange
    )]
    #[case("99999999999999999999Ei", Unit::Bytes, QuantityError::OutOfRange)]
    #[case(
        "1.000000000000000000000000000000000000000001",
        Unit::Bytes,
        QuantityError::OutOfRange
    )]
    fn rejected(#[case] text: &str, #[case] unit: Unit, #[case] error: QuantityError) {
        assert_eq!(parse(text, unit), Err(error), "{text}");
    }

    #[test]
    fn zero_scaled_by_a_huge_exponent_is_still_zero() {
        assert_eq!(parse("0e1000", Unit::Bytes), Ok(0));
    }

    #[rstest]
    #[case(0, "0")]
    #[case(500, "500m")]
    #[case(1000, "1")]
    #[case(1500, "1500m")]
    #[case(2_000_000, "2000")]
    #[case(MAX, "9223372036854775807m")]
    fn cpu_renders_canonically(#[case] millicores: u64, #[case] text: &str) {
        assert_eq!(format_cpu(millicores), text);
    }

    #[rstest]
    #[case(0, "0")]
    #[case(1, "1")]
    #[case(1000, "1k")]
    #[case(1024, "1Ki")]
    #[case(128 << 30, "128Gi")]
    #[case(1536 << 20, "1536Mi")]
    #[case(64 << 40, "64Ti")]
    #[case(1_000_000_000, "1G")]
    #[case(1_500_000_000, "1500M")]
    #[case(1023, "1023")]
    #[case(MAX, "9223372036854775807")]
    fn bytes_render_canonically(#[case] bytes: u64, #[case] text: &str) {
        assert_eq!(format_bytes(bytes), text);
    }

    #[rstest]
    #[case(Unit::Millicores)]
    #[case(Unit::Bytes)]
    #[case(Unit::Count)]
    fn rendering_round_trips(#[case] unit: Unit) {
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
            10u64.pow(18),
            MAX - 1,
            MAX,
        ];
        for value in samples {
            let text = unit.format(value);
            assert_eq!(parse(&text, unit), Ok(value), "{value} rendered as {text}");
        }
    }
}
