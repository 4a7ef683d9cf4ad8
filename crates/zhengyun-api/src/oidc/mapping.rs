//! From a verified token's claims to a role and a bureau, by the issuer's [`ClaimRules`]. Pure.
//!
//! With groups (the default), `zhengyun:wjw:bureau-admin` makes an admin of bureau `wjw`,
//! `zhengyun:wjw:bureau-viewer` a viewer of it, and `zhengyun:platform-admin`,
//! `zhengyun:finance` or `zhengyun:auditor` a platform-wide role. Someone in both the admin and
//! the viewer group of one bureau is its admin. Groups without the prefix are ignored. An
//! identity that maps to no role, or to two that cannot be told apart (two bureaus, or a bureau
//! role and a platform one), is refused: one sign-in is one role, as one token is.

use serde_json::Value;
use zhengyun_store::Role;

use super::config::ClaimRules;

/// Why claims make no caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unmapped {
    /// A claim the rules need is missing or not of the right type.
    MissingClaim(String),
    /// No group or claim names a role.
    NoRole,
    /// More than one role, named here.
    Ambiguous(Vec<String>),
    /// A role claim with a value that is no role.
    UnknownRole(String),
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmapped::MissingClaim(claim) => write!(f, "the token has no usable {claim:?} claim"),
            Unmapped::NoRole => f.write_str(
                "your identity names no Zhengyun role: ask your platform team to add you to a \
                 group such as zhengyun:<bureau>:bureau-admin",
            ),
            Unmapped::Ambiguous(roles) => write!(
                f,
                "your identity names more than one Zhengyun role ({}); one sign-in has one role",
                roles.join(", ")
            ),
            Unmapped::UnknownRole(role) => write!(f, "{role:?} is not a Zhengyun role"),
        }
    }
}

/// Who the claims say the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The subject.
    pub subject: String,
    /// The display name (the subject when the token has none).
    pub name: String,
    /// The role.
    pub role: Role,
    /// The bureau, for bureau roles.
    pub bureau: Option<String>,
}

