//! Names that cannot be confused across bureaus, groups that cannot reach Kubernetes' own, and
//! free text that cannot hide what it says: each rule holds at both doors, `Validate` (the API's
//! 422) and the CRD (what `kubectl` users meet).

use kube::core::cel as kcel;
use rstest::rstest;

use super::{assert_rejected_twice, environment, fields, wjw};
use crate::{names::Purpose, validation::Validate};

#[rstest]
#[case::purpose_after_a_code("hd-test")]
#[case::purpose_in_the_middle("hd-prod-x")]
#[case::purpose_first("dev-hd")]
#[case::only_a_purpose("staging")]
fn bureau_codes_with_a_purpose_as_a_segment_are_refused(#[case] code: &str) {
    let mut bureau = wjw();
    bureau.metadata.name = Some(code.into());
    assert_rejected_twice(&bureau, "metadata.name", "purpose");
}

#[rstest]
#[case("zgc-keyu")]
#[case("hd-zhichunli")]
#[case("hd-testing")]
#[case("devices")]
fn bureau_codes_with_dashes_stay_valid(#[case] code: &str) {
    let mut bureau = wjw();
    bureau.metadata.name = Some(code.into());
    assert_eq!(bureau.validate().map_err(|e| e.to_string()), Ok(()));
    assert_eq!(
        kcel::validate_cel(&bureau).map_err(|e| e.to_string()),
        Ok(())
    );
}

#[test]
fn an_environment_of_a_bureau_code_with_a_purpose_segment_is_refused() {
    let mut env = environment("wjw", Purpose::Dev);
    env.spec.bureau = "hd-test".into();
    env.metadata.name = Some("hd-test-dev".into());
    assert_rejected_twice(&env, "spec.bureau", "purpose");
}

#[rstest]
#[case::admin_authenticated(true, "system:authenticated")]
#[case::admin_masters(true, "system:masters")]
#[case::viewer_serviceaccounts(false, "system:serviceaccounts")]
fn kubernetes_system_groups_are_refused(#[case] admin: bool, #[case] group: &str) {
    let mut bureau = wjw();
    let (groups, field) = if admin {
        (&mut bureau.spec.admin_groups, "spec.adminGroups[1]")
    } else {
        (&mut bureau.spec.viewer_groups, "spec.viewerGroups[1]")
    };
    groups.push(group.into());
    assert_rejected_twice(&bureau, field, "system:");
}

#[test]
fn groups_that_merely_mention_system_stay_valid() {
    let mut bureau = wjw();
    bureau.spec.admin_groups = vec!["wjw-system:admins".into(), "systems".into()];
    assert_eq!(bureau.validate().map_err(|e| e.to_string()), Ok(()));
    assert_eq!(
        kcel::validate_cel(&bureau).map_err(|e| e.to_string()),
        Ok(())
    );
}

#[rstest]
#[case::right_to_left_override("区卫生\u{202E}委员会")]
#[case::left_to_right_embedding("区卫生\u{202A}委员会")]
#[case::first_strong_isolate("区卫生\u{2068}委员会")]
#[case::pop_isolate("区卫生委员会\u{2069}x")]
#[case::zero_width_space("区卫生\u{200B}委员会")]
#[case::zero_width_joiner("区卫生\u{200D}委员会")]
#[case::right_to_left_mark("区卫生\u{200F}委员会")]
#[case::word_joiner("区卫生\u{2060}委员会")]
#[case::byte_order_mark("\u{FEFF}区卫生委员会")]
#[case::soft_hyphen("区卫生\u{00AD}委员会")]
#[case::escape("区卫生\u{1B}[31m委员会")]
#[case::tab("区卫生\t委员会")]
#[case::line_separator("区卫生\u{2028}委员会")]
fn display_names_with_control_or_format_characters_are_refused(#[case] name: &str) {
    let mut bureau = wjw();
    bureau.spec.display_name = name.into();
    let errors = bureau.validate().expect_err("Validate accepts it");
    assert_eq!(fields(&errors), ["spec.displayName"], "{errors}");
    let cel = kcel::validate_cel(&bureau).expect_err("CEL accepts it");
    assert!(cel.to_string().contains("control"), "{cel}");
}

#[rstest]
#[case("区卫生健康委员会")]
#[case("海淀区 卫生健康委员会（试点）")]
#[case("区人民政府办公室·信息中心")]
#[case("Haidian Health Commission, pilot: \"A\"")]
#[case("北京市海淀区《政务云》二期")]
fn ordinary_chinese_text_spaces_and_punctuation_stay_valid(#[case] name: &str) {
    let mut bureau = wjw();
    bureau.spec.display_name = name.into();
    assert_eq!(bureau.validate().map_err(|e| e.to_string()), Ok(()));
    assert_eq!(
        kcel::validate_cel(&bureau).map_err(|e| e.to_string()),
        Ok(())
    );
}
