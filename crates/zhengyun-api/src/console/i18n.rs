//! The console's words, in Chinese (the default) and English, from `i18n/zh-CN.json` and
//! `i18n/en.json`. A key missing in either file, or used in the code and missing in both, fails
//! a test; at run time a missing key shows as itself rather than failing the page.

use std::{collections::HashMap, sync::OnceLock};

/// A language of the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// 简体中文.
    #[default]
    Zh,
    /// English.
    En,
}

/// The cookie remembering the language.
pub const LANG_COOKIE: &str = "zy_lang";

const ZH: &str = include_str!("i18n/zh-CN.json");
const EN: &str = include_str!("i18n/en.json");

fn table(lang: Lang) -> &'static HashMap<String, String> {
    static TABLES: OnceLock<[HashMap<String, String>; 2]> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let parse = |text: &str| serde_json::from_str(text).unwrap_or_default();
        [parse(ZH), parse(EN)]
    });
    match lang {
        Lang::Zh => &tables[0],
        Lang::En => &tables[1],
    }
}

impl Lang {
    /// `zh-CN` or `en`, for `<html lang>` and the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language a cookie or query value names; Chinese for anything else.
    pub fn parse(text: &str) -> Self {
        if text.eq_ignore_ascii_case("en") {
            Lang::En
        } else {
            Lang::Zh
        }
    }

