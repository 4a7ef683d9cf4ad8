//! The HTML a person sees: the sign-in form of the authorization code flow, the device
//! approval form and short outcome pages. Plain forms, no script; the content security policy
//! allows nothing but the one style block below.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const STYLE: &str = "body{font-family:sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}\
label{display:block;margin:.8rem 0}input{display:block;width:100%;padding:.4rem;box-sizing:border-box}\
button{margin:1rem .5rem 0 0;padding:.4rem 1.2rem}.error{color:#b00020}.note{color:#555;font-size:.9rem}";

/// `default-src 'none'` with the style block above allowed by its hash.
static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = STANDARD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        STYLE.as_bytes(),
    ));
    let policy = format!("default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'");
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// The authorization request's parameters, carried through the sign-in form as hidden fields.
pub type Hidden<'a> = [(&'a str, Option<&'a str>)];

/// The sign-in form posting back to `/authorize`, with `error` above it when the last try failed.
pub fn sign_in(
    status: StatusCode,
    hidden: &Hidden<'_>,
    username: &str,
    error: Option<&str>,
) -> Response {
    let hidden_fields: String = hidden
        .iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    let body = format!(
        r#"<h1>政云 · 统一身份认证</h1>
<p class="note">开发环境身份提供方，仅供测试使用。</p>
{error}<form method="post" action="/authorize">
{hidden_fields}
<label>用户名<input name="username" value="{username}" autocomplete="username" required autofocus></label>
<label>密码<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">登录</button>
</form>"#,
        error = error_line(error),
        username = escape(username),
    );
    page(status, "登录", &body)
}

/// The device approval form, with the user code filled in when the link carried it.
pub fn device(
    status: StatusCode,
    user_code: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let body = format!(
        r#"<h1>政云 · 设备授权</h1>
<p class="note">请核对设备上显示的用户码，然后登录以授权或拒绝。</p>
{error}<form method="post" action="/device">
<label>用户码<input name="user_code" value="{user_code}" autocomplete="off" required></label>
<label>用户名<input name="username" value="{username}" autocomplete="username" required></label>
<label>密码<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit" name="action" value="approve">授权</button>
<button type="submit" name="action" value="deny">拒绝</button>
</form>"#,
        error = error_line(error),
        user_code = escape(user_code),
        username = escape(username),
    );
    page(status, "设备授权", &body)
}

/// A page that only tells something: an outcome, or why a request cannot go on.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(text));
    page(status, title, &body)
}

fn error_line(error: Option<&str>) -> String {
    error
        .map(|error| format!("<p class=\"error\">{}</p>\n", escape(error)))
        .unwrap_or_default()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        title = escape(title),
    );
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY.clone(),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Html(html),
    )
        .into_response()
}

/// `text` safe inside an element or a double-quoted attribute.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_value_is_shown_as_text() {
        assert_eq!(
            escape(r#""><script>alert('x')</script>"#),
            "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
    }
}
