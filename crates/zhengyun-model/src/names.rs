//! Names and the small vocabularies of the model: bureau codes, environment names, display
//! names, purposes, tiers and kinds of bureau.
//!
//! A bureau code is the `metadata.name` of a `Bureau` and the first half of every namespace the
//! bureau gets (`<bureau>-<purpose>`, e.g. `wjw-prod`). Namespaces are DNS-1123 labels of at most
//! 63 characters; the longest purpose is `staging`, so a code could be 55 characters. We cap it
//! at [`BUREAU_CODE_MAX_LEN`] = 40 instead, leaving 15 characters of headroom for names and label
//! values derived from an environment name (`<bureau>-<purpose>-viewers`, prefixes) which are
//! bound by the same 63-character limit.
//!
//! **A bureau code never has a purpose (`dev`, `test`, `staging`, `prod`) as one of its
//! `-`-separated segments.** Environment names are `<bureau>-<purpose>[-<suffix>]`; if bureau
//! `hd-test` could exist, bureau `hd`'s `hd-test-dev` (purpose `test`, suffix `dev`) would be
//! bureau `hd-test`'s default dev environment too, and whichever bureau asked first would hold the
//! other's name (a 409 then telling the other that it exists). With the rule, the bureau of an
//! environment name is everything before its first purpose segment ([`bureau_of_environment`]),
//! so every name belongs to exactly one bureau. Codes with dashes stay valid (the communities'
//! `zgc-keyu`, `hd-zhichunli`); the rule needs no other bureau to be looked up, so the CRD can
//! enforce it as well as the API.

use std::{fmt, str::FromStr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest DNS-1123 label Kubernetes accepts (namespace names, label values).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;

/// Longest bureau code; see the module documentation for why 40 and not 55.
pub const BUREAU_CODE_MAX_LEN: usize = 40;

/// Longest catalog service name: it becomes a Service, a StatefulSet and PVC names such as
/// `data-<name>-0`, all of which must stay well inside 63 characters.
pub const SERVICE_NAME_MAX_LEN: usize = 40;

/// Longest display name, in Unicode characters (not bytes): 区人民政府国有资产监督管理委员会 is 16.
pub const DISPLAY_NAME_MAX_CHARS: usize = 128;

/// Longest group name accepted in `adminGroups` / `viewerGroups`.
pub const GROUP_NAME_MAX_LEN: usize = 256;

/// Pattern of a DNS-1123 label (lowercase letters, digits and `-`, alphanumeric at both ends).
pub const DNS1123_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS name of at least two labels in lower case, no wildcard: a domain a bureau may publish
/// under (`haidian.gov.cn`, `wjw.example.cn`).
pub const DOMAIN_PATTERN: &str =
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

/// A bureau code with a purpose as a segment, as an RE2 pattern for CEL's `matches` (kept equal
/// to [`Purpose::ALL`] by a test).
pub const PURPOSE_SEGMENT_PATTERN: &str = "(^|-)(dev|test|staging|prod)(-|$)";

/// Prefix of the groups Kubernetes itself asserts (`system:authenticated`, `system:masters`…),
/// which no bureau may be granted: they would hand a bureau's environments to everyone, or to
/// the cluster's own components.
pub const SYSTEM_GROUP_PREFIX: &str = "system:";

/// Pattern of a DNS-1035 label, which Kubernetes requires for Service names (starts with a letter).
pub const DNS1035_LABEL_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// Checks that `value` is a DNS-1123 label of at most `max_len` characters.
pub fn check_dns1123_label(value: &str, max_len: usize) -> Result<(), String> {
    check_label_length(value, max_len)?;
    let bytes = value.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let ends_ok = [bytes[0], bytes[bytes.len() - 1]]
        .iter()
        .all(u8::is_ascii_alphanumeric);
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} must consist of lowercase letters, digits and '-', \
             and start and end with a letter or digit"
        ))
    }
}

/// Checks that `value` is a DNS-1035 label (a DNS-1123 label starting with a letter).
pub fn check_dns1035_label(value: &str, max_len: usize) -> Result<(), String> {
    check_dns1123_label(value, max_len)?;
    if value.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!("{value:?} must start with a lowercase letter"))
    }
}

