//! Calendar-aware schedules: preview examples, offsets, fail-closed, parse errors.

use ballast_calendar::{CalendarError, DayFilter, Schedule, next_fire, preview};

use super::{at, sse};

fn locals(p: &ballast_calendar::Preview) -> Vec<String> {
    p.fires
        .iter()
        .map(|f| f.local.format("%Y-%m-%d %H:%M").to_string())
        .collect()
}

#[test]
fn trading_days_skip_spring_festival() {
    let s = Schedule::parse("30 8 * * * @trading").unwrap();
    assert_eq!(s.filter(), DayFilter::Trading);
    let p = preview(&s, sse(), at("2026-02-12T00:00:00+08:00"), 5).unwrap();
    assert_eq!(
        locals(&p),
        vec![
            "2026-02-12 08:30",
            "2026-02-13 08:30",
            "2026-02-24 08:30",
            "2026-02-25 08:30",
            "2026-02-26 08:30"
        ]
    );
    // 08:30 Shanghai is 00:30 UTC.
    assert_eq!(p.fires[0].at, at("2026-02-12T00:30:00Z"));
    let skipped: Vec<String> = p.skipped.iter().map(|s| s.render_en()).collect();
    assert_eq!(skipped.len(), 10, "{skipped:#?}");
    assert!(skipped[0].starts_with("2026-02-14 skipped: Spring Festival make-up workday"));
    assert!(skipped.contains(&"2026-02-16 skipped: Spring Festival closure".to_string()));
    assert_eq!(p.skipped[2].render_zh(), "2026-02-16 跳过：春节休市");
    assert!(p.stopped.is_none());
}

#[test]
fn weekday_cron_with_trading_filter_reports_holiday_weekdays_only() {
    let s = Schedule::parse("0 9 * * 1-5 @trading").unwrap();
    let p = preview(&s, sse(), at("2026-09-24T00:00:00+08:00"), 3).unwrap();
    assert_eq!(
        locals(&p),
        vec!["2026-09-24 09:00", "2026-09-28 09:00", "2026-09-29 09:00"]
    );
    let dates: Vec<String> = p.skipped.iter().map(|s| s.date.to_string()).collect();
    assert_eq!(dates, vec!["2026-09-25"]);
    assert!(p.skipped[0].reason_en.contains("Mid-Autumn"));
}

#[test]
fn last_trading_day_of_month() {
    let s = Schedule::parse("0 18 * * * @last-trading-day-of-month").unwrap();
    let p = preview(&s, sse(), at("2026-01-01T00:00:00+08:00"), 3).unwrap();
    assert_eq!(
        locals(&p),
        vec!["2026-01-30 18:00", "2026-02-27 18:00", "2026-03-31 18:00"]
    );
    let s = Schedule::parse("0 18 * * * @last-trading-day-of-month -1").unwrap();
    let p = preview(&s, sse(), at("2026-01-01T00:00:00+08:00"), 2).unwrap();
    assert_eq!(locals(&p), vec!["2026-01-29 18:00", "2026-02-26 18:00"]);
}

#[test]
fn trading_day_before_each_holiday() {
    let s = Schedule::parse("0 16 * * * @trading-day-before-holiday").unwrap();
    let p = preview(&s, sse(), at("2026-01-01T00:00:00+08:00"), 4).unwrap();
    assert_eq!(
        locals(&p),
        vec![
            "2026-02-13 16:00",
            "2026-04-03 16:00",
            "2026-04-30 16:00",
            "2026-06-18 16:00"
        ]
    );
    let s = Schedule::parse("0 16 * * * @trading-day-before-holiday:7").unwrap();
    let p = preview(&s, sse(), at("2026-01-01T00:00:00+08:00"), 2).unwrap();
    assert_eq!(locals(&p), vec!["2026-02-13 16:00", "2026-09-30 16:00"]);
}

