//! `opentrail query` as a user runs it on a data directory: the three output formats
//! against counts made here from the corpus files, the errors a user gets, and the
//! refusal while a server holds the directory.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::import::{corpus, import_json};
use crate::{BINARY, Server, temporary_directories};

fn query(data_dir: &std::path::Path, arguments: &[&str]) -> anyhow::Result<Output> {
    Command::new(BINARY)
        .arg("query")
        .args(arguments)
        .args(["--data-dir", &data_dir.display().to_string(), "--quiet"])
        .env_remove("OPENTRAIL_CONFIG")
        .env_remove("OPENTRAIL_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .context("run opentrail query")
}

/// eventName → count over the Invictus files, read here without OpenTrail.
fn invictus_event_names() -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(corpus("invictus-ir-aws_dataset").join("CloudTrail"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let file: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        for record in file["Records"].as_array().context("Records")? {
            let name = record["eventName"].as_str().context("eventName")?;
            *counts.entry(name.to_owned()).or_default() += 1;
        }
    }
    Ok(counts)
}

#[test]
fn query_prints_lake_sql_results_as_a_table_json_and_csv() -> anyhow::Result<()> {
    let (data_dir, _logs) = temporary_directories()?;
    let data = data_dir.path().display().to_string();
    let invictus = corpus("invictus-ir-aws_dataset").display().to_string();
    import_json(&[&invictus, "--data-dir", &data])?;
    let expected = invictus_event_names()?;

    let sql = "SELECT eventName, COUNT(*) AS calls FROM events GROUP BY eventName \
               ORDER BY calls DESC, eventName";
    let json = query(data_dir.path(), &["--output", "json", sql])?;
    ensure!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&json.stdout)?;
    let found: BTreeMap<String, u64> = rows
        .iter()
        .map(|row| {
            Ok((
                row["eventname"].as_str().context("eventname")?.to_owned(),
                row["calls"].as_u64().context("calls is a number")?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(found, expected);
    let most = expected.values().max().copied().unwrap_or_default();
    assert_eq!(rows[0]["calls"].as_u64(), Some(most), "ordered by count");

    let csv = query(data_dir.path(), &["--output", "csv", sql])?;
    ensure!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8(csv.stdout)?;
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("eventname,calls"));
    assert_eq!(lines.count(), expected.len());

    let table = query(
        data_dir.path(),
        &["SELECT count(*) AS total, count(DISTINCT userIdentity.arn) AS principals FROM events"],
    )?;
    ensure!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8(table.stdout)?;
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|header| header.starts_with("total")),
        "{text}"
    );
    let total: u64 = lines
        .next()
        .and_then(|line| line.split_whitespace().next())
        .context("a row")?
        .parse()?;
    assert_eq!(total, expected.values().sum::<u64>());

    // Errors say what is wrong, and the exit status is 1.
    for (sql, says) in [
        ("DELETE FROM events", "only a single SELECT"),
        ("SELECT nosuchcolumn FROM events", "nosuchcolumn"),
        ("SELECT * FROM", "SQL"),
    ] {
        let failed = query(data_dir.path(), &[sql])?;
        assert_eq!(failed.status.code(), Some(1), "{sql}");
        let message = String::from_utf8_lossy(&failed.stderr);
        assert!(message.contains(says), "{sql}: {message}");
    }
    Ok(())
}

#[test]
fn query_is_refused_while_a_server_holds_the_data_directory() -> anyhow::Result<()> {
    let (data_dir, logs_dir) = temporary_directories()?;
    let server = Server::start(data_dir.path(), logs_dir.path(), &[])?;
    let refused = query(data_dir.path(), &["SELECT count(*) FROM events"])?;
    assert_eq!(refused.status.code(), Some(1));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("in use by a running server"), "{message}");
    server.terminate()?;
    let counted = query(
        data_dir.path(),
        &["--output", "csv", "SELECT count(*) AS n FROM events"],
    )?;
    ensure!(
        counted.status.success(),
        "{}",
        String::from_utf8_lossy(&counted.stderr)
    );
    assert!(String::from_utf8(counted.stdout)?.starts_with("n\n"));
    Ok(())
}