fn check_label_length(value: &str, max_len: usize) -> Result<(), String> {
    match value.len() {
        0 => Err("must not be empty".to_owned()),
        n if n > max_len => Err(format!("must be at most {max_len} characters, got {n}")),
        _ => Ok(()),
    }
}

/// Checks a bureau code: a DNS-1123 label of at most [`BUREAU_CODE_MAX_LEN`] characters that
/// does not produce namespaces in the `kube-` prefix Kubernetes reserves for itself.
pub fn check_bureau_code(code: &str) -> Result<(), String> {
    check_dns1123_label(code, BUREAU_CODE_MAX_LEN)?;
    if code == "kube" || code.starts_with("kube-") {
        return Err(format!(
            "{code:?} is reserved: namespaces starting with 'kube-' belong to Kubernetes"
        ));
    }
    if let Some(purpose) = code.split('-').find(|s| s.parse::<Purpose>().is_ok()) {
        return Err(format!(
            "{code:?} has the purpose {purpose:?} as a segment: bureau codes must not contain \
             dev, test, staging or prod between dashes, so that every environment name \
             <bureau>-<purpose> belongs to one bureau"
        ));
    }
    Ok(())
}

/// Most characters of a domain name.
pub const DOMAIN_MAX_LEN: usize = 253;

/// Checks a domain name of [`DOMAIN_PATTERN`]: two or more DNS-1123 labels of at most 63
/// characters, lowercase, joined by dots, at most [`DOMAIN_MAX_LEN`] characters in all.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.len() > DOMAIN_MAX_LEN {
        return Err(format!(
            "{domain:?} is longer than {DOMAIN_MAX_LEN} characters"
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "{domain:?} is not a domain: at least two labels joined by dots, such as wjw.bj.gov.cn"
        ));
    }
    for label in labels {
        check_dns1123_label(label, DNS1123_LABEL_MAX_LEN)
            .map_err(|why| format!("{domain:?} is not a domain: label {label:?} {why}"))?;
    }
    Ok(())
}

/// Whether `name` is `domain` or a name below it (`portal.wjw.x` is below `wjw.x`).
pub fn is_within(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

/// Checks a domain granted to bureau `code` against the platform's domain `platform`: it may
/// not be the platform's domain, nor a domain above it (which holds every bureau's names), nor
/// lie below the platform's domain anywhere but under the bureau's own `<code>.<platform>`
/// (every `<x>.<platform>` is bureau `x`'s, existing or to come).
pub fn check_granted_domain(code: &str, domain: &str, platform: &str) -> Result<(), String> {
    if domain == platform {
        return Err(format!(
            "{domain:?} is the platform's domain, under which every bureau has its own name"
        ));
    }
    if is_within(platform, domain) {
        return Err(format!(
            "{domain:?} is above the platform's domain {platform:?}: it would hold every bureau's names"
        ));
    }
    let own = format!("{code}.{platform}");
    if is_within(domain, platform) && !is_within(domain, &own) {
        return Err(format!(
            "{domain:?} lies under the platform's domain outside {own:?}: names under              <bureau>.{platform} are each bureau's own"
        ));
    }
    Ok(())
}

/// Checks a catalog service name: a DNS-1035 label of at most [`SERVICE_NAME_MAX_LEN`] characters.
pub fn check_service_name(name: &str) -> Result<(), String> {
    check_dns1035_label(name, SERVICE_NAME_MAX_LEN)
}

/// Checks a display name: any Unicode, non-empty, at most [`DISPLAY_NAME_MAX_CHARS`] characters,
/// without surrounding whitespace or control characters (it ends up in CSV statements and
/// dashboards). Callers taking user input should [`normalize_display_name`] first.
pub fn check_display_name(name: &str) -> Result<(), String> {
    check_free_text(name, DISPLAY_NAME_MAX_CHARS)
}

/// Checks a group name from the identity provider (e.g. `wjw-admins`): free text like a display
/// name, up to [`GROUP_NAME_MAX_LEN`] characters, and never one of Kubernetes' own groups
/// ([`SYSTEM_GROUP_PREFIX`]).
pub fn check_group_name(name: &str) -> Result<(), String> {
    check_free_text(name, GROUP_NAME_MAX_LEN)?;
    if name.starts_with(SYSTEM_GROUP_PREFIX) {
        return Err(format!(
            "{name:?} is a Kubernetes system group: groups starting with \"system:\" cannot be \
             granted to a bureau"
        ));
    }
    Ok(())
}

/// Checks free text a person writes that others will read (a reason, a description): nothing
/// that hides or reorders what is shown ([`hides_text`]). Unlike a display name it may be empty;
/// its length is the store's to bound.
pub fn check_visible_text(text: &str) -> Result<(), String> {
    match text.chars().enumerate().find(|(_, c)| hides_text(*c)) {
        Some((at, c)) => Err(format!(
            "must not contain control or format characters (such as bidirectional controls or \
             zero-width characters): U+{:04X} at character {}",
            u32::from(c),
            at + 1
        )),
        None => Ok(()),
    }
}

/// Whether `c` is a control character (Unicode category Cc), a format character (Cf: the
/// bidirectional controls U+202A–U+202E and U+2066–U+2069, the zero-width characters
/// U+200B–U+200F, U+2060 and U+FEFF, the soft hyphen…) or a line or paragraph separator (Zl,
/// Zp). Such characters make a name look like another one, reorder it on screen, or drive a
/// terminal; none belongs in a name or a reason.
pub fn hides_text(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The same characters as [`hides_text`], as an RE2 class for CEL's `matches`.
pub const HIDDEN_TEXT_PATTERN: &str = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]";

/// Unicode general category Cf (format), as of Unicode 16; a test holds it to the `regex`
/// crate's tables.
fn is_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn check_free_text(text: &str, max_chars: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.trim() != text {
        return Err("must not start or end with whitespace".to_owned());
    }
    check_visible_text(text)?;
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(format!(
            "must be at most {max_chars} characters, got {chars}"
        ));
    }
    Ok(())
}

