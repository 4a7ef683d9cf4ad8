//! PostgreSQL over TLS: a URL with `sslmode=verify-full` and `sslrootcert` gets an encrypted
//! session with a server whose certificate that authority signed, and no session at all with
//! a server it did not sign. Runs against the test server of `scripts/with-postgres.sh`, which
//! serves a certificate from a test authority; skipped without it, except in CI.

use std::str::FromStr;

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use zhengyun_store::Store;

const URL_VAR: &str = "ZHENGYUN_TEST_POSTGRES_URL";
const UNTRUSTED_VAR: &str = "ZHENGYUN_TEST_POSTGRES_UNTRUSTED_CA";

/// The verifying URL and the untrusted authority, or `None` (with a notice) outside CI.
fn server() -> Option<(String, String)> {
    let url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
    let untrusted = std::env::var(UNTRUSTED_VAR).ok().filter(|u| !u.is_empty());
    match (url, untrusted) {
        (Some(url), Some(untrusted)) if url.contains("sslmode=verify-full") => {
            Some((url, untrusted))
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "{URL_VAR} (with sslmode=verify-full) and {UNTRUSTED_VAR} must be set in CI: run through scripts/with-postgres.sh"
            )
        }
        _ => {
            eprintln!("notice: PostgreSQL TLS tests SKIPPED: run through scripts/with-postgres.sh");
            None
        }
    }
}

/// `url` with its `sslrootcert` replaced by `ca`.
fn with_root(url: &str, ca: &str) -> String {
    let (base, query) = url.split_once('?').expect("a URL with parameters");
    let params: Vec<String> = query
        .split('&')
        .filter(|p| !p.starts_with("sslrootcert="))
        .map(str::to_owned)
        .chain([format!("sslrootcert={ca}")])
        .collect();
    format!("{base}?{}", params.join("&"))
}

#[tokio::test]
async fn a_verified_tls_url_gets_an_encrypted_session_and_a_working_store() {
    let Some((url, _)) = server() else { return };
    let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
    let mut conn = PgConnection::connect_with(&options)
        .await
        .expect("a session verified against the test authority");
    let (ssl, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("the session's TLS state");
    assert!(ssl, "the session is not encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");
    conn.close().await.ok();

    let store = Store::connect(&url)
        .await
        .expect("the store connects over TLS");
    store.ping().await.expect("and answers");
}

#[tokio::test]
async fn a_server_certificate_from_an_authority_not_configured_is_refused() {
    let Some((url, untrusted)) = server() else {
        return;
    };
    let refused = match Store::connect(&with_root(&url, &untrusted)).await {
        Err(e) => e.to_string(),
        Ok(store) => match store.ping().await {
            Err(e) => e.to_string(),
            Ok(()) => panic!("a server signed by another authority was trusted"),
        },
    };
    assert!(!refused.is_empty());
}
