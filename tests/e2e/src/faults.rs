//! The fault suite's harness: a devcluster of its own that a test may stop and start again, a
//! PostgreSQL of its own that a test may stop and start again, `zhengyun` processes that a test
//! may kill, freeze or thaw, and an HTTP client for the API that never waits forever.
//!
//! Everything here acts on real processes through the project's scripts; the suite runs through
//! `make test-faults` (scripts/faults.sh), which names the state directory in `DEVCLUSTER_DIR`.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the fault suite writes the logs of the processes it starts.
pub fn log_dir() -> anyhow::Result<PathBuf> {
    let dir = root().join("target/faults");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn script(name: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<String> {
    let output = Command::new(root().join("scripts").join(name))
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run scripts/{name}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "scripts/{name} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// The suite's own devcluster, named by `DEVCLUSTER_DIR`.
#[derive(Clone, Debug)]
pub struct Cluster {
    dir: String,
}

impl Cluster {
    /// The cluster the suite was started with. Refuses the shared `.devcluster`: these tests
    /// stop the control plane, which would break every other test using it.
    pub fn from_env() -> anyhow::Result<Self> {
        let dir = std::env::var("DEVCLUSTER_DIR").unwrap_or_default();
        let name = Path::new(&dir)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.is_empty() || name == ".devcluster" {
            bail!(
                "the fault suite stops and restarts its cluster; run it with `make test-faults`, \
                 which gives it a devcluster of its own (DEVCLUSTER_DIR=.devcluster-faults)"
            );
        }
        Ok(Self { dir })
    }

    fn envs(&self) -> [(&str, &str); 1] {
        [("DEVCLUSTER_DIR", self.dir.as_str())]
    }

    /// Starts the devcluster on its existing data (etcd, certificates and ports are reused, so
    /// the kubeconfig stays valid); does nothing if it runs.
    pub fn up(&self) -> anyhow::Result<()> {
        script("cluster.sh", &["up"], &self.envs()).map(drop)
    }

    /// Stops the devcluster process (SIGTERM, then SIGKILL after 20 s).
    pub fn down(&self) -> anyhow::Result<()> {
        script("cluster.sh", &["down"], &self.envs()).map(drop)
    }

    /// Where its state lives.
    pub fn dir(&self) -> PathBuf {
        let dir = PathBuf::from(&self.dir);
        if dir.is_absolute() {
            dir
        } else {
            root().join(dir)
        }
    }

    /// The devcluster's pid, while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let text = std::fs::read_to_string(self.dir().join("pid")).context("devcluster pid")?;
        Ok(text.trim().parse()?)
    }
}

/// The suite's own PostgreSQL, in `<cluster dir>/postgres`, on a port it keeps across restarts.
#[derive(Clone, Debug)]
pub struct Postgres {
    dir: String,
    port: Option<u16>,
}

impl Postgres {
    /// The suite's PostgreSQL (not started yet).
    pub fn of(cluster: &Cluster) -> Self {
        Self {
            dir: cluster
                .dir()
                .join("postgres")
                .to_string_lossy()
                .into_owned(),
            port: None,
        }
    }

    /// Starts it (on the port of the previous start, so that URLs stay valid) and returns its
    /// URL.
    pub fn up(&mut self) -> anyhow::Result<String> {
        // Below the kernel's ephemeral range (32768-60999), so that while the server is down
        // no other socket takes its port and no reconnection attempt connects to itself.
        let port = self.port.unwrap_or(25_432).to_string();
        let envs = [
            ("ZHENGYUN_POSTGRES_DIR", self.dir.as_str()),
            ("ZHENGYUN_POSTGRES_PORT", port.as_str()),
        ];
        script("postgres.sh", &["up"], &envs)?;
        let url = script("postgres.sh", &["url"], &envs)?.trim().to_owned();
        let actual: u16 = url
            .rsplit(':')
            .next()
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {url}"))?;
        if let Some(previous) = self.port {
            ensure!(
                previous == actual,
                "PostgreSQL came back on port {actual}, not {previous}: another process took it"
            );
        }
        self.port = Some(actual);
        Ok(url)
    }

    /// Stops it (fast shutdown: open connections are cut).
    pub fn down(&self) -> anyhow::Result<()> {
        script(
            "postgres.sh",
            &["down"],
            &[("ZHENGYUN_POSTGRES_DIR", &self.dir)],
        )
        .map(drop)
    }
}

/// The `zhengyun` binary under test (`cargo build -p zhengyun`).
pub fn binary() -> PathBuf {
    std::env::var("ZHENGYUN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/debug/zhengyun"))
}

/// A `zhengyun` process: it stops by itself when its standard input closes (on drop, or when
/// the test binary dies), and can be killed, frozen and thawed.
#[derive(Debug)]
pub struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Process {
    /// Starts `zhengyun <args>` with `envs`, its output appended to `target/faults/<log>.log`.
    pub fn start(args: &[&str], envs: &[(&str, String)], log: &str) -> anyhow::Result<Self> {
        let log = log_dir()?.join(format!("{log}.log"));
        let out = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut child = Command::new(binary())
            .args(args)
            .arg("--stop-on-stdin-eof")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("ZHENGYUN_BUREAU")
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {} (cargo build -p zhengyun)", binary().display()))?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut File::open(&self.log)?, &mut text)?;
        Ok(text)
    }

    /// Where its log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> anyhow::Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    /// SIGKILL: no chance to clean up or release anything.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGSTOP: the process keeps its sockets but does nothing, like a long pause.
    pub fn freeze(&self) -> anyhow::Result<()> {
        signal(self.pid(), "STOP")
    }

    /// SIGCONT after [`Process::freeze`].
    pub fn thaw(&self) -> anyhow::Result<()> {
        signal(self.pid(), "CONT")
    }

    /// Closes its standard input and waits (at most `timeout`) for it to exit; returns whether
    /// it exited successfully.
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<bool> {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() >= deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!(
                    "did not stop within {} s of its stdin closing; killed",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = signal(self.child.id(), "CONT");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// How long a call to the API may take before the test calls it hung. Generous: the point is
/// that an answer comes, not how fast.
pub const CALL_BOUND: Duration = Duration::from_secs(60);

/// One answer of the API.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type`.
    pub content_type: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Answer {
    /// Whether this is the 503 problem the API gives when a dependency is away.
    pub fn is_unavailable_problem(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.content_type.starts_with("application/problem+json")
            && self.body["status"] == 503
            && self.body["type"] == "https://zhengyun.io/problems/unavailable"
    }
}

/// An HTTP client for a running API process.
#[derive(Clone, Debug)]
pub struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    /// A client for the API at `http://127.0.0.1:<port>`.
    pub fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Calls the API; an answer that takes longer than [`CALL_BOUND`] is an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?,
            None => builder.body(Full::new(Bytes::new()))?,
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer {
                status,
                content_type,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            })
        };
        tokio::time::timeout(CALL_BOUND, exchange)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{method} {path} got no answer within {} s: the API hangs",
                    CALL_BOUND.as_secs()
                )
            })?
    }

    /// GET `path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Answer> {
        self.call(Method::GET, path, token, None).await
    }
}

/// A small deterministic random sequence (xorshift64*), seeded from `ZHENGYUN_FAULTS_SEED` or
/// the clock, so that a failing run can be repeated with the seed it printed.
#[derive(Clone, Debug)]
pub struct Random(u64);

impl Random {
    /// A sequence seeded from the environment or the clock; prints the seed.
    pub fn from_env(what: &str) -> Self {
        let seed = std::env::var("ZHENGYUN_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{what}: ZHENGYUN_FAULTS_SEED={seed}");
        Self(seed.max(1))
    }

    /// The next number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
