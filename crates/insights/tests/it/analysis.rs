//! The rule on hand-made minutes: one period per burst, none for steady traffic, none
//! before the baseline is established, errors per code, late events, bounded series.

use opentrail_insights::{Analyzer, InsightType, PeriodState, Settings, Transition};

use crate::{MINUTE_MS, T0, call};

const W: i64 = 10;

/// Feeds `per_minute[i]` write calls (by `user`) into minute `i` after T0, then closes
/// every minute up to `close_minutes` after T0.
fn run(per_minute: &[usize], close_minutes: i64) -> Vec<Transition> {
    let mut analyzer = Analyzer::new(Settings::with_baseline_minutes(W));
    let mut id = 0;
    for (minute, count) in per_minute.iter().enumerate() {
        for i in 0..*count {
            id += 1;
            let time =
                T0 + minute as i64 * MINUTE_MS + (i as i64 * 50_000 / (*count as i64).max(1));
            assert!(analyzer.observe_record(&call(time, "PutParameter", "ci", false, None, id)));
        }
    }
    analyzer
        .close(Some(T0 + close_minutes * MINUTE_MS + 60 * 60_000))
        .transitions
}

#[test]
fn a_burst_after_an_established_baseline_is_one_start_and_one_end() {
    // Two calls a minute for 12 minutes, 40 in minute 12 and 35 in 13, then quiet.
    let mut minutes = vec![2; 12];
    minutes.extend([40, 35, 2, 2]);
    let transitions = run(&minutes, 20);
    assert_eq!(transitions.len(), 2, "{transitions:#?}");
    let (start, end) = (&transitions[0], &transitions[1]);
    assert_eq!(start.state, PeriodState::Start);
    assert_eq!(start.minute, T0 / MINUTE_MS + 12);
    assert_eq!(start.insight_average, 40.0);
    assert!((start.baseline_average - 2.0).abs() < 1e-9, "{start:?}");
    assert_eq!(start.baseline_duration_minutes, W);
    assert_eq!(end.state, PeriodState::End);
    assert_eq!(
        end.minute,
        T0 / MINUTE_MS + 14,
        "ends at the first usual minute"
    );
    assert_eq!(end.period_start_minute, start.minute);
    assert_eq!(end.insight_duration_minutes, 2);
    assert_eq!(end.insight_average, 37.5);
}

#[test]
fn steady_traffic_is_never_unusual() {
    assert!(run(&[30; 60], 70).is_empty());
}

#[test]
fn nothing_is_judged_before_the_baseline_window_has_passed() {
    // The burst comes 5 minutes into the account's history, with a 10-minute window.
    assert!(run(&[2, 2, 2, 2, 2, 50, 2, 2], 20).is_empty());
}

#[test]
fn a_handful_of_calls_is_not_an_insight_even_against_a_quiet_baseline() {
    let mut minutes = vec![0; 11];
    minutes[0] = 1;
    minutes.push(9);
    assert!(run(&minutes, 20).is_empty());
}

#[test]
fn a_burst_into_the_last_minute_ends_when_the_clock_closes_the_next_one() {
    let mut minutes = vec![1; 12];
    minutes.push(30);
    let transitions = run(&minutes, 13);
    let states: Vec<_> = transitions.iter().map(|t| t.state).collect();
    assert_eq!(states, [PeriodState::Start, PeriodState::End]);
}

#[test]
fn read_calls_count_only_as_errors_and_errors_are_per_code() {
    let mut analyzer = Analyzer::new(Settings::with_baseline_minutes(W));
    let mut id = 0;
    let mut add = |analyzer: &mut Analyzer,
                   minute: i64,
                   count: usize,
                   read_only: bool,
                   code: Option<&str>| {
        for i in 0..count {
            id += 1;
            let time = T0 + minute * MINUTE_MS + i as i64 * 1_000;
            analyzer.observe_record(&call(time, "GetParameter", "eve", read_only, code, id));
        }
    };
    for minute in 0..12 {
        add(&mut analyzer, minute, 3, true, None);
        add(&mut analyzer, minute, 1, true, Some("ThrottlingException"));
    }
    // 50 reads: not calls Insights counts; 25 AccessDenied among them.
    add(&mut analyzer, 12, 25, true, None);
    add(&mut analyzer, 12, 25, true, Some("AccessDenied"));
    let transitions = analyzer.close(Some(T0 + 20 * MINUTE_MS)).transitions;
    assert_eq!(transitions.len(), 2, "{transitions:#?}");
    for transition in &transitions {
        assert_eq!(
            transition.key.insight_type,
            InsightType::ApiErrorRateInsight
        );
        assert_eq!(transition.key.error_code.as_deref(), Some("AccessDenied"));
    }
}

