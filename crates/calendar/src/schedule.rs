//! Calendar-aware schedules: a cron expression (via `croner`) plus a calendar day
//! filter and an optional offset in trading days, evaluated in a time zone
//! (Asia/Shanghai by default).
//!
//! Expression syntax (see docs/CALENDAR.md):
//!
//! ```text
//! <cron: 5 or 6 fields> [@filter[:N]] [+N | -N] [tz=Area/City]
//! "30 8 * * * @trading"                       08:30 on each trading day
//! "0 18 * * * @last-trading-day-of-month"     18:00 on the last trading day of the month
//! "0 16 * * * @trading-day-before-holiday"    16:00 on the trading day before each holiday
//! "0 9 * * * @first-trading-day-of-month +1"  09:00 on the 2nd trading day of the month
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::Serialize;

use crate::calendar::{Calendar, DayKind, add_days};
use crate::error::CalendarError;

/// Which candidate days of the cron expression are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayFilter {
    /// `@every-day` (the default): no calendar filter.
    EveryDay,
    /// `@trading`
    Trading,
    /// `@non-trading`
    NonTrading,
    /// `@first-trading-day-of-month`
    FirstTradingDayOfMonth,
    /// `@last-trading-day-of-month`
    LastTradingDayOfMonth,
    /// `@last-trading-day-of-quarter`
    LastTradingDayOfQuarter,
    /// `@trading-day-before-holiday[:N]`: the last trading day before a holiday (a
    /// non-trading run that includes a closure) of at least N calendar days (default 1).
    TradingDayBeforeHoliday { min_days: u32 },
    /// `@first-trading-day-after-holiday[:N]`
    FirstTradingDayAfterHoliday { min_days: u32 },
}

impl DayFilter {
    fn token(self) -> String {
        match self {
            DayFilter::EveryDay => "@every-day".to_string(),
            DayFilter::Trading => "@trading".to_string(),
            DayFilter::NonTrading => "@non-trading".to_string(),
            DayFilter::FirstTradingDayOfMonth => "@first-trading-day-of-month".to_string(),
            DayFilter::LastTradingDayOfMonth => "@last-trading-day-of-month".to_string(),
            DayFilter::LastTradingDayOfQuarter => "@last-trading-day-of-quarter".to_string(),
            DayFilter::TradingDayBeforeHoliday { min_days } => {
                format!("@trading-day-before-holiday:{min_days}")
            }
            DayFilter::FirstTradingDayAfterHoliday { min_days } => {
                format!("@first-trading-day-after-holiday:{min_days}")
            }
        }
    }

    /// Whether every kept day is a trading day (so trading-day offsets are well ordered).
    fn keeps_only_trading_days(self) -> bool {
        !matches!(self, DayFilter::EveryDay | DayFilter::NonTrading)
    }

    pub fn describe_zh(self) -> String {
        match self {
            DayFilter::EveryDay => "每天".to_string(),
            DayFilter::Trading => "每个交易日".to_string(),
            DayFilter::NonTrading => "每个非交易日".to_string(),
            DayFilter::FirstTradingDayOfMonth => "每月第一个交易日".to_string(),
            DayFilter::LastTradingDayOfMonth => "每月最后一个交易日".to_string(),
            DayFilter::LastTradingDayOfQuarter => "每季度最后一个交易日".to_string(),
            DayFilter::TradingDayBeforeHoliday { min_days } => {
                format!("每个（{min_days} 天及以上）休市前的最后一个交易日")
            }
            DayFilter::FirstTradingDayAfterHoliday { min_days } => {
                format!("每个（{min_days} 天及以上）休市后的第一个交易日")
            }
        }
    }

