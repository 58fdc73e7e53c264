//! `opentrail import` as a user runs it: killed with SIGKILL half-way and run again, through
//! a running server's API, and refused on a data directory a server holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use opentrail_store::{LookupQuery, Store, StoreOptions};
use serde_json::Value;

use crate::{BINARY, Server, temporary_directories};

const SANS_FILES: u64 = 3_872;
/// Distinct (account, eventID) pairs in the SANS set (30,477 records with exact copies).
const SANS_DISTINCT_EVENTS: u64 = 23_981;
const INVICTUS_EVENTS: u64 = 2_900;
/// The `recipientAccountId` every Invictus record carries.
const INVICTUS_ACCOUNT: &str = "123837392027";
const KILL_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn corpus(set: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/cloudtrail"
    ))
    .join(set)
}

/// `opentrail import` with a clean environment (no config, endpoint or AWS credentials
/// from the machine running the tests).
fn import_command(arguments: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("import")
        .args(arguments)
        .env_remove("OPENTRAIL_CONFIG")
        .env_remove("OPENTRAIL_DATA_DIR")
        .env_remove("OPENTRAIL_ENDPOINT")
        .env_remove("OPENTRAIL_ACCOUNT_ID")
        .env_remove("OPENTRAIL_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdin(Stdio::null());
    command
}

/// Runs an import to the end and returns its JSON summary.
pub(crate) fn import_json(arguments: &[&str]) -> anyhow::Result<Value> {
    let mut with_json = arguments.to_vec();
    with_json.extend(["--output", "json", "--quiet"]);
    let output = import_command(&with_json)
        .output()
        .context("run opentrail import")?;
    ensure!(
        output.status.success(),
        "`opentrail import {}` failed: {}",
        arguments.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).context("import printed invalid JSON")
}

fn count(summary: &Value, key: &str) -> anyhow::Result<u64> {
    summary[key]
        .as_u64()
        .with_context(|| format!("summary lacks {key}: {summary}"))
}

/// Lines (completed files) in every checkpoint under `data_dir`.
fn checkpointed_files(data_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data_dir.join("import-checkpoints")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|text| text.lines().count().saturating_sub(1) as u64)
        .sum()
}

/// Every event in the store, paged through a lookup without filters.
fn stored_event_count(store: &Store) -> anyhow::Result<u64> {
    let mut query = LookupQuery::new(None, None, 1_000);
    let mut total = 0;
    loop {
        let page = store.lookup(&query)?;
        total += page.events.len() as u64;
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(total),
        }
    }
}

#[test]
fn an_import_killed_half_way_and_run_again_ends_with_the_exact_total() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let data_dir_text = data_dir.path().display().to_string();
    let sans = corpus("sans504-s3-ransomware-lab").display().to_string();
    // Small batches make many durable writes, so the kill lands between two of them.
    let mut child = import_command(&[
        &sans,
        "--data-dir",
        &data_dir_text,
        "--batch-events",
        "20",
        "--workers",
        "1",
        "--quiet",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .context("spawn opentrail import")?;
    let deadline = Instant::now() + KILL_TIMEOUT;
    // Half-way: once a good part of the files is durably in.
    while checkpointed_files(data_dir.path()) < SANS_FILES / 4 {
        if let Some(status) = child.try_wait()? {
            bail!("the import ended ({status}) before it could be killed");
        }
        ensure!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().context("SIGKILL the import")?;
    let status = child.wait()?;
    ensure!(
        !status.success(),
        "the import was killed, not finished: {status}"
    );
    let completed_before = checkpointed_files(data_dir.path());
    ensure!(
        completed_before < SANS_FILES,
        "{completed_before} files were done"
    );

    let resumed = import_json(&[&sans, "--data-dir", &data_dir_text])?;
    let already = count(&resumed, "files_already_imported")?;
    assert!(already >= completed_before, "{resumed}");
    assert_eq!(count(&resumed, "files")? + already, SANS_FILES, "{resumed}");
    assert_eq!(resumed["errors"], Value::Array(Vec::new()), "{resumed}");

    let store = Store::open(&data_dir.path().join("store"), StoreOptions::default())?;
    assert_eq!(
        store.stats()?.last_seq,
        SANS_DISTINCT_EVENTS,
        "nothing doubled"
    );
    assert_eq!(
        stored_event_count(&store)?,
        SANS_DISTINCT_EVENTS,
        "nothing lost"
    );
    Ok(())
}

#[test]
fn import_goes_through_a_running_server_and_direct_import_is_refused_meanwhile()
-> anyhow::Result<()> {
    let (data_dir, logs_dir) = temporary_directories()?;
    let server = Server::start(data_dir.path(), logs_dir.path(), &[])?;
    let invictus = corpus("invictus-ir-aws_dataset").display().to_string();

    // The server's data directory is locked: a direct import must say what to do instead.
    let refused = import_command(&[
        &invictus,
        "--data-dir",
        &data_dir.path().display().to_string(),
        "--quiet",
    ])
    .output()?;
    ensure!(!refused.status.success(), "a second writer was let in");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--endpoint"), "{message}");

    // Through the API with the admin key from the data directory.
    let first = server.client_json(&["import", &invictus, "--quiet"])?;
    assert_eq!(
        count(&first, "events_imported")?,
        INVICTUS_EVENTS,
        "{first}"
    );
    assert_eq!(
        count(&first, "files_skipped")?,
        1,
        "the LICENSE file: {first}"
    );
    let second = server.client_json(&["import", &invictus, "--quiet"])?;
    assert_eq!(count(&second, "events_imported")?, 0, "{second}");
    assert_eq!(count(&second, "duplicates")?, INVICTUS_EVENTS, "{second}");

    server.terminate()?;
    let store = Store::open(&data_dir.path().join("store"), StoreOptions::default())?;
    // Imported events keep their own recipientAccountId: neither the key's default account
    // nor the account in the files' names (218007301253) replaces it.
    let mut query = LookupQuery::new(Some(INVICTUS_ACCOUNT.to_owned()), None, 1_000);
    let mut in_own_account = 0;
    loop {
        let page = store.lookup(&query)?;
        in_own_account += page.events.len() as u64;
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(in_own_account, INVICTUS_EVENTS);
    Ok(())
}

#[test]
fn import_help_names_every_way_in() -> anyhow::Result<()> {
    let output = Command::new(BINARY).args(["import", "--help"]).output()?;
    ensure!(output.status.success());
    let help = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--data-dir",
        "--endpoint",
        "--output",
        "--s3-endpoint",
        "OPENTRAIL_S3_ACCESS_KEY_ID",
        "--no-resume",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    Ok(())
}
