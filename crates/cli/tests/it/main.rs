//! End-to-end tests of the real `opentrail` binary: `serve` on a temporary data directory
//! and a free port, then client commands against it, the way a user runs them.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

mod alerts;
mod import;
mod ingest_lookup;
mod query;
mod rules;

const BINARY: &str = env!("CARGO_BIN_EXE_opentrail");
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS_MAX: usize = 3;

/// A running `opentrail serve`, killed on drop if a test did not stop it.
struct Server {
    child: Child,
    address: SocketAddr,
    data_dir: PathBuf,
    stdout_file: PathBuf,
    stderr_file: PathBuf,
}

impl Server {
    /// Starts a server on a free port and waits until `/health` answers.
    fn start(
        data_dir: &Path,
        logs_dir: &Path,
        environment: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        // The port is found by binding and releasing it, so another process could take it
        // in between; a server that exits at startup is retried on a new port.
        for attempt in 1..=START_ATTEMPTS_MAX {
            let address = free_local_address()?;
            let stdout_file = logs_dir.join(format!("serve-{}-{attempt}.out", address.port()));
            let stderr_file = logs_dir.join(format!("serve-{}-{attempt}.err", address.port()));
            let mut command = Command::new(BINARY);
            command
                .arg("serve")
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--listen")
                .arg(address.to_string())
                .env_remove("OPENTRAIL_ACCOUNT_ID")
                .env_remove("OPENTRAIL_REGION")
                .env_remove("OPENTRAIL_CONFIG")
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_file)?)
                .stderr(std::fs::File::create(&stderr_file)?);
            for (name, value) in environment {
                command.env(name, value);
            }
            let child = command.spawn().context("spawn opentrail serve")?;
            let mut server = Server {
                child,
                address,
                data_dir: data_dir.to_owned(),
                stdout_file,
                stderr_file,
            };
            match server.wait_until_healthy() {
                Ok(()) => return Ok(server),
                Err(error)
                    if attempt < START_ATTEMPTS_MAX && server.child.try_wait()?.is_some() =>
                {
                    eprintln!("server did not start (attempt {attempt}): {error:#}; retrying");
                }
                Err(error) => return Err(error.context(server.logs())),
            }
        }
        bail!("the server did not start after {START_ATTEMPTS_MAX} attempts")
    }

    fn wait_until_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("opentrail serve exited during startup with {status}");
            }
            if let Ok((200, body)) = http_get(self.address, "/health") {
                ensure!(body.contains("\"ok\""), "unexpected health body {body}");
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "no healthy answer within {STARTUP_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_file).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "server stdout:\n{}\nserver stderr:\n{}",
            self.stdout(),
            std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
        )
    }

    /// Runs an `opentrail` client command against this server, with credentials only
    /// from the flags given or the data directory (never from the test's environment).
    fn client(&self, arguments: &[&str]) -> anyhow::Result<Output> {
        let output = Command::new(BINARY)
            .args(arguments)
            .arg("--endpoint")
            .arg(self.endpoint())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("OPENTRAIL_ENDPOINT")
            .stdin(Stdio::null())
            .output()
            .context("run opentrail client command")?;
        Ok(output)
    }

    /// Like [`Server::client`] with `--output json`, requiring success.
    fn client_json(&self, arguments: &[&str]) -> anyhow::Result<Value> {
        let mut with_json = arguments.to_vec();
        with_json.extend(["--output", "json"]);
        let output = self.client(&with_json)?;
        ensure!(
            output.status.success(),
            "`opentrail {}` failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).context("client printed invalid JSON")
    }

    /// Sends SIGTERM to this server (our own child) and waits for it to exit.
    fn terminate(mut self) -> anyhow::Result<ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("run kill")?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(
                Instant::now() < deadline,
                "no exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_local_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a probe port")?;
    Ok(listener.local_addr()?)
}

/// A minimal HTTP/1.1 GET, so the readiness probe does not depend on the code under test.
fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_with_headers(address, path, "")
}

fn http_get_with_bearer(
    address: SocketAddr,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, String)> {
    http_get_with_headers(address, path, &format!("Authorization: Bearer {token}\r\n"))
}

