//! `opentrail rules …`: Sigma detection rules.
//!
//! - `add FILE.yml`, `list`, `disable ID`, `enable ID`, `remove ID`: the server's rules,
//!   over `/v1/rules` (signed like every client command; changing rules needs an admin
//!   key of the default account).
//! - `test RULE.yml|DIR --against PATH|s3://BUCKET/PREFIX…`: runs rules over CloudTrail
//!   log files, for writing rules against real logs, without a server.
//!
//! `test` loads and matches through `opentrail_detect` (the same code a server runs).
//! Local files are `opentrail_import::list_local_files`'s (the walk and rules of `ingest`
//! and `import`), each read as a stream (`opentrail_event::parse::stream`), so a file of
//! any size fits. `s3://` prefixes are listed and read as `import` reaches them (the
//! `--s3-*` flags, `opentrail_store::S3Connection`), and their keys pass the same
//! `opentrail_import::classify` rules (digest files and other services' logs are passed
//! over); each object is read whole, then parsed as a stream.
//!
//! Records are matched as the file has them, not normalised: a record without `eventID`
//! shows none. Matches are kept until the end, to align the table and count per rule.
//! The exit status is non-zero when a rule was refused or a file or record could not be
//! read, after everything readable has been matched and printed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use object_store::{GetOptions, ObjectStore};
use opentrail_detect::{DetectError, RuleRefusal, RuleSet};
use opentrail_event::parse::stream::{self, StreamedRecord};
use opentrail_import::Source;
use opentrail_import::classify::{FileKind, classify_file, is_line_file};
use opentrail_protocol::native::{RuleItem, RuleResponse, RulesResponse};
use opentrail_store::DEFAULT_S3_REGION;
use opentrail_store::s3::S3RequestLimits;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{ApiClient, ConnectionArgs, path_segment};
use crate::ingest_files::list_event_files;
use crate::output::{OutputArgs, OutputFormat, print_json, render_table};
use crate::s3_args::S3Args;

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Run Sigma rules over event files and s3:// prefixes, without a server: each match
    /// (rule, eventTime, eventName, eventID, file), then the matches per rule.
    ///
    /// Rules: a file, or a directory searched recursively for *.yml and *.yaml; only
    /// rules with `logsource: product: aws, service: cloudtrail` run, and refused rules
    /// are reported with file and line. Exits non-zero when a rule was refused or a file
    /// or record could not be read. Example:
    /// opentrail rules test rules/cloudtrail --against AWSLogs/ s3://trail-bucket/AWSLogs/
    Test(TestArgs),
    #[command(flatten)]
    Server(ServerCommand),
}

/// The subcommands that change or list the server's rules.
#[derive(Debug, clap::Subcommand)]
enum ServerCommand {
    /// Add a rule to the server (one Sigma rule per file, logsource aws/cloudtrail, with an
    /// id no other rule has). It matches every event stored from then on, and is kept
    /// across restarts. A rule the server cannot run is refused with its line and reason.
    Add {
        #[arg(value_name = "FILE.yml")]
        file: PathBuf,
    },
    /// List the server's rules (from its rules directory and added through the API),
    /// running or disabled, and the rules it refused.
    List,
    /// Stop a rule from matching (a directory rule too); kept across restarts.
    Disable {
        #[arg(value_name = "RULE_ID")]
        rule_id: String,
    },
    /// Let a disabled rule match again.
    Enable {
        #[arg(value_name = "RULE_ID")]
        rule_id: String,
    },
    /// Remove a rule added through the API (directory rules are removed by deleting
    /// their file).
    Remove {
        #[arg(value_name = "RULE_ID")]
        rule_id: String,
    },
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// A Sigma rule file, or a directory of them.
    #[arg(value_name = "RULE.yml|DIR")]
    rules: PathBuf,
    /// Event files, directories to search recursively for *.json, *.json.gz,
    /// *.json.cloudtrail, *.ndjson and *.jsonl files (as `opentrail ingest` does), and
    /// s3://BUCKET/PREFIX (every log file under the prefix, as `opentrail import` reads
    /// them).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX", required = true, num_args = 1..)]
    against: Vec<String>,
    /// How s3:// sources are reached.
    #[command(flatten)]
    s3: S3Args,
}

