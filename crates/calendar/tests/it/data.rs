//! The bundled data checked year by year against an independent transcription of the
//! notices: every weekday closure (休市的工作日) and every make-up workday (调休上班日).
//!
//! These tables were typed from the State Council holiday notices and the SSE/SZSE
//! closure notices as flat date lists, separately from the range-based data files, and
//! cross-checked against exchange_calendars' XSHG holiday list (see docs/CALENDAR.md).

use std::collections::BTreeSet;

use ballast_calendar::{ClosureKind, DayKind};
use chrono::{Datelike, NaiveDate, Weekday};

use super::{d, sse, szse};

/// (year, weekday closures as MM-DD, make-up workdays as MM-DD, trading days in the year)
const NOTICES: &[(i32, &[&str], &[&str], usize)] = &[
    (
        2015,
        &[
            "01-01", "01-02", "02-18", "02-19", "02-20", "02-23", "02-24", "04-06", "05-01",
            "06-22", "09-03", "09-04", "10-01", "10-02", "10-05", "10-06", "10-07",
        ],
        &["01-04", "02-15", "02-28", "09-06", "10-10"],
        244,
    ),
    (
        2016,
        &[
            "01-01", "02-08", "02-09", "02-10", "02-11", "02-12", "04-04", "05-02", "06-09",
            "06-10", "09-15", "09-16", "10-03", "10-04", "10-05", "10-06", "10-07",
        ],
        &["02-06", "02-14", "06-12", "09-18", "10-08", "10-09"],
        244,
    ),
    (
        2017,
        &[
            "01-02", "01-27", "01-30", "01-31", "02-01", "02-02", "04-03", "04-04", "05-01",
            "05-29", "05-30", "10-02", "10-03", "10-04", "10-05", "10-06",
        ],
        &["01-22", "02-04", "04-01", "05-27", "09-30"],
        244,
    ),
    (
        2018,
        &[
            "01-01", "02-15", "02-16", "02-19", "02-20", "02-21", "04-05", "04-06", "04-30",
            "05-01", "06-18", "09-24", "10-01", "10-02", "10-03", "10-04", "10-05", "12-31",
        ],
        &[
            "02-11", "02-24", "04-08", "04-28", "09-29", "09-30", "12-29",
        ],
        243,
    ),
    (
        2019,
        &[
            "01-01", "02-04", "02-05", "02-06", "02-07", "02-08", "04-05", "05-01", "05-02",
            "05-03", "06-07", "09-13", "10-01", "10-02", "10-03", "10-04", "10-07",
        ],
        &["02-02", "02-03", "04-28", "05-05", "09-29", "10-12"],
        244,
    ),
    (
        2020,
        &[
            "01-01", "01-24", "01-27", "01-28", "01-29", "01-30", "01-31", "04-06", "05-01",
            "05-04", "05-05", "06-25", "06-26", "10-01", "10-02", "10-05", "10-06", "10-07",
            "10-08",
        ],
        &["01-19", "04-26", "05-09", "06-28", "09-27", "10-10"],
        243,
    ),
    (
        2021,
        &[
            "01-01", "02-11", "02-12", "02-15", "02-16", "02-17", "04-05", "05-03", "05-04",
            "05-05", "06-14", "09-20", "09-21", "10-01", "10-04", "10-05", "10-06", "10-07",
        ],
        &[
            "02-07", "02-20", "04-25", "05-08", "09-18", "09-26", "10-09",
        ],
        243,
    ),
    (
        2022,
        &[
            "01-03", "01-31", "02-01", "02-02", "02-03", "02-04", "04-04", "04-05", "05-02",
            "05-03", "05-04", "06-03", "09-12", "10-03", "10-04", "10-05", "10-06", "10-07",
        ],
        &[
            "01-29", "01-30", "04-02", "04-24", "05-07", "10-08", "10-09",
        ],
        242,
    ),
    (
        2023,
        &[
            "01-02", "01-23", "01-24", "01-25", "01-26", "01-27", "04-05", "05-01", "05-02",
            "05-03", "06-22", "06-23", "09-29", "10-02", "10-03", "10-04", "10-05", "10-06",
        ],
        &[
            "01-28", "01-29", "04-23", "05-06", "06-25", "10-07", "10-08",
        ],
        242,
    ),
    (
        2024,
        &[
            "01-01", "02-09", "02-12", "02-13", "02-14", "02-15", "02-16", "04-04", "04-05",
            "05-01", "05-02", "05-03", "06-10", "09-16", "09-17", "10-01", "10-02", "10-03",
            "10-04", "10-07",
        ],
        &[
            "02-04", "02-18", "04-07", "04-28", "05-11", "09-14", "09-29", "10-12",
        ],
        242,
    ),
    (
        2025,
        &[
            "01-01", "01-28", "01-29", "01-30", "01-31", "02-03", "02-04", "04-04", "05-01",
            "05-02", "05-05", "06-02", "10-01", "10-02", "10-03", "10-06", "10-07", "10-08",
        ],
        &["01-26", "02-08", "04-27", "09-28", "10-11"],
        243,
    ),
    (
        2026,
        &[
            "01-01", "01-02", "02-16", "02-17", "02-18", "02-19", "02-20", "02-23", "04-06",
            "05-01", "05-04", "05-05", "06-19", "09-25", "10-01", "10-02", "10-05", "10-06",
            "10-07",
        ],
        &["01-04", "02-14", "02-28", "05-09", "09-20", "10-10"],
        242,
    ),
];

