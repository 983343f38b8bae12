//! Calendars assembled from definition and year files, and the date queries.
//!
//! Every query fails closed: a date in a year the calendar has no data for is
//! `CalendarError::NotCovered`, never a guess.

use std::collections::{BTreeMap, HashMap};

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday,
};
use chrono_tz::Tz;
use serde::Serialize;

use crate::bundled;
use crate::error::{CalendarError, ValidationIssue, ValidationIssues};
use crate::file::{CalendarFile, parse_calendar_file};
use crate::model::{
    CalendarDef, Closure, ClosureKind, MakeupWorkday, Phase, SessionVersion, YearFile,
};

/// What a date is in a calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DayKind {
    /// A weekday with no closure.
    Weekday,
    /// A Saturday or Sunday that is neither a make-up workday nor inside a closure.
    Weekend,
    /// A weekend day declared a working day (调休上班).
    MakeupWorkday {
        reason_zh: String,
        reason_en: String,
    },
    /// Inside a closure range (weekend days of the range included).
    Closure {
        from: NaiveDate,
        to: NaiveDate,
        reason_zh: String,
        reason_en: String,
        closure_kind: ClosureKind,
    },
}

/// A date and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayInfo {
    pub date: NaiveDate,
    /// Whether the market (or, for a business calendar, the business) is open.
    pub open: bool,
    pub kind: DayKind,
}

impl DayInfo {
    /// A short description, e.g. "春节休市" / "Spring Festival closure".
    pub fn describe_zh(&self) -> String {
        match &self.kind {
            DayKind::Weekday if self.open => "交易日".to_string(),
            DayKind::Weekday => "非交易日".to_string(),
            DayKind::Weekend => "周末".to_string(),
            DayKind::MakeupWorkday { reason_zh, .. } => {
                if self.open {
                    reason_zh.clone()
                } else {
                    format!("{reason_zh}（交易所周末休市，非交易日）")
                }
            }
            DayKind::Closure {
                reason_zh,
                closure_kind,
                ..
            } => match closure_kind {
                ClosureKind::PublicHoliday => format!("{reason_zh}休市"),
                ClosureKind::ExchangeOnly => {
                    format!("{reason_zh}休市（交易所单独休市，非法定节假日）")
                }
                ClosureKind::Extraordinary => format!("{reason_zh}（临时休市）"),
            },
        }
    }

    pub fn describe_en(&self) -> String {
        match &self.kind {
            DayKind::Weekday if self.open => "trading day".to_string(),
            DayKind::Weekday => "non-trading day".to_string(),
            DayKind::Weekend => "weekend".to_string(),
            DayKind::MakeupWorkday { reason_en, .. } => {
                if self.open {
                    reason_en.clone()
                } else {
                    format!(
                        "{reason_en} (the exchange stays closed at weekends: not a trading day)"
                    )
                }
            }
            DayKind::Closure {
                reason_en,
                closure_kind,
                ..
            } => match closure_kind {
                ClosureKind::PublicHoliday => format!("{reason_en} closure"),
                ClosureKind::ExchangeOnly => {
                    format!("{reason_en} closure (exchange-only, not a public holiday)")
                }
                ClosureKind::Extraordinary => format!("{reason_en} (extraordinary closure)"),
            },
        }
    }

    /// Whether this day is inside a closure (a "holiday"), as opposed to a plain
    /// weekend or make-up day.
    pub fn is_closure(&self) -> bool {
        matches!(self.kind, DayKind::Closure { .. })
    }
}

/// First and last covered dates of a calendar (whole years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl Coverage {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }

    /// Days from `today` to the last covered date (negative once past it).
    pub fn days_remaining(&self, today: NaiveDate) -> i64 {
        (self.last - today).num_days()
    }

    /// Whether a UI should warn that the data runs out: fewer than `warn_days` days
    /// left (60 is the documented default).
    pub fn ends_within(&self, today: NaiveDate, warn_days: i64) -> bool {
        self.days_remaining(today) < warn_days
    }
}

/// A run of consecutive non-trading days (a weekend, a holiday, or both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NonTradingRun {
    pub first: NaiveDate,
    pub last: NaiveDate,
    /// Calendar days in the run.
    pub days: u32,
    /// Whether at least one day is inside a closure (not just weekend / make-up days).
    pub includes_closure: bool,
    /// Distinct closure reasons in the run, in order.
    pub reasons_zh: Vec<String>,
    pub reasons_en: Vec<String>,
}

