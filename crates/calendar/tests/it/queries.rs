//! Date queries: next/prev, T+N, ranges, month/quarter ends, holidays, fail-closed.

use ballast_calendar::CalendarError;
use chrono::{Duration, NaiveDate};
use proptest::prelude::*;

use super::{at, d, sse};

fn not_covered(e: CalendarError, year: i32) {
    match e {
        CalendarError::NotCovered { calendar, year: y } => {
            assert_eq!(calendar, "sse");
            assert_eq!(y, year);
        }
        other => panic!("expected NotCovered({year}), got {other:?}"),
    }
}

#[test]
fn next_and_prev_skip_holidays_and_weekends() {
    let c = sse();
    assert_eq!(
        c.next_trading_day(d("2026-02-13")).unwrap(),
        d("2026-02-24")
    );
    assert_eq!(
        c.prev_trading_day(d("2026-02-24")).unwrap(),
        d("2026-02-13")
    );
    assert_eq!(
        c.next_trading_day(d("2024-02-08")).unwrap(),
        d("2024-02-19")
    );
    assert_eq!(
        c.next_trading_day(d("2020-01-23")).unwrap(),
        d("2020-02-03")
    );
    assert_eq!(
        c.next_trading_day(d("2026-03-06")).unwrap(),
        d("2026-03-09")
    );
    // Across a year boundary inside the data.
    assert_eq!(
        c.next_trading_day(d("2025-12-31")).unwrap(),
        d("2026-01-05")
    );
    assert_eq!(
        c.prev_trading_day(d("2019-01-02")).unwrap(),
        d("2018-12-28")
    );
}

#[test]
fn t_plus_n_and_minus_n() {
    let c = sse();
    assert_eq!(
        c.add_trading_days(d("2026-02-12"), 1).unwrap(),
        d("2026-02-13")
    );
    assert_eq!(
        c.add_trading_days(d("2026-02-12"), 2).unwrap(),
        d("2026-02-24")
    );
    assert_eq!(
        c.add_trading_days(d("2026-02-24"), -2).unwrap(),
        d("2026-02-12")
    );
    assert_eq!(
        c.add_trading_days(d("2026-02-24"), 0).unwrap(),
        d("2026-02-24")
    );
    // T+0 on a non-trading day rolls forward; T+1 from a holiday is the next trading day.
    assert_eq!(
        c.add_trading_days(d("2026-02-16"), 0).unwrap(),
        d("2026-02-24")
    );
    assert_eq!(
        c.add_trading_days(d("2026-02-16"), 1).unwrap(),
        d("2026-02-24")
    );
    assert_eq!(
        c.add_trading_days(d("2026-02-16"), -1).unwrap(),
        d("2026-02-13")
    );
}

#[test]
fn trading_days_in_a_range() {
    let days = sse()
        .trading_days(d("2026-02-12"), d("2026-02-25"))
        .unwrap();
    let expected: Vec<NaiveDate> = ["2026-02-12", "2026-02-13", "2026-02-24", "2026-02-25"]
        .iter()
        .map(|s| d(s))
        .collect();
    assert_eq!(days, expected);
    assert!(matches!(
        sse().trading_days(d("2026-02-25"), d("2026-02-12")),
        Err(CalendarError::InvalidRange { .. })
    ));
}

