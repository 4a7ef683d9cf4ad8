//! `zhengyun api` serving TLS as staff meet it: a serving certificate signed by the devcluster's
//! own CA (tests/devcluster leaves its certificate and key in `pki/` next to the kubeconfig),
//! which the CLI trusts by that CA's file, refuses a certificate it has no root for, and sees a
//! renewed certificate without a restart; the command line downloaded from it matches its
//! published SHA-256.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, IsCa, Issuer, KeyPair,
    string::PrintableString,
};
use sha2::{Digest, Sha256};
use zhengyun_e2e::{
    eventually,
    faults::{Process, binary, free_port},
};

/// A CA of its own and a serving certificate for 127.0.0.1 it signed: `(ca.pem, cert.pem,
/// key.pem)`.
fn authority(name: &str) -> anyhow::Result<(String, String, String)> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key)?;
    let (cert, key) = serving_certificate(&Issuer::new(ca, ca_key))?;
    Ok((ca_cert.pem(), cert, key))
}

/// The common name of the devcluster's CA (tests/devcluster/pki.go), which Go writes as a
/// PrintableString: a certificate it issues names it so, byte for byte.
const DEVCLUSTER_CA_NAME: &str = "zhengyun-devcluster-ca";

/// The devcluster's CA certificate file, and a serving certificate for 127.0.0.1 signed with
/// its key: `(ca.crt, cert.pem, key.pem)`.
fn devcluster_authority() -> anyhow::Result<(PathBuf, String, String)> {
    let kubeconfig = PathBuf::from(
        std::env::var_os("KUBECONFIG")
            .context("KUBECONFIG: run the tests through scripts/with-cluster.sh")?,
    );
    let pki = kubeconfig
        .parent()
        .context("KUBECONFIG has no directory")?
        .join("pki");
    let ca_file = pki.join("ca.crt");
    anyhow::ensure!(
        ca_file.is_file(),
        "no CA certificate at {}",
        ca_file.display()
    );
    let key_pem = std::fs::read_to_string(pki.join("ca.key"))
        .with_context(|| format!("the devcluster's CA key in {}", pki.display()))?;
    let ca_key =
        KeyPair::try_from(pkcs8_of_p256(&pem_body(&key_pem, "EC PRIVATE KEY")?).as_slice())
            .context("the devcluster's CA key")?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(
        DnType::CommonName,
        DnValue::PrintableString(PrintableString::try_from(DEVCLUSTER_CA_NAME)?),
    );
    let issuer = Issuer::new(ca, ca_key);
    let (cert, key) = serving_certificate(&issuer)?;
    Ok((ca_file, cert, key))
}

/// A serving certificate for 127.0.0.1 and localhost signed by `issuer`: `(cert.pem, key.pem)`.
fn serving_certificate(issuer: &Issuer<'_, KeyPair>) -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "zhengyun-api.haidian.gov.cn");
    let cert = leaf.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The DER inside the PEM block labelled `label`.
fn pem_body(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .with_context(|| format!("no {label} block"))?;
    let text: String = body.split_whitespace().collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

/// A DER element: `tag`, its length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n @ 0..=127 => out.push(n as u8),
        n => {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(content);
    out
}

/// A P-256 key in SEC 1 (`EC PRIVATE KEY`, as Go writes it) as PKCS #8, which is what the
/// certificate library reads: the SEC 1 key inside, with its algorithm named beside it.
fn pkcs8_of_p256(sec1: &[u8]) -> Vec<u8> {
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let algorithm = der(
        0x30,
        &[der(0x06, EC_PUBLIC_KEY), der(0x06, PRIME256V1)].concat(),
    );
    der(
        0x30,
        &[der(0x02, &[0]), algorithm, der(0x04, sec1)].concat(),
    )
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
    // Served first: a certificate of the devcluster's CA, trusted through its own ca.crt.
    let (first_ca, first_cert, first_key) = devcluster_authority()?;
    let (second_ca, second_cert, second_key) = authority("海淀区政务云 新根证书")?;
    let write = |name: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let second_ca = write("second-ca.pem", &second_ca)?;
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
