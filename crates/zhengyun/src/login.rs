//! `zhengyun login`: signs the CLI in with the identity provider the API names
//! (`GET /api/v1/auth/providers`), by the authorization code flow with PKCE through a redirect
//! to this machine (RFC 8252), or by the device flow (RFC 8628) where no browser can reach this
//! machine. The session (the ID token, and a refresh token when the provider gives one) is kept
//! in `session.json` of the configuration directory, readable by its owner only; commands use it
//! when no `--token` or `ZHENGYUN_TOKEN` is given, and refresh it when it is about to expire.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zhengyun_contract::SignInProvider;

use crate::{http::HttpsClient, terminal};

/// How long a sign-in may wait for the person at the browser.
const SIGN_IN_WAIT: Duration = Duration::from_secs(300);

/// A token this close to its expiry is refreshed before use.
const REFRESH_AHEAD: i64 = 60;

/// A signed-in session, as kept on disk.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// The API it is for.
    pub api_url: String,
    /// The identity provider.
    pub issuer: String,
    /// The client id signed in as.
    pub client_id: String,
    /// The provider's token endpoint, for refreshing.
    pub token_endpoint: String,
    /// The ID token: what the API and the cluster accept.
    pub id_token: String,
    /// The refresh token, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the ID token expires (Unix seconds).
    pub expires_at: i64,
}

/// The provider's endpoints, from its discovery document.
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
}

/// A token endpoint's answer.
#[derive(Debug, Deserialize)]
struct Tokens {
    id_token: Option<String>,
    refresh_token: Option<String>,
}

/// The directory of the session file: `ZHENGYUN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/zhengyun`,
/// else `~/.config/zhengyun`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ZHENGYUN_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("zhengyun"));
    }
    let home = std::env::var_os("HOME")
        .context("no HOME: set ZHENGYUN_CONFIG_DIR to where the CLI may keep its sign-in")?;
    Ok(PathBuf::from(home).join(".config").join("zhengyun"))
}

fn session_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("session.json"))
}

/// The session on disk, if any.
pub fn load_session() -> anyhow::Result<Option<Session>> {
    let path = session_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a session; run `zhengyun login` again",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("unable to read {}", path.display())),
    }
}

/// Writes `session` readable by its owner only, replacing the file at once.
fn save_session(session: &Session) -> anyhow::Result<()> {
    let path = session_path()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("unable to create {}", dir.display()))?;
    let temporary = dir.join(format!(".session.{}.tmp", std::process::id()));
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&temporary)
            .with_context(|| format!("unable to write {}", temporary.display()))?;
        file.write_all(&serde_json::to_vec_pretty(session)?)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("unable to write {}", path.display()))?;
    Ok(())
}

/// Forgets the session (`zhengyun logout`). Returns whether there was one.
pub fn forget_session() -> anyhow::Result<bool> {
    let path = session_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("unable to remove {}", path.display())),
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The `exp` of a JWT, read without verifying it (the API verifies).
fn expiry_of(jwt: &str) -> anyhow::Result<i64> {
    let payload = jwt
        .split('.')
        .nth(1)
        .context("the provider's ID token is no JWT")?;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload)
            .context("the provider's ID token is no JWT")?,
    )?;
    claims["exp"]
        .as_i64()
        .context("the provider's ID token has no expiry")
}

/// The session's ID token for `api_url`, refreshed first when it is about to expire; `None`
/// when there is no session for that API.
pub async fn session_token(
    http: &HttpsClient<Full<Bytes>>,
    api_url: &str,
) -> anyhow::Result<Option<String>> {
    let Some(mut session) = load_session()? else {
        return Ok(None);
    };
    if session.api_url != api_url {
        return Ok(None);
    }
    if session.expires_at - REFRESH_AHEAD > now() {
        return Ok(Some(session.id_token));
    }
    let Some(refresh) = session.refresh_token.clone() else {
        bail!("your sign-in has expired: run `zhengyun login` again");
    };
    let tokens = post_form(
        http,
        &session.token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &session.client_id),
        ],
    )
    .await
    .context("your sign-in has expired and could not be renewed: run `zhengyun login` again")?;
    let tokens: Tokens = serde_json::from_value(tokens)?;
    session.id_token = tokens
        .id_token
        .context("the identity provider renewed the sign-in without an ID token")?;
    session.expires_at = expiry_of(&session.id_token)?;
    if tokens.refresh_token.is_some() {
        session.refresh_token = tokens.refresh_token;
    }
    save_session(&session)?;
    Ok(Some(session.id_token))
}