/// What a caller should store for a display name typed by a person: the trimmed text.
pub fn normalize_display_name(name: &str) -> String {
    name.trim().to_owned()
}

/// The name of a bureau's environment, which is also its namespace: `<bureau>-<purpose>`.
pub fn environment_name(bureau: &str, purpose: Purpose) -> String {
    format!("{bureau}-{purpose}")
}

/// The bureau an environment name belongs to: everything before its first purpose segment
/// (bureau codes have none; see the module documentation), if that is a valid bureau code.
pub fn bureau_of_environment(name: &str) -> Option<&str> {
    let mut at = 0;
    for segment in name.split('-') {
        if at > 0 && segment.parse::<Purpose>().is_ok() {
            let bureau = &name[..at - 1];
            return check_bureau_code(bureau).ok().map(|()| bureau);
        }
        at += segment.len() + 1;
    }
    None
}

/// Splits an unsuffixed environment name into bureau code and purpose. The purpose is the part after the
/// last `-` (purposes contain none), so the split is unambiguous even for bureau codes that
/// contain dashes such as `zgc-keyu`. Returns `None` if the name has no valid purpose suffix or
/// the bureau part is not a valid code.
pub fn parse_environment_name(name: &str) -> Option<(&str, Purpose)> {
    let (bureau, purpose) = name.rsplit_once('-')?;
    let purpose = purpose.parse().ok()?;
    check_bureau_code(bureau).ok()?;
    Some((bureau, purpose))
}

/// Whether `name` is a valid environment name of `bureau`: `<bureau>-<purpose>` or
/// `<bureau>-<purpose>-<suffix>`. Unlike [`parse_environment_name`], this is exact for suffixed
/// names, because the bureau is known.
pub fn environment_belongs_to(name: &str, bureau: &str) -> bool {
    let Some(rest) = name.strip_prefix(bureau).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let (purpose, suffix) = match rest.split_once('-') {
        Some((p, s)) => (p, Some(s)),
        None => (rest, None),
    };
    check_bureau_code(bureau).is_ok()
        && purpose.parse::<Purpose>().is_ok()
        && suffix.is_none_or(|s| check_dns1123_label(s, DNS1123_LABEL_MAX_LEN).is_ok())
        && name.len() <= DNS1123_LABEL_MAX_LEN
}