/// What `--output json` prints.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    matches: Vec<MatchRow>,
    /// Every rule that ran, with its match count (zero included), in rule order.
    counts: Vec<RuleCount>,
    files: usize,
    records: u64,
    refused: Vec<Refusal>,
    /// Rule files passed over because their rules are for another log source.
    skipped_rule_files: Vec<String>,
    /// Event files, and records in them, that could not be read.
    errors: Vec<ReadError>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MatchRow {
    rule_id: String,
    rule_title: String,
    level: Option<String>,
    event_time: Option<String>,
    event_name: Option<String>,
    event_id: Option<String>,
    file: String,
    /// The record's zero-based position in its file.
    record: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleCount {
    rule_id: String,
    rule_title: String,
    level: Option<String>,
    matches: u64,
}

#[derive(Debug, Serialize)]
struct Refusal {
    file: String,
    line: Option<u32>,
    rule: Option<String>,
    reason: String,
}

#[derive(Debug, Serialize)]
struct ReadError {
    file: String,
    /// The record's zero-based position, when one record (not the file) is unreadable.
    record: Option<usize>,
    message: String,
}

/// The members a match shows, read from a matched record only.
#[derive(Deserialize)]
struct Shown<'a> {
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<Cow<'a, str>>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Cow<'a, str>>,
}

pub async fn run(args: RulesArgs) -> anyhow::Result<()> {
    let format = args.output.output;
    match args.command {
        RulesCommand::Test(test) => run_test(test, format).await,
        RulesCommand::Server(command) => {
            run_server_command(command, &args.connection, format).await
        }
    }
}

async fn run_server_command(
    command: ServerCommand,
    connection: &ConnectionArgs,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let client = ApiClient::from_connection_args(connection)?;
    let answer: serde_json::Value = match &command {
        ServerCommand::Add { file } => {
            let text =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let body = client
                .send(Method::POST, RULES_PATH, Some(("application/yaml", text)))
                .await
                .with_context(|| format!("{} was not added", file.display()))?;
            serde_json::from_slice(&body).context("the server's answer is not JSON")?
        }
        ServerCommand::List => client.get_json(RULES_PATH).await?,
        ServerCommand::Disable { rule_id } => {
            let path = format!("{RULES_PATH}/{}/disable", path_segment(rule_id));
            client.post_json(&path, &serde_json::json!({})).await?
        }
        ServerCommand::Enable { rule_id } => {
            let path = format!("{RULES_PATH}/{}/enable", path_segment(rule_id));
            client.post_json(&path, &serde_json::json!({})).await?
        }
        ServerCommand::Remove { rule_id } => {
            client
                .delete_json(&format!("{RULES_PATH}/{}", path_segment(rule_id)))
                .await?
        }
    };
    if format == OutputFormat::Json {
        return print_json(&answer);
    }
    let done = match command {
        ServerCommand::List => {
            print_rule_list(serde_json::from_value(answer)?);
            return Ok(());
        }
        ServerCommand::Add { .. } => "Added",
        ServerCommand::Disable { .. } => "Disabled",
        ServerCommand::Enable { .. } => "Enabled",
        ServerCommand::Remove { .. } => "Removed",
    };
    let RuleResponse { rule } = serde_json::from_value(answer)?;
    println!("{done} rule {} ({})", rule.id, rule.title);
    Ok(())
}

const RULES_PATH: &str = "/v1/rules";

