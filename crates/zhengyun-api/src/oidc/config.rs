//! Which identity providers the API trusts, and how their claims name a role and a bureau: the
//! file named by `--oidc-config`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file: one or more issuers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OidcConfig {
    /// The trusted issuers.
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted issuer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerConfig {
    /// The issuer URL, exactly as in its tokens' `iss` (`https://sso.haidian.gov.cn`).
    pub issuer: String,
    /// Accepted `aud` values; a token must name one of them.
    pub audiences: Vec<String>,
    /// The client id `zhengyun login` signs in as (the first audience when absent).
    #[serde(default)]
    pub client_id: Option<String>,
    /// What `zhengyun login` shows for this provider (统一身份认证).
    #[serde(default)]
    pub display_name: Option<String>,
    /// PEM file of the roots its certificate is checked against; the system's roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How claims name the caller, its role and its bureau.
    #[serde(default)]
    pub claims: ClaimRules,
}

/// How claims name the caller, its role and its bureau: by groups (`<prefix><bureau>:<role>` for
/// bureau roles, `<prefix><role>` for platform-wide ones), or by one claim for the bureau and one
/// for the role.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimRules {
    /// The claim naming the person (`sub`).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The claim with the display name (`name`).
    #[serde(default = "default_name")]
    pub name: String,
    /// The claim with the groups (`groups`).
    #[serde(default = "default_groups")]
    pub groups: String,
    /// The prefix of the groups that name a role (`zhengyun:`).
    #[serde(default = "default_prefix")]
    pub group_prefix: String,
    /// A claim holding the bureau code, when the provider names it outside groups.
    #[serde(default)]
    pub bureau: Option<String>,
    /// A claim holding the role, when the provider names it outside groups.
    #[serde(default)]
    pub role: Option<String>,
}

fn default_subject() -> String {
    "sub".to_owned()
}

fn default_name() -> String {
    "name".to_owned()
}

fn default_groups() -> String {
    "groups".to_owned()
}

fn default_prefix() -> String {
    "zhengyun:".to_owned()
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            subject: default_subject(),
            name: default_name(),
            groups: default_groups(),
            group_prefix: default_prefix(),
            bureau: None,
            role: None,
        }
    }
}

impl IssuerConfig {
    /// The client id `zhengyun login` uses.
    pub fn client_id(&self) -> &str {
        self.client_id
            .as_deref()
            .or(self.audiences.first().map(String::as_str))
            .unwrap_or_default()
    }
}

impl OidcConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--oidc-config {}: {e}", path.display()))?;
        let config: Self = serde_yaml::from_str(&text)
            .map_err(|e| format!("--oidc-config {}: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("--oidc-config {}: {e}", path.display()))?;
        Ok(config)
    }

    /// Refuses a configuration that could not work: no issuer, an issuer that is not an https
    /// URL (or http on loopback), twice the same issuer, no audience, or a role claim without a
    /// bureau claim.
    pub fn check(&self) -> Result<(), String> {
        if self.issuers.is_empty() {
            return Err("no issuers".to_owned());
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            let url: axum::http::Uri = issuer
                .issuer
                .parse()
                .map_err(|_| format!("issuer {:?} is not a URL", issuer.issuer))?;
            let loopback = matches!(url.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
            match url.scheme_str() {
                Some("https") => {}
                Some("http") if loopback => {}
                _ => return Err(format!("issuer {:?} must be an https URL", issuer.issuer)),
            }
            if self.issuers[..i].iter().any(|o| o.issuer == issuer.issuer) {
                return Err(format!("issuer {:?} is listed twice", issuer.issuer));
            }
            if issuer.audiences.iter().all(|a| a.trim().is_empty()) {
                return Err(format!("issuer {:?} accepts no audience", issuer.issuer));
            }
            if issuer.claims.bureau.is_some() && issuer.claims.role.is_none() {
                return Err(format!(
                    "issuer {:?}: a bureau claim needs a role claim",
                    issuer.issuer
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OidcConfig, String> {
        let config: OidcConfig = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn an_issuer_takes_the_default_claim_rules_and_its_first_audience_as_client() {
        let config =
            parse("issuers:\n- issuer: https://sso.haidian.gov.cn\n  audiences: [zhengyun]\n")
                .expect("config");
        let issuer = &config.issuers[0];
        assert_eq!(issuer.client_id(), "zhengyun");
        assert_eq!(issuer.claims, ClaimRules::default());
    }

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        for bad in [
            "issuers: []\n",
            "issuers:\n- issuer: http://sso.haidian.gov.cn\n  audiences: [zhengyun]\n",
            "issuers:\n- issuer: not a url\n  audiences: [zhengyun]\n",
            "issuers:\n- issuer: https://a.gov.cn\n  audiences: []\n",
            "issuers:\n- {issuer: 'https://a.gov.cn', audiences: [z]}\n- {issuer: 'https://a.gov.cn', audiences: [z]}\n",
            "issuers:\n- issuer: https://a.gov.cn\n  audiences: [z]\n  claims: {bureau: dept}\n",
            "issuers:\n- issuer: https://a.gov.cn\n  audiences: [z]\n  unknown: 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // Plain http is for a provider on this machine only.
        assert!(parse("issuers:\n- issuer: http://127.0.0.1:5556\n  audiences: [z]\n").is_ok());
    }
}
