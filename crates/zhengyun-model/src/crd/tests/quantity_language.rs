//! The quantity language of every quota field is one language: the pattern the CRD publishes
//! (what `kubectl` users meet) accepts exactly the strings the parser accepts (what admission
//! and the API use). A string only one of them accepts is how an admitted environment used to
//! fall out of its bureau's allocation.

use regex::Regex;
use rstest::rstest;

use super::schema_of;
use crate::{
    crd::{Environment, EnvironmentSpec},
    names::Purpose,
    quantity::{Quota, Resource, Unit},
    validation::Validate,
};

/// The pattern the CRD `crd` publishes at `pointer`.
fn published_pattern(crd: &str, pointer: &str) -> Regex {
    let schema = schema_of(crd);
    let node = schema.pointer(pointer).expect("schema node exists");
    let pattern = node["pattern"].as_str().expect("quantity has a pattern");
    Regex::new(pattern).expect("published pattern compiles")
}

fn quota_pattern(resource: Resource) -> Regex {
    let pointer = format!("/properties/spec/properties/quota/properties/{resource}");
    published_pattern("environments.zhengyun.io", &pointer)
}

fn parser_accepts(resource: Resource, text: &str) -> bool {
    Quota::default().with(resource, text).to_amounts().is_ok()
}

#[rstest]
#[case(Resource::Cpu, "2", true)]
#[case(Resource::Cpu, "500m", true)]
#[case(Resource::Cpu, "0.5", true)]
#[case(Resource::Cpu, "1.", true)]
#[case(Resource::Cpu, ".5", true)]
#[case(Resource::Cpu, "+2", true)]
#[case(Resource::Cpu, "999999999999999", true)]
#[case(Resource::Cpu, "999999999999999999m", true)]
#[case(Resource::Cpu, "0000000000000000000000008", true)]
#[case(Resource::Cpu, "1.000000000000000000000", true)]
#[case(Resource::Cpu, "1e30", false)]
#[case(Resource::Cpu, "1e3", false)]
#[case(Resource::Cpu, "-0", false)]
#[case(Resource::Cpu, "-1", false)]
#[case(Resource::Cpu, "1Gi", false)]
#[case(Resource::Cpu, "1000000000000000", false)]
#[case(Resource::Cpu, "9223372036854775807m", false)]
#[case(Resource::Cpu, "0.0000000001", false)]
#[case(Resource::Memory, "128Gi", true)]
#[case(Resource::Memory, "1.5Gi", true)]
#[case(Resource::Memory, "1G", true)]
#[case(Resource::Memory, "999Pi", true)]
#[case(Resource::Memory, "999999999999999999", true)]
#[case(Resource::Memory, "1000Pi", false)]
#[case(Resource::Memory, "8Ei", false)]
#[case(Resource::Memory, "1Ei", false)]
#[case(Resource::Memory, "500m", false)]
#[case(Resource::Memory, "1e9", false)]
#[case(Resource::Memory, "-0", false)]
#[case(Resource::Memory, "1gi", false)]
#[case(Resource::Storage, "768Gi", true)]
#[case(Resource::Storage, "1e30", false)]
#[case(Resource::Gpu, "1", true)]
#[case(Resource::Gpu, "0", true)]
#[case(Resource::Gpu, "0.5", false)]
#[case(Resource::Gpu, "1.0", false)]
#[case(Resource::Gpu, "1k", false)]
#[case(Resource::Gpu, "-0", false)]
#[case(Resource::Pods, "110", true)]
#[case(Resource::Pods, "999999999999999999", true)]
#[case(Resource::Pods, "9999999999999999999", false)]
#[case(Resource::Pods, "1e2", false)]
#[case(Resource::LoadBalancers, "2", true)]
#[case(Resource::LoadBalancers, "1.5", false)]
#[case(Resource::PersistentVolumeClaims, "1000m", false)]
#[case(Resource::Services, "10", true)]
fn the_crd_pattern_and_the_parser_agree_per_resource(
    #[case] resource: Resource,
    #[case] text: &str,
    #[case] valid: bool,
) {
    assert_eq!(
        quota_pattern(resource).is_match(text),
        valid,
        "CRD pattern of {resource} on {text:?}"
    );
    assert_eq!(
        parser_accepts(resource, text),
        valid,
        "parser of {resource} on {text:?}"
    );
}

/// A small deterministic generator (xorshift), so the property below needs no extra crate and
/// every run checks the same strings.
struct Strings(u64);

