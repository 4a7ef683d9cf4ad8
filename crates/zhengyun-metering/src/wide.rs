//! Exact `a × b / d` rounded half to even or half up, through a 256-bit intermediate product.
//!
//! Money is `unit_seconds × price / (base units per unit × 3600)`. Unit-seconds reach 2^85 and a
//! price mantissa 2^103, so the product does not fit in `u128` and must not be rounded before the
//! division: this module multiplies into four 64-bit limbs and divides by schoolbook long
//! division, which is exact at every magnitude.

use crate::rates::Rounding;

/// `round(a × b / d)` by `rounding`, or `None` if `d` is zero or the result exceeds
/// `u128::MAX`.
pub(crate) fn mul_div_rounded(a: u128, b: u128, d: u64, rounding: Rounding) -> Option<u128> {
    if d == 0 {
        return None;
    }
    let product = mul_wide(a, b);
    let (quotient, remainder) = div_wide(product, d);
    if quotient[2] != 0 || quotient[3] != 0 {
        return None;
    }
    let quotient = u128::from(quotient[0]) | (u128::from(quotient[1]) << 64);
    // remainder < d < 2^64, so twice it fits in u128.
    let twice = u128::from(remainder) * 2;
    let d = u128::from(d);
    let round_up = match rounding {
        Rounding::HalfEven => twice > d || (twice == d && quotient % 2 == 1),
        Rounding::HalfUp => twice >= d && remainder != 0,
    };
    if round_up {
        quotient.checked_add(1)
    } else {
        Some(quotient)
    }
}

/// The 256-bit product of `a` and `b`, least significant limb first.
fn mul_wide(a: u128, b: u128) -> [u64; 4] {
    let a = limbs(a);
    let b = limbs(b);
    let mut out = [0u64; 4];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u128;
        for (j, &bj) in b.iter().enumerate() {
            // (2^64−1)^2 + 2·(2^64−1) = 2^128 − 1: never overflows.
            let t = u128::from(ai) * u128::from(bj) + u128::from(out[i + j]) + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
        out[i + 2] = carry as u64;
    }
    out
}

/// Quotient (least significant limb first) and remainder of `n / d`, with `d > 0`.
fn div_wide(n: [u64; 4], d: u64) -> ([u64; 4], u64) {
    let d = u128::from(d);
    let mut quotient = [0u64; 4];
    let mut remainder = 0u128;
    for i in (0..4).rev() {
        // remainder < d ≤ 2^64 − 1, so the shifted value fits in u128.
        let current = (remainder << 64) | u128::from(n[i]);
        quotient[i] = (current / d) as u64;
        remainder = current % d;
    }
    (quotient, remainder as u64)
}

fn limbs(x: u128) -> [u64; 2] {
    [x as u64, (x >> 64) as u64]
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn mul_div_half_even(a: u128, b: u128, d: u64) -> Option<u128> {
        mul_div_rounded(a, b, d, Rounding::HalfEven)
    }

    #[rstest]
    #[case::exact(10, 3, 2, Some(15))]
    #[case::half_rounds_to_even_down(5, 1, 2, Some(2))]
    #[case::half_rounds_to_even_up(7, 1, 2, Some(4))]
    #[case::just_below_half_rounds_down(49, 1, 100, Some(0))]
    #[case::just_above_half_rounds_up(51, 1, 100, Some(1))]
    #[case::zero(0, 12345, 7, Some(0))]
    #[case::division_by_zero(1, 1, 0, None)]
    #[case::product_beyond_u128_divides_back(u128::MAX, 1 << 40, 1 << 40, Some(u128::MAX))]
    #[case::quotient_beyond_u128_is_refused(u128::MAX, 3, 2, None)]
    #[case::the_largest_quotient_fits(u128::MAX, 2, 2, Some(u128::MAX))]
    fn multiplies_and_divides_exactly_rounding_half_even(
        #[case] a: u128,
        #[case] b: u128,
        #[case] d: u64,
        #[case] expected: Option<u128>,
    ) {
        assert_eq!(mul_div_half_even(a, b, d), expected);
    }

    #[test]
    fn agrees_with_native_arithmetic_where_that_does_not_overflow() {
        let samples = [
            0u128,
            1,
            2,
            3,
            999,
            1_000,
            3_600_000,
            1 << 63,
            (1 << 64) - 1,
            1 << 64,
        ];
        let divisors = [1u64, 2, 3, 7, 3600, 3_600_000, 3_865_470_566_400, u64::MAX];
        for &a in &samples {
            for &b in &samples {
                let Some(product) = a.checked_mul(b) else {
                    continue;
                };
                for &d in &divisors {
                    let d128 = u128::from(d);
                    let (q, r) = (product / d128, product % d128);
                    let expected = if 2 * r > d128 || (2 * r == d128 && q % 2 == 1) {
                        q + 1
                    } else {
                        q
                    };
                    assert_eq!(mul_div_half_even(a, b, d), Some(expected), "{a}×{b}/{d}");
                }
            }
        }
    }

    #[test]
    fn a_product_beyond_128_bits_divides_exactly() {
        // (2^95 + 1)(2^95 + 3) = 2^190 + 2^97 + 3; divided by 2^63 that is 2^127 + 2^34 + 3/2^63.
        let a = (1u128 << 95) + 1;
        let b = (1u128 << 95) + 3;
        assert_eq!(
            mul_div_half_even(a, b, 1 << 63),
            Some((1 << 127) + (1 << 34))
        );
        // Divided by 2^62 the quotient is 2^128 + …, which does not fit.
        assert_eq!(mul_div_half_even(a, b, 1 << 62), None);
    }
}
