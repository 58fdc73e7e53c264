//! The store's own benchmark (never a timed test): durable ingest at several batch sizes
//! against the JSON parse-only ceiling measured in the same run, lookup latency per
//! attribute, bytes on disk per event, and recovery time.
//!
//! Usage: `cargo run --release -p opentrail-store --bin opentrail-store-bench -- [EVENTS] [DIR]`

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use opentrail_event::{EventRecord, FilterField, IngestContext, parse_batch};
use opentrail_store::{LookupQuery, Store, StoreOptions};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";
const LOOKUPS_PER_ATTRIBUTE: usize = 200;

/// A small deterministic generator (xorshift), skewed like real trails: a few event
/// names, users and sources dominate.
struct Generator {
    state: u64,
}

impl Generator {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Zipf-like: index i with weight ~ 1/(i+1).
    fn skewed(&mut self, n: u64) -> u64 {
        let uniform = (self.next() % 10_000) as f64 / 10_000.0;
        ((n as f64).powf(uniform) - 1.0) as u64 % n
    }

    fn event(&mut self, i: u64) -> String {
        let names = [
            "GetObject",
            "PutObject",
            "AssumeRole",
            "DescribeInstances",
            "GetCallerIdentity",
            "ListBuckets",
            "Decrypt",
            "RunInstances",
            "DeleteTable",
            "CreateUser",
        ];
        let sources = [
            "s3.amazonaws.com",
            "sts.amazonaws.com",
            "ec2.amazonaws.com",
            "kms.amazonaws.com",
            "iam.amazonaws.com",
            "dynamodb.amazonaws.com",
        ];
        let name = names[self.skewed(names.len() as u64) as usize];
        let source = sources[self.skewed(sources.len() as u64) as usize];
        let user = self.skewed(500);
        let resource = self.skewed(20_000);
        let ip = self.skewed(2_000);
        let error = if self.next().is_multiple_of(10) {
            r#","errorCode":"AccessDenied","errorMessage":"User is not authorized to perform this action on the requested resource""#
        } else {
            ""
        };
        let second = 1_700_000_000 + i / 10;
        let time = jiff::Timestamp::from_second(second as i64)
            .map(|t| t.to_string())
            .unwrap_or_default();
        format!(
            r#"{{"eventVersion":"1.09","userIdentity":{{"type":"IAMUser","principalId":"AIDA{user:016}","arn":"arn:aws:iam::{ACCOUNT}:user/user{user}","accountId":"{ACCOUNT}","accessKeyId":"AKIA{user:016}","userName":"user{user}","sessionContext":{{"attributes":{{"creationDate":"{time}","mfaAuthenticated":"false"}}}}}},"eventTime":"{time}","eventSource":"{source}","eventName":"{name}","awsRegion":"{REGION}","sourceIPAddress":"198.51.{}.{}","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.debian.12 prompt/off command/s3api.{name}"{error},"requestParameters":{{"bucketName":"bucket-{}","key":"data/2024/01/01/object-{resource}.parquet","Host":"bucket.s3.us-east-1.amazonaws.com"}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"AuthenticationMethod":"AuthHeader","x-amz-id-2":"Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHd2dXRzcnFwb25tbGtqaWhnZmVkY2JhMDEyMzQ1Njc4OQ==","bytesTransferredOut":{}}},"requestID":"REQ{i:016X}","eventID":"{:08x}-0000-4000-8000-{i:012x}","readOnly":{},"resources":[{{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::bucket-{}/data/object-{resource}"}},{{"accountId":"{ACCOUNT}","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::bucket-{}"}}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"{ACCOUNT}","eventCategory":"Data","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"bucket-{}.s3.us-east-1.amazonaws.com"}}}}"#,
            ip / 250,
            ip % 250,
            resource % 50,
            self.next() % 100_000,
            self.next() as u32,
            name.starts_with("Get") || name.starts_with("List") || name.starts_with("Describe"),
            resource % 50,
            resource % 50,
            resource % 50,
        )
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--crash-writer") {
        args.next();
        let dir = std::path::PathBuf::from(args.next().ok_or("--crash-writer DIR FIRST")?);
        let first: u64 = args.next().ok_or("--crash-writer DIR FIRST")?.parse()?;
        return crash_writer(&dir, first);
    }
    let total: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let base_dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("opentrail-store-bench-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&base_dir);
    let context = IngestContext {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
    };
    let mut generator = Generator {
        state: 0x2545_F491_4F6C_DD1D,
    };

    println!(
        "# opentrail-store-bench: {total} events, dir {}",
        base_dir.display()
    );
    println!("| measure | value |\n|---|---|");

    // Durable ingest at batch sizes 1, 100, 1000, each against a fresh store.
    for batch_size in [1usize, 100, 1000] {
        let sample = if batch_size == 1 {
            2_000
        } else {
            100_000.min(total as usize)
        };
        let lines: Vec<String> = (0..sample as u64).map(|i| generator.event(i)).collect();
        let raw_bytes: usize = lines.iter().map(String::len).sum();
        let parse_start = Instant::now();
        let mut parsed: Vec<EventRecord> = Vec::with_capacity(sample);
        for chunk in lines.chunks(batch_size) {
            let batch = parse_batch(chunk.join("\n").as_bytes(), &context)?;
            parsed.extend(batch.records.into_iter().map(|(_, record)| record));
        }
        let parse_seconds = parse_start.elapsed().as_secs_f64();
        let dir = base_dir.join(format!("batch-{batch_size}"));
        let store = Store::open(&dir, StoreOptions::default())?;
        let start = Instant::now();
        for chunk in parsed.chunks(batch_size) {
            store.append(chunk.to_vec())?;
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "| durable ingest, batch {batch_size} | {:.0} events/s, {:.1} MB/s (parse-only ceiling {:.0} events/s, {:.1} MB/s) |",
            sample as f64 / seconds,
            raw_bytes as f64 / seconds / 1e6,
            sample as f64 / parse_seconds,
            raw_bytes as f64 / parse_seconds / 1e6,
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    // The large store: lookups at `total` events. The RSS high-water mark restarts here
    // (Linux: "5" to clear_refs), so it measures the store holding `total` events rather
    // than the batch-size runs above, which keep 100k parsed events in memory at once.
    let rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let dir = base_dir.join("main");
    let store = Store::open(&dir, StoreOptions::default())?;
    let mut raw_bytes: u64 = 0;
    let mut samples: Vec<(FilterField, String)> = Vec::new();
    let load_start = Instant::now();
    let mut appended = 0u64;
    while appended < total {
        let count = 1000.min(total - appended);
        let lines: Vec<String> = (appended..appended + count)
            .map(|i| generator.event(i))
            .collect();
        raw_bytes += lines.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
        let batch = parse_batch(lines.join("\n").as_bytes(), &context)?;
        let records: Vec<EventRecord> = batch
            .records
            .into_iter()
            .map(|(_, record)| record)
            .collect();
        if appended % 97_000 < 1000 {
            for (field, value) in records[0].attributes.index_values() {
                samples.push((field, value.to_owned()));
            }
        }
        store.append(records)?;
        appended += count;
        if std::env::var_os("OPENTRAIL_BENCH_TRACE_MEMORY").is_some()
            && appended.is_multiple_of(100_000)
        {
            let stats = store.stats()?;
            eprintln!(
                "{appended} events: RSS {} kB ({} kB of it mapped files), unsealed {} MB in {} events, {} segments",
                rss_kib("VmRSS:").unwrap_or(0),
                rss_kib("RssFile:").unwrap_or(0),
                stats.unflushed_bytes >> 20,
                stats.unsealed_events,
                stats.segments
            );
        }
    }
    let load_seconds = load_start.elapsed().as_secs_f64();
    store.flush_tables()?;
    println!(
        "| load {total} events (batch 1000) | {:.0} events/s |",
        total as f64 / load_seconds
    );
    let disk = dir_bytes(&dir);
    println!(
        "| bytes on disk per event | {:.0} (raw JSON {:.0}; ratio {:.2}) |",
        disk as f64 / total as f64,
        raw_bytes as f64 / total as f64,
        disk as f64 / raw_bytes as f64
    );
    let space = store.space_by_part();
    let per_event = |bytes: u64| bytes as f64 / total as f64;
    println!(
        "| bytes per event by part | records {:.1}, columns (Parquet) {:.1}, postings {:.1}, ids and Bloom filters {:.1}, times and seqs {:.1}, journal {:.1} |",
        per_event(space.records),
        per_event(space.columns),
        per_event(space.postings),
        per_event(space.ids),
        per_event(space.positions),
        per_event(space.journal)
    );

    for field in FilterField::ALL {
        let values: Vec<&String> = samples
            .iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| v)
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut latencies = Vec::with_capacity(LOOKUPS_PER_ATTRIBUTE);
        for i in 0..LOOKUPS_PER_ATTRIBUTE {
            let mut query = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 50);
            query.filters = vec![(field, values[i % values.len()].clone())];
            let start = Instant::now();
            let page = store.lookup(&query)?;
            latencies.push(start.elapsed());
            std::hint::black_box(page);
        }
        latencies.sort();
        println!(
            "| lookup {field:?} (page of 50) | p50 {:.2} ms, p99 {:.2} ms |",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "| peak RSS while loading {total} events and looking them up | {} |",
        if rss_reset {
            peak_rss()
        } else {
            "unknown (no clear_refs)".to_owned()
        }
    );
    drop(store);

    // Recovery after a crash: a child process appends 50k more events and aborts
    // without closing (as kill -9 would); time how long the next open takes.
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--crash-writer")
        .arg(&dir)
        .arg(total.to_string())
        .status()?;
    let start = Instant::now();
    let store = Store::open(&dir, StoreOptions::default())?;
    let recovery = start.elapsed();
    println!(
        "| recovery: open after a crash with 50k events only in the journal | {:.0} ms (writer exit: {status}; last seq {}) |",
        recovery.as_secs_f64() * 1e3,
        store.stats()?.last_seq
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&base_dir);
    Ok(())
}

/// VmHWM from /proc: the resident-set high-water mark.
fn peak_rss() -> String {
    rss_kib("VmHWM:").map_or_else(|| "unknown".to_owned(), |kib| format!("{kib} kB"))
}

/// A memory figure of /proc/self/status (`VmHWM:`, `VmRSS:`, `RssFile:` …) in KiB.
fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The child side of the recovery measurement.
fn crash_writer(dir: &std::path::Path, first: u64) -> Result<(), Box<dyn std::error::Error>> {
    let context = IngestContext {
        account_id: ACCOUNT.into(),
        region: REGION.into(),
    };
    let mut generator = Generator {
        state: 0x1234_5678_9ABC_DEF1,
    };
    let store = Store::open(dir, StoreOptions::default())?;
    for chunk_start in (first..first + 50_000).step_by(1000) {
        let lines: Vec<String> = (chunk_start..chunk_start + 1000)
            .map(|i| generator.event(i))
            .collect();
        let batch = parse_batch(lines.join("\n").as_bytes(), &context)?;
        store.append(
            batch
                .records
                .into_iter()
                .map(|(_, record)| record)
                .collect(),
        )?;
    }
    std::process::abort();
}
