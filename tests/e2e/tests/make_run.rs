//! `make run` (scripts/run.sh) started in the background on the devcluster: it prints an API URL
//! and tokens that work, writes run.env, and stops everything it started on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn value_after<'a>(lines: &'a [String], label: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

/// Leaves out of `command`'s environment what `cargo test` sets for this test (the package's
/// name, its manifest directory, …), so that the `cargo build` inside `make run` sees what it
/// sees when typed at a shell. Some build scripts (ring's, for one) are run again when those
/// variables change, and every crate above them is then compiled again, twice: once here and
/// once more by the next `cargo test`.
fn as_typed_at_a_shell(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_cargo_test = name == "CARGO"
            || name == "CARGO_CRATE_NAME"
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "CARGO_TARGET_TMPDIR"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_");
        if set_by_cargo_test {
            command.env_remove(name);
        }
    }
}

#[test]
fn make_run_prints_a_working_url_and_tokens_and_stops_cleanly_on_ctrl_c() -> anyhow::Result<()> {
    let kubeconfig = std::env::var("KUBECONFIG")?;
    let run_dir = std::env::temp_dir().join(zhengyun_e2e::unique_name("zhengyun-run"));
    let (api_port, operator_port) = (free_port()?, free_port()?);
    let mut run = Command::new(root().join("scripts/run.sh"));
    as_typed_at_a_shell(&mut run);
    let mut child = run
        .env("ZHENGYUN_USE_EXISTING_CLUSTER", "1")
        .env("ZHENGYUN_INSTALL_SAMPLES", "1")
        .env("KUBECONFIG", &kubeconfig)
        .env("ZHENGYUN_RUN_DIR", &run_dir)
        .env("ZHENGYUN_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env(
            "ZHENGYUN_OPERATOR_ADDR",
            format!("127.0.0.1:{operator_port}"),
        )
        .env("ZHENGYUN_LEASE_NAME", "zhengyun-e2e")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.contains("Press Ctrl-C to stop"))
    {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                anyhow::bail!(
                    "make run never became ready ({e}); it printed:\n{}",
                    lines.join("\n")
                );
            }
        }
    }

    let url = value_after(&lines, "API").expect("API line").to_owned();
    let admin = value_after(&lines, "platform-admin token")
        .expect("admin token")
        .to_owned();
    let bureau_token = value_after(&lines, "bureau-admin token")
        .expect("bureau token")
        .to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{api_port}"));

    let zhengyun = root().join("target/debug/zhengyun");
    let whoami = |token: &str| -> anyhow::Result<String> {
        let out = Command::new(&zhengyun)
            .args(["whoami", "-o", "json"])
            .env("ZHENGYUN_API_URL", &url)
            .env("ZHENGYUN_TOKEN", token)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    assert!(whoami(&admin)?.contains("platform-admin"));
    let me = whoami(&bureau_token)?;
    assert!(
        me.contains("bureau-admin") && me.contains("\"wjw\""),
        "{me}"
    );

    // The sign-in it prints works: 张伟 signs in by the device flow as 卫健委's admin.
    assert!(
        lines.iter().any(|l| l.contains("login --device"))
            && lines.iter().any(|l| l.contains("zhangwei")),
        "no sign-in printed:\n{}",
        lines.join("\n")
    );
    let idp = zhengyun_e2e::idp::Idp::require()?;
    let config = run_dir.join("session");
    let login = || {
        let mut command = Command::new(&zhengyun);
        command
            .env("ZHENGYUN_API_URL", &url)
            .env("ZHENGYUN_CONFIG_DIR", &config)
            .env("ZHENGYUN_CA_FILE", &idp.ca)
            .env_remove("ZHENGYUN_TOKEN");
        command
    };
    let mut command = login();
    command.args(["login", "--device"]);
    let signed_in = idp.device_login(command, "zhangwei", "zhengyun-dev")?;
    assert!(signed_in.contains("bureau-admin of wjw"), "{signed_in}");
    let mut command = login();
    let me = command.args(["whoami", "-o", "json"]).output()?;
    assert!(
        String::from_utf8_lossy(&me.stdout).contains("\"wjw\""),
        "{me:?}"
    );

    // The kubeconfig step it prints works for 张伟 signed in: its ttl, if any, is within the
    // provider's token (an hour), and run as printed it gives a kubeconfig.
    let printed = |what: &str| -> anyhow::Result<Vec<String>> {
        let line = lines
            .iter()
            .find(|l| l.contains(what))
            .ok_or_else(|| anyhow::anyhow!("no {what:?} printed:\n{}", lines.join("\n")))?;
        let command = line.split('#').next().unwrap_or_default();
        Ok(command
            .split_whitespace()
            .take_while(|word| *word != ">")
            .map(str::to_owned)
            .collect())
    };
    let kubeconfig_step = printed(" env kubeconfig ")?;
    if let Some(at) = kubeconfig_step.iter().position(|w| w == "--ttl") {
        let ttl: jiff::SignedDuration = kubeconfig_step
            .get(at + 1)
            .map(String::as_str)
            .unwrap_or_default()
            .parse()?;
        assert!(
            ttl <= jiff::SignedDuration::from_hours(1),
            "the printed kubeconfig outlives the provider's token: {kubeconfig_step:?}"
        );
    }
    let request_step = printed(" env request dev ")?;
    let run_printed = |step: &[String], token: Option<&str>| -> anyhow::Result<String> {
        let mut command = login();
        command.args(&step[1..]);
        if let Some(token) = token {
            command.env("ZHENGYUN_TOKEN", token);
        }
        let out = command.output()?;
        anyhow::ensure!(
            out.status.success(),
            "{step:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let requested = run_printed(&request_step, Some(&bureau_token));
    let ready = || -> anyhow::Result<bool> {
        let listed = run_printed(
            &["zhengyun".to_owned(), "env".to_owned(), "list".to_owned()],
            Some(&bureau_token),
        )?;
        Ok(listed
            .lines()
            .any(|l| l.starts_with("wjw-dev ") && l.contains("Ready")))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !ready()? {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "wjw-dev never became Ready ({requested:?})"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let issued = run_printed(&kubeconfig_step, None)?;
    assert!(
        issued.contains("current-context: wjw-dev"),
        "the printed kubeconfig step gave: {issued}"
    );
    if requested.is_ok() {
        run_printed(
            &[
                "zhengyun".to_owned(),
                "env".to_owned(),
                "delete".to_owned(),
                "wjw-dev".to_owned(),
            ],
            Some(&bureau_token),
        )?;
    }

    let env = std::fs::read_to_string(run_dir.join("run.env"))?;
    for expected in [
        format!("ZHENGYUN_API_URL={url}"),
        format!("ZHENGYUN_ADMIN_TOKEN={admin}"),
        "ZHENGYUN_BUREAU=wjw".to_owned(),
        format!("ZHENGYUN_BUREAU_TOKEN={bureau_token}"),
        format!("KUBECONFIG={kubeconfig}"),
    ] {
        assert!(env.contains(&expected), "run.env lacks {expected}:\n{env}");
    }

    // Ctrl-C: the script stops `zhengyun dev` and exits; the API stops answering.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    assert!(interrupted.success());
    let status = child.wait()?;
    assert_eq!(status.code(), Some(130), "{status:?}");
    let after = Command::new(&zhengyun)
        .arg("whoami")
        .env("ZHENGYUN_API_URL", &url)
        .env("ZHENGYUN_TOKEN", &admin)
        .output()?;
    assert!(
        !after.status.success(),
        "the API still answers after Ctrl-C"
    );
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}
