//! `GET /downloads/…`: the `zhengyun` command line for staff to download from the platform
//! itself, with its SHA-256, so nobody needs a Rust toolchain or the internet to get it.
//!
//! The running binary is always offered as `zhengyun-<os>-<arch>` (`zhengyun-linux-x86_64`);
//! `--downloads-dir` adds the files of a directory (builds for other systems an image carries).
//! Each file `F` has `F.sha256` next to it, in `sha256sum`'s format. No authentication: the
//! command line is no secret, and one needs it before having a token.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    body::Body,
    extract::{Path as UrlPath, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{problem::Problem, state::AppState};

/// The download routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_downloads))
        .routes(routes!(download))
}

/// The name the running binary is offered under.
pub fn own_name() -> String {
    format!(
        "zhengyun-{}-{}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// What may be downloaded, with digests computed once per file version.
#[derive(Debug, Default)]
pub struct Downloads {
    dir: Option<PathBuf>,
    own: Option<PathBuf>,
    digests: Mutex<BTreeMap<PathBuf, (std::time::SystemTime, u64, String)>>,
}

/// One file offered.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadView {
    /// File name, e.g. `zhengyun-linux-x86_64`.
    pub name: String,
    /// Its path: `/downloads/<name>`.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

fn valid_name(name: &str) -> bool {
    name.starts_with("zhengyun")
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.contains("..")
}

impl Downloads {
    /// The running binary, and the files of `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            dir,
            own: std::env::current_exe().ok(),
            digests: Mutex::default(),
        })
    }

    /// The files offered, by name.
    fn files(&self) -> BTreeMap<String, PathBuf> {
        let mut files = BTreeMap::new();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if valid_name(&name)
                    && !name.ends_with(".sha256")
                    && entry.file_type().is_ok_and(|t| t.is_file())
                {
                    files.insert(name, entry.path());
                }
            }
        }
        if let Some(own) = &self.own {
            files.entry(own_name()).or_insert_with(|| own.clone());
        }
        files
    }

    /// The size and SHA-256 of `path`, computed again only when it changed.
    async fn digest(&self, path: &Path) -> std::io::Result<(u64, String)> {
        let meta = tokio::fs::metadata(path).await?;
        let modified = meta.modified()?;
        if let Some((at, size, digest)) = self
            .digests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            && *at == modified
            && *size == meta.len()
        {
            return Ok((*size, digest.clone()));
        }
        let mut file = tokio::fs::File::open(path).await?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        let digest = hex(&hasher.finalize());
        self.digests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_owned(), (modified, meta.len(), digest.clone()));
        Ok((meta.len(), digest))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unreadable(error: std::io::Error) -> Problem {
    tracing::warn!(%error, "unable to read a download");
    Problem::unavailable("the file cannot be read right now; retry later")
}

/// The command-line builds offered for download, with their sizes and SHA-256.
#[utoipa::path(get, path = "/downloads", tag = "health",
    responses((status = 200, body = [DownloadView])))]
async fn list_downloads(State(state): State<AppState>) -> Result<Json<Vec<DownloadView>>, Problem> {
    let downloads = state.downloads();
    let mut views = Vec::new();
    for (name, path) in downloads.files() {
        let (size, sha256) = downloads.digest(&path).await.map_err(unreadable)?;
        views.push(DownloadView {
            url: format!("/downloads/{name}"),
            name,
            size,
            sha256,
        });
    }
    Ok(Json(views))
}

/// A build of the command line (`zhengyun-linux-x86_64`), or its SHA-256 in `sha256sum`'s
/// format (`zhengyun-linux-x86_64.sha256`).
#[utoipa::path(get, path = "/downloads/{name}", tag = "health",
    params(("name" = String, Path, description = "File name, e.g. zhengyun-linux-x86_64")),
    responses((status = 200, content_type = "application/octet-stream"),
        (status = 404, body = Problem)))]
async fn download(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, Problem> {
    let downloads = state.downloads();
    let files = downloads.files();
    let not_found =
        || Problem::not_found(format!("no download {name:?}; GET /downloads lists them"));
    if let Some(file) = name.strip_suffix(".sha256") {
        let path = files.get(file).ok_or_else(not_found)?;
        let (_, sha256) = downloads.digest(path).await.map_err(unreadable)?;
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{sha256}  {file}\n"),
        )
            .into_response());
    }
    let path = files.get(&name).ok_or_else(not_found)?;
    let (size, sha256) = downloads.digest(path).await.map_err(unreadable)?;
    let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Ok(value) = HeaderValue::from_str(&sha256) {
        headers.insert("x-checksum-sha256", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_zhengyun_file_names_are_offered() {
        for good in ["zhengyun-linux-x86_64", "zhengyun-windows-x86_64.exe"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "../etc/passwd",
            "zhengyun/../../x",
            "kubectl",
            "zhengyun-..",
            "zhengyun x",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