/// A holiday: a non-trading run that includes a closure, with its neighbouring trading days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holiday {
    pub last_trading_day_before: NaiveDate,
    pub run: NonTradingRun,
    pub first_trading_day_after: NaiveDate,
}

/// The phase of the market at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseAt {
    pub calendar: String,
    /// The instant in the calendar's time zone.
    pub local: NaiveDateTime,
    pub day: DayInfo,
    pub phase: Phase,
    /// The `[start, end)` of the current phase, if inside one.
    pub phase_start: Option<NaiveTime>,
    pub phase_end: Option<NaiveTime>,
}

#[derive(Debug, Clone)]
enum Mark {
    Closure(Closure),
    Makeup(MakeupWorkday),
}

/// One trading calendar: definition, sessions and covered years.
#[derive(Debug, Clone)]
pub struct Calendar {
    def: CalendarDef,
    years: BTreeMap<i32, YearFile>,
    marks: HashMap<NaiveDate, Mark>,
    coverage: Coverage,
}

impl Calendar {
    /// Builds a calendar from its definition and its year files. Years must be
    /// contiguous and the first session version must start on or before the first
    /// covered day.
    pub fn new(def: CalendarDef, year_files: Vec<YearFile>) -> Result<Calendar, CalendarError> {
        let mut issues = Vec::new();
        let issue = |field: &str, zh: String, en: String, file: &str| ValidationIssue {
            file: file.to_string(),
            line: None,
            column: None,
            field: field.to_string(),
            message_zh: zh,
            message_en: en,
        };
        let mut years: BTreeMap<i32, YearFile> = BTreeMap::new();
        for y in year_files {
            if let Some(prev) = years.get(&y.year) {
                issues.push(issue(
                    "year",
                    format!(
                        "交易日历 {} 的 {} 年数据重复（另见 {}）",
                        def.id, y.year, prev.source
                    ),
                    format!(
                        "calendar {} has two files for {} (see also {})",
                        def.id, y.year, prev.source
                    ),
                    &y.source,
                ));
                continue;
            }
            years.insert(y.year, y);
        }
        let (Some(&first_year), Some(&last_year)) = (years.keys().next(), years.keys().next_back())
        else {
            return Err(CalendarError::Invalid(ValidationIssues(vec![issue(
                "year",
                format!("交易日历 {} 没有任何年度数据", def.id),
                format!("calendar {} has no year data", def.id),
                &def.source,
            )])));
        };
        for y in first_year..=last_year {
            if !years.contains_key(&y) {
                issues.push(issue(
                    "year",
                    format!("交易日历 {} 缺少 {y} 年数据（年份必须连续）", def.id),
                    format!(
                        "calendar {} has no data for {y} (years must be contiguous)",
                        def.id
                    ),
                    &def.source,
                ));
            }
        }
        let (Some(first), Some(last)) = (
            NaiveDate::from_ymd_opt(first_year, 1, 1),
            NaiveDate::from_ymd_opt(last_year, 12, 31),
        ) else {
            return Err(CalendarError::Invalid(ValidationIssues(issues)));
        };
        match def.sessions.first() {
            Some(s) if s.effective_from <= first => {}
            _ => issues.push(issue(
                "session[0].effective_from",
                format!(
                    "交易日历 {} 的第一个交易时段版本必须不晚于首个覆盖日 {first} 生效",
                    def.id
                ),
                format!(
                    "calendar {}: the first session version must take effect on or before the first covered day {first}",
                    def.id
                ),
                &def.source,
            )),
        }
        if !issues.is_empty() {
            return Err(CalendarError::Invalid(ValidationIssues(issues)));
        }
        let mut marks = HashMap::new();
        for y in years.values() {
            for c in &y.data.closures {
                let mut d = c.from;
                while d <= c.to {
                    marks.insert(d, Mark::Closure(c.clone()));
                    match d.succ_opt() {
                        Some(n) => d = n,
                        None => break,
                    }
                }
            }
            for m in &y.data.makeup_workdays {
                marks.insert(m.date, Mark::Makeup(m.clone()));
            }
        }
        Ok(Calendar {
            def,
            years,
            marks,
            coverage: Coverage { first, last },
        })
    }

    pub fn id(&self) -> &str {
        &self.def.id
    }

    pub fn definition(&self) -> &CalendarDef {
        &self.def
    }

    pub fn timezone(&self) -> Tz {
        self.def.timezone
    }