fn http_get_with_headers(
    address: SocketAddr,
    path: &str,
    extra_headers: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{extra_headers}Connection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// The `[default]` profile's values from a shared-credentials file.
fn credentials_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().to_owned())
}

fn temporary_directories() -> anyhow::Result<(tempfile::TempDir, tempfile::TempDir)> {
    Ok((tempfile::tempdir()?, tempfile::tempdir()?))
}

#[test]
fn first_start_writes_private_credentials_and_prints_the_aws_cli_line() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let server = Server::start(data.path(), logs.path(), &[])?;

    let credentials_path = data.path().join("credentials");
    let mode = std::fs::metadata(&credentials_path)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials file mode");
    let text = std::fs::read_to_string(&credentials_path)?;
    assert!(text.starts_with("[default]\n"), "{text}");
    let access_key_id = credentials_value(&text, "aws_access_key_id").context("key id")?;
    let secret = credentials_value(&text, "aws_secret_access_key").context("secret")?;
    assert_eq!(access_key_id.len(), 20);
    assert_eq!(secret.len(), 40);
    assert_eq!(
        credentials_value(&text, "region").as_deref(),
        Some("us-east-1")
    );

    // The secret is nowhere else in the data directory in plain text.
    for name in ["keys.json", "master.key"] {
        let bytes = std::fs::read(data.path().join(name))?;
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "{name} holds the secret"
        );
        let mode = std::fs::metadata(data.path().join(name))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} mode");
    }

    let absolute = std::fs::canonicalize(&credentials_path)?;
    let expected_line = format!(
        "AWS_SHARED_CREDENTIALS_FILE={} aws --endpoint-url {} cloudtrail lookup-events",
        absolute.display(),
        server.endpoint()
    );
    assert!(
        server.stdout().contains(&expected_line),
        "{}",
        server.logs()
    );
    Ok(())
}

#[test]
fn account_and_region_come_from_the_environment() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let server = Server::start(
        data.path(),
        logs.path(),
        &[
            ("OPENTRAIL_ACCOUNT_ID", "111122223333"),
            ("OPENTRAIL_REGION", "eu-west-1"),
        ],
    )?;
    let text = std::fs::read_to_string(data.path().join("credentials"))?;
    assert_eq!(
        credentials_value(&text, "region").as_deref(),
        Some("eu-west-1")
    );
    let listing = server.client_json(&["keys", "list"])?;
    assert_eq!(listing["keys"][0]["accountId"], "111122223333");
    assert_eq!(listing["keys"][0]["role"], "admin");
    Ok(())
}