    pub fn describe_en(self) -> String {
        match self {
            DayFilter::EveryDay => "every day".to_string(),
            DayFilter::Trading => "each trading day".to_string(),
            DayFilter::NonTrading => "each non-trading day".to_string(),
            DayFilter::FirstTradingDayOfMonth => "the first trading day of each month".to_string(),
            DayFilter::LastTradingDayOfMonth => "the last trading day of each month".to_string(),
            DayFilter::LastTradingDayOfQuarter => {
                "the last trading day of each quarter".to_string()
            }
            DayFilter::TradingDayBeforeHoliday { min_days } => {
                format!("the last trading day before each holiday of {min_days}+ days")
            }
            DayFilter::FirstTradingDayAfterHoliday { min_days } => {
                format!("the first trading day after each holiday of {min_days}+ days")
            }
        }
    }

    /// Whether `date` is kept. Errors only when the calendar does not cover a date it
    /// needs to look at.
    fn keeps(self, cal: &Calendar, date: NaiveDate) -> Result<bool, CalendarError> {
        use chrono::Datelike;
        Ok(match self {
            DayFilter::EveryDay => true,
            DayFilter::Trading => cal.is_trading_day(date)?,
            DayFilter::NonTrading => !cal.is_trading_day(date)?,
            DayFilter::FirstTradingDayOfMonth => {
                cal.first_trading_day_of_month(date.year(), date.month())? == Some(date)
            }
            DayFilter::LastTradingDayOfMonth => {
                cal.last_trading_day_of_month(date.year(), date.month())? == Some(date)
            }
            DayFilter::LastTradingDayOfQuarter => {
                let q = (date.month() - 1) / 3 + 1;
                cal.last_trading_day_of_quarter(date.year(), q)? == Some(date)
            }
            DayFilter::TradingDayBeforeHoliday { min_days } => {
                cal.is_last_trading_day_before_closure(date, min_days)?
            }
            DayFilter::FirstTradingDayAfterHoliday { min_days } => {
                cal.is_first_trading_day_after_closure(date, min_days)?
            }
        })
    }
}

/// A parsed schedule expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron_text: String,
    cron: Cron,
    filter: DayFilter,
    offset: i32,
    timezone: Tz,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expression)
    }
}

fn invalid(expr: &str, zh: impl Into<String>, en: impl Into<String>) -> CalendarError {
    CalendarError::InvalidSchedule {
        expression: expr.to_string(),
        message_zh: zh.into(),
        message_en: en.into(),
    }
}

impl Schedule {
    /// Parses `<cron> [@filter[:N]] [+N|-N] [tz=Area/City]`; the time zone defaults to
    /// Asia/Shanghai.
    pub fn parse(expression: &str) -> Result<Schedule, CalendarError> {
        Schedule::parse_with_default_timezone(expression, chrono_tz::Asia::Shanghai)
    }

