//! The import pipeline against the real corpus and against damaged trees: counts per set,
//! repeat imports, lookups equal to a brute-force scan, interruption and resumption, and
//! what is skipped or reported.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, ensure};
use opentrail_event::{EventRecord, FilterField, IngestContext, parse_batch};
use opentrail_import::{
    EventSink, ImportOptions, ImportProgress, ImportSummary, SinkError, Source, StoreSink,
    WriteOutcome,
};
use opentrail_store::{LookupQuery, Store, StoreOptions};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/cloudtrail"
);

/// Record counts per set, from the corpus README (records in the files, duplicates
/// included).
const SETS: [(&str, u64); 4] = [
    ("invictus-ir-aws_dataset", 2_900),
    ("sans504-s3-ransomware-lab", 30_477),
    ("stratus-red-team-grimoire", 266),
    ("traildiscover-logExamples", 563),
];
const SANS: &str = "sans504-s3-ransomware-lab";
/// Corpus files that are not logs: README.md, MANIFEST.sha256 and two LICENSE files.
const CORPUS_OTHER_FILES: u64 = 4;

fn corpus(set: &str) -> PathBuf {
    Path::new(CORPUS).join(set)
}

fn open_store(dir: &Path) -> anyhow::Result<Store> {
    Ok(Store::open(&dir.join("store"), StoreOptions::default())?)
}

fn options(data_dir: &Path) -> ImportOptions {
    ImportOptions {
        checkpoint_dir: Some(data_dir.join("import-checkpoints")),
        destination: format!("store {}", data_dir.display()),
        ..ImportOptions::default()
    }
}

fn import_into(
    sink: &mut dyn EventSink,
    sources: &[PathBuf],
    options: &ImportOptions,
) -> anyhow::Result<ImportSummary> {
    let sources: Vec<Source> = sources.iter().cloned().map(Source::Local).collect();
    let progress = ImportProgress::default();
    Ok(opentrail_import::import(
        &sources,
        sink,
        options,
        &progress,
        &AtomicBool::new(false),
    )?)
}

/// Every record of every log file under `dir`, parsed independently of the import.
fn brute_force_records(dir: &Path) -> anyhow::Result<Vec<EventRecord>> {
    let mut files = Vec::new();
    collect_log_files(dir, &mut files)?;
    let context = IngestContext {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
    };
    let mut records = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file)?;
        let batch = parse_batch(&bytes, &context).with_context(|| file.display().to_string())?;
        ensure!(batch.failures.is_empty(), "{}", file.display());
        records.extend(batch.records.into_iter().map(|(_, record)| record));
    }
    Ok(records)
}

fn collect_log_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.to_string_lossy().into_owned();
        if path.is_dir() {
            collect_log_files(&path, out)?;
        } else if name.ends_with(".json")
            || name.ends_with(".json.gz")
            || name.ends_with(".json.cloudtrail")
        {
            out.push(path);
        }
    }
    Ok(())
}

fn distinct_events(records: &[EventRecord]) -> u64 {
    records
        .iter()
        .map(|record| (&record.account_id, &record.event_id))
        .collect::<HashSet<_>>()
        .len() as u64
}