    /// The year files in force, by year.
    pub fn years(&self) -> &BTreeMap<i32, YearFile> {
        &self.years
    }

    /// The year file for `year`, if covered.
    pub fn year(&self, year: i32) -> Option<&YearFile> {
        self.years.get(&year)
    }

    /// First and last covered dates.
    pub fn coverage(&self) -> Coverage {
        self.coverage
    }

    fn not_covered(&self, year: i32) -> CalendarError {
        CalendarError::NotCovered {
            calendar: self.def.id.clone(),
            year,
        }
    }

    fn ensure_covered(&self, date: NaiveDate) -> Result<(), CalendarError> {
        if self.coverage.contains(date) {
            Ok(())
        } else {
            Err(self.not_covered(date.year()))
        }
    }

    /// The status of a date.
    pub fn day_info(&self, date: NaiveDate) -> Result<DayInfo, CalendarError> {
        self.ensure_covered(date)?;
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let (open, kind) = match self.marks.get(&date) {
            Some(Mark::Closure(c)) => (
                false,
                DayKind::Closure {
                    from: c.from,
                    to: c.to,
                    reason_zh: c.reason_zh.clone(),
                    reason_en: c.reason_en.clone(),
                    closure_kind: c.kind,
                },
            ),
            Some(Mark::Makeup(m)) => (
                self.def.makeup_workdays_open,
                DayKind::MakeupWorkday {
                    reason_zh: m.reason_zh.clone(),
                    reason_en: m.reason_en.clone(),
                },
            ),
            None if weekend => (false, DayKind::Weekend),
            None => (true, DayKind::Weekday),
        };
        Ok(DayInfo { date, open, kind })
    }

