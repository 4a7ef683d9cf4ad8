//! The Gateway API's CRDs for the tests that publish through routes: the project's own release
//! ([`GATEWAY_API_VERSION`]), found in the Go module cache with `go mod download -json` (fetched
//! through the Go module proxy on first use), and installed once in the shared test cluster.
//! They are never deleted: a CRD is cluster-wide, and other tests running at the same time
//! might be using it.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

/// The Gateway API module and release whose standard CRDs the tests install.
pub const GATEWAY_API_MODULE: &str = "sigs.k8s.io/gateway-api";

/// The release of [`GATEWAY_API_MODULE`].
pub const GATEWAY_API_VERSION: &str = "v1.4.1";

/// The directory of the Gateway API module in the Go module cache, downloaded through the Go
/// module proxy if it is not there yet.
pub fn module_dir() -> anyhow::Result<PathBuf> {
    let out = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("{GATEWAY_API_MODULE}@{GATEWAY_API_VERSION}"))
        // Outside any Go module, so that no go.mod is read or changed.
        .current_dir(std::env::temp_dir())
        .env("GO111MODULE", "on")
        .output()
        .context("running `go mod download` (Go is needed to find the Gateway API's CRDs)")?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "go mod download {GATEWAY_API_MODULE}@{GATEWAY_API_VERSION}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    anyhow::ensure!(
        out.status.success() && answer["Error"].is_null(),
        "go mod download {GATEWAY_API_MODULE}@{GATEWAY_API_VERSION}: {}{}",
        answer["Error"],
        String::from_utf8_lossy(&out.stderr)
    );
    answer["Dir"]
        .as_str()
        .map(PathBuf::from)
        .context("go mod download named no directory")
}

/// Installs the standard CRD of `plural` (`httproutes`, `grpcroutes`) from the module, server
/// side, and waits until it is established. Installing it again changes nothing.
pub async fn install_crd(kube: &Client, plural: &str) -> anyhow::Result<()> {
    let path = module_dir()?
        .join("config/crd/standard")
        .join(format!("gateway.networking.k8s.io_{plural}.yaml"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&text).with_context(|| path.display().to_string())?;
    let name = crd.metadata.name.clone().context("a CRD without a name")?;
    let crds: Api<CustomResourceDefinition> = Api::all(kube.clone());
    crds.patch(
        &name,
        &PatchParams::apply("zhengyun-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("installing {name}"))?;
    crate::operator::established(kube, &name).await
}
