//! `zhengyun api` serving TLS as staff meet it: the CLI trusts it by its CA file, refuses a
//! certificate it has no root for, and sees a renewed certificate without a restart; the
//! command line downloaded from it matches its published SHA-256.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sha2::{Digest, Sha256};
use zhengyun_e2e::{
    eventually,
    faults::{Process, binary, free_port},
};

/// A CA and a serving certificate for 127.0.0.1 it signed: `(ca.pem, cert.pem, key.pem)`.
fn authority(name: &str) -> anyhow::Result<(String, String, String)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "zhengyun-api.haidian.gov.cn");
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// Runs the CLI's `whoami` against `url` trusting `ca` (and the system's roots); returns
/// whether it succeeded and what it said.
fn whoami(url: &str, token: &str, ca: Option<&Path>) -> anyhow::Result<(bool, String)> {
    let mut command = Command::new(binary());
    command
        .args(["whoami", "--api-url", url])
        .env("ZHENGYUN_TOKEN", token)
        .env_remove("ZHENGYUN_CA_FILE")
        .env(
            "ZHENGYUN_CONFIG_DIR",
            std::env::temp_dir().join("zhengyun-e2e-no-session"),
        );
    if let Some(ca) = ca {
        command.arg("--ca-file").arg(ca);
    }
    let out = command.output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `curl` trusting `ca`: the body, or why not.
fn curl(url: &str, ca: &Path) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

#[tokio::test]
async fn the_cli_trusts_the_api_by_its_ca_refuses_other_certificates_and_sees_a_renewed_one()
-> anyhow::Result<()> {
    let dir = tempdir("tls")?;
    let (first_ca, first_cert, first_key) = authority("海淀区政务云 测试根证书")?;
    let (second_ca, second_cert, second_key) = authority("海淀区政务云 新根证书")?;
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let (first_ca, second_ca) = (
        write("first-ca.pem", &first_ca)?,
        write("second-ca.pem", &second_ca)?,
    );
    let cert = write("tls.crt", &first_cert)?;
    let key = write("tls.key", &first_key)?;
    let port = free_port()?;
    let token = sha256_hex(zhengyun_e2e::unique_name("tls-admin").as_bytes());
    let _api = Process::start(
        &["api"],
        &[
            ("ZHENGYUN_API_ADDR", format!("127.0.0.1:{port}")),
            (
                "ZHENGYUN_DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.join("api.db").display()),
            ),
            ("ZHENGYUN_BOOTSTRAP_TOKEN", token.clone()),
            ("ZHENGYUN_API_TLS_CERT_FILE", cert.display().to_string()),
            ("ZHENGYUN_API_TLS_KEY_FILE", key.display().to_string()),
        ],
        "tls-api",
    )?;
    let url = format!("https://127.0.0.1:{port}");
    eventually(
        "the API to answer over TLS",
        Duration::from_secs(60),
        || async { Ok(whoami(&url, &token, Some(&first_ca))?.0.then_some(())) },
    )
    .await?;

    // Without its CA, or with another one, the CLI refuses the certificate.
    for ca in [None, Some(second_ca.as_path())] {
        let (ok, said) = whoami(&url, &token, ca)?;
        assert!(!ok, "trusted without the right CA ({ca:?}): {said}");
        assert!(said.to_lowercase().contains("certificate"), "{said}");
    }
    // Plain HTTP on the TLS port gets nowhere.
    let (ok, _) = whoami(&format!("http://127.0.0.1:{port}"), &token, None)?;
    assert!(!ok, "plain HTTP was answered on the TLS port");

    // The command line offered for download is the running binary, with its SHA-256.
    let name = format!(
        "zhengyun-{}-{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let downloaded = curl(&format!("{url}/downloads/{name}"), &first_ca)?;
    let published = String::from_utf8(curl(&format!("{url}/downloads/{name}.sha256"), &first_ca)?)?;
    let digest = sha256_hex(&downloaded);
    assert_eq!(published, format!("{digest}  {name}\n"));
    assert_eq!(digest, sha256_hex(&std::fs::read(binary())?));
    let listing: serde_json::Value =
        serde_json::from_slice(&curl(&format!("{url}/downloads"), &first_ca)?)?;
    assert!(
        listing
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["name"] == name.as_str() && d["sha256"] == digest.as_str()),
        "{listing}"
    );

    // A renewed certificate (from another CA here) is served without a restart.
    std::fs::write(&key, &second_key)?;
    std::fs::write(&cert, &second_cert)?;
    eventually(
        "the renewed certificate to be served",
        Duration::from_secs(60),
        || async { Ok(whoami(&url, &token, Some(&second_ca))?.0.then_some(())) },
    )
    .await?;
    let (ok, said) = whoami(&url, &token, Some(&first_ca))?;
    assert!(!ok, "the old certificate is still served: {said}");
    Ok(())
}

fn tempdir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir =
        std::env::temp_dir().join(zhengyun_e2e::unique_name(&format!("zhengyun-e2e-{prefix}")));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
