//! Trading-day phases at boundaries, across time zones and versions.

use ballast_calendar::Phase;
use chrono::{DateTime, FixedOffset};

use super::{at, sse, szse};

fn phase(s: &str) -> Phase {
    sse().phase_at(&at(s)).unwrap().phase
}

#[test]
fn phase_boundaries_on_a_trading_day() {
    let cases = [
        ("2026-03-02T09:14:59+08:00", Phase::Closed),
        ("2026-03-02T09:15:00+08:00", Phase::OpeningCallAuction),
        ("2026-03-02T09:24:59+08:00", Phase::OpeningCallAuction),
        ("2026-03-02T09:25:00+08:00", Phase::OpeningPause),
        ("2026-03-02T09:30:00+08:00", Phase::ContinuousTrading),
        ("2026-03-02T10:00:00+08:00", Phase::ContinuousTrading),
        ("2026-03-02T11:29:59+08:00", Phase::ContinuousTrading),
        ("2026-03-02T11:30:00+08:00", Phase::LunchBreak),
        ("2026-03-02T12:59:59+08:00", Phase::LunchBreak),
        ("2026-03-02T13:00:00+08:00", Phase::ContinuousTrading),
        ("2026-03-02T14:56:59+08:00", Phase::ContinuousTrading),
        ("2026-03-02T14:57:00+08:00", Phase::ClosingCallAuction),
        ("2026-03-02T14:59:59+08:00", Phase::ClosingCallAuction),
        ("2026-03-02T15:00:00+08:00", Phase::Closed),
        ("2026-03-02T15:30:00+08:00", Phase::Closed),
    ];
    for (s, expected) in cases {
        assert_eq!(phase(s), expected, "{s}");
    }
}

#[test]
fn instants_in_other_offsets_are_converted() {
    // 02:00 UTC = 10:00 Shanghai.
    assert_eq!(phase("2026-03-02T02:00:00Z"), Phase::ContinuousTrading);
    let ny: DateTime<FixedOffset> =
        DateTime::parse_from_rfc3339("2026-03-01T21:00:00-05:00").unwrap();
    let p = sse().phase_at(&ny).unwrap();
    assert_eq!(p.local.to_string(), "2026-03-02 10:00:00");
    assert_eq!(p.phase, Phase::ContinuousTrading);
}

#[test]
fn closed_all_day_on_non_trading_days() {
    // Spring Festival, a make-up Saturday, an exchange-only closure, a weekend.
    for s in [
        "2026-02-16T10:00:00+08:00",
        "2026-02-14T10:00:00+08:00",
        "2024-02-09T10:00:00+08:00",
        "2026-03-07T10:00:00+08:00",
    ] {
        let p = sse().phase_at(&at(s)).unwrap();
        assert_eq!(p.phase, Phase::Closed, "{s}");
        assert!(!p.day.open, "{s}");
    }
}

#[test]
fn sessions_are_versioned() {
    // SSE had no closing call auction before 2018-08-20; SZSE did.
    assert_eq!(phase("2018-08-17T14:58:00+08:00"), Phase::ContinuousTrading);
    assert_eq!(
        phase("2018-08-20T14:58:00+08:00"),
        Phase::ClosingCallAuction
    );
    let p = szse().phase_at(&at("2018-08-17T14:58:00+08:00")).unwrap();
    assert_eq!(p.phase, Phase::ClosingCallAuction);
    assert_eq!(
        sse()
            .session_for(super::d("2018-08-19"))
            .unwrap()
            .phases
            .len(),
        5
    );
    assert_eq!(
        sse()
            .session_for(super::d("2018-08-20"))
            .unwrap()
            .phases
            .len(),
        6
    );
}