    /// Trading day = a weekday that is not inside a closure (plus make-up workdays on
    /// business calendars that declare them open).
    pub fn is_trading_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        self.ensure_covered(date)?;
        Ok(self.is_open_unchecked(date))
    }

    fn is_open_unchecked(&self, date: NaiveDate) -> bool {
        match self.marks.get(&date) {
            Some(Mark::Closure(_)) => false,
            Some(Mark::Makeup(_)) => self.def.makeup_workdays_open,
            None => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
    }

    fn step(&self, date: NaiveDate, forward: bool) -> Result<NaiveDate, CalendarError> {
        let next = if forward {
            date.succ_opt()
        } else {
            date.pred_opt()
        };
        match next {
            Some(n) if self.coverage.contains(n) => Ok(n),
            Some(n) => Err(self.not_covered(n.year())),
            None => Err(self.not_covered(date.year())),
        }
    }

    /// The first trading day strictly after `date`.
    pub fn next_trading_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        self.ensure_covered(date)?;
        let mut d = self.step(date, true)?;
        while !self.is_open_unchecked(d) {
            d = self.step(d, true)?;
        }
        Ok(d)
    }

    /// The last trading day strictly before `date`.
    pub fn prev_trading_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        self.ensure_covered(date)?;
        let mut d = self.step(date, false)?;
        while !self.is_open_unchecked(d) {
            d = self.step(d, false)?;
        }
        Ok(d)
    }

    /// T+N (N > 0) or T−N (N < 0) in trading days.
    ///
    /// From a trading day this is the usual T+N. From a non-trading day, T+1 is the
    /// next trading day and T−1 the previous one. T+0 is `date` itself on a trading day
    /// and the next trading day otherwise (roll forward).
    pub fn add_trading_days(&self, date: NaiveDate, n: i32) -> Result<NaiveDate, CalendarError> {
        self.ensure_covered(date)?;
        if n == 0 {
            return if self.is_open_unchecked(date) {
                Ok(date)
            } else {
                self.next_trading_day(date)
            };
        }
        let mut d = date;
        for _ in 0..n.unsigned_abs() {
            d = if n > 0 {
                self.next_trading_day(d)?
            } else {
                self.prev_trading_day(d)?
            };
        }
        Ok(d)
    }

    /// Trading days in `[from, to]`, in order.
    pub fn trading_days(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, CalendarError> {
        if to < from {
            return Err(CalendarError::InvalidRange { from, to });
        }
        self.ensure_covered(from)?;
        self.ensure_covered(to)?;
        Ok(from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter(|d| self.is_open_unchecked(*d))
            .collect())
    }

    /// Number of trading days in `[from, to]`.
    pub fn count_trading_days(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<usize, CalendarError> {
        Ok(self.trading_days(from, to)?.len())
    }

    fn month_bounds(&self, year: i32, month: u32) -> Result<(NaiveDate, NaiveDate), CalendarError> {
        if !(1..=12).contains(&month) {
            return Err(CalendarError::InvalidPeriod {
                unit: "month",
                unit_zh: "月份",
                value: month,
            });
        }
        let first =
            NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| self.not_covered(year))?;
        let next_first = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        };
        let last = next_first
            .and_then(|d| d.pred_opt())
            .ok_or_else(|| self.not_covered(year))?;
        Ok((first, last))
    }

    /// The first trading day of a month (`None` if the month has none).
    pub fn first_trading_day_of_month(
        &self,
        year: i32,
        month: u32,
    ) -> Result<Option<NaiveDate>, CalendarError> {
        let (first, last) = self.month_bounds(year, month)?;
        Ok(self.trading_days(first, last)?.first().copied())
    }

    /// The last trading day of a month (`None` if the month has none).
    pub fn last_trading_day_of_month(
        &self,
        year: i32,
        month: u32,
    ) -> Result<Option<NaiveDate>, CalendarError> {
        let (first, last) = self.month_bounds(year, month)?;
        Ok(self.trading_days(first, last)?.last().copied())
    }

    /// The last trading day of quarter `quarter` (1–4).
    pub fn last_trading_day_of_quarter(
        &self,
        year: i32,
        quarter: u32,
    ) -> Result<Option<NaiveDate>, CalendarError> {
        if !(1..=4).contains(&quarter) {
            return Err(CalendarError::InvalidPeriod {
                unit: "quarter",
                unit_zh: "季度",
                value: quarter,
            });
        }
        let (first, _) = self.month_bounds(year, quarter * 3 - 2)?;
        let (_, last) = self.month_bounds(year, quarter * 3)?;
        Ok(self.trading_days(first, last)?.last().copied())
    }

    /// The run of consecutive non-trading days that starts the day after `date`
    /// (`days == 0` when the next day is a trading day).
    pub fn non_trading_run_after(&self, date: NaiveDate) -> Result<NonTradingRun, CalendarError> {
        self.ensure_covered(date)?;
        let start = self.step(date, true)?;
        self.run_from(start, true)
    }

    /// The run of consecutive non-trading days that ends the day before `date`.
    pub fn non_trading_run_before(&self, date: NaiveDate) -> Result<NonTradingRun, CalendarError> {
        self.ensure_covered(date)?;
        let start = self.step(date, false)?;
        self.run_from(start, false)
    }

    fn run_from(&self, start: NaiveDate, forward: bool) -> Result<NonTradingRun, CalendarError> {
        let mut run = NonTradingRun {
            first: start,
            last: start,
            days: 0,
            includes_closure: false,
            reasons_zh: Vec::new(),
            reasons_en: Vec::new(),
        };
        let mut d = start;
        loop {
            if self.is_open_unchecked(d) {
                break;
            }
            if forward {
                run.last = d;
            } else {
                run.first = d;
            }
            run.days += 1;
            if let Some(Mark::Closure(c)) = self.marks.get(&d) {
                run.includes_closure = true;
                if !run.reasons_zh.contains(&c.reason_zh) {
                    run.reasons_zh.push(c.reason_zh.clone());
                    run.reasons_en.push(c.reason_en.clone());
                }
            }
            d = self.step(d, forward)?;
        }
        if run.days == 0 {
            // Empty run: first/last point at the neighbouring trading day.
            run.first = start;
            run.last = start;
        } else if !forward {
            run.reasons_zh.reverse();
            run.reasons_en.reverse();
        }
        Ok(run)
    }

    /// Whether `date` is the last trading day before a holiday: the non-trading run
    /// that follows it includes a closure and lasts at least `min_days` calendar days.
    pub fn is_last_trading_day_before_closure(
        &self,
        date: NaiveDate,
        min_days: u32,
    ) -> Result<bool, CalendarError> {
        if !self.is_trading_day(date)? {
            return Ok(false);
        }
        let run = self.non_trading_run_after(date)?;
        Ok(run.includes_closure && run.days >= min_days.max(1))
    }

    /// Whether `date` is the first trading day after a holiday of at least `min_days`
    /// calendar days.
    pub fn is_first_trading_day_after_closure(
        &self,
        date: NaiveDate,
        min_days: u32,
    ) -> Result<bool, CalendarError> {
        if !self.is_trading_day(date)? {
            return Ok(false);
        }
        let run = self.non_trading_run_before(date)?;
        Ok(run.includes_closure && run.days >= min_days.max(1))
    }

    /// The next holiday strictly after `date` (or the one `date` is in), with the
    /// trading days around it. Fails closed if the data ends first.
    pub fn next_holiday(&self, date: NaiveDate) -> Result<Holiday, CalendarError> {
        self.ensure_covered(date)?;
        // Scan from the trading day at or before `date`, so that a holiday `date` is
        // inside of is found first.
        let mut t = if self.is_open_unchecked(date) {
            date
        } else {
            self.prev_trading_day(date)?
        };
        loop {
            let run = self.non_trading_run_after(t)?;
            if run.includes_closure {
                let first_after = self.next_trading_day(run.last)?;
                return Ok(Holiday {
                    last_trading_day_before: t,
                    run,
                    first_trading_day_after: first_after,
                });
            }
            t = self.next_trading_day(t)?;
        }
    }

    /// The first trading day after the holiday that `date` is in or, if `date` is a
    /// trading day, after the next holiday.
    pub fn first_trading_day_after_holiday(
        &self,
        date: NaiveDate,
    ) -> Result<NaiveDate, CalendarError> {
        Ok(self.next_holiday(date)?.first_trading_day_after)
    }

    /// The session version in force on `date`.
    pub fn session_for(&self, date: NaiveDate) -> Result<&SessionVersion, CalendarError> {
        self.def
            .sessions
            .iter()
            .rev()
            .find(|s| s.effective_from <= date)
            .ok_or_else(|| CalendarError::NoSession {
                calendar: self.def.id.clone(),
                date,
            })
    }

    /// Local date in the calendar's time zone of an instant.
    pub fn local_date<Z: TimeZone>(&self, instant: &DateTime<Z>) -> NaiveDate {
        instant.with_timezone(&self.def.timezone).date_naive()
    }

    /// The phase of the market at an instant (any offset; converted to the calendar's
    /// time zone). Phases are `[start, end)`: 09:15:00 is the opening call auction,
    /// 09:14:59 is closed, 15:00:00 is closed.
    pub fn phase_at<Z: TimeZone>(&self, instant: &DateTime<Z>) -> Result<PhaseAt, CalendarError> {
        let local = instant.with_timezone(&self.def.timezone).naive_local();
        let day = self.day_info(local.date())?;
        let mut result = PhaseAt {
            calendar: self.def.id.clone(),
            local,
            day,
            phase: Phase::Closed,
            phase_start: None,
            phase_end: None,
        };
        if !result.day.open {
            return Ok(result);
        }
        let session = self.session_for(local.date())?;
        let t = local.time();
        if let Some(p) = session.phases.iter().find(|p| p.start <= t && t < p.end) {
            result.phase = p.phase;
            result.phase_start = Some(p.start);
            result.phase_end = Some(p.end);
        }
        Ok(result)
    }
}

