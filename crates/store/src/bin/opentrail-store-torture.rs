//! A writer for crash tests: appends batches from several threads and prints
//! `ack <eventID>` for each record only after `append` returned, while another thread
//! keeps sealing and merging small segments. The crash test kills it with SIGKILL at a
//! random moment (during an append, a seal or a merge) and checks every acknowledged id
//! survived exactly once.
//!
//! Usage: `opentrail-store-torture DIR RUN_ID [retention]`. With `retention`, events
//! expire a millisecond after they are recorded and the maintenance thread also runs
//! retention, held back by a consumer cursor 200 events behind the newest; each line is
//! then `ack <eventID> <seq>`.

use std::io::Write;

use opentrail_event::{IngestContext, parse_batch};
use opentrail_store::{AppendOutcome, Store, StoreOptions};

const THREADS: usize = 4;
const BATCH_EVENTS: usize = 40;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(run_id)) = (args.next(), args.next()) else {
        eprintln!("usage: opentrail-store-torture DIR RUN_ID [retention]");
        std::process::exit(2);
    };
    let with_retention = args.next().as_deref() == Some("retention");
    // Tiny segments, so seals and merges run all the time and kills land inside them.
    let options = StoreOptions {
        seal_events_max: 300,
        seal_interval: std::time::Duration::from_millis(20),
        merge_events_below: 1_000,
        segment_events_max: 3_000,
        retention: if with_retention {
            std::time::Duration::from_millis(1)
        } else {
            StoreOptions::default().retention
        },
        ..StoreOptions::default()
    };
    let store = match Store::open(std::path::Path::new(&dir), options) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("open failed: {error}");
            std::process::exit(1);
        }
    };
    let context = IngestContext {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
    };
    let maintenance = {
        let store = store.clone();
        std::thread::spawn(move || {
            for round in 0u64.. {
                std::thread::sleep(std::time::Duration::from_millis(30));
                if with_retention {
                    let expired = store.stats().and_then(|stats| {
                        store.save_cursor("hold", stats.last_seq.saturating_sub(200))?;
                        store.expire(jiff::Timestamp::now().as_millisecond())
                    });
                    if let Err(error) = expired {
                        eprintln!("retention failed: {error}");
                        std::process::exit(1);
                    }
                }
                let outcome = if round % 3 == 2 {
                    store.compact()
                } else {
                    store.flush_tables()
                };
                if let Err(error) = outcome {
                    eprintln!("maintenance failed: {error}");
                    std::process::exit(1);
                }
            }
        })
    };
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = store.clone();
            let context = context.clone();
            let run_id = run_id.clone();
            std::thread::spawn(move || {
                for batch_number in 0.. {
                    let lines: Vec<String> = (0..BATCH_EVENTS)
                        .map(|i| {
                            // Every third batch re-sends the previous one: dedup under crashes.
                            let batch_id = if batch_number % 3 == 2 { batch_number - 1 } else { batch_number };
                            format!(
                                r#"{{"eventID":"{run_id}-t{thread}-b{batch_id}-{i}","eventName":"PutObject","eventSource":"s3.amazonaws.com","eventTime":"2024-01-01T00:00:00Z","userIdentity":{{"type":"IAMUser","userName":"torture"}}}}"#
                            )
                        })
                        .collect();
                    let parsed = match parse_batch(lines.join("\n").as_bytes(), &context) {
                        Ok(parsed) => parsed,
                        Err(error) => {
                            eprintln!("parse failed: {error}");
                            std::process::exit(1);
                        }
                    };
                    let (ids, records): (Vec<String>, Vec<_>) =
                        parsed.records.into_iter().map(|(_, record)| (record.event_id.clone(), record)).unzip();
                    match store.append(records) {
                        Ok(outcomes) => {
                            let mut out = std::io::stdout().lock();
                            for (id, outcome) in ids.iter().zip(outcomes) {
                                let (kind, seq) = match outcome {
                                    AppendOutcome::Stored { seq } => ("ack", seq),
                                    AppendOutcome::Duplicate { seq } => ("dup", seq),
                                };
                                if with_retention {
                                    let _ = writeln!(out, "{kind} {id} {seq}");
                                } else {
                                    let _ = writeln!(out, "{kind} {id}");
                                }
                            }
                            let _ = out.flush();
                        }
                        Err(error) => {
                            eprintln!("append failed: {error}");
                            std::process::exit(1);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let _ = maintenance.join();
}
