//! `opentrail proxy`: a recording proxy in front of an API, recording into a server
//! (`--endpoint`, through a disk queue) or straight into a data directory (`--data-dir`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use opentrail_proxy::{ProxyConfig, WhenQueueFull};
use opentrail_recorder::{IngestClient, IngestCredentials, QueueKind, RemoteSink};
use opentrail_server::recording::{RecordInto, run_proxy};
use opentrail_server::{Config, ConfigLayer, shutdown_signal};

use crate::client::read_credentials_profile;

const DEFAULT_QUEUE_DIR: &str = "./opentrail-proxy-queue";
const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Address to accept calls on.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The API to forward every call to: http(s)://HOST:PORT[/PREFIX].
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Record into the OpenTrail server at this URL, with the key of --credentials.
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    endpoint: Option<String>,
    /// AWS shared-credentials file whose [default] key may ingest (a data dir's
    /// `credentials` file will do); else AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Record straight into this data directory's store (no server may run on it).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file with this proxy's settings: one `[[proxy]]` section as in the server's
    /// configuration, or its keys alone (listen, upstream, [recording] with key_names,
    /// routes, redact_headers, redact_json_paths…). Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --endpoint: where calls wait, fsynced, until the server has them.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_QUEUE_DIR)]
    queue_dir: PathBuf,
    /// With --endpoint: the queue's size limit, in MB.
    #[arg(long, value_name = "MB", default_value_t = 1024)]
    queue_max_mb: u64,
    /// When a call's record cannot be queued: `refuse` (503, the default) or `pass`.
    #[arg(long, value_name = "POLICY")]
    on_queue_full: Option<WhenQueueFull>,
    /// A PEM CA file trusted for an https upstream, besides the system's CAs.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// Speak HTTP/2 to a clear-text upstream (prior knowledge).
    #[arg(long)]
    upstream_http2: bool,
    /// Account of the records and their ARNs [default: the ingesting key's account].
    #[arg(long, value_name = "ID")]
    account_id: Option<String>,
    /// Region of calls whose signature names none.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// eventSource of calls to non-AWS APIs [default: the upstream's host name].
    #[arg(long, value_name = "NAME")]
    event_source: Option<String>,
    /// Names an access key's user in records: ACCESS_KEY_ID=USER_NAME (repeatable).
    #[arg(long = "key-name", value_name = "ID=NAME")]
    key_names: Vec<String>,
    /// A request header whose value is never stored (repeatable).
    #[arg(long = "redact-header", value_name = "NAME")]
    redact_headers: Vec<String>,
    /// A dotted path into request parameters that is never stored, `*` for any member
    /// (repeatable).
    #[arg(long = "redact-json-path", value_name = "PATH")]
    redact_json_paths: Vec<String>,
    /// Proxies in front of this one trusted to append to X-Forwarded-For.
    #[arg(long, value_name = "N")]
    trusted_forwarded_hops: Option<usize>,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let proxy = proxy_config(&args)?;
    let into = match (&args.endpoint, &args.data_dir) {
        (Some(endpoint), None) => {
            let (credentials, file_region) = ingest_credentials(args.credentials.as_ref())?;
            let region = args
                .region
                .clone()
                .or(file_region)
                .unwrap_or_else(|| DEFAULT_REGION.to_owned());
            let client = IngestClient::new(endpoint, credentials, &region)?;
            let queue = QueueKind::Disk {
                directory: args.queue_dir.clone(),
                bytes_max: args.queue_max_mb.saturating_mul(1_000_000),
            };
            let sink = RemoteSink::start(client, queue).with_context(|| {
                format!(
                    "cannot open the proxy queue in {}",
                    args.queue_dir.display()
                )
            })?;
            RecordInto::Remote(sink)
        }
        (None, Some(data_dir)) => {
            let flags = ConfigLayer {
                data_dir: Some(data_dir.clone()),
                ..ConfigLayer::default()
            };
            RecordInto::Store(Box::new(Config::load(None, flags)?))
        }
        _ => bail!(
            "say where calls are recorded: --endpoint URL --credentials FILE (a server), or \
             --data-dir DIR (a data directory no server runs on)"
        ),
    };
    eprintln!(
        "Recording proxy: http://{} -> {}",
        proxy.listen, proxy.upstream
    );
    run_proxy(proxy, into, shutdown_signal()).await?;
    Ok(())
}

/// The `--config` file's settings with the flags over them.
fn proxy_config(args: &ProxyArgs) -> anyhow::Result<ProxyConfig> {
    let mut table = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("{} is not valid TOML", path.display()))?
        }
        None => toml::Table::new(),
    };
    // The server's form works too: a file with one `[[proxy]]` section.
    if let Some(toml::Value::Array(sections)) = table.get("proxy") {
        let [toml::Value::Table(section)] = sections.as_slice() else {
            bail!(
                "--config holds {} [[proxy]] sections; give it one",
                sections.len()
            );
        };
        table = section.clone();
    }
    if let Some(listen) = args.listen {
        table.insert("listen".into(), toml::Value::String(listen.to_string()));
    }
    if let Some(upstream) = &args.upstream {
        table.insert("upstream".into(), toml::Value::String(upstream.clone()));
    }
    for (present, name) in [
        (table.contains_key("listen"), "--listen"),
        (table.contains_key("upstream"), "--upstream"),
    ] {
        if !present {
            bail!("{name} is required (or its key in --config)");
        }
    }
    let mut config: ProxyConfig = table.try_into().context("invalid proxy settings")?;
    if let Some(policy) = args.on_queue_full {
        config.on_queue_full = policy;
    }
    if let Some(path) = &args.upstream_ca {
        config.upstream_ca = Some(path.clone());
    }
    config.upstream_http2 |= args.upstream_http2;
    let recording = &mut config.recording;
    if args.account_id.is_some() {
        recording.account_id = args.account_id.clone();
    }
    if args.region.is_some() {
        recording.region = args.region.clone();
    }
    if args.event_source.is_some() {
        recording.event_source = args.event_source.clone();
    }
    if let Some(hops) = args.trusted_forwarded_hops {
        recording.trusted_forwarded_hops = hops;
    }
    for pair in &args.key_names {
        let Some((id, name)) = pair.split_once('=') else {
            bail!("--key-name {pair:?} must be ACCESS_KEY_ID=USER_NAME");
        };
        recording
            .key_names
            .insert(id.trim().to_owned(), name.trim().to_owned());
    }
    recording
        .redact_headers
        .extend(args.redact_headers.iter().cloned());
    recording
        .redact_json_paths
        .extend(args.redact_json_paths.iter().cloned());
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn ingest_credentials(
    file: Option<&PathBuf>,
) -> anyhow::Result<(IngestCredentials, Option<String>)> {
    if let Some(path) = file {
        let profile = read_credentials_profile(path)?;
        let (Some(access_key_id), Some(secret_access_key)) =
            (profile.access_key_id, profile.secret_access_key)
        else {
            bail!(
                "{} has no aws_access_key_id and aws_secret_access_key in its [default] profile",
                path.display()
            );
        };
        return Ok((
            IngestCredentials {
                access_key_id,
                secret_access_key,
            },
            profile.region,
        ));
    }
    let environment = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    match (
        environment("AWS_ACCESS_KEY_ID"),
        environment("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => Ok((
            IngestCredentials {
                access_key_id,
                secret_access_key,
            },
            None,
        )),
        _ => bail!(
            "no credentials to record with: pass --credentials FILE (an AWS credentials file \
             whose key may ingest) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ),
    }
}
