//! Parsing and validation of calendar data files (TOML).
//!
//! Two kinds of file share one format family:
//!
//! * a **definition file** (has a `[calendar]` table): id, names, time zone, whether
//!   make-up workdays are open, and the versioned `[[session]]` phases;
//! * a **year file** (has `year = ...`): the closures and make-up workdays of one
//!   calendar year for one or more calendars.
//!
//! See `docs/CALENDAR.md` for the format.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{CalendarError, ValidationIssue, ValidationIssues};
use crate::model::{
    CalendarDef, Closure, ClosureKind, MakeupWorkday, Phase, PhaseSpan, SessionVersion, YearData,
    YearFile,
};
use crate::toml_support::{Checker, is_identifier};

/// The only schema version this crate reads.
pub const SCHEMA_VERSION: i64 = 1;

/// A parsed and validated calendar data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarFile {
    Definition(CalendarDef),
    Year(YearFile),
}

impl CalendarFile {
    pub fn source(&self) -> &str {
        match self {
            CalendarFile::Definition(d) => &d.source,
            CalendarFile::Year(y) => &y.source,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYearFile {
    schema: Spanned<i64>,
    calendars: Spanned<Vec<Spanned<String>>>,
    year: Spanned<i64>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    closure: Vec<Spanned<RawClosure>>,
    #[serde(default)]
    makeup_workday: Vec<Spanned<RawMakeup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosure {
    from: Spanned<toml::Value>,
    #[serde(default)]
    to: Option<Spanned<toml::Value>>,
    reason_zh: Spanned<String>,
    reason_en: Spanned<String>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMakeup {
    date: Spanned<toml::Value>,
    reason_zh: Spanned<String>,
    reason_en: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinitionFile {
    schema: Spanned<i64>,
    calendar: RawCalendar,
    #[serde(default)]
    session: Vec<Spanned<RawSession>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    id: Spanned<String>,
    name_zh: Spanned<String>,
    name_en: Spanned<String>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    makeup_workdays_open: Option<bool>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    effective_from: Spanned<toml::Value>,
    phases: Vec<Spanned<RawPhase>>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    phase: Spanned<String>,
    start: Spanned<toml::Value>,
    end: Spanned<toml::Value>,
}

/// Parses and validates one calendar data file. `file` names it in errors.
pub fn parse_calendar_file(file: &str, text: &str) -> Result<CalendarFile, CalendarError> {
    parse_inner(file, text).map_err(|issues| CalendarError::Invalid(ValidationIssues(issues)))
}

fn parse_inner(file: &str, text: &str) -> Result<CalendarFile, Vec<ValidationIssue>> {
    let mut ck = Checker::new(file, text);
    // Peek at the top-level keys to tell the two kinds apart.
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            ck.toml_error(&e);
            return Err(ck.issues);
        }
    };
    if table.contains_key("calendar") {
        match toml::from_str::<RawDefinitionFile>(text) {
            Ok(raw) => check_definition(ck, raw).map(CalendarFile::Definition),
            Err(e) => {
                ck.toml_error(&e);
                Err(ck.issues)
            }
        }
    } else if table.contains_key("year") {
        match toml::from_str::<RawYearFile>(text) {
            Ok(raw) => check_year(ck, raw).map(CalendarFile::Year),
            Err(e) => {
                ck.toml_error(&e);
                Err(ck.issues)
            }
        }
    } else {
        ck.issue(
            None,
            "(file)",
            "无法识别的文件：定义文件需要 [calendar] 表，年度文件需要 year 字段",
            "unrecognised file: a definition file needs a [calendar] table, a year file needs a `year` key",
        );
        Err(ck.issues)
    }
}

fn check_schema(ck: &mut Checker<'_>, schema: &Spanned<i64>) {
    if *schema.get_ref() != SCHEMA_VERSION {
        ck.issue(
            Some(schema.span()),
            "schema",
            format!(
                "不支持的 schema 版本 {}，应为 {SCHEMA_VERSION}",
                schema.get_ref()
            ),
            format!(
                "unsupported schema version {}, expected {SCHEMA_VERSION}",
                schema.get_ref()
            ),
        );
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn check_year(mut ck: Checker<'_>, raw: RawYearFile) -> Result<YearFile, Vec<ValidationIssue>> {
    check_schema(&mut ck, &raw.schema);

    let year_value = *raw.year.get_ref();
    let year = match i32::try_from(year_value) {
        Ok(y) if (1990..=2200).contains(&y) => Some(y),
        _ => {
            ck.issue(
                Some(raw.year.span()),
                "year",
                format!("年份 {year_value} 超出范围 1990–2200"),
                format!("year {year_value} is out of range 1990–2200"),
            );
            None
        }
    };

    let mut calendars = Vec::new();
    if raw.calendars.get_ref().is_empty() {
        ck.issue(
            Some(raw.calendars.span()),
            "calendars",
            "至少需要一个交易日历标识",
            "at least one calendar id is required",
        );
    }
    for (i, id) in raw.calendars.get_ref().iter().enumerate() {
        let field = format!("calendars[{i}]");
        if !is_identifier(id.get_ref()) {
            ck.issue(
                Some(id.span()),
                &field,
                format!(
                    "日历标识 \"{}\" 无效：只能用小写字母、数字、- 和 _",
                    id.get_ref()
                ),
                format!(
                    "invalid calendar id \"{}\": use lower-case letters, digits, - and _",
                    id.get_ref()
                ),
            );
        } else if calendars.contains(id.get_ref()) {
            ck.issue(
                Some(id.span()),
                &field,
                format!("日历标识 \"{}\" 重复", id.get_ref()),
                format!("duplicate calendar id \"{}\"", id.get_ref()),
            );
        } else {
            calendars.push(id.get_ref().clone());
        }
    }

    let mut closures: Vec<(Closure, std::ops::Range<usize>, usize)> = Vec::new();
    for (i, c) in raw.closure.iter().enumerate() {
        let span = c.span();
        let c = c.get_ref();
        let from = ck.date(&c.from, &format!("closure[{i}].from"));
        let to = match &c.to {
            Some(t) => ck.date(t, &format!("closure[{i}].to")),
            None => from,
        };
        let reason_zh = ck.non_empty(&c.reason_zh, &format!("closure[{i}].reason_zh"));
        let reason_en = ck.non_empty(&c.reason_en, &format!("closure[{i}].reason_en"));
        let kind = match &c.kind {
            None => Some(ClosureKind::PublicHoliday),
            Some(k) => {
                let parsed = ClosureKind::parse(k.get_ref());
                if parsed.is_none() {
                    ck.issue(
                        Some(k.span()),
                        format!("closure[{i}].kind"),
                        format!(
                            "未知的休市类型 \"{}\"，可选 public_holiday、exchange_only、extraordinary",
                            k.get_ref()
                        ),
                        format!(
                            "unknown closure kind \"{}\", expected public_holiday, exchange_only or extraordinary",
                            k.get_ref()
                        ),
                    );
                }
                parsed
            }
        };
        let (Some(from), Some(to), Some(kind)) = (from, to, kind) else {
            continue;
        };
        if to < from {
            let s = c.to.as_ref().map(|t| t.span()).unwrap_or(span.clone());
            ck.issue(
                Some(s),
                format!("closure[{i}].to"),
                format!("结束日期 {to} 早于开始日期 {from}"),
                format!("end date {to} is before start date {from}"),
            );
            continue;
        }
        if let Some(y) = year {
            for (d, field, value_span) in [
                (from, "from", c.from.span()),
                (
                    to,
                    "to",
                    c.to.as_ref().map(|t| t.span()).unwrap_or(c.from.span()),
                ),
            ] {
                if d.year() != y {
                    ck.issue(
                        Some(value_span),
                        format!("closure[{i}].{field}"),
                        format!(
                            "日期 {d} 不在声明的年份 {y} 内（跨年的休市段请拆开，各自写入所在年份的文件）"
                        ),
                        format!(
                            "date {d} is outside the declared year {y} (split a range that crosses the year boundary into each year's file)"
                        ),
                    );
                }
            }
        }
        closures.push((
            Closure {
                from,
                to,
                reason_zh,
                reason_en,
                kind,
                note: c.note.clone(),
            },
            span,
            i,
        ));
    }

    // Overlapping or duplicate closure ranges.
    let mut sorted: Vec<&(Closure, std::ops::Range<usize>, usize)> = closures.iter().collect();
    sorted.sort_by_key(|(c, _, i)| (c.from, c.to, *i));
    let mut overlap_issues = Vec::new();
    for pair in sorted.windows(2) {
        let (a, _, ia) = pair[0];
        let (b, span_b, ib) = pair[1];
        if b.from <= a.to {
            let what = if a.from == b.from && a.to == b.to {
                ("重复", "duplicates")
            } else {
                ("重叠", "overlaps")
            };
            overlap_issues.push((
                span_b.clone(),
                format!("closure[{ib}]"),
                format!(
                    "休市段 {}..{} 与 closure[{ia}] {}..{} {}",
                    b.from, b.to, a.from, a.to, what.0
                ),
                format!(
                    "closure {}..{} {} closure[{ia}] {}..{}",
                    b.from, b.to, what.1, a.from, a.to
                ),
            ));
        }
    }
    for (s, f, zh, en) in overlap_issues {
        ck.issue(Some(s), f, zh, en);
    }

    let mut makeups: Vec<MakeupWorkday> = Vec::new();
    let mut makeup_dates = BTreeSet::new();
    for (i, m) in raw.makeup_workday.iter().enumerate() {
        let span = m.span();
        let m = m.get_ref();
        let field = format!("makeup_workday[{i}].date");
        let date = ck.date(&m.date, &field);
        let reason_zh = ck.non_empty(&m.reason_zh, &format!("makeup_workday[{i}].reason_zh"));
        let reason_en = ck.non_empty(&m.reason_en, &format!("makeup_workday[{i}].reason_en"));
        let Some(date) = date else { continue };
        if let Some(y) = year
            && date.year() != y
        {
            ck.issue(
                Some(m.date.span()),
                &field,
                format!("日期 {date} 不在声明的年份 {y} 内"),
                format!("date {date} is outside the declared year {y}"),
            );
        }
        if !is_weekend(date) {
            ck.issue(
                Some(m.date.span()),
                &field,
                format!(
                    "{date} 是工作日（{}），调休上班日只能是周六或周日",
                    weekday_zh(date)
                ),
                format!(
                    "{date} is a weekday ({}); a make-up workday must be a Saturday or Sunday",
                    date.weekday()
                ),
            );
        }
        if !makeup_dates.insert(date) {
            ck.issue(
                Some(span.clone()),
                &field,
                format!("调休上班日 {date} 重复"),
                format!("duplicate make-up workday {date}"),
            );
        }
        if let Some((c, _, ci)) = closures.iter().find(|(c, _, _)| c.contains(date)) {
            ck.issue(
                Some(span),
                &field,
                format!(
                    "调休上班日 {date} 落在休市段 closure[{ci}] {}..{} 内",
                    c.from, c.to
                ),
                format!(
                    "make-up workday {date} lies inside closure[{ci}] {}..{}",
                    c.from, c.to
                ),
            );
        }
        makeups.push(MakeupWorkday {
            date,
            reason_zh,
            reason_en,
        });
    }

    let mut closures: Vec<Closure> = closures.into_iter().map(|(c, _, _)| c).collect();
    closures.sort_by_key(|c| (c.from, c.to));
    makeups.sort_by_key(|m| m.date);
    let Some(year) = year else {
        return Err(ck.issues);
    };
    let file = YearFile {
        source: ck.file.to_string(),
        calendars,
        year,
        sources: raw.sources,
        note: raw.note,
        data: YearData {
            closures,
            makeup_workdays: makeups,
        },
    };
    ck.into_result(file)
}

fn weekday_zh(d: NaiveDate) -> &'static str {
    match d.weekday() {
        Weekday::Mon => "星期一",
        Weekday::Tue => "星期二",
        Weekday::Wed => "星期三",
        Weekday::Thu => "星期四",
        Weekday::Fri => "星期五",
        Weekday::Sat => "星期六",
        Weekday::Sun => "星期日",
    }
}

fn check_definition(
    mut ck: Checker<'_>,
    raw: RawDefinitionFile,
) -> Result<CalendarDef, Vec<ValidationIssue>> {
    check_schema(&mut ck, &raw.schema);
    let cal = &raw.calendar;
    let id = cal.id.get_ref().trim().to_string();
    if !is_identifier(&id) {
        ck.issue(
            Some(cal.id.span()),
            "calendar.id",
            format!("日历标识 \"{id}\" 无效：只能用小写字母、数字、- 和 _"),
            format!("invalid calendar id \"{id}\": use lower-case letters, digits, - and _"),
        );
    }
    let name_zh = ck.non_empty(&cal.name_zh, "calendar.name_zh");
    let name_en = ck.non_empty(&cal.name_en, "calendar.name_en");
    let timezone =
        match &cal.timezone {
            None => Some(chrono_tz::Asia::Shanghai),
            Some(tz) => {
                let parsed = tz.get_ref().parse::<Tz>().ok();
                if parsed.is_none() {
                    ck.issue(
                    Some(tz.span()),
                    "calendar.timezone",
                    format!("未知时区 \"{}\"（应为 IANA 名称，如 Asia/Shanghai）", tz.get_ref()),
                    format!(
                        "unknown time zone \"{}\" (expected an IANA name such as Asia/Shanghai)",
                        tz.get_ref()
                    ),
                );
                }
                parsed
            }
        };

    let mut sessions: Vec<SessionVersion> = Vec::new();
    if raw.session.is_empty() {
        ck.issue(
            None,
            "session",
            "至少需要一个 [[session]] 交易时段版本",
            "at least one [[session]] version is required",
        );
    }
    for (si, s) in raw.session.iter().enumerate() {
        let s_span = s.span();
        let s = s.get_ref();
        let eff = ck.date(&s.effective_from, &format!("session[{si}].effective_from"));
        let mut phases: Vec<PhaseSpan> = Vec::new();
        if s.phases.is_empty() {
            ck.issue(
                Some(s_span.clone()),
                format!("session[{si}].phases"),
                "至少需要一个阶段",
                "at least one phase is required",
            );
        }
        for (pi, p) in s.phases.iter().enumerate() {
            let p_span = p.span();
            let p = p.get_ref();
            let base = format!("session[{si}].phases[{pi}]");
            let phase = Phase::parse(p.phase.get_ref()).filter(|ph| *ph != Phase::Closed);
            if phase.is_none() {
                let names: Vec<&str> = Phase::CONFIGURABLE.iter().map(|p| p.as_str()).collect();
                ck.issue(
                    Some(p.phase.span()),
                    format!("{base}.phase"),
                    format!(
                        "未知阶段 \"{}\"，可选：{}",
                        p.phase.get_ref(),
                        names.join("、")
                    ),
                    format!(
                        "unknown phase \"{}\", expected one of: {}",
                        p.phase.get_ref(),
                        names.join(", ")
                    ),
                );
            }
            let start = ck.time(&p.start, &format!("{base}.start"));
            let end = ck.time(&p.end, &format!("{base}.end"));
            let (Some(phase), Some(start), Some(end)) = (phase, start, end) else {
                continue;
            };
            if end <= start {
                ck.issue(
                    Some(p.end.span()),
                    format!("{base}.end"),
                    format!("结束时刻 {end} 必须晚于开始时刻 {start}"),
                    format!("end {end} must be after start {start}"),
                );
                continue;
            }
            if let Some(prev) = phases.last()
                && start < prev.end
            {
                ck.issue(
                    Some(p_span),
                    &base,
                    format!(
                        "阶段 {start}–{end} 与前一阶段 {}–{} 重叠或顺序错误（阶段须按时间先后排列）",
                        prev.start, prev.end
                    ),
                    format!(
                        "phase {start}–{end} overlaps or precedes the previous phase {}–{} (phases must be in time order)",
                        prev.start, prev.end
                    ),
                );
                continue;
            }
            phases.push(PhaseSpan { phase, start, end });
        }
        if let Some(eff) = eff {
            if let Some(prev) = sessions.last()
                && eff <= prev.effective_from
            {
                ck.issue(
                    Some(s.effective_from.span()),
                    format!("session[{si}].effective_from"),
                    format!(
                        "生效日期 {eff} 必须晚于上一版本的 {}（版本须按生效日期先后排列）",
                        prev.effective_from
                    ),
                    format!(
                        "effective_from {eff} must be after the previous version's {} (versions must be in date order)",
                        prev.effective_from
                    ),
                );
            }
            sessions.push(SessionVersion {
                effective_from: eff,
                phases,
                note: s.note.clone(),
            });
        }
    }

    let Some(timezone) = timezone else {
        return Err(ck.issues);
    };
    let def = CalendarDef {
        source: ck.file.to_string(),
        id,
        name_zh,
        name_en,
        timezone,
        makeup_workdays_open: cal.makeup_workdays_open.unwrap_or(false),
        sessions,
        note: cal.note.clone(),
    };
    ck.into_result(def)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<ValidationIssue> {
        match parse_calendar_file("t.toml", text) {
            Err(CalendarError::Invalid(i)) => i.0,
            other => panic!("expected validation issues, got {other:?}"),
        }
    }

    const HEADER: &str = "schema = 1\ncalendars = [\"sse\"]\nyear = 2026\n";

    #[test]
    fn valid_year_file_parses() {
        let text = format!(
            "{HEADER}\n[[closure]]\nfrom = 2026-02-15\nto = 2026-02-23\nreason_zh = \"春节\"\nreason_en = \"Spring Festival\"\n\n[[makeup_workday]]\ndate = 2026-02-14\nreason_zh = \"春节调休\"\nreason_en = \"Spring Festival make-up workday\"\n"
        );
        let CalendarFile::Year(y) = parse_calendar_file("t.toml", &text).unwrap() else {
            panic!("not a year file");
        };
        assert_eq!(y.year, 2026);
        assert_eq!(y.data.closures.len(), 1);
        assert_eq!(y.data.closures[0].kind, ClosureKind::PublicHoliday);
        assert_eq!(y.data.makeup_workdays.len(), 1);
    }

    #[test]
    fn unknown_key_is_reported_with_line() {
        let text = format!(
            "{HEADER}\n[[closure]]\nfrom = 2026-02-16\nreason_zh = \"春节\"\nreason_en = \"x\"\ncolour = \"red\"\n"
        );
        let i = issues(&text);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].line, Some(9));
        assert_eq!(i[0].field, "colour");
        assert!(i[0].message_en.contains("unknown field"), "{:?}", i[0]);
        assert!(i[0].message_zh.contains("未知字段"));
    }

    #[test]
    fn date_outside_year_is_rejected() {
        let text = format!(
            "{HEADER}\n[[closure]]\nfrom = 2025-12-31\nto = 2026-01-01\nreason_zh = \"元旦\"\nreason_en = \"New Year\"\n"
        );
        let i = issues(&text);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].field, "closure[0].from");
        assert_eq!(i[0].line, Some(6));
        assert!(i[0].message_en.contains("outside the declared year 2026"));
    }

    #[test]
    fn makeup_on_weekday_is_rejected() {
        let text = format!(
            "{HEADER}\n[[makeup_workday]]\ndate = 2026-02-13\nreason_zh = \"x\"\nreason_en = \"y\"\n"
        );
        let i = issues(&text);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].field, "makeup_workday[0].date");
        assert!(i[0].message_zh.contains("星期五"));
    }

    #[test]
    fn overlapping_and_duplicate_closures_are_rejected() {
        let c = |f: &str, t: &str| {
            format!("[[closure]]\nfrom = {f}\nto = {t}\nreason_zh = \"a\"\nreason_en = \"b\"\n")
        };
        let text = format!(
            "{HEADER}{}{}{}",
            c("2026-05-01", "2026-05-05"),
            c("2026-05-04", "2026-05-06"),
            c("2026-05-01", "2026-05-05")
        );
        let i = issues(&text);
        assert_eq!(i.len(), 2, "{i:?}");
        assert!(i.iter().any(|x| x.message_en.contains("duplicates")));
        assert!(i.iter().any(|x| x.message_en.contains("overlaps")));
    }

    #[test]
    fn makeup_inside_closure_and_reversed_range_are_rejected() {
        let text = format!(
            "{HEADER}[[closure]]\nfrom = 2026-10-01\nto = 2026-10-07\nreason_zh = \"国庆\"\nreason_en = \"National Day\"\n[[closure]]\nfrom = 2026-06-21\nto = 2026-06-19\nreason_zh = \"端午\"\nreason_en = \"Dragon Boat\"\n[[makeup_workday]]\ndate = 2026-10-03\nreason_zh = \"x\"\nreason_en = \"y\"\n"
        );
        let i = issues(&text);
        assert_eq!(i.len(), 2, "{i:?}");
        assert!(i.iter().any(|x| x.field == "closure[1].to"));
        assert!(
            i.iter()
                .any(|x| x.message_en.contains("lies inside closure[0]"))
        );
    }

    #[test]
    fn unknown_kind_and_bad_schema() {
        let text = "schema = 2\ncalendars = [\"sse\"]\nyear = 2026\n[[closure]]\nfrom = 2026-01-01\nreason_zh = \"元旦\"\nreason_en = \"New Year\"\nkind = \"festival\"\n";
        let i = issues(text);
        assert_eq!(i.len(), 2, "{i:?}");
        assert_eq!(i[0].field, "schema");
        assert_eq!(i[1].field, "closure[0].kind");
        assert_eq!(i[1].line, Some(8));
    }

    #[test]
    fn syntax_error_has_line() {
        let i = issues("schema = 1\nyear = \n");
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].line, Some(2));
    }

    #[test]
    fn definition_file_parses_and_checks_phases() {
        let text = r#"schema = 1
[calendar]
id = "x"
name_zh = "某"
name_en = "X"

[[session]]
effective_from = 2015-01-01
phases = [
  { phase = "continuous_trading", start = "09:30", end = "11:30" },
  { phase = "lunch_break", start = "11:00", end = "13:00" },
  { phase = "bogus", start = "13:00", end = "15:00" },
]
"#;
        let i = issues(text);
        assert_eq!(i.len(), 2, "{i:?}");
        assert_eq!(i[0].field, "session[0].phases[1]");
        assert_eq!(i[0].line, Some(11));
        assert_eq!(i[1].field, "session[0].phases[2].phase");
    }
}