    /// The other language (for the switch).
    pub fn other(self) -> Self {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// The words of `key`.
    pub fn t(self, key: &str) -> String {
        table(self)
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }

    /// The words for `value` of the API's vocabulary `group` (a request's state, an
    /// environment's phase…), or `value` itself when it has none.
    pub fn word(self, group: &str, value: &str) -> String {
        table(self)
            .get(&format!("{group}.{value}"))
            .cloned()
            .unwrap_or_else(|| value.to_owned())
    }

    /// The words of `key` with each `{name}` replaced by its value.
    pub fn tf(self, key: &str, values: &[(&str, &str)]) -> String {
        let mut text = self.t(key);
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(text: &str) -> BTreeSet<String> {
        let table: HashMap<String, String> = serde_json::from_str(text).expect("translation JSON");
        table.into_keys().collect()
    }

    #[test]
    fn both_languages_have_every_key_and_no_empty_words() {
        let (zh, en) = (keys(ZH), keys(EN));
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(
            only_zh.is_empty() && only_en.is_empty(),
            "zh only {only_zh:?}, en only {only_en:?}"
        );
        for lang in [Lang::Zh, Lang::En] {
            for key in &zh {
                assert!(
                    !lang.t(key).trim().is_empty(),
                    "{key} is empty in {}",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn every_key_the_console_uses_is_translated() {
        let known = keys(ZH);
        let mut missing = Vec::new();
        // This file's own tests look up a key that does not exist on purpose.
        for source in &SOURCES[1..] {
            // Keys are written as `.t("…")` and `.tf("…"`.
            for part in source
                .split(".t(\"")
                .skip(1)
                .chain(source.split(".tf(\"").skip(1))
            {
                let key = part.split('"').next().unwrap_or_default();
                if !key.is_empty() && !key.ends_with('.') && !known.contains(key) {
                    missing.push(key.to_owned());
                }
            }
        }
        assert!(missing.is_empty(), "keys without words: {missing:?}");
    }

    #[test]
    fn every_state_and_kind_of_a_request_and_every_environment_condition_has_words() {
        let known = keys(ZH);
        for (group, values) in [
            ("request_state", &["pending", "approved", "rejected"][..]),
            (
                "request_kind",
                &["environment-create", "environment-resize", "bureau-quota"][..],
            ),
        ] {
            for value in values {
                let key = format!("{group}.{value}");
                assert!(known.contains(&key), "{key} has no words");
            }
        }
        // An environment's conditions, as the operator writes them.
        for (group, values) in [
            (
                "condition",
                &[
                    "Admitted",
                    "Ready",
                    "ResizeBlocked",
                    "QuotaShrinkBlocked",
                    "ExpiresSoon",
                ][..],
            ),
            (
                "reason",
                &[
                    "Admitted",
                    "QuotaExceeded",
                    "BelowUsage",
                    "BureauNotFound",
                    "Released",
                    "NamespaceReady",
                    "NamespaceNotActive",
                    "NamespaceConflict",
                    "Terminating",
                    "ExpiresSoon",
                    "QuotaLowered",
                    "Ready",
                ][..],
            ),
        ] {
            for value in values {
                let key = format!("{group}.{value}");
                assert!(known.contains(&key), "{key} has no words");
            }
        }
        assert_eq!(Lang::Zh.word("request_state", "approved"), "已批准");
        assert_eq!(Lang::Zh.word("request_state", "unheard-of"), "unheard-of");
    }

    /// The values a CRD's schema allows for its property `name` (the first such property, at
    /// any depth), as the derive wrote them from the enum's variants.
    fn allowed(kind: &str, name: &str) -> Vec<String> {
        fn find<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
            let object = value.as_object()?;
            if let Some(values) = object
                .get("properties")
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("enum"))
            {
                return Some(values);
            }
            object.values().find_map(|v| match v {
                serde_json::Value::Array(items) => items.iter().find_map(|i| find(i, name)),
                other => find(other, name),
            })
        }
        let crd = zhengyun_model::crds()
            .into_iter()
            .find(|crd| crd.spec.names.kind == kind)
            .expect("a CRD of that kind");
        let schema = serde_json::to_value(crd).expect("CRD as JSON");
        let values: Vec<String> = find(&schema, name)
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        assert!(!values.is_empty(), "{kind} has no values for {name}");
        values
    }

    #[test]
    fn every_value_of_the_vocabularies_shown_by_its_key_has_words_in_both_languages() {
        let mut wanted: Vec<String> = Vec::new();
        let group = |group: &str, values: Vec<String>| {
            values
                .into_iter()
                .map(|v| format!("{group}.{v}"))
                .collect::<Vec<_>>()
        };
        wanted.extend(group("phase", allowed("Environment", "phase")));
        wanted.extend(group("purpose", allowed("Environment", "purpose")));
        wanted.extend(group("tier", allowed("Environment", "tier")));
        wanted.extend(group("kind", allowed("Bureau", "kind")));
        wanted.extend(group(
            "resource",
            zhengyun_model::quantity::Resource::ALL
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
        ));
        wanted.extend(group(
            "role",
            zhengyun_store::Role::ALL
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
        ));
        wanted.extend(group(
            "problem",
            crate::console::WORDED_STATUSES
                .iter()
                .map(u16::to_string)
                .collect(),
        ));
        {
            use zhengyun_metering::GapKind;
            let kinds = [GapKind::Unmetered, GapKind::Reconstructed];
            // A new kind of gap stops this match compiling until it is listed above.
            for kind in kinds {
                match kind {
                    GapKind::Unmetered | GapKind::Reconstructed => {}
                }
            }
            wanted.extend(group(
                "gap_kind",
                kinds.iter().map(|k| k.as_str().to_owned()).collect(),
            ));
        }
        assert!(wanted.contains(&"phase.QuotaExceeded".to_owned()));
        let (zh, en) = (keys(ZH), keys(EN));
        let missing: Vec<String> = wanted
            .iter()
            .flat_map(|key| {
                [("zh-CN", &zh), ("en", &en)]
                    .into_iter()
                    .filter(|(_, table)| !table.contains(key))
                    .map(move |(lang, _)| format!("{key} ({lang})"))
            })
            .collect();
        assert!(missing.is_empty(), "without words: {missing:?}");
    }

    /// Every console source file, this one first.
    const SOURCES: [&str; 9] = [
        include_str!("i18n.rs"),
        include_str!("mod.rs"),
        include_str!("layout.rs"),
        include_str!("pages/sign_in.rs"),
        include_str!("pages/bureau.rs"),
        include_str!("pages/finance.rs"),
        include_str!("pages/evaluation.rs"),
        include_str!("pages/audit.rs"),
        include_str!("pages/admin.rs"),
    ];

    /// The groups whose keys are made at run time from the API's values.
    const BUILT: [&str; 12] = [
        "gap_kind",
        "phase",
        "purpose",
        "tier",
        "kind",
        "resource",
        "role",
        "problem",
        "condition",
        "reason",
        "request_state",
        "request_kind",
    ];

    /// Every text between quotes (and some between them) that has the form of a key.
    fn written_keys() -> BTreeSet<String> {
        SOURCES
            .iter()
            .flat_map(|source| source.split('"'))
            .filter(|piece| {
                piece.split_once('.').is_some_and(|(group, name)| {
                    !group.is_empty()
                        && !name.is_empty()
                        && group.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                })
            })
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_key_written_anywhere_in_the_console_has_words_and_every_word_is_used() {
        let known = keys(ZH);
        let groups: BTreeSet<&str> = known
            .iter()
            .filter_map(|k| k.split_once('.').map(|(g, _)| g))
            .collect();
        let written = written_keys();
        // Keys handed around as values (to `act`, as a confirmation) are written as text too.
        let missing: Vec<&String> = written
            .iter()
            .filter(|key| {
                key.split_once('.')
                    .is_some_and(|(group, _)| groups.contains(group))
            })
            .filter(|key| !known.contains(*key))
            .collect();
        assert!(missing.is_empty(), "keys without words: {missing:?}");
        let unused: Vec<&String> = known
            .iter()
            .filter(|key| !written.contains(*key))
            .filter(|key| {
                key.split_once('.')
                    .is_none_or(|(group, _)| !BUILT.contains(&group))
            })
            .collect();
        assert!(unused.is_empty(), "words no page shows: {unused:?}");
    }

    #[test]
    fn a_value_fills_its_placeholder_and_chinese_is_the_default() {
        assert_eq!(Lang::default(), Lang::Zh);
        assert_eq!(Lang::parse("EN"), Lang::En);
        assert_eq!(Lang::parse("fr"), Lang::Zh);
        assert_eq!(
            Lang::En.tf("sign_in.with", &[("name", "SSO")]),
            "Sign in with SSO"
        );
        assert_eq!(Lang::Zh.t("no.such.key"), "no.such.key");
    }
}
