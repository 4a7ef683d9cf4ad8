//! The people who can sign in: read from the users file at start-up, added to or replaced in
//! memory by the `/admin/users` test hook.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, files};

/// One person of the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The login name, which is also the tokens' `sub` and `preferred_username`.
    pub username: String,
    /// Kept in clear: this provider is for development only.
    pub password: String,
    /// The display name, in Chinese.
    pub name: String,
    /// The work e-mail address.
    pub email: String,
    /// The groups the tokens carry, such as `zhengyun:wjw:bureau-admin`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The layout of the users file: `users: [{username, password, name, email, groups}]`.
#[derive(Debug, Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

/// Every user, by username.
#[derive(Debug, Default)]
pub struct Directory {
    users: RwLock<HashMap<String, User>>,
}

impl Directory {
    /// Reads the users file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = files::read(path)?;
        let file: UsersFile = serde_yaml::from_str(&text).map_err(|source| Error::Users {
            path: path.to_owned(),
            source,
        })?;
        let directory = Self::default();
        for user in file.users {
            directory.upsert(user);
        }
        Ok(directory)
    }

    /// Adds `user`, replacing whoever had the same username.
    pub fn upsert(&self, user: User) {
        self.write().insert(user.username.clone(), user);
    }

    /// The user named `username`.
    pub fn get(&self, username: &str) -> Option<User> {
        self.read().get(username).cloned()
    }

    /// The user named `username` if `password` is theirs.
    pub fn authenticate(&self, username: &str, password: &str) -> Option<User> {
        self.get(username)
            .filter(|user| same_secret(&user.password, password))
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there is nobody to sign in as.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, User>> {
        self.users
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, User>> {
        self.users
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Compares digests rather than the secrets, so the time taken says nothing about how much of a
/// guess was right.
fn same_secret(expected: &str, given: &str) -> bool {
    use ring::digest::{SHA256, digest};
    digest(&SHA256, expected.as_bytes()).as_ref() == digest(&SHA256, given.as_bytes()).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zhangwei() -> User {
        User {
            username: "zhangwei".into(),
            password: "zhengyun-dev".into(),
            name: "张伟".into(),
            email: "zhangwei@wjw.example.gov.cn".into(),
            groups: vec!["zhengyun:wjw:bureau-admin".into()],
        }
    }

    #[test]
    fn a_user_signs_in_with_their_password_only() {
        let directory = Directory::default();
        directory.upsert(zhangwei());
        assert_eq!(
            directory.authenticate("zhangwei", "zhengyun-dev"),
            Some(zhangwei())
        );
        assert_eq!(directory.authenticate("zhangwei", "zhengyun-de"), None);
        assert_eq!(directory.authenticate("lina", "zhengyun-dev"), None);
    }

    #[test]
    fn an_upserted_user_replaces_the_one_with_the_same_username() {
        let directory = Directory::default();
        directory.upsert(zhangwei());
        directory.upsert(User {
            groups: vec!["zhengyun:auditor".into()],
            ..zhangwei()
        });
        assert_eq!(directory.len(), 1);
        assert_eq!(
            directory.get("zhangwei").map(|user| user.groups),
            Some(vec!["zhengyun:auditor".to_string()])
        );
    }

    #[test]
    fn the_sample_users_file_names_every_role() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("users.yaml");
        let directory = Directory::load(&path).expect("the sample users file loads");
        let groups = |username: &str| directory.get(username).map(|user| user.groups);
        assert_eq!(
            groups("zhangwei"),
            Some(vec!["zhengyun:wjw:bureau-admin".into()])
        );
        assert_eq!(
            groups("lina"),
            Some(vec!["zhengyun:wjw:bureau-viewer".into()])
        );
        assert_eq!(
            groups("wangfang"),
            Some(vec!["zhengyun:rsj:bureau-admin".into()])
        );
        assert_eq!(
            groups("liuyang"),
            Some(vec!["zhengyun:platform-admin".into()])
        );
        assert_eq!(groups("chenjing"), Some(vec!["zhengyun:finance".into()]));
        assert_eq!(groups("zhaolei"), Some(vec!["zhengyun:auditor".into()]));
        assert!(directory.authenticate("liuyang", "zhengyun-dev").is_some());
    }

    #[test]
    fn every_sample_tenant_has_one_admin_and_one_viewer_of_different_names() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("users.yaml")).expect("users.yaml");
        let file: UsersFile = serde_yaml::from_str(&text).expect("users.yaml parses");
        let tenants = std::fs::read_to_string(root.join("../../data/tenants-haidian.yaml"))
            .expect("the tenants file");
        let codes: Vec<&str> = tenants
            .lines()
            .filter(|line| line.trim_start().starts_with("- {"))
            .filter_map(|line| line.split("code: ").nth(1))
            .filter_map(|rest| rest.split(',').next())
            .map(str::trim)
            .collect();
        assert_eq!(codes.len(), 71, "the sample tenants");
        let mut usernames: Vec<&str> = file.users.iter().map(|u| u.username.as_str()).collect();
        usernames.sort_unstable();
        usernames.dedup();
        assert_eq!(usernames.len(), file.users.len(), "a username twice");
        for code in &codes {
            let holders = |role: &str| -> Vec<&User> {
                let group = format!("zhengyun:{code}:{role}");
                file.users
                    .iter()
                    .filter(|u| u.groups.contains(&group))
                    .collect()
            };
            let (admins, viewers) = (holders("bureau-admin"), holders("bureau-viewer"));
            assert_eq!(
                (admins.len(), viewers.len()),
                (1, 1),
                "{code}: scripts/devidp-users.py writes users.yaml (scripts/generate.sh)"
            );
            assert_ne!(admins[0].name, viewers[0].name, "{code}");
            assert!(admins[0].name.chars().all(|c| !c.is_ascii()), "{code}");
        }
        // Nobody belongs to a bureau that is not a sample tenant.
        for user in &file.users {
            for group in &user.groups {
                if let Some(code) = group
                    .split(':')
                    .nth(1)
                    .filter(|_| group.split(':').count() == 3)
                {
                    assert!(codes.contains(&code), "{}: {group}", user.username);
                }
            }
        }
    }
}