fn print_rule_list(list: RulesResponse) {
    if list.rules.is_empty() {
        println!("No rules.");
    } else {
        let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        let rows: Vec<Vec<String>> = list
            .rules
            .iter()
            .map(|rule: &RuleItem| {
                vec![
                    rule.id.clone(),
                    if rule.enabled { "yes" } else { "no" }.to_owned(),
                    dash(&rule.level),
                    dash(&rule.status),
                    rule.origin.clone(),
                    rule.title.clone(),
                    rule.file.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            render_table(
                &[
                    "RULE ID", "ENABLED", "LEVEL", "STATUS", "ORIGIN", "TITLE", "FILE"
                ],
                &rows
            )
        );
    }
    if !list.refused.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = list
            .refused
            .iter()
            .map(|refused| {
                let mut place = refused.file.clone();
                if let Some(line) = refused.line {
                    place.push_str(&format!(":{line}"));
                }
                vec![
                    place,
                    refused.origin.clone(),
                    refused.rule_title.clone().unwrap_or_else(|| "-".to_owned()),
                    refused.reason.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            render_table(&["REFUSED FILE", "ORIGIN", "RULE", "REASON"], &rows)
        );
    }
}

async fn run_test(args: TestArgs, format: OutputFormat) -> anyhow::Result<()> {
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for given in &args.against {
        match Source::parse(given).with_context(|| format!("--against {given}"))? {
            Source::Local(path) => local.push(path),
            Source::S3 { bucket, prefix } => remote.push((bucket, prefix)),
        }
    }
    let mut report = Report::default();
    let rules = load_rules(&args.rules, &mut report)?;
    for refusal in &report.refused {
        eprintln!("opentrail: rule refused: {}", refusal_line(refusal));
    }
    if rules.is_empty() {
        if !report.refused.is_empty() {
            bail!("no rule to run: every rule was refused; see above");
        }
        bail!(
            "no rule to run in {} (rules need `logsource: product: aws, service: cloudtrail`)",
            args.rules.display()
        );
    }

    if !local.is_empty() {
        let listing = list_event_files(&local)?;
        for error in listing.errors {
            report.errors.push(ReadError {
                file: error.path,
                record: None,
                message: error.message,
            });
        }
        for listed in &listing.files {
            report.files += 1;
            match_file(&rules, &listed.path, &mut report);
        }
    }
    for (bucket, prefix) in &remote {
        match_s3_prefix(&rules, &args.s3, bucket, prefix, &mut report).await?;
    }
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for row in &report.matches {
        *counts.entry(row.rule_id.as_str()).or_default() += 1;
    }
    let counts: Vec<RuleCount> = rules
        .rules()
        .iter()
        .map(|rule| RuleCount {
            rule_id: rule.id.clone(),
            rule_title: rule.title.clone(),
            level: rule.level.map(|level| level.to_string()),
            matches: counts.get(rule.id.as_str()).copied().unwrap_or_default(),
        })
        .collect();
    report.counts = counts;

    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Table => print_tables(&report),
    }
    if !report.refused.is_empty() {
        bail!("{} rule problem(s); see above", report.refused.len());
    }
    if !report.errors.is_empty() {
        bail!(
            "{} file(s) or record(s) could not be read; see above",
            report.errors.len()
        );
    }
    Ok(())
}

/// A rule file (strict: any problem refuses it) or a directory (refused files reported,
/// the others run).
fn load_rules(path: &Path, report: &mut Report) -> anyhow::Result<RuleSet> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.is_dir() {
        let loaded = RuleSet::load_dir(path)?;
        report.refused.extend(loaded.refused.iter().map(refusal));
        report.skipped_rule_files = loaded
            .skipped
            .iter()
            .map(|skipped| skipped.display().to_string())
            .collect();
        return Ok(loaded.rules);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match RuleSet::from_yaml(&path.display().to_string(), &text) {
        Ok(rules) => Ok(rules),
        Err(DetectError::Refused(refusals)) => {
            report.refused.extend(refusals.iter().map(refusal));
            Ok(RuleSet::empty())
        }
        Err(error) => Err(error.into()),
    }
}

fn refusal(refusal: &RuleRefusal) -> Refusal {
    Refusal {
        file: refusal.source.display().to_string(),
        line: refusal.line,
        rule: refusal.rule_title.clone(),
        reason: refusal.reason.clone(),
    }
}

fn refusal_line(refusal: &Refusal) -> String {
    let mut line = refusal.file.clone();
    if let Some(number) = refusal.line {
        line.push_str(&format!(":{number}"));
    }
    if let Some(rule) = &refusal.rule {
        line.push_str(&format!(": rule {rule:?}"));
    }
    line.push_str(&format!(": {}", refusal.reason));
    line
}

/// Matches every log file under `s3://bucket/prefix`, in key order. Objects that cannot
/// be read become `errors`; a bucket that cannot be reached or listed ends the run.
async fn match_s3_prefix(
    rules: &RuleSet,
    s3: &S3Args,
    bucket: &str,
    prefix: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let url = format!("s3://{bucket}/{prefix}");
    let client = s3
        .connection(DEFAULT_S3_REGION)
        .bucket_builder(bucket, S3RequestLimits::default())
        .with_context(|| format!("{url}: the S3 connection"))?
        .build()
        .with_context(|| format!("{url}: the S3 client"))?;
    let prefix_path = object_store::path::Path::from(prefix);
    let mut listing = client.list((!prefix.is_empty()).then_some(&prefix_path));
    let mut objects = Vec::new();
    while let Some(object) = listing.next().await {
        let object = object.with_context(|| format!("cannot list {url}"))?;
        let key = object.location.as_ref().to_owned();
        let named_explicitly = key == prefix;
        if matches!(
            classify_file(&key, object.size, named_explicitly),
            FileKind::CloudTrail(_)
        ) {
            objects.push(object.location);
        }
    }
    objects.sort();
    for location in objects {
        let key = location.as_ref().to_owned();
        let display = format!("s3://{bucket}/{key}");
        report.files += 1;
        let fetched = match client.get_opts(&location, GetOptions::default()).await {
            Ok(object) => object.bytes().await,
            Err(error) => Err(error),
        };
        match fetched {
            Ok(bytes) => match_records(rules, bytes.as_ref(), &display, is_line_file(&key), report),
            Err(error) => report.errors.push(ReadError {
                file: display,
                record: None,
                message: format!("cannot read the object: {error}"),
            }),
        }
    }
    Ok(())
}

/// Matches every record of one file; unreadable records and files become `errors`.
fn match_file(rules: &RuleSet, path: &Path, report: &mut Report) {
    let file_name = path.display().to_string();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) => {
            report.errors.push(ReadError {
                file: file_name,
                record: None,
                message: format!("cannot open: {error}"),
            });
            return;
        }
    };
    match_records(
        rules,
        file,
        &file_name,
        is_line_file(&path.to_string_lossy()),
        report,
    );
}