    pub fn parse_with_default_timezone(
        expression: &str,
        default_tz: Tz,
    ) -> Result<Schedule, CalendarError> {
        let expr = expression.trim();
        let tokens: Vec<&str> = expr.split_whitespace().collect();
        let split = tokens
            .iter()
            .position(|t| t.starts_with('@') || t.starts_with("tz=") || is_offset(t))
            .unwrap_or(tokens.len());
        let (cron_tokens, modifiers) = tokens.split_at(split);
        if !(cron_tokens.len() == 5 || cron_tokens.len() == 6) {
            return Err(invalid(
                expr,
                format!(
                    "cron 部分应有 5 个（分 时 日 月 周）或 6 个（秒 分 时 日 月 周）字段，实际 {} 个",
                    cron_tokens.len()
                ),
                format!(
                    "the cron part needs 5 fields (minute hour day month weekday) or 6 (with seconds first), found {}",
                    cron_tokens.len()
                ),
            ));
        }
        let cron_text = cron_tokens.join(" ");
        let cron = Cron::from_str(&cron_text).map_err(|e| {
            invalid(
                expr,
                format!("cron 表达式无效：{e}"),
                format!("invalid cron expression: {e}"),
            )
        })?;
        let mut filter: Option<DayFilter> = None;
        let mut offset: Option<i32> = None;
        let mut timezone: Option<Tz> = None;
        for m in modifiers {
            if let Some(name) = m.strip_prefix('@') {
                if filter.is_some() {
                    return Err(invalid(
                        expr,
                        "只能有一个 @ 日期过滤器",
                        "only one @filter is allowed",
                    ));
                }
                filter = Some(parse_filter(expr, name)?);
            } else if let Some(tz) = m.strip_prefix("tz=") {
                if timezone.is_some() {
                    return Err(invalid(expr, "只能有一个 tz=", "only one tz= is allowed"));
                }
                timezone = Some(tz.parse::<Tz>().map_err(|_| {
                    invalid(
                        expr,
                        format!("未知时区 \"{tz}\""),
                        format!("unknown time zone \"{tz}\""),
                    )
                })?);
            } else if is_offset(m) {
                if offset.is_some() {
                    return Err(invalid(
                        expr,
                        "只能有一个 +N/-N 偏移",
                        "only one +N/-N offset is allowed",
                    ));
                }
                let n: i32 = m.parse().map_err(|_| {
                    invalid(
                        expr,
                        format!("偏移 \"{m}\" 无效"),
                        format!("invalid offset \"{m}\""),
                    )
                })?;
                if n.abs() > 250 {
                    return Err(invalid(
                        expr,
                        "交易日偏移不能超过 ±250",
                        "the trading-day offset must be within ±250",
                    ));
                }
                offset = Some(n);
            } else {
                return Err(invalid(
                    expr,
                    format!("无法识别的部分 \"{m}\"（cron 字段之后只能是 @过滤器、+N/-N 或 tz=）"),
                    format!(
                        "unrecognised token \"{m}\" (after the cron fields only @filter, +N/-N and tz= are allowed)"
                    ),
                ));
            }
        }
        let filter = filter.unwrap_or(DayFilter::EveryDay);
        let offset = offset.unwrap_or(0);
        if offset != 0 && !filter.keeps_only_trading_days() {
            return Err(invalid(
                expr,
                "交易日偏移 +N/-N 需要一个只保留交易日的过滤器（如 @trading、@last-trading-day-of-month）",
                "a trading-day offset +N/-N needs a filter that keeps only trading days (e.g. @trading, @last-trading-day-of-month)",
            ));
        }
        Ok(Schedule {
            expression: expr.to_string(),
            cron_text,
            cron,
            filter,
            offset,
            timezone: timezone.unwrap_or(default_tz),
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }
    pub fn cron(&self) -> &str {
        &self.cron_text
    }
    pub fn filter(&self) -> DayFilter {
        self.filter
    }
    pub fn offset(&self) -> i32 {
        self.offset
    }
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// A human description, e.g. "cron 30 8 * * *，每个交易日（Asia/Shanghai）".
    pub fn describe_zh(&self) -> String {
        let off = match self.offset {
            0 => String::new(),
            n if n > 0 => format!("之后第 {n} 个交易日"),
            n => format!("之前第 {} 个交易日", -n),
        };
        format!(
            "cron {}，{}{}（{}）",
            self.cron_text,
            self.filter.describe_zh(),
            off,
            self.timezone.name()
        )
    }

    pub fn describe_en(&self) -> String {
        let off = match self.offset {
            0 => String::new(),
            n if n > 0 => format!(", shifted {n} trading day(s) later"),
            n => format!(", shifted {} trading day(s) earlier", -n),
        };
        format!(
            "cron {}, on {}{} ({})",
            self.cron_text,
            self.filter.describe_en(),
            off,
            self.timezone.name()
        )
    }

    /// The canonical form of the modifiers (for display and storage).
    pub fn canonical(&self) -> String {
        let mut s = format!("{} {}", self.cron_text, self.filter.token());
        if self.offset != 0 {
            s.push_str(&format!(" {:+}", self.offset));
        }
        s.push_str(&format!(" tz={}", self.timezone.name()));
        s
    }
}

fn is_offset(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some('+') | Some('-'))
        && t.len() > 1
        && chars.all(|c| c.is_ascii_digit())
}

fn parse_filter(expr: &str, name: &str) -> Result<DayFilter, CalendarError> {
    let (base, arg) = match name.split_once(':') {
        Some((b, a)) => (b, Some(a)),
        None => (name, None),
    };
    let min_days = |arg: Option<&str>| -> Result<u32, CalendarError> {
        match arg {
            None => Ok(1),
            Some(a) => match a.parse::<u32>() {
                Ok(n) if (1..=60).contains(&n) => Ok(n),
                _ => Err(invalid(
                    expr,
                    format!("@{base}:{a} 中的天数应为 1–60"),
                    format!("the day count in @{base}:{a} must be 1–60"),
                )),
            },
        }
    };
    let no_arg = |f: DayFilter| -> Result<DayFilter, CalendarError> {
        match arg {
            None => Ok(f),
            Some(a) => Err(invalid(
                expr,
                format!("@{base} 不接受参数 \"{a}\""),
                format!("@{base} takes no argument \"{a}\""),
            )),
        }
    };
    match base {
        "every-day" => no_arg(DayFilter::EveryDay),
        "trading" => no_arg(DayFilter::Trading),
        "non-trading" => no_arg(DayFilter::NonTrading),
        "first-trading-day-of-month" => no_arg(DayFilter::FirstTradingDayOfMonth),
        "last-trading-day-of-month" => no_arg(DayFilter::LastTradingDayOfMonth),
        "last-trading-day-of-quarter" => no_arg(DayFilter::LastTradingDayOfQuarter),
        "trading-day-before-holiday" => Ok(DayFilter::TradingDayBeforeHoliday {
            min_days: min_days(arg)?,
        }),
        "first-trading-day-after-holiday" => Ok(DayFilter::FirstTradingDayAfterHoliday {
            min_days: min_days(arg)?,
        }),
        other => Err(invalid(
            expr,
            format!(
                "未知过滤器 @{other}；可选 @every-day、@trading、@non-trading、@first-trading-day-of-month、@last-trading-day-of-month、@last-trading-day-of-quarter、@trading-day-before-holiday[:N]、@first-trading-day-after-holiday[:N]"
            ),
            format!(
                "unknown filter @{other}; expected @every-day, @trading, @non-trading, @first-trading-day-of-month, @last-trading-day-of-month, @last-trading-day-of-quarter, @trading-day-before-holiday[:N] or @first-trading-day-after-holiday[:N]"
            ),
        )),
    }
}

/// One fire time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fire {
    pub at: DateTime<Utc>,
    /// The fire time in the schedule's time zone.
    pub local: NaiveDateTime,
    /// The candidate day the filter kept (differs from `local.date()` with an offset).
    pub anchor: NaiveDate,
}

