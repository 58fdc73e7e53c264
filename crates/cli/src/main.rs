//! `opentrail`: run the server, and talk to it.
//!
//! Every flag is declared once, in the clap structs below; parsing, `--help` and the
//! environment-variable fallbacks all come from those declarations.

mod alerts_command;
mod backup_command;
mod client;
mod demo;
mod import_command;
mod ingest_command;
mod ingest_files;
mod keys_command;
mod lookup_command;
mod output;
mod proxy_command;
mod query_command;
mod rules_command;
mod s3_args;
mod time_arg;
mod validate_command;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use opentrail_server::{Config, ConfigLayer, Server, shutdown_signal};

use crate::ingest_command::IngestArgs;
use crate::keys_command::KeysArgs;
use crate::lookup_command::LookupArgs;

#[derive(Debug, Parser)]
#[command(
    name = "opentrail",
    version,
    about = "A self-hosted, AWS CloudTrail-compatible audit trail.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    ///
    /// Settings come from, lowest priority first: built-in defaults, the TOML file given
    /// with --config, OPENTRAIL_* environment variables (OPENTRAIL_DATA_DIR,
    /// OPENTRAIL_LISTEN, OPENTRAIL_ACCOUNT_ID, OPENTRAIL_REGION, …), then these flags.
    /// On first start an admin key is created and written to DATA_DIR/credentials.
    Serve(ServeArgs),
    /// Find events: filters, a time range, newest first; pages are followed for you.
    ///
    /// Filters combine (all must match). Times: now, -15m, -1h, -7d, 2024-01-02,
    /// 2024-01-02T03:04:05Z or epoch seconds. Example, who deleted the table:
    /// opentrail lookup --event-name DeleteTable --start -7d
    // Boxed: its many filter flags make it much larger than the other variants.
    Lookup(Box<LookupArgs>),
    /// Send event files to a server: CloudTrail log files, JSON arrays, NDJSON, gzip.
    ///
    /// Directories are searched recursively. Prints a summary: files, events accepted,
    /// duplicates, failed records (by file and zero-based index), files skipped; exits
    /// non-zero when a file (or part of one) could not be sent.
    Ingest(IngestArgs),
    /// Bulk-import CloudTrail log files: AWSLogs trees, folders, s3://BUCKET/PREFIX.
    ///
    /// Straight into a data directory while no server runs on it (--data-dir), or through
    /// a server (--endpoint). Safe to repeat and to interrupt: events are deduplicated, and
    /// a re-run skips the files a checkpoint lists as imported. Prints a summary (files,
    /// events imported, duplicates, files skipped, errors per file); exits non-zero when a
    /// file could not be imported completely.
    // Boxed: its many flags make it much larger than the other variants.
    Import(Box<import_command::ImportArgs>),
    /// Create, list and revoke access keys (admin credentials required).
    Keys(KeysArgs),
    /// Check a trail's digest files and log files (log file integrity validation).
    ///
    /// Like `aws cloudtrail validate-logs`: one line per digest and log file (valid, or
    /// INVALID with the reason), a summary, exit status 1 when anything is invalid. Also
    /// reports gaps and several consecutive deleted digests.
    Validate(Box<validate_command::ValidateArgs>),
    /// Copy a data directory consistently, even while a server runs on it.
    ///
    /// Events (every one acknowledged before the backup began), access keys, trails with
    /// their delivery state, digest keys and the Parquet archive. The destination must be
    /// new or empty; BACKUP.json is written last. Segments kept in a bucket
    /// (segments_url) are not copied.
    Backup(backup_command::BackupArgs),
    /// Bring a backup (a directory or s3://BUCKET/PREFIX) back into a new data
    /// directory, for `opentrail serve`.
    Restore(backup_command::RestoreArgs),
    /// Run a recording proxy in front of an API: every call is forwarded unchanged and
    /// recorded as a CloudTrail record.
    ///
    /// AWS protocols (S3, DynamoDB, IAM, STS, SQS… as served by MinIO, Ceph, LocalStack,
    /// moto) are named as AWS names them; other HTTP APIs by route rules (--config). The
    /// caller is read from SigV4, a JWT or basic auth; secrets are never stored. Example:
    /// opentrail proxy --listen 127.0.0.1:4590 --upstream http://127.0.0.1:9000
    /// --endpoint http://127.0.0.1:4580 --credentials ./opentrail-data/credentials
    // Boxed: its many flags make it much larger than the other variants.
    Proxy(Box<proxy_command::ProxyArgs>),
    /// Work with Sigma detection rules (logsource aws/cloudtrail): the server's rules
    /// (`rules add|list|disable|enable|remove`), and `rules test`, which runs rules over
    /// event files or s3:// prefixes and prints what they match.
    Rules(rules_command::RulesArgs),
    /// Run SQL over the events of a stopped server's data directory: one SELECT over the
    /// table `events`, with CloudTrail Lake's columns (eventtime, eventname,
    /// useridentity.username, requestparameters['bucketName'], eventjson, …).
    ///
    /// Example, who failed most: opentrail query "SELECT userIdentity.arn, errorCode,
    /// COUNT(*) AS n FROM events WHERE errorCode IS NOT NULL GROUP BY 1, 2 ORDER BY n DESC
    /// LIMIT 10"
    // Boxed: its flags make it larger than the other variants.
    Query(Box<query_command::QueryArgs>),
    /// List what the server's detection rules (`serve --rules DIR`, `rules add`)
    /// matched, newest first: rule, level, the event and when it was seen.
    Alerts(alerts_command::AlertsArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Directory for events, keys and the credentials file [default: ./opentrail-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4580].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Also serve SQL over the Postgres wire protocol on this address (psql, Grafana,
    /// Metabase, DBeaver); a read key's id and secret are the user and password.
    #[arg(long, value_name = "ADDR")]
    pg_listen: Option<SocketAddr>,
    /// Serve HTTPS only, with this PEM certificate chain (with --tls-key); reloaded on
    /// SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TOML configuration file; its keys are the setting names (data_dir, listen,
    /// account_id, region, ingest_body_bytes_max, …).
    #[arg(long, value_name = "FILE", env = "OPENTRAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, value_enum, env = "OPENTRAIL_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Fill a fresh data directory with a realistic day of generated events (about
    /// 100,000, ending now), with the classic stories: a DynamoDB table deleted by
    /// `alice` from 203.0.113.7, and instances CloudFormation launched for `bob`. A data
    /// directory that already holds events is left as it is.
    #[arg(long)]
    demo: bool,
    /// Match every event against the Sigma rules (`*.yml`, logsource aws/cloudtrail) in
    /// DIR, reloaded when they change, besides those added with `opentrail rules add`;
    /// matches are listed by `opentrail alerts` and sent to OPENTRAIL_ALERT_WEBHOOK_URL,
    /// OPENTRAIL_ALERT_SYSLOG and OPENTRAIL_ALERT_FILE.
    #[arg(long, value_name = "DIR", env = "OPENTRAIL_RULES_DIR")]
    rules: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// mimalloc: the store's memtables allocate and free millions of small keys; with glibc's
// allocator that cost about a tenth of the writer thread and fragmented the heap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("opentrail: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            // The storage engine logs every table write at info; only its warnings matter here.
            init_logging(args.log_format, "info,fjall=warn,lsm_tree=warn");
            runtime.block_on(serve(args))
        }
        Command::Lookup(args) => {
            // Client commands keep stderr quiet unless RUST_LOG asks for more.
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(lookup_command::run(*args))
        }
        Command::Ingest(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(ingest_command::run(args))
        }
        Command::Import(args) => {
            init_logging(LogFormat::Text, "warn");
            // Not inside `block_on`: the import runs its own threads and blocks on them.
            import_command::run(*args, runtime.handle())
        }
        Command::Keys(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(keys_command::run(args))
        }
        Command::Backup(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(backup_command::backup(args))
        }
        Command::Restore(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(backup_command::restore(args))
        }
        Command::Proxy(args) => {
            init_logging(LogFormat::Text, "info,fjall=warn,lsm_tree=warn");
            runtime.block_on(proxy_command::run(*args))
        }
        Command::Query(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(query_command::run(*args))
        }
        Command::Alerts(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(alerts_command::run(args))
        }
        Command::Rules(args) => {
            init_logging(LogFormat::Text, "warn");
            runtime.block_on(rules_command::run(args))
        }
        Command::Validate(args) => {
            init_logging(LogFormat::Text, "warn");
            match runtime.block_on(validate_command::run(*args))? {
                true => Ok(()),
                false => anyhow::bail!("validation found invalid or missing files"),
            }
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let flags = ConfigLayer {
        data_dir: args.data_dir,
        listen: args.listen,
        pg_listen: args.pg_listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        rules_dir: args.rules,
        ..ConfigLayer::default()
    };
    let config = Config::load(args.config.as_deref(), flags)?;
    let server = Server::start(config).await?;
    if args.demo {
        match demo::fill_if_fresh(&server).await? {
            Some(events) => println!(
                "Loaded a demo day of {events} events (try: opentrail lookup --event-name DeleteTable)"
            ),
            None => println!("The data directory already holds events; --demo added none"),
        }
    }
    let endpoint = server.endpoint_url();
    if server.created_first_admin_key() {
        println!(
            "Created an admin access key; its credentials are in {}",
            server.credentials_file().display()
        );
    }
    println!("OpenTrail is listening on {endpoint}");
    if let Some(address) = server.postgres_addr() {
        println!(
            "SQL over the Postgres protocol on {address} (user: a read key's id, password: its secret)"
        );
    }
    if server.credentials_file().exists() {
        println!("Try it:");
        println!("  {}", server.aws_cli_hint());
    }
    server.run_until(shutdown_signal()).await?;
    Ok(())
}

fn init_logging(format: LogFormat, default_directive: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation can only fail if a subscriber is already set; logging then
    // goes to that one, which is fine.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The error and its causes on one line. A cause whose text the line already contains is
/// skipped, because some errors repeat their source in their own message.
pub(crate) fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let first_line = text.lines().next().unwrap_or_default().trim();
        if first_line.is_empty() || line.contains(first_line) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(first_line);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "opentrail",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--listen",
            "127.0.0.1:9999",
        ])
        .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(
            args.listen,
            Some("127.0.0.1:9999".parse().expect("address"))
        );
    }

    #[test]
    fn one_line_skips_repeated_causes_and_extra_lines() {
        let io = std::io::Error::other("disk on fire");
        let error = anyhow::Error::new(io)
            .context("cannot write keys.json: disk on fire")
            .context("cannot start");
        assert_eq!(
            one_line(&error),
            "cannot start: cannot write keys.json: disk on fire"
        );
        let multi = anyhow::anyhow!("first line\nsecond line");
        assert_eq!(one_line(&multi), "first line");
    }
}