/// Matches every record `source` holds (plain or gzip; NDJSON when `lines`, else
/// recognised); `file_name` names it in matches and errors.
fn match_records(
    rules: &RuleSet,
    source: impl Read,
    file_name: &str,
    lines: bool,
    report: &mut Report,
) {
    let file_name = file_name.to_owned();
    let read = stream::read_records(source, lines, &mut |record| -> Result<
        (),
        std::convert::Infallible,
    > {
        let (index, json) = match record {
            StreamedRecord::Record { index, json } => (index, json),
            StreamedRecord::Failed(failure) => {
                report.records += 1;
                report.errors.push(ReadError {
                    file: file_name.clone(),
                    record: Some(failure.index),
                    message: failure.message,
                });
                return Ok(());
            }
        };
        report.records += 1;
        let fired = std::str::from_utf8(json)
            .map_err(|error| format!("not UTF-8: {error}"))
            .and_then(|text| {
                rules
                    .matches(text)
                    .map(|fired| (text, fired))
                    .map_err(|error| error.to_string())
            });
        let (text, fired) = match fired {
            Ok(found) => found,
            Err(message) => {
                report.errors.push(ReadError {
                    file: file_name.clone(),
                    record: Some(index),
                    message,
                });
                return Ok(());
            }
        };
        if fired.is_empty() {
            return Ok(());
        }
        // The record parsed as an object just above, so these members read too.
        let shown: Shown<'_> = serde_json::from_str(text).unwrap_or(Shown {
            event_time: None,
            event_name: None,
            event_id: None,
        });
        for matched in fired {
            report.matches.push(MatchRow {
                rule_id: matched.rule_id,
                rule_title: matched.rule_title,
                level: matched.level.map(|level| level.to_string()),
                event_time: shown.event_time.as_deref().map(str::to_owned),
                event_name: shown.event_name.as_deref().map(str::to_owned),
                event_id: shown.event_id.as_deref().map(str::to_owned),
                file: file_name.clone(),
                record: index,
            });
        }
        Ok(())
    });
    if let Err(error) = read {
        report.errors.push(ReadError {
            file: file_name,
            record: None,
            message: error.to_string(),
        });
    }
}

fn print_tables(report: &Report) {
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    if report.matches.is_empty() {
        println!("No matches.");
    } else {
        let rows: Vec<Vec<String>> = report
            .matches
            .iter()
            .map(|row| {
                vec![
                    row.rule_title.clone(),
                    dash(&row.event_time),
                    dash(&row.event_name),
                    dash(&row.event_id),
                    row.file.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            render_table(
                &["RULE", "EVENT TIME", "EVENT NAME", "EVENT ID", "FILE"],
                &rows
            )
        );
    }
    println!();
    let rows: Vec<Vec<String>> = report
        .counts
        .iter()
        .map(|count| {
            vec![
                count.matches.to_string(),
                dash(&count.level),
                count.rule_id.clone(),
                count.rule_title.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        render_table(&["MATCHES", "LEVEL", "RULE ID", "TITLE"], &rows)
    );
    println!();
    println!(
        "{} matches in {} records from {} files.",
        report.matches.len(),
        report.records,
        report.files
    );
    for skipped in &report.skipped_rule_files {
        println!("Skipped (rules for another log source): {skipped}");
    }
    if !report.errors.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = report
            .errors
            .iter()
            .map(|error| {
                vec![
                    error.file.clone(),
                    error
                        .record
                        .map_or_else(|| "-".to_owned(), |record| record.to_string()),
                    error.message.lines().next().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        print!("{}", render_table(&["FILE", "RECORD", "ERROR"], &rows));
    }
}