async fn send(
    http: &HttpsClient<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(http::StatusCode, Value)> {
    let uri = request.uri().clone();
    let response = tokio::time::timeout(Duration::from_secs(30), http.request(request))
        .await
        .with_context(|| format!("{uri} did not answer"))?
        .with_context(|| format!("unable to reach {uri}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

async fn get_json(http: &HttpsClient<Full<Bytes>>, url: &str) -> anyhow::Result<Value> {
    let request = Request::get(url)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("invalid URL {url}"))?;
    let (status, body) = send(http, request).await?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(body)
}

/// POSTs a form; the JSON answer when 2xx, otherwise the OAuth error as an error.
async fn post_form(
    http: &HttpsClient<Full<Bytes>>,
    url: &str,
    fields: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let (status, body) = post_form_raw(http, url, fields).await?;
    if status.is_success() {
        return Ok(body);
    }
    bail!("{}", oauth_error(&body, status))
}

async fn post_form_raw(
    http: &HttpsClient<Full<Bytes>>,
    url: &str,
    fields: &[(&str, &str)],
) -> anyhow::Result<(http::StatusCode, Value)> {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(form)))
        .with_context(|| format!("invalid URL {url}"))?;
    send(http, request).await
}

fn oauth_error(body: &Value, status: http::StatusCode) -> String {
    let error = body["error"].as_str().unwrap_or("error");
    let description = body["error_description"].as_str().unwrap_or_default();
    terminal::line(&format!(
        "the identity provider refused ({status} {error}) {description}"
    ))
    .into_owned()
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// How to sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Authorization code with PKCE, redirected to a port on this machine.
    Browser,
    /// The device flow: a code typed in on any device.
    Device,
}

/// Signs in with the provider the API at `api_url` names (`issuer`, or its first), keeps the
/// session and returns it.
pub async fn login(
    http: &HttpsClient<Full<Bytes>>,
    api_url: &str,
    issuer: Option<&str>,
    flow: Flow,
) -> anyhow::Result<Session> {
    let providers: Vec<SignInProvider> =
        serde_json::from_value(get_json(http, &format!("{api_url}/api/v1/auth/providers")).await?)
            .context("the API's list of identity providers")?;
    let provider = match issuer {
        Some(wanted) => providers.into_iter().find(|p| p.issuer == wanted),
        None => providers.into_iter().next(),
    }
    .with_context(|| match issuer {
        Some(wanted) => format!("the API does not accept sign-in with {wanted}"),
        None => "the API accepts no sign-in with an identity provider, only tokens \
                 (--token or ZHENGYUN_TOKEN)"
            .to_owned(),
    })?;
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        provider.issuer.trim_end_matches('/')
    );
    let discovery: Discovery = serde_json::from_value(get_json(http, &discovery_url).await?)
        .context("the identity provider's discovery document")?;
    anyhow::ensure!(
        discovery.issuer == provider.issuer,
        "the identity provider calls itself {:?}, not {:?}",
        discovery.issuer,
        provider.issuer
    );
    let name = provider.display_name.as_deref().unwrap_or(&provider.issuer);
    let tokens = match flow {
        Flow::Browser => browser(http, &discovery, &provider.client_id, name).await?,
        Flow::Device => device(http, &discovery, &provider.client_id, name).await?,
    };
    let tokens: Tokens = serde_json::from_value(tokens)?;
    let id_token = tokens
        .id_token
        .context("the identity provider gave no ID token")?;
    let session = Session {
        api_url: api_url.to_owned(),
        issuer: provider.issuer,
        client_id: provider.client_id,
        token_endpoint: discovery.token_endpoint,
        expires_at: expiry_of(&id_token)?,
        id_token,
        refresh_token: tokens.refresh_token,
    };
    save_session(&session)?;
    Ok(session)
}