fn string_claim(claims: &Value, claim: &str) -> Option<String> {
    claims
        .get(claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The caller the claims name under `rules`.
pub fn map_claims(claims: &Value, rules: &ClaimRules) -> Result<Mapped, Unmapped> {
    let subject = string_claim(claims, &rules.subject)
        .ok_or_else(|| Unmapped::MissingClaim(rules.subject.clone()))?;
    let name = string_claim(claims, &rules.name).unwrap_or_else(|| subject.clone());
    let (role, bureau) = match &rules.role {
        Some(role_claim) => by_claims(claims, role_claim, rules.bureau.as_deref())?,
        None => by_groups(claims, rules)?,
    };
    Ok(Mapped {
        subject,
        name,
        role,
        bureau,
    })
}

fn by_claims(
    claims: &Value,
    role_claim: &str,
    bureau_claim: Option<&str>,
) -> Result<(Role, Option<String>), Unmapped> {
    let text = string_claim(claims, role_claim).ok_or(Unmapped::NoRole)?;
    let role: Role = text.parse().map_err(|_| Unmapped::UnknownRole(text))?;
    if !role.is_bureau_scoped() {
        return Ok((role, None));
    }
    let claim = bureau_claim.unwrap_or("bureau");
    let bureau =
        string_claim(claims, claim).ok_or_else(|| Unmapped::MissingClaim(claim.to_owned()))?;
    Ok((role, Some(bureau)))
}

fn by_groups(claims: &Value, rules: &ClaimRules) -> Result<(Role, Option<String>), Unmapped> {
    let groups = match claims.get(&rules.groups) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        Some(_) => return Err(Unmapped::MissingClaim(rules.groups.clone())),
    };
    let mut found: Vec<(Role, Option<String>)> = Vec::new();
    for group in groups {
        let Some(rest) = group.strip_prefix(&rules.group_prefix) else {
            continue;
        };
        let named = match rest.split_once(':') {
            Some((bureau, role)) => match role.parse::<Role>() {
                Ok(role) if role.is_bureau_scoped() && !bureau.is_empty() => {
                    (role, Some(bureau.to_owned()))
                }
                _ => continue,
            },
            None => match rest.parse::<Role>() {
                Ok(role) if !role.is_bureau_scoped() => (role, None),
                _ => continue,
            },
        };
        if !found.contains(&named) {
            found.push(named);
        }
    }
    // An admin of a bureau who is also its viewer is its admin.
    let admin_of: Vec<Option<String>> = found
        .iter()
        .filter(|(role, _)| *role == Role::BureauAdmin)
        .map(|(_, bureau)| bureau.clone())
        .collect();
    found.retain(|(role, bureau)| !(*role == Role::BureauViewer && admin_of.contains(bureau)));
    match found.len() {
        0 => Err(Unmapped::NoRole),
        1 => Ok(found.remove(0)),
        _ => Err(Unmapped::Ambiguous(
            found
                .iter()
                .map(|(role, bureau)| match bureau {
                    Some(bureau) => format!("{role} of {bureau}"),
                    None => role.to_string(),
                })
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn groups(list: &[&str]) -> Value {
        json!({"sub": "zhangwei", "name": "张伟", "groups": list})
    }

    #[test]
    fn a_bureau_group_makes_a_bureau_role_and_a_platform_group_a_platform_role() {
        let rules = ClaimRules::default();
        let mapped =
            map_claims(&groups(&["staff", "zhengyun:wjw:bureau-admin"]), &rules).expect("admin");
        assert_eq!(
            mapped,
            Mapped {
                subject: "zhangwei".into(),
                name: "张伟".into(),
                role: Role::BureauAdmin,
                bureau: Some("wjw".into()),
            }
        );
        let mapped = map_claims(&groups(&["zhengyun:finance"]), &rules).expect("finance");
        assert_eq!((mapped.role, mapped.bureau), (Role::Finance, None));
    }

    #[test]
    fn an_admin_who_is_also_the_bureaus_viewer_is_its_admin() {
        let mapped = map_claims(
            &groups(&["zhengyun:wjw:bureau-viewer", "zhengyun:wjw:bureau-admin"]),
            &ClaimRules::default(),
        )
        .expect("admin");
        assert_eq!(mapped.role, Role::BureauAdmin);
    }

    #[test]
    fn no_role_two_roles_and_malformed_groups_map_to_nobody() {
        let rules = ClaimRules::default();
        for (claims, want) in [
            (
                groups(&["wjw-admins", "zhengyun:", "zhengyun:wjw:root"]),
                "no role",
            ),
            (
                groups(&["zhengyun:platform-admin:x", "zhengyun:bureau-admin"]),
                "no role",
            ),
            (groups(&["zhengyun::bureau-admin"]), "no role"),
            (
                groups(&["zhengyun:wjw:bureau-admin", "zhengyun:rsj:bureau-admin"]),
                "ambiguous",
            ),
            (
                groups(&["zhengyun:wjw:bureau-viewer", "zhengyun:auditor"]),
                "ambiguous",
            ),
            (
                json!({"name": "张伟", "groups": ["zhengyun:finance"]}),
                "missing",
            ),
            (json!({"sub": "x", "groups": 5}), "missing"),
        ] {
            let got = map_claims(&claims, &rules).expect_err(want);
            let kind = match got {
                Unmapped::NoRole => "no role",
                Unmapped::Ambiguous(_) => "ambiguous",
                Unmapped::MissingClaim(_) => "missing",
                Unmapped::UnknownRole(_) => "unknown",
            };
            assert_eq!(kind, want, "{claims}");
        }
    }

    #[test]
    fn a_provider_may_name_the_role_and_the_bureau_in_claims_of_their_own() {
        let rules = ClaimRules {
            role: Some("zy_role".into()),
            bureau: Some("dept".into()),
            ..ClaimRules::default()
        };
        let mapped = map_claims(
            &json!({"sub": "lina", "zy_role": "bureau-viewer", "dept": "wjw"}),
            &rules,
        )
        .expect("viewer");
        assert_eq!(
            (mapped.role, mapped.bureau.as_deref(), mapped.name.as_str()),
            (Role::BureauViewer, Some("wjw"), "lina")
        );
        assert_eq!(
            map_claims(&json!({"sub": "x", "zy_role": "root"}), &rules),
            Err(Unmapped::UnknownRole("root".into()))
        );
        assert_eq!(
            map_claims(&json!({"sub": "x", "zy_role": "bureau-admin"}), &rules),
            Err(Unmapped::MissingClaim("dept".into()))
        );
    }
}