/// All loaded calendars, by id.
#[derive(Debug, Clone, Default)]
pub struct CalendarSet {
    calendars: BTreeMap<String, Calendar>,
}

/// Where a set of files comes from; later layers override earlier ones.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub files: Vec<CalendarFile>,
}

impl CalendarSet {
    /// The calendars bundled with Ballast (SSE and SZSE, 2015–2026).
    pub fn bundled() -> Result<CalendarSet, CalendarError> {
        CalendarSet::from_layers(vec![bundled::layer()?])
    }

    /// The bundled calendars plus an extra layer (e.g. the files of a calendar
    /// directory, read by the caller): a definition there replaces the bundled
    /// definition with the same id, and a year file there replaces the bundled data for
    /// each (calendar, year) it declares.
    pub fn with_extra(extra: Option<Layer>) -> Result<CalendarSet, CalendarError> {
        let mut layers = vec![bundled::layer()?];
        layers.extend(extra);
        CalendarSet::from_layers(layers)
    }

    /// Builds calendars from layers of files.
    pub fn from_layers(layers: Vec<Layer>) -> Result<CalendarSet, CalendarError> {
        let mut issues = Vec::new();
        let mut defs: BTreeMap<String, CalendarDef> = BTreeMap::new();
        let mut years: BTreeMap<(String, i32), YearFile> = BTreeMap::new();
        for layer in layers {
            let mut seen_defs: BTreeMap<String, String> = BTreeMap::new();
            let mut seen_years: BTreeMap<(String, i32), String> = BTreeMap::new();
            for file in layer.files {
                match file {
                    CalendarFile::Definition(def) => {
                        if let Some(other) = seen_defs.insert(def.id.clone(), def.source.clone()) {
                            issues.push(dup_issue(
                                &def.source,
                                "calendar.id",
                                &def.id,
                                None,
                                &other,
                            ));
                        }
                        defs.insert(def.id.clone(), def);
                    }
                    CalendarFile::Year(y) => {
                        for cal in &y.calendars {
                            let key = (cal.clone(), y.year);
                            if let Some(other) = seen_years.insert(key.clone(), y.source.clone()) {
                                issues.push(dup_issue(
                                    &y.source,
                                    "year",
                                    cal,
                                    Some(y.year),
                                    &other,
                                ));
                            }
                            years.insert(key, y.clone());
                        }
                    }
                }
            }
        }
        let mut by_cal: BTreeMap<String, Vec<YearFile>> = BTreeMap::new();
        for ((cal, _), y) in years {
            if !defs.contains_key(&cal) {
                issues.push(ValidationIssue {
                    file: y.source.clone(),
                    line: None,
                    column: None,
                    field: "calendars".to_string(),
                    message_zh: format!("交易日历 {cal} 没有定义文件（[calendar] id = \"{cal}\"）"),
                    message_en: format!(
                        "calendar {cal} has no definition file ([calendar] id = \"{cal}\")"
                    ),
                });
                continue;
            }
            by_cal.entry(cal).or_default().push(y);
        }
        let mut calendars = BTreeMap::new();
        for (id, def) in defs {
            let ys = by_cal.remove(&id).unwrap_or_default();
            match Calendar::new(def, ys) {
                Ok(c) => {
                    calendars.insert(id, c);
                }
                Err(CalendarError::Invalid(i)) => issues.extend(i.0),
                Err(e) => return Err(e),
            }
        }
        if !issues.is_empty() {
            return Err(CalendarError::Invalid(ValidationIssues(issues)));
        }
        Ok(CalendarSet { calendars })
    }