/// A candidate day the calendar made the schedule skip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub date: NaiveDate,
    pub reason_zh: String,
    pub reason_en: String,
}

impl Skip {
    /// "2026-02-16 skipped: Spring Festival closure".
    pub fn render_en(&self) -> String {
        format!("{} skipped: {}", self.date, self.reason_en)
    }
    /// "2026-02-16 跳过：春节休市".
    pub fn render_zh(&self) -> String {
        format!("{} 跳过：{}", self.date, self.reason_zh)
    }
}

/// The next fire times and the notable skipped candidate days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub fires: Vec<Fire>,
    /// Candidate days (from the cron expression) dropped because they are closures or
    /// make-up workdays; ordinary weekends are not listed.
    pub skipped: Vec<Skip>,
    /// Set when the calendar data ended before `count` fire times were found: the
    /// preview is cut there (fail closed), never extrapolated.
    pub stopped: Option<CalendarError>,
}

fn start_of_day(tz: Tz, date: NaiveDate) -> Option<DateTime<Tz>> {
    tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
}

fn cron_err(schedule: &Schedule, e: croner::errors::CronError) -> CalendarError {
    invalid(
        &schedule.expression,
        format!("找不到下一次触发时间：{e}"),
        format!("cannot find the next occurrence: {e}"),
    )
}