impl Strings {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("small")
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    /// Mostly quantity-shaped strings near the edges of the language, some noise.
    fn quantity(&mut self) -> String {
        const SIGNS: [&str; 5] = ["", "", "", "+", "-"];
        const SUFFIXES: [&str; 26] = [
            "", "", "", "", "m", "n", "u", "k", "K", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi",
            "Ti", "Pi", "Ei", "e3", "E-2", "e+9", "e30", "gi", " ",
        ];
        const NOISE: &str = "0123456789.+-eEkKmMGTPinu ";
        if self.below(10) == 0 {
            let len = self.below(12);
            return (0..len)
                .map(|_| char::from(NOISE.as_bytes()[self.below(NOISE.len())]))
                .collect();
        }
        let mut text = self.pick(&SIGNS).to_owned();
        let zeros = if self.below(4) == 0 { self.below(4) } else { 0 };
        text.extend(std::iter::repeat_n('0', zeros));
        let int_digits = self.below(21);
        text.extend((0..int_digits).map(|_| char::from(b'0' + self.below(10) as u8)));
        if self.below(3) == 0 {
            text.push('.');
            let frac_digits = self.below(13);
            text.extend((0..frac_digits).map(|_| char::from(b'0' + self.below(10) as u8)));
            let trailing = if self.below(3) == 0 { self.below(5) } else { 0 };
            text.extend(std::iter::repeat_n('0', trailing));
        }
        text.push_str(self.pick(&SUFFIXES));
        text
    }
}

#[rstest]
#[case(Resource::Cpu)]
#[case(Resource::Memory)]
#[case(Resource::Storage)]
#[case(Resource::Gpu)]
#[case(Resource::Pods)]
#[case(Resource::LoadBalancers)]
#[case(Resource::PersistentVolumeClaims)]
#[case(Resource::Services)]
fn generated_quantities_are_accepted_by_both_or_by_neither(#[case] resource: Resource) {
    let pattern = quota_pattern(resource);
    let mut strings = Strings(0x9e37_79b9_7f4a_7c15 ^ resource as u64);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20_000 {
        let text = strings.quantity();
        let by_pattern = pattern.is_match(&text);
        assert_eq!(
            by_pattern,
            parser_accepts(resource, &text),
            "{resource} {text:?}: pattern says {by_pattern}"
        );
        if by_pattern {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // The property says nothing unless both sides of the language were visited.
    assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
}

#[rstest]
#[case(
    "bureaus.zhengyun.io",
    "/properties/spec/properties/quota/properties/cpu",
    Unit::Millicores
)]
#[case(
    "bureaus.zhengyun.io",
    "/properties/spec/properties/quota/properties/gpu",
    Unit::Count
)]
#[case(
    "capacitypools.zhengyun.io",
    "/properties/spec/properties/capacity/properties/memory",
    Unit::Bytes
)]
#[case(
    "environments.zhengyun.io",
    "/properties/spec/properties/services/items/properties/storage",
    Unit::Bytes
)]
#[case(
    "capacitypools.zhengyun.io",
    "/properties/spec/properties/limitRange/properties/default/properties/cpu",
    Unit::Millicores
)]
fn every_written_quantity_publishes_its_units_pattern(
    #[case] crd: &str,
    #[case] pointer: &str,
    #[case] unit: Unit,
) {
    let pattern = published_pattern(crd, pointer);
    for (text, ok) in [
        ("0.5", unit != Unit::Count),
        ("1Gi", unit == Unit::Bytes),
        ("-0", false),
    ] {
        assert_eq!(pattern.is_match(text), ok, "{pointer} on {text:?}");
    }
}

#[rstest]
#[case("/properties/status/properties/usage/properties/pods", "1k")]
#[case("/properties/status/properties/usage/properties/memory", "500m")]
#[case("/properties/status/properties/admittedQuota/properties/cpu", "1500m")]
fn status_quotas_accept_what_kubernetes_and_the_operator_write(
    #[case] pointer: &str,
    #[case] text: &str,
) {
    let pattern = published_pattern("environments.zhengyun.io", pointer);
    assert!(pattern.is_match(text), "{pointer} on {text:?}");
}

#[test]
fn a_fractional_gpu_is_refused_with_the_field_named() {
    let spec = EnvironmentSpec {
        bureau: "wjw".into(),
        purpose: Purpose::Dev,
        tier: Default::default(),
        quota: Quota::default()
            .with(Resource::Cpu, "1")
            .with(Resource::Memory, "1Gi")
            .with(Resource::Gpu, "0.5"),
        services: vec![],
        expires_at: None,
    };
    let env = Environment::new("wjw-dev", spec);
    let errors = env.validate().expect_err("refused");
    let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.quota.gpu"]);
}
