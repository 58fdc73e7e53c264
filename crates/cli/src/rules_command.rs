//! `opentrail rules test RULE.yml|DIR --against PATH…`: runs Sigma rules over CloudTrail
//! log files, for writing rules against real logs. Rules load and match through
//! `opentrail_detect` (the same code a server runs); the files to read are
//! `opentrail_import::list_local_files`'s (the walk and rules of `ingest` and `import`),
//! each read as a stream (`opentrail_event::parse::stream`), so a file of any size fits.
//!
//! Records are matched as the file has them, not normalised: a record without `eventID`
//! shows none. Matches are kept until the end, to align the table and count per rule.
//! The exit status is non-zero when a rule was refused or a file or record could not be
//! read, after everything readable has been matched and printed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::ingest_files::list_event_files;
use anyhow::{Context as _, bail};
use opentrail_detect::{DetectError, RuleRefusal, RuleSet};
use opentrail_event::parse::stream::{self, StreamedRecord};
use opentrail_import::classify::is_line_file;
use serde::{Deserialize, Serialize};

use crate::output::{OutputArgs, OutputFormat, render_table};

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Run Sigma rules over event files: each match (rule, eventTime, eventName, eventID,
    /// file), then the matches per rule.
    ///
    /// Rules: a file, or a directory searched recursively for *.yml and *.yaml; only
    /// rules with `logsource: product: aws, service: cloudtrail` run, and refused rules
    /// are reported with file and line. Exits non-zero when a rule was refused or a file
    /// or record could not be read. Example:
    /// opentrail rules test rules/cloudtrail --against AWSLogs/
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// A Sigma rule file, or a directory of them.
    #[arg(value_name = "RULE.yml|DIR")]
    rules: PathBuf,
    /// Event files, and directories to search recursively for *.json, *.json.gz,
    /// *.json.cloudtrail, *.ndjson and *.jsonl files (as `opentrail ingest` does).
    #[arg(long, value_name = "PATH", required = true, num_args = 1..)]
    against: Vec<PathBuf>,
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

pub fn run(args: RulesArgs) -> anyhow::Result<()> {
    match args.command {
        RulesCommand::Test(test) => run_test(test, args.output.output),
    }
}

fn run_test(args: TestArgs, format: OutputFormat) -> anyhow::Result<()> {
    if let Some(remote) = args
        .against
        .iter()
        .find(|path| path.to_string_lossy().starts_with("s3://"))
    {
        bail!(
            "{}: s3:// sources are not supported by `rules test` yet; copy the files \
             locally first (aws s3 sync)",
            remote.display()
        );
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

    let listing = list_event_files(&args.against)?;
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
    let read = stream::read_records(
        file,
        is_line_file(&path.to_string_lossy()),
        &mut |record| -> Result<(), std::convert::Infallible> {
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
        },
    );
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