#[test]
fn month_and_quarter_ends() {
    let c = sse();
    assert_eq!(
        c.last_trading_day_of_month(2026, 9).unwrap(),
        Some(d("2026-09-30"))
    );
    assert_eq!(
        c.last_trading_day_of_month(2026, 1).unwrap(),
        Some(d("2026-01-30"))
    );
    assert_eq!(
        c.last_trading_day_of_month(2026, 2).unwrap(),
        Some(d("2026-02-27"))
    );
    assert_eq!(
        c.first_trading_day_of_month(2026, 10).unwrap(),
        Some(d("2026-10-08"))
    );
    assert_eq!(
        c.first_trading_day_of_month(2026, 1).unwrap(),
        Some(d("2026-01-05"))
    );
    assert_eq!(
        c.last_trading_day_of_quarter(2025, 4).unwrap(),
        Some(d("2025-12-31"))
    );
    assert_eq!(
        c.last_trading_day_of_quarter(2024, 3).unwrap(),
        Some(d("2024-09-30"))
    );
    assert_eq!(
        c.last_trading_day_of_month(2023, 9).unwrap(),
        Some(d("2023-09-28"))
    );
    let e = c.last_trading_day_of_month(2026, 13).unwrap_err();
    assert_eq!(e.code(), "calendar.invalid_period");
    assert_eq!(e.message_en(), "invalid month 13");
    assert_eq!(e.message_zh(), "无效的月份 13");
    assert_eq!(
        c.last_trading_day_of_quarter(2026, 0).unwrap_err().code(),
        "calendar.invalid_period"
    );
}

#[test]
fn holidays() {
    let c = sse();
    let h = c.next_holiday(d("2026-02-02")).unwrap();
    assert_eq!(h.last_trading_day_before, d("2026-02-13"));
    assert_eq!(h.run.first, d("2026-02-14"));
    assert_eq!(h.run.last, d("2026-02-23"));
    assert_eq!(h.run.days, 10);
    assert_eq!(h.first_trading_day_after, d("2026-02-24"));
    assert_eq!(h.run.reasons_en, vec!["Spring Festival".to_string()]);
    // From inside a holiday: that holiday.
    let h2 = c.next_holiday(d("2026-02-18")).unwrap();
    assert_eq!(h2, h);
    assert_eq!(
        c.first_trading_day_after_holiday(d("2026-02-18")).unwrap(),
        d("2026-02-24")
    );

    assert!(
        c.is_last_trading_day_before_closure(d("2026-02-13"), 3)
            .unwrap()
    );
    assert!(
        c.is_last_trading_day_before_closure(d("2026-09-30"), 3)
            .unwrap()
    );
    // A plain weekend is not a holiday.
    assert!(
        !c.is_last_trading_day_before_closure(d("2026-03-06"), 2)
            .unwrap()
    );
    // Qingming 2026: Sat 4 – Mon 6 April = 3 days.
    assert!(
        c.is_last_trading_day_before_closure(d("2026-04-03"), 3)
            .unwrap()
    );
    assert!(
        !c.is_last_trading_day_before_closure(d("2026-04-03"), 4)
            .unwrap()
    );
    assert!(
        c.is_first_trading_day_after_closure(d("2026-04-07"), 3)
            .unwrap()
    );
    assert!(
        !c.is_first_trading_day_after_closure(d("2026-04-08"), 1)
            .unwrap()
    );
    // 2024-02-08 (Thu) before the exchange-only 除夕 closure.
    assert!(
        c.is_last_trading_day_before_closure(d("2024-02-08"), 3)
            .unwrap()
    );
}

#[test]
fn coverage_warning() {
    let cov = sse().coverage();
    assert!(!cov.ends_within(d("2026-10-01"), 60));
    assert!(cov.ends_within(d("2026-11-02"), 60));
    assert_eq!(cov.days_remaining(d("2026-12-01")), 30);
}