#[test]
fn the_corpus_imports_with_the_readme_counts_and_a_second_import_adds_nothing() -> anyhow::Result<()>
{
    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    let options = options(data_dir.path());
    let mut total_distinct = 0;
    for (set, readme_count) in SETS {
        let summary = import_into(&mut sink, &[corpus(set)], &options)?;
        let distinct = distinct_events(&brute_force_records(&corpus(set))?);
        total_distinct += distinct;
        // Every record of the set was read; the ones whose eventID repeats (the corpus
        // holds exact copies) are duplicates, the rest are new.
        assert_eq!(
            summary.events_imported + summary.duplicates,
            readme_count,
            "{set}: {summary:?}"
        );
        assert_eq!(summary.events_imported, distinct, "{set}: {summary:?}");
        assert!(!summary.has_errors(), "{set}: {:?}", summary.errors);
        assert_eq!(summary.events_failed, 0, "{set}");
    }
    let all_records: u64 = SETS.iter().map(|(_, count)| count).sum();

    // The whole corpus again, as one new source: every file is read, nothing is added.
    let again = import_into(&mut sink, &[PathBuf::from(CORPUS)], &options)?;
    assert_eq!(again.events_imported, 0, "{again:?}");
    assert_eq!(again.duplicates, all_records);
    assert_eq!(again.files_skipped, CORPUS_OTHER_FILES);
    assert_eq!(again.files_skipped_not_cloudtrail, CORPUS_OTHER_FILES);
    assert_eq!(again.files, 55 + 3_872 + 23 + 584);

    // Once more: now the checkpoint knows every file, so none is even read.
    let third = import_into(&mut sink, &[PathBuf::from(CORPUS)], &options)?;
    assert_eq!(third.files, 0, "{third:?}");
    assert_eq!(third.files_already_imported, again.files);
    assert_eq!(third.events_imported + third.duplicates, 0);

    let store = sink.into_store();
    assert_eq!(store.stats()?.last_seq, total_distinct);
    Ok(())
}

#[test]
fn lookups_on_the_imported_sans_set_match_a_brute_force_count() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    // Small batches: many appends, files split across them.
    let options = ImportOptions {
        batch_events: 700,
        ..options(data_dir.path())
    };
    let summary = import_into(&mut sink, &[corpus(SANS)], &options)?;
    assert_eq!(summary.events_imported + summary.duplicates, 30_477);
    let store = sink.into_store();

    let mut seen = HashSet::new();
    let mut expected: BTreeMap<(FilterField, String), HashSet<String>> = BTreeMap::new();
    for record in brute_force_records(&corpus(SANS))? {
        if !seen.insert((record.account_id.clone(), record.event_id.clone())) {
            continue;
        }
        let mut keys = vec![(FilterField::EventName, record.attributes.event_name.clone())];
        if let Some(username) = &record.attributes.username {
            keys.push((FilterField::Username, username.clone()));
        }
        for key in keys {
            expected
                .entry(key)
                .or_default()
                .insert(record.event_id.clone());
        }
    }
    let names = expected
        .keys()
        .filter(|(field, _)| *field == FilterField::EventName)
        .count();
    let users = expected.len() - names;
    assert!(
        names > 20 && users > 3,
        "{names} event names, {users} users"
    );
    for (key, want) in &expected {
        let mut query = LookupQuery::new(None, None, 1_000);
        query.filters = vec![key.clone()];
        let mut got = HashSet::new();
        loop {
            let page = store.lookup(&query)?;
            got.extend(page.events.into_iter().map(|event| event.record.event_id));
            match page.next {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(got.len(), want.len(), "{key:?}");
        assert_eq!(&got, want, "{key:?}");
    }
    Ok(())
}

/// Wraps a sink and fails (like a crash) after a number of writes.
struct FailingSink<'a> {
    inner: &'a mut StoreSink,
    writes_left: usize,
}

impl EventSink for FailingSink<'_> {
    fn write(&mut self, records: Vec<EventRecord>) -> Result<Vec<WriteOutcome>, SinkError> {
        if self.writes_left == 0 {
            return Err(SinkError::new("simulated crash"));
        }
        self.writes_left -= 1;
        self.inner.write(records)
    }
}

