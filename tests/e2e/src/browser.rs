//! A real browser for the console's tests: Debian's headless Chromium driven by its
//! ChromeDriver over the W3C WebDriver protocol (JSON over HTTP, spoken here directly).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running ChromeDriver with one headless Chromium session; both stop on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// Where downloads land.
    pub downloads: PathBuf,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// How [`Browser::start_with`] sets up its Chromium.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    /// Whether pages may run JavaScript (Chromium's content setting; on by default).
    pub javascript: bool,
    /// A server certificate (PEM) whose key Chromium accepts though no root it knows signed
    /// it: a development server's, whose CA the system does not trust (none by default).
    pub accepted_certificate: Option<PathBuf>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            javascript: true,
            accepted_certificate: None,
        }
    }
}

/// The base64 SHA-256 of the certificate's public key (its SubjectPublicKeyInfo), as
/// Chromium's `--ignore-certificate-errors-spki-list` takes it; read with `openssl`.
fn spki_hash(certificate: &Path) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(certificate)
        .output()
        .context("openssl x509")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl x509 -pubkey {}: {}",
        certificate.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = String::from_utf8(out.stdout)?;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(der)))
}

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

impl Browser {
    /// Starts ChromeDriver (`CHROMEDRIVER`, `/usr/bin/chromedriver`) and a headless Chromium
    /// (`CHROMIUM`, `/usr/bin/chromium`) at 1366×768, downloading into a fresh directory.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(BrowserOptions::default()).await
    }

    /// Starts ChromeDriver and a headless Chromium as [`Browser::start`] does, set up as
    /// `options` say.
    pub async fn start_with(options: BrowserOptions) -> anyhow::Result<Self> {
        let driver_path = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        anyhow::ensure!(
            driver_path.exists() && chromium.exists(),
            "Chromium and ChromeDriver are needed ({} and {}): scripts/ensure-tools.sh installs \
             Debian's chromium, chromium-driver and fonts-noto-cjk",
            chromium.display(),
            driver_path.display()
        );
        let port = crate::faults::free_port()?;
        // A process group of its own: dropping the browser ends the driver and every Chromium
        // process it started.
        use std::os::unix::process::CommandExt;
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", driver_path.display()))?;
        let profile = std::env::temp_dir().join(crate::unique_name("zhengyun-chromium"));
        let downloads = profile.join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
            downloads,
        };
        crate::eventually(
            "ChromeDriver to answer",
            Duration::from_secs(30),
            || async {
                Ok(browser
                    .call("GET", "/status", None)
                    .await
                    .ok()
                    .filter(|v| v["ready"] == true)
                    .map(drop))
            },
        )
        .await?;
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1366,768".to_owned(),
            "--lang=zh-CN".to_owned(),
            format!("--user-data-dir={}", profile.join("profile").display()),
        ];
        if let Some(certificate) = &options.accepted_certificate {
            // Only this key is let through (honoured with a --user-data-dir), not every
            // certificate as --ignore-certificate-errors would.
            args.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                spki_hash(certificate)?
            ));
        }
        let mut prefs = json!({"download.default_directory": browser.downloads,
                               "download.prompt_for_download": false});
        if !options.javascript {
            // 2 blocks: no page script runs (WebDriver's own scripts still do).
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
            prefs["profile.default_content_setting_values.javascript"] = json!(2);
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args, "prefs": prefs},
        }}});
        let session = browser.call("POST", "/session", Some(capabilities)).await?;
        browser.session = session["sessionId"]
            .as_str()
            .context("no WebDriver session")?
            .to_owned();
        // Downloads go to the directory without asking, in headless mode too.
        let _ = browser
            .command(
                "POST",
                "/goog/cdp/execute",
                json!({"cmd": "Browser.setDownloadBehavior",
                       "params": {"behavior": "allow", "downloadPath": browser.downloads}}),
            )
            .await;
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
        let answer = tokio::time::timeout(Duration::from_secs(60), self.http.request(request))
            .await
            .context("WebDriver did not answer")??;
        let status = answer.status();
        let body: Value = serde_json::from_slice(&answer.into_body().collect().await?.to_bytes())
            .unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("WebDriver {method} {path}: {status} {}", body["value"]);
        }
        Ok(body["value"].clone())
    }

    async fn command(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let body = (method == "POST").then_some(body);
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        self.command("POST", "/url", json!({"url": url}))
            .await
            .map(drop)
    }

    /// The address shown.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self
            .command("GET", "/url", Value::Null)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The page's HTML as it stands.
    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self
            .command("GET", "/source", Value::Null)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn element(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .command(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
            .with_context(|| format!("no element {css}"))?;
        Ok(found[ELEMENT].as_str().context("no element id")?.to_owned())
    }

    /// Types `text` into the element `css` selects.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let id = self.element(css).await?;
        self.command("POST", &format!("/element/{id}/clear"), json!({}))
            .await?;
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await
        .map(drop)
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let id = self.element(css).await?;
        self.command("POST", &format!("/element/{id}/click"), json!({}))
            .await
            .map(drop)
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let id = self.element(css).await?;
        Ok(self
            .command("GET", &format!("/element/{id}/text"), Value::Null)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Sets the window to `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.command(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await
        .map(drop)
    }

    /// How much wider the page is than the window, in CSS pixels (0 when it fits and only its
    /// tables scroll within themselves).
    pub async fn overflow(&self) -> anyhow::Result<i64> {
        let excess = self
            .command(
                "POST",
                "/execute/sync",
                json!({"script": "return document.documentElement.scrollWidth - document.documentElement.clientWidth", "args": []}),
            )
            .await?;
        Ok(excess.as_i64().unwrap_or_default())
    }

    /// What `script` (a function body, `return …`) returns in the page.
    pub async fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Presses Tab in the focused element (the page, at first): focus moves to the next
    /// element a keyboard reaches.
    pub async fn press_tab(&self) -> anyhow::Result<()> {
        self.command(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": "\u{E004}"},
                {"type": "keyUp", "value": "\u{E004}"},
            ]}]}),
        )
        .await
        .map(drop)
    }

    /// The focused element's HTML (`<a class="skip" href="#main">…</a>`).
    pub async fn focused(&self) -> anyhow::Result<String> {
        let html = self
            .command(
                "POST",
                "/execute/sync",
                json!({"script": "return document.activeElement.outerHTML", "args": []}),
            )
            .await?;
        Ok(html.as_str().unwrap_or_default().to_owned())
    }

    /// The value of cookie `name`, if set.
    pub async fn cookie(&self, name: &str) -> anyhow::Result<Option<String>> {
        let cookies = self.command("GET", "/cookie", Value::Null).await?;
        Ok(cookies
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_owned)))
    }

    /// Forgets every cookie (signs out as far as the browser goes).
    pub async fn clear_cookies(&self) -> anyhow::Result<()> {
        self.call("DELETE", &format!("/session/{}/cookie", self.session), None)
            .await
            .map(drop)
    }

    /// Saves a screenshot of the page to `path` (PNG).
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.command("GET", "/screenshot", Value::Null).await?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
        Ok(())
    }

    /// Waits for a downloaded file whose name ends with `suffix`; its contents.
    pub async fn downloaded(&self, suffix: &str) -> anyhow::Result<String> {
        let dir = self.downloads.clone();
        crate::eventually(
            &format!("a download *{suffix}"),
            Duration::from_secs(30),
            || {
                let dir = dir.clone();
                async move {
                    for entry in std::fs::read_dir(&dir)?.flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if name.ends_with(suffix) {
                            return Ok(Some(std::fs::read_to_string(entry.path())?));
                        }
                    }
                    Ok(None)
                }
            },
        )
        .await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: the driver and the browsers it started, which outlive it otherwise.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
