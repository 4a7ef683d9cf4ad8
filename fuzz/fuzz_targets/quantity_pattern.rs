//! The written quantity language has two readings that must never disagree: the pattern each
//! CRD publishes for a quota field (what the apiserver enforces on `kubectl` edits) and the
//! parser admission and the API use. A string only one of them accepts is an object the cluster
//! stores but admission cannot read, so this target compares them on every input, taking the
//! patterns from the generated CRD itself, and checks that an accepted string is in range.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regex::Regex;
use zhengyun_model::quantity::{MAX_BASE_UNITS, Resource};

/// Each resource with the pattern the Environment CRD publishes for `spec.quota.<resource>`.
fn published() -> &'static [(Resource, Regex)] {
    static PATTERNS: OnceLock<Vec<(Resource, Regex)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let crd = zhengyun_model::crd::crds()
            .into_iter()
            .find(|c| c.metadata.name.as_deref() == Some("environments.zhengyun.io"))
            .expect("the Environment CRD exists");
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("serializes");
        Resource::ALL
            .into_iter()
            .map(|resource| {
                let pointer = format!(
                    "/openAPIV3Schema/properties/spec/properties/quota/properties/{resource}/pattern"
                );
                let pattern = schema
                    .pointer(&pointer)
                    .and_then(|p| p.as_str())
                    .expect("every quota field has a pattern");
                (resource, Regex::new(pattern).expect("the pattern compiles"))
            })
            .collect()
    })
}

fuzz_target!(|text: &str| {
    for (resource, pattern) in published() {
        let parsed = resource.unit().parse_written(text);
        assert_eq!(
            pattern.is_match(text),
            parsed.is_ok(),
            "{resource} {text:?}: the CRD pattern and the parser disagree ({parsed:?})"
        );
        if let Ok(amount) = parsed {
            assert!(amount <= MAX_BASE_UNITS, "{resource} {text:?} → {amount}");
        }
    }
});