#[test]
fn an_import_stopped_part_way_resumes_to_the_exact_total() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    let options = ImportOptions {
        batch_events: 500,
        workers: 2,
        ..options(data_dir.path())
    };
    let sources = [corpus(SANS)];
    let mut failing = FailingSink {
        inner: &mut sink,
        writes_left: 10,
    };
    let error = import_into(&mut failing, &sources, &options).expect_err("the sink fails");
    assert!(error.to_string().contains("simulated crash"), "{error:#}");
    let stored_before = sink.store().stats()?.last_seq;
    assert!(
        stored_before > 0 && stored_before < 23_981,
        "{stored_before}"
    );

    // Every file the checkpoint names is completely in the store.
    let checkpoint_dir = data_dir.path().join("import-checkpoints");
    let mut checkpointed_files = 0;
    for entry in std::fs::read_dir(&checkpoint_dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines().skip(1) {
            let completed: serde_json::Value = serde_json::from_str(line)?;
            let relative = completed["path"].as_str().context("path")?;
            let file = corpus(SANS).join(relative);
            let bytes = std::fs::read(&file)?;
            let batch = parse_batch(
                &bytes,
                &IngestContext {
                    account_id: "000000000000".into(),
                    region: "us-east-1".into(),
                },
            )?;
            for (_, record) in batch.records {
                ensure!(
                    sink.store()
                        .get_event(&record.account_id, &record.event_id)?
                        .is_some(),
                    "{relative} is checkpointed but {} is not stored",
                    record.event_id
                );
            }
            checkpointed_files += 1;
        }
    }
    assert!(checkpointed_files > 0);

    let resumed = import_into(&mut sink, &sources, &options)?;
    assert_eq!(resumed.files_already_imported, checkpointed_files);
    assert_eq!(resumed.files + resumed.files_already_imported, 3_872);
    assert_eq!(
        sink.store().stats()?.last_seq,
        23_981,
        "nothing lost, nothing doubled"
    );
    assert_eq!(stored_before + resumed.events_imported, 23_981);
    Ok(())
}

#[test]
fn cancelling_stops_early_and_a_re_run_completes() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    let options = options(data_dir.path());
    let sources = vec![Source::Local(corpus(SANS))];
    let cancelled = AtomicBool::new(true);
    let progress = ImportProgress::default();
    let summary = opentrail_import::import(&sources, &mut sink, &options, &progress, &cancelled)?;
    assert!(summary.interrupted);
    let resumed = import_into(&mut sink, &[corpus(SANS)], &options)?;
    assert!(!resumed.interrupted);
    assert_eq!(sink.store().stats()?.last_seq, 23_981);
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn record(event_id: &str, extra: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"{event_id}"{extra}}}"#
    )
}