/// Error for a string that is not one of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of: {expected}")]
pub struct UnknownVariant {
    /// The rejected string.
    pub value: String,
    /// The accepted values, comma-separated.
    pub expected: &'static str,
}

/// Implements `as_str`, `Display` and `FromStr` for a lowercase-serialized unit enum.
macro_rules! lowercase_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The serialized (lowercase) form.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(UnknownVariant {
                        value: s.to_owned(),
                        expected: concat!($($text, ", "),+).trim_end_matches(", "),
                    }),
                }
            }
        }
    };
}

/// What an environment is for. Part of its name, so it never changes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Development.
    Dev,
    /// Testing.
    Test,
    /// Pre-production.
    Staging,
    /// Production.
    Prod,
}

lowercase_enum!(Purpose { Dev => "dev", Test => "test", Staging => "staging", Prod => "prod" });

impl Purpose {
    /// Whether environments of this purpose may carry an expiry date (only throw-away ones).
    pub fn allows_expiry(self) -> bool {
        matches!(self, Purpose::Dev | Purpose::Test)
    }
}

/// Service tier of an environment: scheduling priority and price.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Highest priority, highest price.
    Gold,
    /// The default.
    #[default]
    Silver,
    /// Lowest priority, preempted first, cheapest.
    Bronze,
}

lowercase_enum!(Tier { Gold => "gold", Silver => "silver", Bronze => "bronze" });

/// What kind of public body a tenant is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BureauKind {
    /// A district bureau or commission (委办局).
    Bureau,
    /// A town or street office (街镇).
    Town,
    /// A residents' community (社区), usually with a town as parent.
    Community,
    /// Any other agency.
    Agency,
}

lowercase_enum!(BureauKind { Bureau => "bureau", Town => "town", Community => "community", Agency => "agency" });

#[cfg(test)]
mod domain_tests {
    use super::*;