#[test]
fn events_arriving_after_their_minute_was_judged_still_count_in_the_baseline() {
    let mut analyzer = Analyzer::new(Settings::with_baseline_minutes(W));
    let mut id = 0;
    let mut add = |analyzer: &mut Analyzer, minute: i64, count: usize| {
        for i in 0..count {
            id += 1;
            analyzer.observe_record(&call(
                T0 + minute * MINUTE_MS + i as i64 * 100,
                "PutParameter",
                "ci",
                false,
                None,
                id,
            ));
        }
    };
    for minute in 0..12 {
        add(&mut analyzer, minute, 1);
    }
    analyzer.close(Some(T0 + 13 * MINUTE_MS + 60_000));
    // Minute 3 gets 40 late calls: too late to start a period there, but they raise the
    // baseline, so 12 calls in minute 13 are now usual (threshold b + 4σ ≈ 22).
    add(&mut analyzer, 3, 40);
    add(&mut analyzer, 13, 12);
    let transitions = analyzer.close(Some(T0 + 20 * MINUTE_MS)).transitions;
    assert!(transitions.is_empty(), "{transitions:#?}");
}

#[test]
fn the_number_of_series_kept_is_bounded() {
    let mut settings = Settings::with_baseline_minutes(W);
    settings.series_max = 100;
    let mut analyzer = Analyzer::new(settings);
    for minute in 0..30i64 {
        for name in 0..50 {
            let id = (minute * 100 + name) as u64;
            analyzer.observe_record(&call(
                T0 + minute * MINUTE_MS,
                &format!("Put{minute}x{name}"),
                "ci",
                false,
                None,
                id,
            ));
        }
        analyzer.close(Some(T0 + (minute + 1) * MINUTE_MS + 60 * 60_000));
        assert!(
            analyzer.series_count() <= 100 + 50,
            "{}",
            analyzer.series_count()
        );
    }
}

#[test]
fn the_analysis_survives_a_snapshot_round_trip() {
    let mut analyzer = Analyzer::new(Settings::with_baseline_minutes(W));
    for minute in 0..12i64 {
        for i in 0..2 {
            analyzer.observe_record(&call(
                T0 + minute * MINUTE_MS + i * 1_000,
                "PutParameter",
                "ci",
                false,
                None,
                (minute * 10 + i) as u64,
            ));
        }
    }
    analyzer.close(Some(T0 + 12 * MINUTE_MS + 60 * 60_000));
    let text = serde_json::to_string(&analyzer).expect("serialises");
    let restored: Analyzer = serde_json::from_str(&text).expect("deserialises");
    assert_eq!(restored, analyzer);
}

#[test]
fn old_logs_imported_beside_live_traffic_are_judged_in_their_own_time() {
    let mut analyzer = Analyzer::new(Settings::with_baseline_minutes(W));
    // Live traffic of another API first, two hours later than the import.
    for i in 0..5 {
        analyzer.observe_record(&call(
            T0 + 120 * MINUTE_MS + i * 1_000,
            "CreateUser",
            "admin",
            false,
            None,
            10_000 + i as u64,
        ));
    }
    analyzer.close(None);
    let mut id = 0;
    for minute in 0..15i64 {
        let count = if minute == 12 { 40 } else { 2 };
        for i in 0..count {
            id += 1;
            analyzer.observe_record(&call(
                T0 + minute * MINUTE_MS + i * 1_000,
                "PutParameter",
                "ci",
                false,
                None,
                id,
            ));
        }
    }
    let transitions = analyzer.close(None).transitions;
    let states: Vec<_> = transitions
        .iter()
        .map(|t| {
            (
                t.key.event_name.as_str(),
                t.state,
                t.minute - T0 / MINUTE_MS,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("PutParameter", PeriodState::Start, 12),
            ("PutParameter", PeriodState::End, 13)
        ]
    );
}
