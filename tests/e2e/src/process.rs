//! A `zhengyun api` or `zhengyun dev` process on a port the system picks, with a SQLite file
//! of its own and a bootstrap admin token: what staff and their browsers reach over HTTP.
//! Closing its stdin stops it gracefully.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::unique_name;

/// How long a process has to say where it listens.
const START: Duration = Duration::from_secs(180);

/// How long a process has to stop once its stdin is closed: its API's connections get 10 s to
/// finish and its operator a few more to write its last metering window.
const STOP: Duration = Duration::from_secs(60);

/// The `zhengyun` binary the tests built.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/zhengyun")
}

/// A running `zhengyun` server process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The bootstrap platform admin's token.
    pub admin: String,
    /// Its database (`sqlite://…`), which the test may open too.
    pub database_url: String,
    /// Reads the process's log as it is written (so the pipe never fills); returns all of it.
    log: JoinHandle<String>,
}

/// What [`ServerProcess::launch`] starts: a binary with its arguments, where its log goes, and
/// its database.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The `zhengyun` binary.
    pub binary: PathBuf,
    /// Its subcommand and flags (`api`, or `dev` with its flags).
    pub args: &'a [&'a str],
    /// `ZHENGYUN_LOG` for the process; its default (info) when `None`. The filter must let the
    /// API's `API listening` line through (target `zhengyun_api`, info).
    pub log_filter: Option<&'a str>,
    /// A file that receives a copy of the log as it is written.
    pub log_file: Option<PathBuf>,
    /// Its database; a new SQLite file in the temporary directory when `None`.
    pub database_url: Option<String>,
}

impl<'a> Launch<'a> {
    /// `binary` with `args`, the default log level, the log kept in memory only and a new
    /// SQLite database.
    pub fn new(binary: PathBuf, args: &'a [&'a str]) -> Self {
        Self {
            binary,
            args,
            log_filter: None,
            log_file: None,
            database_url: None,
        }
    }
}

impl ServerProcess {
    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `zhengyun <args>` (`api`, or `dev` with its flags), the debug build the tests
    /// built, as [`ServerProcess::launch`] does.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        Self::launch(&Launch::new(binary(), args))
    }

    /// Starts what `launch` describes on a port the system picks (no other process can take it
    /// between picking and listening), and returns once its log says where it listens, or fails
    /// with that log.
    pub fn launch(launch: &Launch<'_>) -> anyhow::Result<Self> {
        let args = launch.args;
        let database_url = launch.database_url.clone().unwrap_or_else(|| {
            let db = std::env::temp_dir().join(format!("{}.db", unique_name("zhengyun-server")));
            format!("sqlite://{}?mode=rwc", db.display())
        });
        // The API refuses bootstrap tokens shorter than 32 characters; a unique name alone can
        // be 26, depending on the process id.
        let admin = format!(
            "e2e-server-admin-token-{}-0123456789abcdef",
            unique_name("t")
        );
        let mut command = Command::new(&launch.binary);
        command
            .args(args)
            .args(["--stop-on-stdin-eof", "--log-format", "json"])
            .env("ZHENGYUN_API_ADDR", "127.0.0.1:0")
            .env("ZHENGYUN_DATABASE_URL", &database_url)
            .env("ZHENGYUN_BOOTSTRAP_TOKEN", &admin);
        if let Some(filter) = launch.log_filter {
            command.env("ZHENGYUN_LOG", filter);
        }
        let mut copy = match &launch.log_file {
            Some(path) => Some(
                std::fs::File::create(path)
                    .map_err(|e| anyhow::anyhow!("create {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("start {}: {e}", launch.binary.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (listening, addr) = mpsc::channel();
        let log = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = listening_address(&line) {
                    let _ = listening.send(at);
                }
                if let Some(file) = copy.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        match addr.recv_timeout(START) {
            Ok(at) => Ok(Self {
                child,
                url: format!("http://{at}"),
                admin,
                database_url,
                log,
            }),
            Err(waited) => {
                let _ = child.kill();
                let status = child.wait()?;
                let log = log.join().unwrap_or_default();
                anyhow::bail!(
                    "zhengyun {args:?} never said where it listens ({waited}; {status}):\n{log}"
                )
            }
        }
    }

    /// Runs the CLI against this server with `token`.
    pub fn run(&self, token: &str, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new(binary())
            .args(args)
            .env("ZHENGYUN_API_URL", &self.url)
            .env("ZHENGYUN_TOKEN", token)
            .env_remove("ZHENGYUN_BUREAU")
            .output()?)
    }

    /// Runs the CLI and returns what it printed, or fails with what it said on stderr.
    pub fn ok(&self, token: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self.run(token, args)?;
        anyhow::ensure!(
            output.status.success(),
            "zhengyun {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Stops the process by closing its stdin; whether it stopped cleanly, and its log. A
    /// process still running [`STOP`] later is killed, and that is an error with its log.
    pub fn stop(mut self) -> anyhow::Result<(bool, String)> {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + STOP;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break Some(status);
            }
            if std::time::Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if status.is_none() {
            self.child.kill()?;
            self.child.wait()?;
        }
        let log = self
            .log
            .join()
            .map_err(|_| anyhow::anyhow!("the log reader panicked"))?;
        match status {
            Some(status) => Ok((status.success(), log)),
            None => anyhow::bail!("still running {STOP:?} after its stdin closed; killed:\n{log}"),
        }
    }
}

/// The address in the API's `API listening` log line (JSON), if `line` is that line.
fn listening_address(line: &str) -> Option<String> {
    let entry: Value = serde_json::from_str(line).ok()?;
    let fields = entry.get("fields")?;
    (fields.get("message")?.as_str()? == "API listening")
        .then(|| fields.get("addr")?.as_str().map(str::to_owned))
        .flatten()
}
