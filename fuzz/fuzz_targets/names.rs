//! Names from the outside world (bureau codes, environment names, display names): the checks
//! never panic, and an accepted bureau code always makes a valid environment and namespace name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zhengyun_model::names::{self, Purpose};

fuzz_target!(|text: &str| {
    let _ = names::check_dns1123_label(text, names::DNS1123_LABEL_MAX_LEN);
    let _ = names::check_dns1035_label(text, names::SERVICE_NAME_MAX_LEN);
    let _ = names::check_service_name(text);
    let _ = names::check_display_name(text);
    let _ = names::check_group_name(text);
    let _ = names::normalize_display_name(text);
    if let Some((bureau, purpose)) = names::parse_environment_name(text) {
        assert!(text.starts_with(bureau), "{text:?} → {bureau:?}");
        let _ = purpose;
    }
    let _ = names::environment_belongs_to(text, "wjw");
    if names::check_bureau_code(text).is_ok() {
        for purpose in [Purpose::Dev, Purpose::Test, Purpose::Staging, Purpose::Prod] {
            let env = names::environment_name(text, purpose);
            assert!(
                names::check_dns1123_label(&env, names::DNS1123_LABEL_MAX_LEN).is_ok(),
                "bureau {text:?} makes an invalid namespace {env:?}"
            );
            assert!(names::environment_belongs_to(&env, text));
        }
    }
});