/// The authorization code flow with PKCE: prints the address to open, waits for the provider to
/// redirect the browser to a port of this machine, and trades the code for tokens.
async fn browser(
    http: &HttpsClient<Full<Bytes>>,
    discovery: &Discovery,
    client_id: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("unable to listen on this machine for the sign-in's redirect")?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let verifier = random_token()?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_token()?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", "openid profile email groups offline_access"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let separator = if discovery.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    eprintln!(
        "Open this address in a browser to sign in with {}:\n\n  {}{separator}{query}\n",
        terminal::line(name),
        discovery.authorization_endpoint
    );
    let code = tokio::time::timeout(SIGN_IN_WAIT, redirected_code(&listener, &state))
        .await
        .context("nobody signed in within 5 minutes")??;
    post_form(
        http,
        &discovery.token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await
}

/// Answers requests on `listener` until one is the redirect carrying `state` and a code (or an
/// error), which it returns.
async fn redirected_code(
    listener: &tokio::net::TcpListener,
    state: &str,
) -> anyhow::Result<String> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut buffer = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8_lossy(&head);
        let target = text
            .lines()
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or_default();
        let params: std::collections::HashMap<String, String> = target
            .split_once('?')
            .map(|(_, query)| {
                url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let (status, page, outcome) = if params.get("state").map(String::as_str) != Some(state) {
            ("400 Bad Request", "登录请求无效。Not this sign-in.", None)
        } else if let Some(code) = params.get("code") {
            (
                "200 OK",
                "登录成功，可以关闭此页面。Signed in: you may close this page.",
                Some(Ok(code.clone())),
            )
        } else {
            let error = params.get("error").cloned().unwrap_or_default();
            (
                "400 Bad Request",
                "登录失败。Sign-in failed.",
                Some(Err(anyhow::anyhow!(
                    "the identity provider refused the sign-in: {}",
                    terminal::line(&error)
                ))),
            )
        };
        let body = format!(
            "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>政云</title><p>{page}</p></html>"
        );
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

/// The device flow: prints where to go and the code to enter, then polls the token endpoint at
/// the interval the provider asks for.
async fn device(
    http: &HttpsClient<Full<Bytes>>,
    discovery: &Discovery,
    client_id: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let endpoint = discovery.device_authorization_endpoint.as_deref().context(
        "the identity provider offers no device sign-in; run `zhengyun login` without --device",
    )?;
    let started = post_form(
        http,
        endpoint,
        &[
            ("client_id", client_id),
            ("scope", "openid profile email groups offline_access"),
        ],
    )
    .await?;
    let device_code = started["device_code"]
        .as_str()
        .context("the identity provider gave no device code")?
        .to_owned();
    let user_code = started["user_code"].as_str().unwrap_or_default();
    let uri = started["verification_uri"].as_str().unwrap_or_default();
    eprintln!(
        "To sign in with {}, open {} on any device and enter the code {}",
        terminal::line(name),
        terminal::line(uri),
        terminal::line(user_code)
    );
    if let Some(complete) = started["verification_uri_complete"].as_str() {
        eprintln!("(or open {})", terminal::line(complete));
    }
    let mut interval = Duration::from_secs(started["interval"].as_u64().unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(started["expires_in"].as_u64().unwrap_or(600)).min(SIGN_IN_WAIT * 2);
    loop {
        tokio::time::sleep(interval).await;
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "nobody entered the code in time"
        );
        let (status, body) = post_form_raw(
            http,
            &discovery.token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &device_code),
                ("client_id", client_id),
            ],
        )
        .await?;
        if status.is_success() {
            return Ok(body);
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            _ => bail!("{}", oauth_error(&body, status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_of_an_id_token_is_read_from_its_claims() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"zhangwei","exp":1796000000}"#);
        assert_eq!(
            expiry_of(&format!("eyJhbGciOiJFUzI1NiJ9.{payload}.sig")).expect("exp"),
            1_796_000_000
        );
        assert!(expiry_of("not-a-jwt").is_err());
    }
}
