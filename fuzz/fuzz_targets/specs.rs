//! JSON bodies as they reach the cluster (from the API or kubectl): deserializing a Bureau or
//! an Environment and validating it never panics, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zhengyun_model::Validate;
use zhengyun_model::crd::{Bureau, CapacityPool, Environment, RateCard};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(bureau) = serde_json::from_slice::<Bureau>(bytes) {
        let _ = bureau.validate();
        let _ = bureau.spec.quota.to_amounts();
    }
    if let Ok(env) = serde_json::from_slice::<Environment>(bytes) {
        let _ = env.validate();
        let _ = env.spec.quota.to_amounts();
        let _ = env.spec.volume_bytes();
    }
    if let Ok(pool) = serde_json::from_slice::<CapacityPool>(bytes) {
        let _ = pool.validate();
        let _ = pool.spec.effective_capacity();
    }
    if let Ok(card) = serde_json::from_slice::<RateCard>(bytes) {
        let _ = card.validate();
    }
});