#[test]
fn invalid_account_id_is_refused_at_startup_with_one_line() -> anyhow::Result<()> {
    let (data, _logs) = temporary_directories()?;
    let output = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("OPENTRAIL_ACCOUNT_ID", "12345")
        .stdin(Stdio::null())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("error"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(
        error_lines[0].contains("account_id") && error_lines[0].contains("12 digits"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn keys_create_list_and_revoke_work_end_to_end() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let server = Server::start(data.path(), logs.path(), &[])?;

    let reader = server.client_json(&["keys", "create", "--role", "read"])?;
    let reader_id = reader["accessKeyId"].as_str().context("id")?.to_owned();
    let reader_secret = reader["secretAccessKey"]
        .as_str()
        .context("secret")?
        .to_owned();
    assert_eq!(reader["role"], "read");
    assert_eq!(reader["accountId"], "123456789012");
    assert!(
        reader.get("token").is_none(),
        "only ingest keys get a token"
    );

    let ingester = server.client_json(&[
        "keys",
        "create",
        "--role",
        "ingest",
        "--account",
        "444455556666",
    ])?;
    assert_eq!(ingester["accountId"], "444455556666");
    let token = ingester["token"]
        .as_str()
        .context("ingest token")?
        .to_owned();
    assert!(token.starts_with("otb_"));

    // The bearer token authenticates a producer that cannot sign.
    let (status, _) = http_get_with_bearer(server.address, "/metrics", &token)?;
    assert_eq!(status, 200);

    let listing = server.client_json(&["keys", "list"])?;
    let keys = listing["keys"].as_array().context("keys")?;
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|key| key["status"] == "Active"));
    assert!(
        !listing.to_string().contains(&reader_secret),
        "list shows no secrets"
    );

    // The table view is for people: a header and one line per key.
    let table = server.client(&["keys", "list"])?;
    assert!(table.status.success());
    let table_text = String::from_utf8(table.stdout)?;
    assert!(table_text.starts_with("ACCESS KEY ID"), "{table_text}");
    assert_eq!(table_text.lines().count(), 4, "{table_text}");

    // A read key may not manage keys: one error line, non-zero exit.
    let denied = server.client(&[
        "keys",
        "list",
        "--access-key-id",
        &reader_id,
        "--secret-access-key",
        &reader_secret,
    ])?;
    assert!(!denied.status.success());
    let denied_stderr = String::from_utf8(denied.stderr)?;
    assert_eq!(denied_stderr.lines().count(), 1, "{denied_stderr}");
    assert!(
        denied_stderr.contains("AccessDeniedException"),
        "{denied_stderr}"
    );

    let revoked = server.client_json(&["keys", "revoke", &reader_id])?;
    assert_eq!(revoked["status"], "Revoked");
    let listing = server.client_json(&["keys", "list"])?;
    let reader_entry = listing["keys"]
        .as_array()
        .context("keys")?
        .iter()
        .find(|key| key["accessKeyId"] == reader_id.as_str())
        .context("revoked key still listed")?;
    assert_eq!(reader_entry["status"], "Revoked");

    // The revoked key's signatures are no longer accepted.
    let rejected = server.client(&[
        "keys",
        "list",
        "--access-key-id",
        &reader_id,
        "--secret-access-key",
        &reader_secret,
    ])?;
    assert!(!rejected.status.success());
    assert!(String::from_utf8(rejected.stderr)?.contains("UnrecognizedClientException"));

    let unknown = server.client(&["keys", "revoke", "OTAKNOSUCHKEY0000000"])?;
    assert!(!unknown.status.success());
    assert!(String::from_utf8(unknown.stderr)?.contains("AccessKeyNotFoundException"));
    Ok(())
}

#[test]
fn sigterm_stops_the_server_and_a_restart_keeps_the_keys() -> anyhow::Result<()> {
    let (data, logs) = temporary_directories()?;
    let server = Server::start(data.path(), logs.path(), &[])?;
    let created = server.client_json(&["keys", "create", "--role", "admin"])?;
    let credentials_before = std::fs::read_to_string(data.path().join("credentials"))?;

    let status = server.terminate()?;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let restarted = Server::start(data.path(), logs.path(), &[])?;
    let credentials_after = std::fs::read_to_string(data.path().join("credentials"))?;
    assert_eq!(
        credentials_before, credentials_after,
        "no second admin key on restart"
    );
    assert!(!restarted.stdout().contains("Created an admin access key"));

    // Both the first admin key (from the credentials file) and the created one still work.
    let listing = restarted.client_json(&["keys", "list"])?;
    assert_eq!(listing["keys"].as_array().context("keys")?.len(), 2);
    let created_id = created["accessKeyId"].as_str().context("id")?;
    let created_secret = created["secretAccessKey"].as_str().context("secret")?;
    let with_created = restarted.client_json(&[
        "keys",
        "list",
        "--access-key-id",
        created_id,
        "--secret-access-key",
        created_secret,
    ])?;
    assert_eq!(with_created, listing);
    Ok(())
}

#[test]
fn an_unreachable_server_is_one_error_line_and_a_non_zero_exit() -> anyhow::Result<()> {
    let (data, _logs) = temporary_directories()?;
    let address = free_local_address()?;
    let output = Command::new(BINARY)
        .args(["keys", "list", "--endpoint", &format!("http://{address}")])
        .args([
            "--access-key-id",
            "OTAKAAAAAAAAAAAAAAAA",
            "--secret-access-key",
            "x",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdin(Stdio::null())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("opentrail: error: cannot reach OpenTrail"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn missing_credentials_explain_where_they_are_looked_for() -> anyhow::Result<()> {
    let (data, _logs) = temporary_directories()?;
    let output = Command::new(BINARY)
        .args(["keys", "list", "--endpoint", "http://127.0.0.1:9"])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdin(Stdio::null())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no credentials"), "{stderr}");
    Ok(())
}