#[test]
fn offsets_and_fail_closed_at_the_end_of_the_data() {
    let s = Schedule::parse("0 9 * * * @first-trading-day-of-month +1").unwrap();
    let p = preview(&s, sse(), at("2026-10-01T00:00:00+08:00"), 4).unwrap();
    assert_eq!(
        locals(&p),
        vec!["2026-10-09 09:00", "2026-11-03 09:00", "2026-12-02 09:00"]
    );
    assert_eq!(
        p.stopped,
        Some(CalendarError::NotCovered {
            calendar: "sse".to_string(),
            year: 2027
        })
    );

    let s = Schedule::parse("30 8 * * * @trading").unwrap();
    let p = preview(&s, sse(), at("2026-12-28T00:00:00+08:00"), 10).unwrap();
    assert_eq!(p.fires.len(), 4);
    assert_eq!(
        p.stopped.as_ref().map(|e| e.code()),
        Some("calendar.not_covered")
    );
    let e = next_fire(&s, sse(), at("2027-03-01T00:00:00+08:00")).unwrap_err();
    assert_eq!(
        e,
        CalendarError::NotCovered {
            calendar: "sse".to_string(),
            year: 2027
        }
    );
}

#[test]
fn positive_offset_anchors_before_from() {
    // The first trading day of February 2026 is 02-02; +1 = 02-03, which is after `from`.
    let s = Schedule::parse("0 9 * * * @first-trading-day-of-month +1").unwrap();
    let p = preview(&s, sse(), at("2026-02-03T00:00:00+08:00"), 1).unwrap();
    assert_eq!(locals(&p), vec!["2026-02-03 09:00"]);
    assert_eq!(p.fires[0].anchor.to_string(), "2026-02-02");
}

#[test]
fn every_day_needs_no_calendar_and_time_zones_apply() {
    let s = Schedule::parse("0 12 * * *").unwrap();
    let p = preview(&s, sse(), at("2027-05-01T00:00:00+08:00"), 2).unwrap();
    assert_eq!(locals(&p), vec!["2027-05-01 12:00", "2027-05-02 12:00"]);
    let s = Schedule::parse("0 9 * * * tz=Europe/London").unwrap();
    let f = next_fire(&s, sse(), at("2026-07-01T00:00:00Z")).unwrap();
    assert_eq!(f.at, at("2026-07-01T08:00:00Z")); // BST
    assert_eq!(s.timezone().name(), "Europe/London");
    let s = Schedule::parse("*/30 9-10 * * * @trading").unwrap();
    let p = preview(&s, sse(), at("2026-03-02T09:10:00+08:00"), 3).unwrap();
    assert_eq!(
        locals(&p),
        vec!["2026-03-02 09:30", "2026-03-02 10:00", "2026-03-02 10:30"]
    );
}

#[test]
fn bad_expressions_are_rejected_bilingually() {
    for expr in [
        "30 8 * * @trading",
        "30 8 * * * @bogus",
        "30 8 * * * +1",
        "30 8 * * * @trading +1 +2",
        "61 8 * * * @trading",
        "30 8 * * * @trading tz=Mars/Olympus",
        "30 8 * * * @trading-day-before-holiday:0",
        "30 8 * * * @trading:3",
        "30 8 * * * @trading extra",
    ] {
        let e = Schedule::parse(expr).unwrap_err();
        assert_eq!(e.code(), "calendar.invalid_schedule", "{expr}");
        assert!(!e.message_zh().is_empty() && !e.message_en().is_empty());
    }
}

#[test]
fn canonical_and_description() {
    let s = Schedule::parse("0 16 * * * @trading-day-before-holiday +0").unwrap();
    assert_eq!(
        s.canonical(),
        "0 16 * * * @trading-day-before-holiday:1 tz=Asia/Shanghai"
    );
    assert!(s.describe_zh().contains("休市前的最后一个交易日"));
    assert!(
        s.describe_en()
            .contains("the last trading day before each holiday")
    );
}
