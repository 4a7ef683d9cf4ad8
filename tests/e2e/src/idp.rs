//! The development identity provider the devcluster trusts (`scripts/idp.sh`, started by
//! `scripts/with-cluster.sh`): where it is, and its test hooks (minting tokens of chosen
//! properties, adding users, rotating keys, approving a device sign-in), called with `curl`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;
use serde_json::Value;
use zhengyun_api::oidc::config::{ClaimRules, IssuerConfig, OidcConfig};

/// The running provider.
#[derive(Clone, Debug)]
pub struct Idp {
    /// Its issuer URL.
    pub issuer: String,
    /// The CA its certificate is signed by.
    pub ca: PathBuf,
    /// Its serving certificate (PEM).
    pub certificate: PathBuf,
}

impl Idp {
    /// The provider in `IDP_DIR` (`.devcluster/idp` by default), if it is running.
    pub fn running() -> Option<Self> {
        let dir = std::env::var_os("IDP_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::faults::root().join(".devcluster/idp"));
        let issuer = std::fs::read_to_string(dir.join("issuer")).ok()?;
        Some(Self {
            issuer: issuer.trim().to_owned(),
            ca: dir.join("ca.crt"),
            certificate: dir.join("tls.crt"),
        })
    }

    /// The provider, or an error saying how to start it.
    pub fn require() -> anyhow::Result<Self> {
        Self::running().context(
            "the development identity provider is not running: run the tests through \
             scripts/with-cluster.sh, which starts it (scripts/idp.sh up) before the devcluster",
        )
    }

    /// The API's configuration trusting it (audience `zhengyun`).
    pub fn oidc_config(&self) -> OidcConfig {
        OidcConfig {
            issuers: vec![IssuerConfig {
                issuer: self.issuer.clone(),
                audiences: vec!["zhengyun".to_owned()],
                client_id: None,
                display_name: Some("海淀区统一身份认证（测试）".to_owned()),
                ca_file: Some(self.ca.clone()),
                claims: ClaimRules::default(),
            }],
        }
    }

    fn curl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&self.ca)
            .args(args)
            .output()
            .context("curl")?;
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "curl {args:?}: {body}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(body)
    }

    fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<String> {
        self.curl(&[
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
            &format!("{}{path}", self.issuer),
        ])
    }

    /// A token with exactly the properties of `request` (`sub`, `name`, `groups`, and any of
    /// `aud`, `issuer`, `expiresIn`, `notBeforeIn`, `signer`).
    pub fn mint(&self, request: &Value) -> anyhow::Result<String> {
        let answer: Value = serde_json::from_str(&self.post_json("/admin/mint", request)?)?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .context("no token minted")
    }

    /// Adds (or replaces) a user who can sign in with `password`.
    pub fn add_user(
        &self,
        username: &str,
        password: &str,
        name: &str,
        groups: &[&str],
    ) -> anyhow::Result<()> {
        self.post_json(
            "/admin/users",
            &serde_json::json!({
                "username": username, "password": password, "name": name,
                "email": format!("{username}@haidian.example.gov.cn"), "groups": groups,
            }),
        )
        .map(drop)
    }

    /// A new signing key signs from now on.
    pub fn rotate(&self) -> anyhow::Result<String> {
        let answer: Value = serde_json::from_str(&self.post_json("/admin/rotate", &Value::Null)?)?;
        Ok(answer["kid"].as_str().unwrap_or_default().to_owned())
    }

    /// Approves the device sign-in of `user_code` as `username`.
    pub fn approve_device(
        &self,
        user_code: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        self.curl(&[
            "--data-urlencode",
            &format!("user_code={user_code}"),
            "--data-urlencode",
            &format!("username={username}"),
            "--data-urlencode",
            &format!("password={password}"),
            "--data-urlencode",
            "action=approve",
            &format!("{}/device", self.issuer),
        ])
        .map(drop)
    }

    /// Signs in at the authorization address `url` (the sign-in form's own fields, with the
    /// user's credentials) and returns where the provider redirects the browser.
    pub fn sign_in_at(&self, url: &str, username: &str, password: &str) -> anyhow::Result<String> {
        let (_, query) = url
            .split_once('?')
            .context("no query in the sign-in address")?;
        let mut args: Vec<String> = Vec::new();
        for pair in query.split('&') {
            args.push("--data".to_owned());
            args.push(pair.to_owned());
        }
        for (key, value) in [("username", username), ("password", password)] {
            args.push("--data-urlencode".to_owned());
            args.push(format!("{key}={value}"));
        }
        args.extend([
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "-w".to_owned(),
            "%{redirect_url}".to_owned(),
            format!("{}/authorize", self.issuer),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl(&args)
    }
}

/// Starts `command` (a `zhengyun login`) and returns it with what `wanted` picks from the first
/// line of its standard error it picks anything from. The rest of its standard error is read
/// on (and echoed) until it exits, so that it never writes to a closed pipe.
pub fn start_login(
    mut command: Command,
    wanted: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(Child, String)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("zhengyun login: {line}");
            let _ = lines.send(line);
        }
    });
    let mut said = String::new();
    while let Ok(line) = received.recv_timeout(std::time::Duration::from_secs(60)) {
        if let Some(found) = wanted(&line) {
            return Ok((child, found));
        }
        said.push_str(&line);
        said.push('\n');
    }
    let _ = child.kill();
    anyhow::bail!("zhengyun login said nothing usable: {said}")
}

/// Waits for a `zhengyun login` to end; its standard output when it succeeded.
pub fn finish_login(child: Child) -> anyhow::Result<String> {
    let out = child.wait_with_output()?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "zhengyun login failed: {said}");
    Ok(said)
}

impl Idp {
    /// Runs `command` (a `zhengyun login --device`), approves the code it prints as `username`,
    /// and returns what it said once signed in. Blocks: call it off the async runtime.
    pub fn device_login(
        &self,
        command: Command,
        username: &str,
        password: &str,
    ) -> anyhow::Result<String> {
        let (child, code) = start_login(command, |line| {
            line.split_once("enter the code ")
                .map(|(_, code)| code.trim().to_owned())
        })?;
        self.approve_device(&code, username, password)?;
        finish_login(child)
    }
}
