//! SIGKILL a writer process at random moments, over many cycles, and check that every
//! acknowledged event is present exactly once and the store always reopens.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use opentrail_event::FilterField;
use opentrail_store::LookupQuery;

use crate::support::{ACCOUNT, REGION, all_ids, event, open, records};

const CYCLES: u64 = 20;

#[test]
fn every_acknowledged_event_survives_kill_dash_nine_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged: HashSet<String> = HashSet::new();
    // A small deterministic generator: the kill moments vary, the test stays reproducible.
    let mut random_state: u64 = 0x9E37_79B9_7F4A_7C15;
    for cycle in 0..CYCLES {
        let mut child = Command::new(env!("CARGO_BIN_EXE_opentrail-store-torture"))
            .arg(dir.path())
            .arg(format!("run{cycle}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout piped");
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line
                    .strip_prefix("ack ")
                    .or_else(|| line.strip_prefix("dup "))
                {
                    acked.push(id.to_owned());
                }
            }
            acked
        });
        random_state ^= random_state << 13;
        random_state ^= random_state >> 7;
        random_state ^= random_state << 17;
        let kill_after = Duration::from_millis(150 + random_state % 500);
        std::thread::sleep(kill_after);
        child.kill().expect("SIGKILL the writer");
        let _ = child.wait();
        let acked_this_cycle = reader.join().expect("reader thread");
        acknowledged.extend(acked_this_cycle);

        let store = open(dir.path());
        let ids = all_ids(
            &store,
            LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 1000),
        );
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "cycle {cycle}: an event is stored twice"
        );
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !unique.contains(id))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged but lost: {missing:?}"
        );
        let stats = store.stats().expect("stats");
        assert_eq!(
            stats.last_seq as usize,
            ids.len(),
            "cycle {cycle}: sequence numbers are dense"
        );
        if let Some(id) = acknowledged.iter().next() {
            let mut by_id = LookupQuery::new(Some(ACCOUNT.into()), Some(REGION.into()), 5);
            by_id.filters = vec![(FilterField::EventId, id.clone())];
            assert_eq!(
                all_ids(&store, by_id),
                vec![id.clone()],
                "index agrees with the log"
            );
        }
    }
    assert!(
        acknowledged.len() > 1000,
        "the writer made progress: {}",
        acknowledged.len()
    );
}

#[test]
fn a_store_killed_while_creating_its_first_journal_opens() {
    // What a kill right after creating the journal file leaves behind: nothing was
    // acknowledged, and the next open must not fail.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("journal")).expect("journal folder");
    std::fs::write(
        dir.path()
            .join("journal")
            .join("00000000000000000001.journal"),
        b"",
    )
    .expect("journal file");
    let store = open(dir.path());
    store
        .append(records(&event("e-1", "PutItem", "2024-05-01T10:00:00Z")))
        .expect("append");
    assert_eq!(store.stats().expect("stats").last_seq, 1);
}