    #[test]
    fn a_granted_domain_is_refused_at_above_or_under_anothers_name_below_the_platforms_domain() {
        let platform = "apps.haidian.gov.cn";
        for ok in [
            "wjw.bj.gov.cn",
            "wjw.apps.haidian.gov.cn",
            "portal.wjw.apps.haidian.gov.cn",
            "xapps.haidian.gov.cn",
            "gov.com",
        ] {
            assert_eq!(check_granted_domain("wjw", ok, platform), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("apps.haidian.gov.cn", "is the platform's domain"),
            ("haidian.gov.cn", "above the platform's domain"),
            ("gov.cn", "above the platform's domain"),
            (
                "rsj.apps.haidian.gov.cn",
                "outside \"wjw.apps.haidian.gov.cn\"",
            ),
            ("portal.rsj.apps.haidian.gov.cn", "outside"),
            ("wjw-2.apps.haidian.gov.cn", "outside"),
        ] {
            let said = check_granted_domain("wjw", bad, platform).expect_err(bad);
            assert!(said.contains(why), "{bad}: {said}");
        }
    }

    #[test]
    fn a_domain_is_two_or_more_lowercase_labels() {
        for ok in ["wjw.bj.gov.cn", "a.b", "x-1.y"] {
            assert_eq!(check_domain(ok), Ok(()), "{ok}");
        }
        let long = format!("{}.cn", "a".repeat(252));
        for bad in [
            "wjw",
            "WJW.gov.cn",
            "-a.b",
            "a..b",
            "a.b.",
            "*.a.b",
            "",
            &long,
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("wjw")]
    #[case("zgc-keyu")]
    #[case("a")]
    #[case("9")]
    #[case("beitaipingzhuang")]
    #[case("a234567890123456789012345678901234567890")]
    #[case("kubernetes")]
    fn valid_bureau_codes(#[case] code: &str) {
        assert_eq!(check_bureau_code(code), Ok(()));
    }

    #[rstest]
    #[case("", "must not be empty")]
    #[case("a2345678901234567890123456789012345678901", "at most 40")]
    #[case("WJW", "lowercase")]
    #[case("-wjw", "start and end")]
    #[case("wjw-", "start and end")]
    #[case("wjw.prod", "lowercase")]
    #[case("wjw_prod", "lowercase")]
    #[case("卫健委", "lowercase")]
    #[case("kube", "reserved")]
    #[case("kube-system", "reserved")]
    #[case("hd-test", "purpose \"test\"")]
    #[case("prod", "purpose \"prod\"")]
    #[case("a-staging-b", "purpose \"staging\"")]
    fn invalid_bureau_codes(#[case] code: &str, #[case] expected: &str) {
        let message = check_bureau_code(code).expect_err(code);
        assert!(message.contains(expected), "{code}: {message}");
    }

    #[test]
    fn longest_bureau_code_gives_a_valid_namespace_for_every_purpose() {
        let code = "a".repeat(BUREAU_CODE_MAX_LEN);
        for &purpose in Purpose::ALL {
            let name = environment_name(&code, purpose);
            assert_eq!(
                check_dns1123_label(&name, DNS1123_LABEL_MAX_LEN),
                Ok(()),
                "{name}"
            );
            assert!(name.len() + "-viewers".len() <= DNS1123_LABEL_MAX_LEN);
        }
    }

    #[rstest]
    #[case("wjw-prod", Some(("wjw", Purpose::Prod)))]
    #[case("zgc-keyu-dev", Some(("zgc-keyu", Purpose::Dev)))]
    #[case("wjw-staging", Some(("wjw", Purpose::Staging)))]
    #[case("wjw-production", None)]
    #[case("wjw", None)]
    #[case("-prod", None)]
    #[case("kube-prod", None)]
    fn environment_names_split_at_the_last_dash(
        #[case] name: &str,
        #[case] expected: Option<(&str, Purpose)>,
    ) {
        assert_eq!(parse_environment_name(name), expected);
    }

    #[test]
    fn environment_name_round_trips() {
        let name = environment_name("zgc-keyu", Purpose::Test);
        assert_eq!(name, "zgc-keyu-test");
        assert_eq!(
            parse_environment_name(&name),
            Some(("zgc-keyu", Purpose::Test))
        );
    }

    #[rstest]
    #[case("区卫生健康委员会")]
    #[case("区人民政府国有资产监督管理委员会")]
    #[case("Haidian Health Commission")]
    #[case("海淀区 卫生健康委员会 (试点)")]
    fn valid_display_names(#[case] name: &str) {
        assert_eq!(check_display_name(name), Ok(()));
    }

    #[rstest]
    #[case("", "must not be empty")]
    #[case("   ", "must not be empty")]
    #[case("\u{3000}", "must not be empty")]
    #[case(" 区民政局", "whitespace")]
    #[case("区民政局\u{3000}", "whitespace")]
    #[case("区民\n政局", "control")]
    fn invalid_display_names(#[case] name: &str, #[case] expected: &str) {
        let message = check_display_name(name).expect_err(name);
        assert!(message.contains(expected), "{name:?}: {message}");
    }

    #[test]
    fn display_name_length_counts_characters_not_bytes() {
        let at_limit = "卫".repeat(DISPLAY_NAME_MAX_CHARS);
        assert!(at_limit.len() > DISPLAY_NAME_MAX_CHARS);
        assert_eq!(check_display_name(&at_limit), Ok(()));
        let over = "卫".repeat(DISPLAY_NAME_MAX_CHARS + 1);
        assert!(check_display_name(&over).is_err());
    }

    #[test]
    fn normalizing_trims_ideographic_spaces_too() {
        assert_eq!(normalize_display_name("\u{3000}区民政局 "), "区民政局");
    }

    #[rstest]
    #[case("web", true)]
    #[case("db-1", true)]
    #[case("1db", false)]
    #[case("Web", false)]
    fn service_names_are_dns1035_labels(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(check_service_name(name).is_ok(), ok, "{name}");
    }

    #[test]
    fn enums_parse_and_print_their_serialized_form() {
        for &tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
            assert_eq!(serde_json::to_value(tier).ok(), Some(tier.as_str().into()));
        }
        let error = "platinum".parse::<Tier>().expect_err("not a tier");
        assert_eq!(
            error.to_string(),
            "\"platinum\" is not one of: gold, silver, bronze"
        );
        assert_eq!(Tier::default(), Tier::Silver);
        assert_eq!("community".parse(), Ok(BureauKind::Community));
        assert!(Purpose::Dev.allows_expiry() && !Purpose::Prod.allows_expiry());
    }
}

#[cfg(test)]
mod unambiguous_tests {
    use super::*;

