//! The calendar data model: what a year file and a calendar definition file hold once
//! validated.

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::Serialize;

/// Why a closure happens, so a UI can mark it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosureKind {
    /// A public holiday of the State Council's annual notice (weekend days inside it included).
    PublicHoliday,
    /// The exchange closes on a day that is not a public holiday (e.g. 2024-02-09, 除夕,
    /// before 除夕 became a public holiday in 2025).
    ExchangeOnly,
    /// A closure announced after the annual schedule by a special notice (e.g. the 2020
    /// COVID-19 extension of the Spring Festival closure).
    Extraordinary,
}

impl ClosureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClosureKind::PublicHoliday => "public_holiday",
            ClosureKind::ExchangeOnly => "exchange_only",
            ClosureKind::Extraordinary => "extraordinary",
        }
    }

    pub fn parse(s: &str) -> Option<ClosureKind> {
        match s {
            "public_holiday" => Some(ClosureKind::PublicHoliday),
            "exchange_only" => Some(ClosureKind::ExchangeOnly),
            "extraordinary" => Some(ClosureKind::Extraordinary),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ClosureKind::PublicHoliday => "法定节假日休市",
            ClosureKind::ExchangeOnly => "交易所单独休市（非法定节假日）",
            ClosureKind::Extraordinary => "临时休市",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            ClosureKind::PublicHoliday => "public holiday closure",
            ClosureKind::ExchangeOnly => "exchange-only closure (not a public holiday)",
            ClosureKind::Extraordinary => "extraordinary closure",
        }
    }
}

/// A closure: a date range (both ends inclusive) on which the market is closed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Closure {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
    pub kind: ClosureKind,
    pub note: Option<String>,
}

impl Closure {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }

    /// Number of calendar days in the range.
    pub fn len_days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }
}

/// A weekend day declared a working day (调休上班). The exchanges stay closed on it
/// ("周末休市") unless the calendar says make-up workdays are open (business calendars).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MakeupWorkday {
    pub date: NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
}

/// The closures and make-up workdays of one calendar year.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct YearData {
    pub closures: Vec<Closure>,
    pub makeup_workdays: Vec<MakeupWorkday>,
}

/// A validated year file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct YearFile {
    /// Where it came from (file name, or `bundled:...`).
    pub source: String,
    /// The calendars this year's schedule applies to (e.g. `["sse", "szse"]`).
    pub calendars: Vec<String>,
    pub year: i32,
    /// The notices this data was transcribed from.
    pub sources: Vec<String>,
    pub note: Option<String>,
    pub data: YearData,
}

/// A phase of the trading day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// 开盘集合竞价 (09:15–09:25).
    OpeningCallAuction,
    /// 09:25–09:30: auction results published, orders accepted but not matched.
    OpeningPause,
    /// 连续竞价.
    ContinuousTrading,
    /// 午间休市.
    LunchBreak,
    /// 收盘集合竞价 (14:57–15:00).
    ClosingCallAuction,
    /// 盘后固定价格交易 and similar after-hours sessions (not in the bundled calendars).
    AfterHours,
    /// Outside every phase, or a non-trading day.
    Closed,
}

impl Phase {
    pub const CONFIGURABLE: [Phase; 6] = [
        Phase::OpeningCallAuction,
        Phase::OpeningPause,
        Phase::ContinuousTrading,
        Phase::LunchBreak,
        Phase::ClosingCallAuction,
        Phase::AfterHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::OpeningCallAuction => "opening_call_auction",
            Phase::OpeningPause => "opening_pause",
            Phase::ContinuousTrading => "continuous_trading",
            Phase::LunchBreak => "lunch_break",
            Phase::ClosingCallAuction => "closing_call_auction",
            Phase::AfterHours => "after_hours",
            Phase::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s {
            "opening_call_auction" => Some(Phase::OpeningCallAuction),
            "opening_pause" => Some(Phase::OpeningPause),
            "continuous_trading" => Some(Phase::ContinuousTrading),
            "lunch_break" => Some(Phase::LunchBreak),
            "closing_call_auction" => Some(Phase::ClosingCallAuction),
            "after_hours" => Some(Phase::AfterHours),
            "closed" => Some(Phase::Closed),
            _ => None,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Phase::OpeningCallAuction => "开盘集合竞价",
            Phase::OpeningPause => "开盘集合竞价撮合（暂停申报撮合）",
            Phase::ContinuousTrading => "连续竞价",
            Phase::LunchBreak => "午间休市",
            Phase::ClosingCallAuction => "收盘集合竞价",
            Phase::AfterHours => "盘后交易",
            Phase::Closed => "闭市",
        }
    }

    pub fn label_en(self) -> &'static str {
        match self {
            Phase::OpeningCallAuction => "opening call auction",
            Phase::OpeningPause => "opening auction matching (pause)",
            Phase::ContinuousTrading => "continuous trading",
            Phase::LunchBreak => "lunch break",
            Phase::ClosingCallAuction => "closing call auction",
            Phase::AfterHours => "after-hours trading",
            Phase::Closed => "closed",
        }
    }

    /// Whether the market accepts or matches orders in this phase (every phase but
    /// the lunch break and closed).
    pub fn is_market_active(self) -> bool {
        !matches!(self, Phase::LunchBreak | Phase::Closed)
    }
}

/// One phase of a session, `[start, end)` in the calendar's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhaseSpan {
    pub phase: Phase,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// The trading-day phases in force from `effective_from` until the next version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionVersion {
    pub effective_from: NaiveDate,
    pub phases: Vec<PhaseSpan>,
    pub note: Option<String>,
}

impl SessionVersion {
    /// Start of the first phase and end of the last phase.
    pub fn bounds(&self) -> Option<(NaiveTime, NaiveTime)> {
        let first = self.phases.first()?;
        let last = self.phases.last()?;
        Some((first.start, last.end))
    }
}

/// A validated calendar definition file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CalendarDef {
    pub source: String,
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    /// `false` for exchanges (调休 Saturdays stay closed); `true` for business
    /// calendars on which make-up workdays are working days.
    pub makeup_workdays_open: bool,
    pub sessions: Vec<SessionVersion>,
    pub note: Option<String>,
}

fn serialize_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}
