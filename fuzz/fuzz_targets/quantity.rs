//! Kubernetes quantities as users type them: parsing never panics, and whatever parses formats
//! back to a quantity that parses to the same amount.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zhengyun_model::quantity::Unit;

fuzz_target!(|text: &str| {
    for unit in [Unit::Millicores, Unit::Bytes, Unit::Count] {
        if let Ok(amount) = unit.parse(text) {
            let formatted = unit.format(amount);
            assert_eq!(
                unit.parse(&formatted),
                Ok(amount),
                "{text:?} parsed to {amount}, formatted as {formatted:?}"
            );
        }
    }
});
