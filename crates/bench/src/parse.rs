//! The JSON parse ceiling: how fast the same events can merely be parsed into a value,
//! single-threaded and on all cores, by serde_json (`serde_json::Value`) and sonic-rs
//! (`sonic_rs::Value`). Also OpenTrail's own parse step (`opentrail_event::parse_batch` on
//! batches of 500: validation and attribute derivation included), which is what the
//! server spends per event before storing it.
//!
//! Each figure is the best of a few repetitions: a ceiling is what the machine can do, and
//! on a shared machine the slower repetitions measure the neighbours.

use std::time::Instant;

use opentrail_event::{IngestContext, parse_batch};

const REPETITIONS: usize = 3;

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rate {
    pub events_per_s: f64,
    pub mb_per_s: f64,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ParseCeiling {
    pub threads: usize,
    pub sample_events: usize,
    pub serde_json_1: Rate,
    pub serde_json_all: Rate,
    pub sonic_rs_1: Rate,
    pub sonic_rs_all: Rate,
    pub opentrail_parse_1: Rate,
    pub opentrail_parse_all: Rate,
}

impl ParseCeiling {
    /// The ceiling: the fastest parser into a value, on all cores. On a loaded machine the
    /// all-core run can come out below the single-thread one; the machine can still do
    /// what one thread did, so the ceiling is never below that.
    pub fn all_cores_events_per_s(&self) -> f64 {
        [
            self.serde_json_all,
            self.serde_json_1,
            self.sonic_rs_all,
            self.sonic_rs_1,
        ]
        .iter()
        .map(|rate| rate.events_per_s)
        .fold(0.0, f64::max)
    }

    /// The same ceiling in MB/s of JSON.
    pub fn all_cores_mb_per_s(&self) -> f64 {
        [
            self.serde_json_all,
            self.serde_json_1,
            self.sonic_rs_all,
            self.sonic_rs_1,
        ]
        .iter()
        .map(|rate| rate.mb_per_s)
        .fold(0.0, f64::max)
    }

    /// serde_json's ceiling alone (the parser OpenTrail uses), by the same rule.
    pub fn serde_json_events_per_s(&self) -> f64 {
        self.serde_json_all
            .events_per_s
            .max(self.serde_json_1.events_per_s)
    }
}

/// Measures every parser on `lines` (one record each).
pub fn measure(lines: &[String]) -> ParseCeiling {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let bytes: usize = lines.iter().map(String::len).sum();
    let batches: Vec<Vec<u8>> = lines
        .chunks(500)
        .map(|chunk| chunk.join("\n").into_bytes())
        .collect();
    let context = IngestContext {
        account_id: opentrail_generator::DEFAULT_ACCOUNT.into(),
        region: opentrail_generator::DEFAULT_REGION.into(),
    };
    let serde_json_parse = |part: &[String]| {
        for line in part {
            let value: Result<serde_json::Value, _> = serde_json::from_str(line);
            std::hint::black_box(value.ok());
        }
    };
    let sonic_parse = |part: &[String]| {
        for line in part {
            let value: Result<sonic_rs::Value, _> = sonic_rs::from_str(line);
            std::hint::black_box(value.ok());
        }
    };
    let opentrail_parse = |part: &[Vec<u8>]| {
        for batch in part {
            std::hint::black_box(parse_batch(batch, &context).ok());
        }
    };
    let rate = |seconds: f64| Rate {
        events_per_s: lines.len() as f64 / seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
    };
    ParseCeiling {
        threads,
        sample_events: lines.len(),
        serde_json_1: rate(best(|| serde_json_parse(lines))),
        serde_json_all: rate(best(|| on_all_cores(lines, threads, &serde_json_parse))),
        sonic_rs_1: rate(best(|| sonic_parse(lines))),
        sonic_rs_all: rate(best(|| on_all_cores(lines, threads, &sonic_parse))),
        opentrail_parse_1: rate(best(|| opentrail_parse(&batches))),
        opentrail_parse_all: rate(best(|| on_all_cores(&batches, threads, &opentrail_parse))),
    }
}

fn best(mut run: impl FnMut()) -> f64 {
    (0..REPETITIONS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn on_all_cores<T: Sync>(items: &[T], threads: usize, work: &(impl Fn(&[T]) + Sync)) {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for part in items.chunks(chunk) {
            scope.spawn(move || work(part));
        }
    });
}
