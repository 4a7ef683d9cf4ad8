//! A small HTTP client for the API, for the CLI: JSON in and out, bearer token (given, or the
//! signed-in session's), TLS with the system's roots and any `--ca-file`, the usual proxy
//! variables, and problem+json answers turned into readable errors.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{http::HttpsClient, terminal};

/// Where the API is and who is calling.
#[derive(Clone, Debug, clap::Args)]
pub struct Connection {
    /// Base URL of the Zhengyun API.
    #[arg(
        long,
        env = "ZHENGYUN_API_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub api_url: String,
    /// Bearer token (a bureau admin's for everyday work); without one, the session of
    /// `zhengyun login`.
    #[arg(long, env = "ZHENGYUN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// PEM file of certificates to trust besides the system's, for the API and the identity
    /// provider (a private CA). Repeat the flag, or separate files with commas.
    #[arg(long, env = "ZHENGYUN_CA_FILE", global = true, value_delimiter = ',')]
    pub ca_file: Vec<std::path::PathBuf>,
}

impl Connection {
    /// The base URL without a trailing slash.
    pub fn base(&self) -> String {
        self.api_url.trim_end_matches('/').to_owned()
    }

    /// An HTTPS client for this connection's roots and proxies.
    pub fn http(&self) -> anyhow::Result<HttpsClient<Full<Bytes>>> {
        crate::http::client(&self.ca_file)
    }
}

/// A connected API client.
#[derive(Debug)]
pub struct ApiClient {
    base: String,
    token: String,
    http: HttpsClient<Full<Bytes>>,
}

/// An answer that is not an error.
#[derive(Debug)]
pub struct Answer {
    /// 200, 201, 202 or 204.
    pub status: StatusCode,
    /// The JSON body (`Null` when empty).
    pub body: Value,
    /// The raw body, for CSV.
    pub raw: Bytes,
    /// Where the next page of a list starts (the `x-next-after` header), when there is one.
    pub next: Option<String>,
}

impl Answer {
    /// The body as the contract type `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        decode(&self.body)
    }
}

/// `body` as the contract type `T`, or why the API's answer is not one.
pub fn decode<T: DeserializeOwned>(body: &Value) -> anyhow::Result<T> {
    serde_json::from_value(body.clone()).with_context(|| {
        format!(
            "the API answered with JSON this version does not read as {}",
            std::any::type_name::<T>()
        )
    })
}

const TIMEOUT: Duration = Duration::from_secs(60);

impl ApiClient {
    /// A client for `connection`, with its token or the signed-in session's; fails without
    /// either.
    pub async fn connect(connection: &Connection) -> anyhow::Result<Self> {
        let http = connection.http()?;
        let base = connection.base();
        let token = match connection.token.clone() {
            Some(token) => token,
            None => crate::login::session_token(&http, &base)
                .await?
                .with_context(|| {
                    format!(
                        "no token: run `zhengyun login`, or pass --token or set ZHENGYUN_TOKEN \
                     (no signed-in session for {base})"
                    )
                })?,
        };
        Ok(Self { base, token, http })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(Method::GET, path, None, "application/json").await
    }

    /// `GET path` of a paged list, every page: the items of all of them as one JSON array.
    pub async fn get_all(&self, path: &str) -> anyhow::Result<Value> {
        let mut items = Vec::new();
        let mut answer = self.get(path).await?;
        loop {
            if let Value::Array(page) = answer.body {
                items.extend(page);
            }
            let Some(next) = answer.next else { break };
            let separator = if path.contains('?') { '&' } else { '?' };
            let after = segment(&next);
            answer = self.get(&format!("{path}{separator}after={after}")).await?;
        }
        Ok(Value::Array(items))
    }

    /// `GET path` asking for `accept`.
    pub async fn get_as(&self, path: &str, accept: &str) -> anyhow::Result<Answer> {
        self.send(Method::GET, path, None, accept).await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Answer> {
        let body = serde_json::to_vec(body).context("unable to write the request as JSON")?;
        self.send(method, path, Some(Bytes::from(body)), "application/json")
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.send(Method::DELETE, path, None, "application/json")
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        accept: &str,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, accept);
        let payload = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                body
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .with_context(|| format!("invalid URL {url}"))?;
        let response = tokio::time::timeout(TIMEOUT, self.http.request(request))
            .await
            .with_context(|| format!("{method} {url} timed out"))?
            .with_context(|| format!("unable to reach the API at {}", self.base))?;
        let status = response.status();
        let next = response
            .headers()
            .get(zhengyun_contract::NEXT_AFTER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer to {method} {url}"))?
            .to_bytes();
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Answer {
                status,
                body,
                raw,
                next,
            });
        }
        bail!("{}", describe_problem(status, &body))
    }
}

/// "403 Not allowed: this token belongs to …", with each invalid field on its own line. Every
/// piece from the server is one line with what it hides from a terminal escaped
/// ([`terminal::line`]), so only these line breaks are line breaks.
pub fn describe_problem(status: StatusCode, body: &Value) -> String {
    let piece = |value: &Value, default: &'static str| {
        terminal::line(value.as_str().unwrap_or(default)).into_owned()
    };
    let detail = piece(&body["detail"], "no details");
    let title = piece(&body["title"], status.canonical_reason().unwrap_or("error"));
    let mut text = format!("{} {title}: {detail}", status.as_u16());
    if let Some(errors) = body["errors"].as_array()
        && errors.len() > 1
    {
        for error in errors {
            text.push_str(&format!(
                "\n  {}: {}",
                piece(&error["field"], "?"),
                piece(&error["message"], "?")
            ));
        }
    }
    if let Some(id) = body["requestId"].as_str() {
        text.push_str(&format!("\n  (request id {})", terminal::line(id)));
    }
    text
}

/// What must be escaped in a path segment or query value: everything but RFC 3986's unreserved
/// characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` escaped for a URL path segment or query value.
pub(crate) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}
