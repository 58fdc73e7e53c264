//! What the AWS SDK for Rust tests stand on: a real `opentrail serve` on a temporary data
//! directory and a free loopback port, SDK clients configured as the README tells a user
//! to (endpoint, region, the credentials file the server wrote), and CloudTrail records
//! ingested with the real `opentrail ingest` CLI.
//!
//! The binary is `$OPENTRAIL_BIN`, else `<repo>/target/debug/opentrail`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudtrail::config::Credentials;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

pub const ACCOUNT_ID: &str = "111122223333";
pub const REGION: &str = "us-east-1";

/// One `opentrail serve` process; killed when dropped.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub data_dir: PathBuf,
    binary: PathBuf,
    logs: PathBuf,
    temp: tempfile::TempDir,
}

pub fn opentrail_bin() -> PathBuf {
    match std::env::var_os("OPENTRAIL_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/opentrail"),
    }
}

/// The environment without the host's AWS and OpenTrail settings.
fn clean_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("OPENTRAIL_") {
            command.env_remove(name.as_ref());
        }
    }
    command
}

impl Server {
    pub fn start() -> Result<Server> {
        Server::start_with(&[])
    }

    /// Starts a server with extra `OPENTRAIL_*` settings in its environment.
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Server> {
        let binary = opentrail_bin();
        ensure!(
            binary.exists(),
            "opentrail binary not found at {}: run `cargo build -p opentrail` or set OPENTRAIL_BIN",
            binary.display()
        );
        let temp = tempfile::tempdir().context("creating a temp dir")?;
        let data_dir = temp.path().join("data");
        let logs = temp.path().join("server.log");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let log_file = std::fs::File::create(&logs).context("creating the server log")?;
        let child = clean_command(&binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env("OPENTRAIL_ACCOUNT_ID", ACCOUNT_ID)
            .env("OPENTRAIL_REGION", REGION)
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("server log")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} serve", binary.display()))?;
        let mut server = Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            data_dir,
            binary,
            logs,
            temp,
        };
        server.wait_healthy(port)?;
        Ok(server)
    }

    fn wait_healthy(&mut self, port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().context("polling the server")? {
                bail!("opentrail serve exited with {status}:\n{}", self.logs());
            }
            if health(port).unwrap_or(false) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "/health did not answer 200 within 60 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.logs).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        text.get(start..).unwrap_or(&text).to_owned()
    }

    /// DATA_DIR/credentials, which the server writes on its first start.
    pub fn credentials_file(&self) -> PathBuf {
        self.data_dir.join("credentials")
    }

    /// The admin key of the `[default]` profile of the credentials file, as static
    /// credentials.
    pub fn admin_credentials(&self) -> Result<Credentials> {
        let path = self.credentials_file();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value = |name: &str| {
            text.lines()
                .filter_map(|line| line.split_once('='))
                .find(|(key, _)| key.trim() == name)
                .map(|(_, value)| value.trim().to_owned())
                .with_context(|| format!("{} has no {name}:\n{text}", path.display()))
        };
        Ok(Credentials::new(
            value("aws_access_key_id")?,
            value("aws_secret_access_key")?,
            None,
            None,
            "opentrail-credentials-file",
        ))
    }

    /// The shared SDK configuration: endpoint, region, static credentials, plain HTTP
    /// (no TLS on loopback) and no retries (a test sees the first answer).
    pub async fn sdk_config(&self) -> Result<SdkConfig> {
        Ok(aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(self.admin_credentials()?)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .load()
            .await)
    }

    pub async fn cloudtrail(&self) -> Result<aws_sdk_cloudtrail::Client> {
        Ok(aws_sdk_cloudtrail::Client::new(&self.sdk_config().await?))
    }

    pub async fn cloudtrail_data(&self) -> Result<aws_sdk_cloudtraildata::Client> {
        Ok(aws_sdk_cloudtraildata::Client::new(
            &self.sdk_config().await?,
        ))
    }

    /// Sends CloudTrail records with the real `opentrail ingest` CLI (SigV4, the admin key
    /// of the data dir). It answers after the server stored them (fsync).
    pub fn ingest(&self, records: &[serde_json::Value]) -> Result<()> {
        let file = self.temp.path().join(format!(
            "records-{}.json",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::write(
            &file,
            serde_json::to_vec(&serde_json::json!({ "Records": records }))?,
        )
        .with_context(|| format!("writing {}", file.display()))?;
        let output = clean_command(&self.binary)
            .arg("ingest")
            .arg(&file)
            .args(["--quiet", "--endpoint", &self.endpoint, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .context("running opentrail ingest")?;
        ensure!(
            output.status.success(),
            "opentrail ingest failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test's server holds nothing that must survive it: its data dir is removed next.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health(port: u16) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.starts_with("HTTP/1.1 200"))
}

/// A whole past hour (two days ago), away from the self-audit events, which happen now.
pub fn past_hour() -> DateTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    DateTime::from_secs((now / 3600) * 3600 - 48 * 3600)
}

pub fn plus_minutes(time: DateTime, minutes: i64) -> DateTime {
    DateTime::from_secs(time.secs() + minutes * 60)
}

/// CloudTrail's eventTime format: whole seconds, UTC, `Z`.
pub fn iso(time: DateTime) -> String {
    DateTime::from_secs(time.secs())
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

/// A unique suffix for names (nanoseconds since the epoch, in hex).
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}{nanos:x}")
}

/// A CloudTrail record (eventVersion 1.11) of IAM user alice's API call.
pub fn cloudtrail_event(
    event_name: &str,
    event_time: DateTime,
    event_id: &str,
) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEALICE",
            "arn": format!("arn:aws:iam::{ACCOUNT_ID}:user/alice"),
            "accountId": ACCOUNT_ID,
            "userName": "alice",
            "accessKeyId": "AKIAEXAMPLEALICE0001",
        },
        "eventTime": iso(event_time),
        "eventSource": "dynamodb.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-sdk-rust/1.3 os/linux lang/rust",
        "requestParameters": {"tableName": "orders"},
        "responseElements": null,
        "requestID": format!("req-{event_id}"),
        "eventID": event_id,
        "readOnly": false,
        "resources": [{
            "ARN": format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/orders"),
            "accountId": ACCOUNT_ID,
            "type": "AWS::DynamoDB::Table",
        }],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT_ID,
        "eventCategory": "Management",
    })
}