#[test]
fn damaged_files_are_reported_by_path_and_the_rest_goes_on() -> anyhow::Result<()> {
    let tree = tempfile::tempdir()?;
    let root = tree.path();
    let logs = root.join("AWSLogs/111122223333/CloudTrail/eu-west-1/2024/01/02");
    let good = format!(
        r#"{{"Records":[{},{}]}}"#,
        record("a1", ""),
        record("a2", "")
    );
    write_file(&logs.join("good.json.gz"), &gzip(good.as_bytes())?)?;
    let whole = gzip(format!(r#"{{"Records":[{}]}}"#, record("b1", "")).as_bytes())?;
    write_file(&logs.join("truncated.json.gz"), &whole[..whole.len() / 2])?;
    write_file(&logs.join("broken.json"), br#"{"Records":[{"eventName":"#)?;
    let one_bad = format!(
        r#"[{},{{"eventName":"X","eventSource":"s3.amazonaws.com","eventTime":"yesterday"}}]"#,
        record("c1", "")
    );
    write_file(&root.join("loose/one-bad-record.json"), one_bad.as_bytes())?;
    // Skipped: digests (by folder and by name), another service, other file types, JSON
    // that is not CloudTrail.
    write_file(
        &root.join("AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/01/02/d.json.gz"),
        &gzip(b"{}")?,
    )?;
    write_file(
        &root.join(
            "copied/111122223333_CloudTrail-Digest_eu-west-1_t_eu-west-1_20240102T000000Z.json.gz",
        ),
        &gzip(b"{}")?,
    )?;
    write_file(
        &root.join("AWSLogs/111122223333/Config/eu-west-1/2024/1/2/ConfigSnapshot/s.json.gz"),
        &gzip(b"{}")?,
    )?;
    write_file(&root.join("notes.txt"), b"hello")?;
    write_file(
        &root.join("loose/package.json"),
        br#"{"name":"x","version":"1.0.0"}"#,
    )?;

    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    let options = options(data_dir.path());
    let summary = import_into(&mut sink, &[root.to_path_buf()], &options)?;
    assert_eq!(summary.events_imported, 3, "{summary:?}");
    assert_eq!(summary.files, 4, "{summary:?}");
    assert_eq!(summary.files_skipped_digest, 2, "{summary:?}");
    assert_eq!(summary.files_skipped_not_cloudtrail, 3, "{summary:?}");
    assert_eq!(summary.files_skipped, 5);
    assert_eq!(summary.error_files, 3, "{:#?}", summary.errors);
    assert_eq!(summary.events_failed, 1);
    let errors: BTreeMap<String, (String, u64)> = summary
        .errors
        .iter()
        .map(|error| {
            let name = Path::new(&error.path)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, (error.message.clone(), error.records_failed))
        })
        .collect();
    assert!(errors["truncated.json.gz"].0.contains("gzip"), "{errors:?}");
    assert!(errors.contains_key("broken.json"), "{errors:?}");
    assert_eq!(errors["one-bad-record.json"].1, 1, "{errors:?}");
    assert!(
        errors["one-bad-record.json"].0.starts_with("record 1"),
        "{errors:?}"
    );
    for error in &summary.errors {
        assert!(
            error.path.starts_with(&root.display().to_string()),
            "errors name the file: {}",
            error.path
        );
    }

    // Files with errors are not checkpointed, so a re-run reports them again.
    let again = import_into(&mut sink, &[root.to_path_buf()], &options)?;
    assert_eq!(again.error_files, 3);
    assert_eq!(again.files_already_imported, 1);
    assert_eq!(again.events_imported, 0);
    Ok(())
}

#[test]
fn the_path_fills_only_the_account_and_region_a_record_lacks() -> anyhow::Result<()> {
    let tree = tempfile::tempdir()?;
    let logs = tree
        .path()
        .join("bucket/AWSLogs/111122223333/CloudTrail/eu-west-1/2024/01/02");
    let body = format!(
        r#"{{"Records":[{},{}]}}"#,
        record("no-account", ""),
        record(
            "own-account",
            r#","recipientAccountId":"999988887777","awsRegion":"ap-south-1""#
        )
    );
    write_file(&logs.join("x.json"), body.as_bytes())?;
    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    let summary = import_into(
        &mut sink,
        &[tree.path().to_path_buf()],
        &options(data_dir.path()),
    )?;
    assert_eq!(summary.events_imported, 2);
    let store = sink.into_store();
    let filled = store
        .get_event("111122223333", "no-account")?
        .context("filled from the path")?;
    assert_eq!(filled.record.region, "eu-west-1");
    let own = store
        .get_event("999988887777", "own-account")?
        .context("kept its own account")?;
    assert_eq!(own.record.region, "ap-south-1");
    Ok(())
}

#[test]
fn a_changed_file_is_read_again_despite_the_checkpoint() -> anyhow::Result<()> {
    let tree = tempfile::tempdir()?;
    let file = tree.path().join("events.json");
    write_file(&file, format!("[{}]", record("v1", "")).as_bytes())?;
    let data_dir = tempfile::tempdir()?;
    let mut sink = StoreSink::new(open_store(data_dir.path())?);
    let options = options(data_dir.path());
    let sources = [tree.path().to_path_buf()];
    assert_eq!(
        import_into(&mut sink, &sources, &options)?.events_imported,
        1
    );
    assert_eq!(
        import_into(&mut sink, &sources, &options)?.files_already_imported,
        1
    );
    write_file(
        &file,
        format!("[{},{}]", record("v1", ""), record("v2", "")).as_bytes(),
    )?;
    let after_change = import_into(&mut sink, &sources, &options)?;
    assert_eq!(after_change.events_imported, 1, "{after_change:?}");
    assert_eq!(after_change.duplicates, 1);
    // And --no-resume reads even unchanged files.
    let reread = import_into(
        &mut sink,
        &sources,
        &ImportOptions {
            ignore_checkpoint: true,
            ..options
        },
    )?;
    assert_eq!((reread.files, reread.duplicates), (1, 2));
    Ok(())
}