fn md(year: i32, s: &str) -> NaiveDate {
    d(&format!("{year}-{s}"))
}

#[test]
fn every_year_matches_the_notices() {
    let mut years_checked = 0;
    for (year, closed, makeups, trading_count) in NOTICES {
        let closed: BTreeSet<NaiveDate> = closed.iter().map(|s| md(*year, s)).collect();
        let makeups: BTreeSet<NaiveDate> = makeups.iter().map(|s| md(*year, s)).collect();
        let first = md(*year, "01-01");
        let last = md(*year, "12-31");
        let mut count = 0;
        for date in first.iter_days().take_while(|x| *x <= last) {
            let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
            let expected = !weekend && !closed.contains(&date);
            for cal in [sse(), szse()] {
                let info = cal.day_info(date).unwrap();
                assert_eq!(
                    info.open,
                    expected,
                    "{} {date}: expected trading={expected}, got {info:?}",
                    cal.id()
                );
                let is_makeup = matches!(info.kind, DayKind::MakeupWorkday { .. });
                assert_eq!(
                    is_makeup,
                    makeups.contains(&date),
                    "{} {date} make-up",
                    cal.id()
                );
            }
            if expected {
                count += 1;
            }
        }
        assert_eq!(count, *trading_count, "trading days in {year}");
        assert_eq!(
            sse().count_trading_days(first, last).unwrap(),
            *trading_count
        );
        years_checked += 1;
    }
    assert_eq!(years_checked, 12);
}

#[test]
fn coverage_is_2015_through_2026() {
    for cal in [sse(), szse()] {
        let c = cal.coverage();
        assert_eq!(c.first, d("2015-01-01"));
        assert_eq!(c.last, d("2026-12-31"));
        assert_eq!(cal.years().len(), 12);
    }
}

#[test]
fn make_up_saturdays_are_not_trading_days() {
    // 2026-02-14 and 2026-02-28 are Saturdays declared working days (调休).
    for s in ["2026-02-14", "2026-02-28", "2024-02-04", "2020-01-19"] {
        let info = sse().day_info(d(s)).unwrap();
        assert!(!info.open, "{s}");
        assert!(matches!(info.kind, DayKind::MakeupWorkday { .. }), "{s}");
        assert!(info.describe_en().contains("make-up workday"));
    }
}

#[test]
fn exchange_only_and_extraordinary_closures_are_marked() {
    let info = sse().day_info(d("2024-02-09")).unwrap();
    assert!(!info.open);
    match &info.kind {
        DayKind::Closure {
            closure_kind,
            reason_zh,
            ..
        } => {
            assert_eq!(*closure_kind, ClosureKind::ExchangeOnly);
            assert!(reason_zh.contains("除夕"));
        }
        other => panic!("2024-02-09 should be a closure, got {other:?}"),
    }
    let info = sse().day_info(d("2020-01-31")).unwrap();
    match &info.kind {
        DayKind::Closure { closure_kind, .. } => {
            assert_eq!(*closure_kind, ClosureKind::Extraordinary)
        }
        other => panic!("2020-01-31 should be a closure, got {other:?}"),
    }
    // 2020-02-01 was a make-up Saturday in the original notice, cancelled by the extension.
    let info = sse().day_info(d("2020-02-01")).unwrap();
    assert!(matches!(info.kind, DayKind::Closure { .. }));
}

#[test]
fn spring_festival_2026_reasons_are_bilingual() {
    let info = sse().day_info(d("2026-02-16")).unwrap();
    assert_eq!(info.describe_zh(), "春节休市");
    assert_eq!(info.describe_en(), "Spring Festival closure");
}

#[test]
fn every_year_file_names_its_sources() {
    for (year, y) in sse().years() {
        assert!(!y.sources.is_empty(), "{year} has no sources");
        assert_eq!(y.calendars, vec!["sse".to_string(), "szse".to_string()]);
    }
}
