//! Writing the state directory: private files readable by their owner only, and files that
//! other processes wait for, which must appear whole or not at all.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{Error, Result};

/// Reads a file of the state directory as text.
pub fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| io_error("read", path, source))
}

/// Writes `contents` to `path`, which must not exist yet, with mode 0600.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| io_error("create", path, source))?;
    file.write_all(contents)
        .map_err(|source| io_error("write", path, source))
}

/// Writes `contents` to `path` (mode 0644) so that a reader sees the old file or the new one,
/// never a part: a temporary file beside it, renamed over it.
pub fn replace_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = Path::new(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(temporary)
        .map_err(|source| io_error("create", temporary, source))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error("write", temporary, source))?;
    fs::rename(temporary, path).map_err(|source| io_error("rename into place", path, source))
}

/// Creates a directory and its parents if they are missing.
pub fn ensure_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| io_error("create the directory", path, source))
}

/// The crate's error for an I/O failure while doing `action` to `path`.
pub fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}