/// Every query about a date outside 2015–2026 fails closed with NotCovered.
#[test]
fn out_of_range_fails_closed_in_every_query() {
    let c = sse();
    not_covered(c.is_trading_day(d("2027-01-04")).unwrap_err(), 2027);
    not_covered(c.day_info(d("2014-12-31")).unwrap_err(), 2014);
    not_covered(c.next_trading_day(d("2026-12-31")).unwrap_err(), 2027);
    not_covered(c.prev_trading_day(d("2015-01-05")).unwrap_err(), 2014);
    not_covered(c.next_trading_day(d("2027-06-01")).unwrap_err(), 2027);
    not_covered(c.add_trading_days(d("2026-12-30"), 5).unwrap_err(), 2027);
    not_covered(c.add_trading_days(d("2015-01-06"), -5).unwrap_err(), 2014);
    not_covered(
        c.trading_days(d("2026-12-01"), d("2027-01-10"))
            .unwrap_err(),
        2027,
    );
    not_covered(
        c.count_trading_days(d("2014-12-01"), d("2015-01-10"))
            .unwrap_err(),
        2014,
    );
    not_covered(c.last_trading_day_of_month(2027, 1).unwrap_err(), 2027);
    not_covered(c.first_trading_day_of_month(2014, 12).unwrap_err(), 2014);
    not_covered(c.last_trading_day_of_quarter(2027, 1).unwrap_err(), 2027);
    // 2026-12-31 is a Thursday; whether a holiday follows depends on 2027 data.
    not_covered(
        c.is_last_trading_day_before_closure(d("2026-12-31"), 1)
            .unwrap_err(),
        2027,
    );
    not_covered(c.non_trading_run_after(d("2026-12-31")).unwrap_err(), 2027);
    not_covered(c.next_holiday(d("2026-10-09")).unwrap_err(), 2027);
    not_covered(
        c.phase_at(&at("2027-01-04T10:00:00+08:00")).unwrap_err(),
        2027,
    );
    let e = c.is_trading_day(d("2027-01-04")).unwrap_err();
    assert_eq!(e.code(), "calendar.not_covered");
    assert_eq!(e.message_en(), "calendar sse not loaded for 2027");
    assert_eq!(e.message_zh(), "交易日历 sse 未加载 2027 年数据");
    assert_eq!(
        e.to_string(),
        "calendar sse not loaded for 2027 / 交易日历 sse 未加载 2027 年数据"
    );
}

fn any_date() -> impl Strategy<Value = NaiveDate> {
    (0i64..(366 * 12)).prop_map(|n| d("2015-01-01") + Duration::days(n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_of_prev_is_identity_on_trading_days(date in any_date()) {
        let c = sse();
        prop_assume!(c.coverage().contains(date));
        prop_assume!(c.is_trading_day(date).unwrap());
        if let Ok(p) = c.prev_trading_day(date) {
            prop_assert_eq!(c.next_trading_day(p).unwrap(), date);
        }
        if let Ok(n) = c.next_trading_day(date) {
            prop_assert_eq!(c.prev_trading_day(n).unwrap(), date);
        }
    }

    #[test]
    fn t_plus_n_composes(date in any_date(), a in -40i32..40, b in -40i32..40) {
        let c = sse();
        prop_assume!(c.coverage().contains(date));
        prop_assume!(c.is_trading_day(date).unwrap());
        // Only meaningful when every step stays inside the data.
        if let (Ok(x), Ok(direct)) = (c.add_trading_days(date, a), c.add_trading_days(date, a + b))
            && let Ok(y) = c.add_trading_days(x, b)
        {
            prop_assert_eq!(y, direct);
        }
    }

    #[test]
    fn trading_days_count_matches_stepping(date in any_date(), span in 0i64..120) {
        let c = sse();
        let to = date + Duration::days(span);
        prop_assume!(c.coverage().contains(date) && c.coverage().contains(to));
        let list = c.trading_days(date, to).unwrap();
        let counted = date.iter_days().take_while(|x| *x <= to)
            .filter(|x| c.is_trading_day(*x).unwrap()).count();
        prop_assert_eq!(list.len(), counted);
        // Consecutive entries are linked by next_trading_day.
        for w in list.windows(2) {
            prop_assert_eq!(c.next_trading_day(w[0]).unwrap(), w[1]);
        }
        // T+(len-1) from the first trading day is the last one.
        if let (Some(first), Some(last)) = (list.first(), list.last()) {
            let n = i32::try_from(list.len()).unwrap() - 1;
            prop_assert_eq!(c.add_trading_days(*first, n).unwrap(), *last);
        }
    }
}
