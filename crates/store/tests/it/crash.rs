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

/// Runs `opentrail-store-torture DIR RUN_ID [MODE]`, SIGKILLs it 150–650 ms later (a
/// moment drawn from `random_state`, so runs are reproducible), and returns every line it
/// printed: each is an acknowledgement made before the kill.
fn run_writer_until_killed(
    dir: &std::path::Path,
    run_id: &str,
    mode: Option<&str>,
    random_state: &mut u64,
) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_opentrail-store-torture"));
    command.arg(dir).arg(run_id).args(mode);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    *random_state ^= *random_state << 13;
    *random_state ^= *random_state >> 7;
    *random_state ^= *random_state << 17;
    std::thread::sleep(Duration::from_millis(150 + *random_state % 500));
    child.kill().expect("SIGKILL the writer");
    let _ = child.wait();
    reader.join().expect("reader thread")
}

#[test]
fn every_acknowledged_event_survives_kill_dash_nine_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged: HashSet<String> = HashSet::new();
    // A small deterministic generator: the kill moments vary, the test stays reproducible.
    let mut random_state: u64 = 0x9E37_79B9_7F4A_7C15;
    for cycle in 0..CYCLES {
        let lines =
            run_writer_until_killed(dir.path(), &format!("run{cycle}"), None, &mut random_state);
        acknowledged.extend(lines.iter().filter_map(|line| {
            line.strip_prefix("ack ")
                .or_else(|| line.strip_prefix("dup "))
                .map(str::to_owned)
        }));

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

/// Kill -9 while retention removes segments and journals under a consumer cursor: what
/// retention has not removed is all there, exactly once, and it never passes the cursor.
#[test]
fn retention_killed_at_any_instant_removes_only_below_its_floor_and_the_cursor() {
    const RETENTION_CYCLES: u64 = 10;
    let dir = tempfile::tempdir().expect("tempdir");
    // seq -> event id, as the writer acknowledged them.
    let mut acknowledged: std::collections::BTreeMap<u64, String> = Default::default();
    let mut random_state: u64 = 0x2545_F491_4F6C_DD1D;
    let options = opentrail_store::StoreOptions {
        retention: Duration::from_millis(1),
        ..opentrail_store::StoreOptions::default()
    };
    for cycle in 0..RETENTION_CYCLES {
        let lines = run_writer_until_killed(
            dir.path(),
            &format!("ret{cycle}"),
            Some("retention"),
            &mut random_state,
        );
        acknowledged.extend(lines.iter().filter_map(|line| {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("ack"), Some(id), Some(seq)) => {
                    Some((seq.parse::<u64>().ok()?, id.to_owned()))
                }
                _ => None,
            }
        }));

        let store =
            opentrail_store::Store::open(dir.path(), options.clone()).expect("the store reopens");
        let stats = store.stats().expect("stats");
        let floor = stats.expired_through_seq;
        let cursor = store.load_cursor("hold").expect("cursor");
        assert!(
            floor <= cursor,
            "cycle {cycle}: floor {floor} past cursor {cursor}"
        );
        let mut seqs = Vec::new();
        let mut after = 0;
        loop {
            let entries = store.read_log(after, 1_000).expect("read_log");
            let Some(last) = entries.last() else { break };
            after = last.seq;
            for entry in entries {
                if let Some(id) = acknowledged.get(&entry.seq) {
                    assert!(
                        entry.json.contains(&format!("\"eventID\":\"{id}\"")),
                        "cycle {cycle}: seq {} holds another event",
                        entry.seq
                    );
                }
                seqs.push(entry.seq);
            }
        }
        let expected: Vec<u64> = (floor + 1..=stats.last_seq).collect();
        assert_eq!(
            seqs, expected,
            "cycle {cycle}: every seq above the floor, once, in order"
        );
        let lost = acknowledged
            .range(floor + 1..)
            .filter(|(seq, _)| **seq > stats.last_seq)
            .count();
        assert_eq!(
            lost, 0,
            "cycle {cycle}: acknowledged events above the floor were lost"
        );
    }
    assert!(
        acknowledged.len() > 1_000,
        "the writer made progress: {}",
        acknowledged.len()
    );
}
