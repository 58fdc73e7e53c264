//! The store's own benchmark (never a timed test): durable ingest at several batch sizes
//! against the JSON parse-only ceiling measured in the same run, lookup latency per
//! attribute, bytes on disk per event by part, and recovery time, on the benchmark
//! harness's generated records.
//!
//! Usage: `cargo run --release -p opentrail-store --bin opentrail-store-bench -- [EVENTS] [DIR]`

use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use opentrail_event::{EventRecord, FilterField, IngestContext, parse_batch};
use opentrail_generator::{DEFAULT_ACCOUNT, DEFAULT_REGION, Generator, GeneratorConfig};
use opentrail_store::{LookupQuery, Store, StoreOptions};

const LOOKUPS_PER_ATTRIBUTE: usize = 200;

/// The benchmark harness's generator (`crates/generator`): records shaped like real trails,
/// with their random ids, keys and addresses, so bytes per event here are comparable to the
/// HTTP benchmark's. Batches of `size` records as NDJSON lines.
struct Records {
    generator: Generator,
    ndjson: Vec<u8>,
}

impl Records {
    fn new(seed: u64, total: u64) -> Records {
        Records {
            generator: Generator::new(GeneratorConfig::new(seed, total)),
            ndjson: Vec::with_capacity(2 << 20),
        }
    }

    /// The next batch of up to `size` lines, and how many there are (0 at the end).
    fn next_batch(&mut self, size: usize) -> (&[u8], usize) {
        self.ndjson.clear();
        let count = self.generator.next_ndjson_batch(size, &mut self.ndjson);
        (&self.ndjson, count)
    }
}

fn parse_records(ndjson: &[u8]) -> Result<Vec<EventRecord>, Box<dyn std::error::Error>> {
    let context = IngestContext {
        account_id: DEFAULT_ACCOUNT.into(),
        region: DEFAULT_REGION.into(),
    };
    Ok(parse_batch(ndjson, &context)?
        .records
        .into_iter()
        .map(|(_, record)| record)
        .collect())
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
        let mut records = Records::new(1, sample as u64);
        let mut batches: Vec<Vec<u8>> = Vec::new();
        loop {
            let (ndjson, count) = records.next_batch(batch_size);
            if count == 0 {
                break;
            }
            batches.push(ndjson.to_vec());
        }
        let raw_bytes: usize = batches.iter().map(Vec::len).sum();
        let parse_start = Instant::now();
        let mut parsed: Vec<EventRecord> = Vec::with_capacity(sample);
        for batch in &batches {
            parsed.extend(parse_records(batch)?);
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
    // (account, region, field, value) of sampled records: lookups are scoped like the API's.
    let mut samples: Vec<(String, String, FilterField, String)> = Vec::new();
    let mut generated = Records::new(1, total);
    let load_start = Instant::now();
    let mut appended = 0u64;
    loop {
        let (ndjson, count) = generated.next_batch(1000);
        if count == 0 {
            break;
        }
        raw_bytes += ndjson.len() as u64;
        let records = parse_records(ndjson)?;
        if appended % 97_000 < 1000 {
            let sampled = &records[0];
            for (field, value) in sampled.attributes.index_values() {
                samples.push((
                    sampled.account_id.clone(),
                    sampled.region.clone(),
                    field,
                    value.to_owned(),
                ));
            }
        }
        store.append(records)?;
        appended += count as u64;
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
    let per_event = |bytes: u64| bytes as f64 / total as f64;
    let print_space = |when: &str| {
        let space = store.space_by_part();
        println!(
            "| bytes per event by part, {when} | records {:.1}, columns (Parquet) {:.1}, postings {:.1}, ids and Bloom filters {:.1}, times and seqs {:.1}, journal {:.1} |",
            per_event(space.records),
            per_event(space.columns),
            per_event(space.postings),
            per_event(space.ids),
            per_event(space.positions),
            per_event(space.journal)
        );
    };
    // Some segments are settled by now (the background settler takes idle CPU).
    print_space("at the end of the load");
    let settle_start = Instant::now();
    store.settle()?;
    println!(
        "| settle what was left (this thread) | {:.1} s |",
        settle_start.elapsed().as_secs_f64()
    );
    let disk = dir_bytes(&dir);
    println!(
        "| bytes on disk per event, settled | {:.0} (ratio {:.2}) |",
        disk as f64 / total as f64,
        disk as f64 / raw_bytes as f64
    );
    print_space("settled");

    for field in FilterField::ALL {
        let values: Vec<_> = samples
            .iter()
            .filter(|(_, _, sampled_field, _)| *sampled_field == field)
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut latencies = Vec::with_capacity(LOOKUPS_PER_ATTRIBUTE);
        for i in 0..LOOKUPS_PER_ATTRIBUTE {
            let (account, region, _, value) = values[i % values.len()];
            let mut query = LookupQuery::new(Some(account.clone()), Some(region.clone()), 50);
            query.filters = vec![(field, value.clone())];
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
    let store = Store::open(dir, StoreOptions::default())?;
    // Another seed than the main load's: new event ids, nothing deduplicated away.
    let mut records = Records::new(first, 50_000);
    loop {
        let (ndjson, count) = records.next_batch(1000);
        if count == 0 {
            break;
        }
        store.append(parse_records(ndjson)?)?;
    }
    std::process::abort();
}