    /// The calendar `id`, or `CalendarError::UnknownCalendar`.
    pub fn get(&self, id: &str) -> Result<&Calendar, CalendarError> {
        self.calendars
            .get(id)
            .ok_or_else(|| CalendarError::UnknownCalendar {
                calendar: id.to_string(),
            })
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.calendars.keys().map(|s| s.as_str())
    }

    pub fn calendars(&self) -> impl Iterator<Item = &Calendar> {
        self.calendars.values()
    }
}

fn dup_issue(file: &str, field: &str, id: &str, year: Option<i32>, other: &str) -> ValidationIssue {
    let (zh, en) = match year {
        Some(y) => (
            format!("同一目录中交易日历 {id} 的 {y} 年数据出现两次（另见 {other}）"),
            format!(
                "calendar {id} year {y} is defined twice in the same directory (see also {other})"
            ),
        ),
        None => (
            format!("同一目录中交易日历 {id} 的定义出现两次（另见 {other}）"),
            format!("calendar {id} is defined twice in the same directory (see also {other})"),
        ),
    };
    ValidationIssue {
        file: file.to_string(),
        line: None,
        column: None,
        field: field.to_string(),
        message_zh: zh,
        message_en: en,
    }
}

impl Layer {
    /// Parses and validates `(file name, contents)` pairs (e.g. the `*.toml` files of a
    /// calendar directory, read by the caller), reporting every invalid file at once.
    pub fn from_sources(name: &str, sources: &[(String, String)]) -> Result<Layer, CalendarError> {
        let mut files = Vec::new();
        let mut issues = Vec::new();
        for (file, text) in sources {
            match parse_calendar_file(file, text) {
                Ok(f) => files.push(f),
                Err(CalendarError::Invalid(i)) => issues.extend(i.0),
                Err(e) => return Err(e),
            }
        }
        if !issues.is_empty() {
            return Err(CalendarError::Invalid(ValidationIssues(issues)));
        }
        Ok(Layer {
            name: name.to_string(),
            files,
        })
    }
}

/// Convenience for tests and callers: midnight of `date` in `tz`, as UTC.
pub fn start_of_day_utc(tz: Tz, date: NaiveDate) -> Option<DateTime<chrono::Utc>> {
    tz.from_local_datetime(&date.and_time(NaiveTime::MIN))
        .earliest()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// `date + days` without panicking.
pub(crate) fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    date.checked_add_signed(Duration::days(days))
}