/// The next `count` fire times at or after `from`, with the skipped days.
///
/// Errors only for an expression that never matches; when the calendar data ends,
/// the preview stops there and `stopped` says why.
pub fn preview(
    schedule: &Schedule,
    calendar: &Calendar,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Preview, CalendarError> {
    let mut out = Preview {
        fires: Vec::new(),
        skipped: Vec::new(),
        stopped: None,
    };
    let tz = schedule.timezone;
    let from_local = from.with_timezone(&tz);
    let from_date = from_local.date_naive();
    // With a positive offset, anchors before `from` can fire after it: start earlier.
    let mut cursor = from_local;
    if schedule.offset > 0 {
        let mut d = from_date;
        for _ in 0..schedule.offset {
            match calendar.prev_trading_day(d) {
                Ok(p) => d = p,
                Err(_) => break,
            }
        }
        if let Some(s) = start_of_day(tz, d) {
            cursor = s;
        }
    }
    let mut inclusive = true;
    let mut guard = 0u32;
    while out.fires.len() < count {
        guard += 1;
        if guard > 200_000 {
            break;
        }
        let occ = match schedule.cron.find_next_occurrence(&cursor, inclusive) {
            Ok(o) => o,
            Err(e) => return Err(cron_err(schedule, e)),
        };
        let date = occ.date_naive();
        let kept = if schedule.filter == DayFilter::EveryDay {
            Ok(true)
        } else {
            schedule.filter.keeps(calendar, date)
        };
        let kept = match kept {
            Ok(k) => k,
            Err(e) => {
                out.stopped = Some(e);
                break;
            }
        };
        if !kept {
            if date >= from_date
                && let Ok(info) = calendar.day_info(date)
                && !info.open
                && !matches!(info.kind, DayKind::Weekend)
                && schedule.filter != DayFilter::NonTrading
                && out.skipped.last().map(|s| s.date) != Some(date)
            {
                out.skipped.push(Skip {
                    date,
                    reason_zh: info.describe_zh(),
                    reason_en: info.describe_en(),
                });
            }
            // Jump to the next day: the filter is per day.
            match add_days(date, 1).and_then(|d| start_of_day(tz, d)) {
                Some(next) => {
                    cursor = next;
                    inclusive = true;
                }
                None => break,
            }
            continue;
        }
        let fire_date = if schedule.offset == 0 {
            date
        } else {
            match calendar.add_trading_days(date, schedule.offset) {
                Ok(d) => d,
                Err(e) => {
                    out.stopped = Some(e);
                    break;
                }
            }
        };
        let local = fire_date.and_time(occ.time());
        if let Some(at) = tz.from_local_datetime(&local).earliest() {
            let at = at.with_timezone(&Utc);
            if at >= from && out.fires.last().map(|f| f.at) != Some(at) {
                out.fires.push(Fire {
                    at,
                    local,
                    anchor: date,
                });
            }
        }
        cursor = occ;
        inclusive = false;
    }
    Ok(out)
}

/// The first fire time at or after `after`, failing closed if the calendar data ends
/// before one is found.
pub fn next_fire(
    schedule: &Schedule,
    calendar: &Calendar,
    after: DateTime<Utc>,
) -> Result<Fire, CalendarError> {
    let p = preview(schedule, calendar, after, 1)?;
    if let Some(f) = p.fires.into_iter().next() {
        return Ok(f);
    }
    Err(p.stopped.unwrap_or_else(|| {
        invalid(
            &schedule.expression,
            "在可搜索范围内找不到触发时间",
            "no fire time found within the search limit",
        )
    }))
}