    const CODES: [&str; 8] = [
        "hd",
        "hd-zhichunli",
        "zgc",
        "zgc-keyu",
        "zgc-keyuan",
        "wjw",
        "a-b-c",
        "testing",
    ];

    fn names_of(code: &str) -> Vec<String> {
        let mut names = Vec::new();
        for &purpose in Purpose::ALL {
            let name = environment_name(code, purpose);
            for suffix in ["", "-2", "-dev", "-test-prod", "-zhichunli-dev", "-keyu"] {
                names.push(format!("{name}{suffix}"));
            }
        }
        names
    }

    #[test]
    fn every_environment_name_belongs_to_exactly_one_bureau() {
        for code in CODES {
            for name in names_of(code) {
                assert_eq!(bureau_of_environment(&name), Some(code), "{name}");
                let owners: Vec<_> = CODES
                    .iter()
                    .filter(|c| environment_belongs_to(&name, c))
                    .collect();
                assert_eq!(owners, [&code], "{name}");
            }
        }
    }

    #[test]
    fn the_cel_pattern_of_purpose_segments_names_every_purpose() {
        let pattern = regex::Regex::new(PURPOSE_SEGMENT_PATTERN).expect("compiles");
        for &purpose in Purpose::ALL {
            for code in [
                format!("{purpose}"),
                format!("hd-{purpose}"),
                format!("{purpose}-hd"),
                format!("a-{purpose}-b"),
            ] {
                assert!(pattern.is_match(&code), "{code}");
                assert!(check_bureau_code(&code).is_err(), "{code}");
            }
            for code in [format!("hd{purpose}"), format!("{purpose}s-hd")] {
                assert!(!pattern.is_match(&code), "{code}");
                assert_eq!(check_bureau_code(&code), Ok(()), "{code}");
            }
        }
    }

    #[test]
    fn the_cel_class_of_hidden_characters_is_the_rust_check() {
        let class = regex::Regex::new(HIDDEN_TEXT_PATTERN).expect("compiles");
        let mut buffer = [0; 4];
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut buffer)),
                hides_text(c),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn kubernetes_system_groups_are_refused_by_prefix_only() {
        assert!(check_group_name("system:authenticated").is_err());
        assert!(check_group_name("system:").is_err());
        assert_eq!(check_group_name("wjw-admins"), Ok(()));
        assert_eq!(check_group_name("systems-admins"), Ok(()));
    }

    #[test]
    fn reasons_may_be_any_visible_text() {
        assert_eq!(check_visible_text(""), Ok(()));
        assert_eq!(check_visible_text("扩容：年底申报高峰 (x2)"), Ok(()));
        assert!(check_visible_text("ok\u{202E}gnp.exe").is_err());
        assert!(check_visible_text("two\nlines").is_err());
    }
}

#[cfg(test)]
mod belongs_tests {
    use super::environment_belongs_to;

    #[rstest::rstest]
    #[case("wjw-prod", "wjw", true)]
    #[case("wjw-dev-2", "wjw", true)]
    #[case("zgc-keyu-test-payroll", "zgc-keyu", true)]
    #[case("wjw-test-dev", "wjw", true)]
    #[case("wjw-test-dev", "wjw-test", false)] // `wjw-test` is no bureau code
    #[case("wjw-prod", "wj", false)]
    #[case("wjw-play", "wjw", false)]
    #[case("wjw-prod-", "wjw", false)]
    #[case("fgw-prod", "wjw", false)]
    fn an_environment_belongs_to_the_bureau_its_name_starts_with(
        #[case] name: &str,
        #[case] bureau: &str,
        #[case] ok: bool,
    ) {
        assert_eq!(environment_belongs_to(name, bureau), ok);
    }
}
