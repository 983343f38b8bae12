//! `ballast calendar ...`: trading-calendar queries, schedule previews, and the
//! validate/import workflow for next year's closure notice.
//!
//! Exit codes: 0 = yes / success; 1 = no (not a trading day) or an invalid file;
//! 2 = not covered by the calendar data, bad arguments, or an IO problem. Errors are
//! printed in Chinese and English on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ballast_calendar::{
    Calendar, CalendarError, CalendarFile, CalendarSet, Layer, Schedule, Tz, YearData, diff,
    parse_calendar_file, preview,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};

/// Options shared by the query subcommands.
#[derive(clap::Args, Debug, Clone)]
pub struct CalendarSelect {
    /// Calendar id: sse, szse, or a custom calendar from --calendar-dir.
    #[arg(long, default_value = "sse")]
    pub calendar: String,
    /// Directory of extra or overriding calendar files (*.toml).
    #[arg(long, value_name = "DIR")]
    pub calendar_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CalendarCmd {
    /// Print the trading days in [--from, --to], one ISO date per line.
    TradingDays {
        #[command(flatten)]
        select: CalendarSelect,
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
    },
    /// Exit 0 if DATE is a trading day, 1 if not, 2 if the calendar does not cover it.
    IsTradingDay {
        #[command(flatten)]
        select: CalendarSelect,
        #[arg(value_name = "YYYY-MM-DD")]
        date: String,
    },
    /// The market phase at an instant (RFC 3339, e.g. 2026-03-02T10:00:00+08:00; without
    /// an offset the calendar's local time is assumed).
    Phase {
        #[command(flatten)]
        select: CalendarSelect,
        #[arg(value_name = "INSTANT")]
        instant: String,
    },
    /// The N-th trading day after DATE (T+N).
    Next {
        #[command(flatten)]
        select: CalendarSelect,
        #[arg(value_name = "YYYY-MM-DD")]
        date: String,
        #[arg(short = 'n', default_value_t = 1)]
        n: u32,
    },
    /// The N-th trading day before DATE (T−N).
    Prev {
        #[command(flatten)]
        select: CalendarSelect,
        #[arg(value_name = "YYYY-MM-DD")]
        date: String,
        #[arg(short = 'n', default_value_t = 1)]
        n: u32,
    },
    /// First and last covered dates, and whether the data runs out within 60 days.
    Coverage {
        #[command(flatten)]
        select: CalendarSelect,
        /// The date to measure from (default: today in Asia/Shanghai).
        #[arg(long, value_name = "YYYY-MM-DD")]
        today: Option<String>,
    },
    /// Next fire times of a calendar-aware schedule and the days it skips, e.g.
    /// "30 8 * * * @trading", "0 18 * * * @last-trading-day-of-month".
    SchedulePreview {
        #[command(flatten)]
        select: CalendarSelect,
        #[arg(value_name = "EXPRESSION")]
        expression: String,
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Start instant or date (default: now).
        #[arg(long, value_name = "INSTANT|YYYY-MM-DD")]
        from: Option<String>,
    },
    /// Validate a calendar file (definition or year file), also against what is loaded.
    Validate {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "DIR")]
        calendar_dir: Option<PathBuf>,
    },
    /// Validate FILE, show what changes, and with --yes copy it into DIR — or, with --server,
    /// send it to a Ballast server (which validates, shows the difference, and with --yes writes
    /// it into its data directory, audits the import and reloads).
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "server",
            conflicts_with = "server"
        )]
        calendar_dir: Option<PathBuf>,
        /// Base URL of a Ballast server, e.g. http://127.0.0.1:8600.
        #[arg(long, value_name = "URL", requires = "token")]
        server: Option<String>,
        /// API token of a holder of calendar.manage (or BALLAST_TOKEN).
        #[arg(
            long,
            value_name = "TOKEN",
            env = "BALLAST_TOKEN",
            hide_env_values = true
        )]
        token: Option<String>,
        /// Write the file (without it, only show the diff).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a calendar subcommand; errors go to stderr. Returns the exit code.
pub fn run(cmd: CalendarCmd, out: &mut dyn Write) -> anyhow::Result<i32> {
    let mut err = std::io::stderr();
    run_with(cmd, out, &mut err)
}

/// Like [`run`], with stderr given (for tests).
pub fn run_with(cmd: CalendarCmd, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<i32> {
    match execute(cmd, out, err)? {
        Ok(code) => Ok(code),
        Err(failure) => {
            writeln!(err, "{}", failure.message_zh)?;
            writeln!(err, "{}", failure.message_en)?;
            Ok(failure.code)
        }
    }
}

/// A failure to report on stderr with an exit code.
struct Failure {
    code: i32,
    message_zh: String,
    message_en: String,
}

impl Failure {
    fn usage(zh: impl Into<String>, en: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message_zh: format!("错误：{}", zh.into()),
            message_en: format!("error: {}", en.into()),
        }
    }
}

impl From<CalendarError> for Failure {
    fn from(e: CalendarError) -> Failure {
        let code = match e {
            CalendarError::Invalid(_) => 1,
            _ => 2,
        };
        Failure {
            code,
            message_zh: format!("错误 [{}]：{}", e.code(), e.message_zh()),
            message_en: format!("error [{}]: {}", e.code(), e.message_en()),
        }
    }
}

type Outcome = Result<i32, Failure>;

fn parse_date(s: &str) -> Result<NaiveDate, Failure> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        Failure::usage(
            format!("日期 \"{s}\" 无效，格式应为 YYYY-MM-DD"),
            format!("invalid date \"{s}\": expected YYYY-MM-DD"),
        )
    })
}

/// RFC 3339 with offset; or a local date-time / date in `tz`.
fn parse_instant(s: &str, tz: Tz) -> Result<DateTime<Utc>, Failure> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        });
    naive
        .and_then(|n| tz.from_local_datetime(&n).earliest())
        .map(|d| d.with_timezone(&Utc))
        .ok_or_else(|| {
            Failure::usage(
                format!("时刻 \"{s}\" 无效，应为 RFC 3339（如 2026-03-02T10:00:00+08:00）或 YYYY-MM-DD"),
                format!(
                    "invalid instant \"{s}\": expected RFC 3339 (e.g. 2026-03-02T10:00:00+08:00) or YYYY-MM-DD"
                ),
            )
        })
}

/// The wall clock, read only at this edge.
#[allow(clippy::disallowed_methods)]
fn wall_clock_now() -> DateTime<Utc> {
    Utc::now()
}

/// Reads every `*.toml` file of a calendar directory (not recursive, in name order).
fn read_calendar_dir(dir: &Path) -> Result<Layer, Failure> {
    let io = |path: &Path, e: std::io::Error| {
        Failure::usage(
            format!("无法读取 {}：{e}", path.display()),
            format!("cannot read {}: {e}", path.display()),
        )
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut sources = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        sources.push((path.display().to_string(), text));
    }
    Ok(Layer::from_sources(&dir.display().to_string(), &sources)?)
}

/// The bundled calendars plus those of `--calendar-dir`.
fn load(dir: Option<&Path>) -> Result<CalendarSet, Failure> {
    let extra = match dir {
        Some(d) => Some(read_calendar_dir(d)?),
        None => None,
    };
    Ok(CalendarSet::with_extra(extra)?)
}

fn calendar<'a>(set: &'a CalendarSet, id: &str) -> Result<&'a Calendar, Failure> {
    set.get(id).map_err(Failure::from)
}

fn execute(cmd: CalendarCmd, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Outcome> {
    Ok(match cmd {
        CalendarCmd::TradingDays { select, from, to } => trading_days(&select, &from, &to, out)?,
        CalendarCmd::IsTradingDay { select, date } => is_trading_day(&select, &date, out)?,
        CalendarCmd::Phase { select, instant } => phase(&select, &instant, out)?,
        CalendarCmd::Next { select, date, n } => step(&select, &date, i64::from(n), out)?,
        CalendarCmd::Prev { select, date, n } => step(&select, &date, -i64::from(n), out)?,
        CalendarCmd::Coverage { select, today } => coverage(&select, today.as_deref(), out)?,
        CalendarCmd::SchedulePreview {
            select,
            expression,
            count,
            from,
        } => schedule_preview(&select, &expression, count, from.as_deref(), out, err)?,
        CalendarCmd::Validate { file, calendar_dir } => {
            validate(&file, calendar_dir.as_deref(), out)?
        }
        CalendarCmd::Import {
            file,
            calendar_dir,
            server,
            token,
            yes,
        } => match (server, calendar_dir) {
            (Some(server), _) => import_to_server(
                &file,
                &server,
                token.as_deref().unwrap_or_default(),
                yes,
                out,
            )?,
            (None, Some(dir)) => import(&file, &dir, yes, out)?,
            (None, None) => Err(Failure::usage(
                "需要 --calendar-dir DIR 或 --server URL",
                "--calendar-dir DIR or --server URL is required",
            )),
        },
    })
}

fn trading_days(
    select: &CalendarSelect,
    from: &str,
    to: &str,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let days = (|| -> Result<Vec<NaiveDate>, Failure> {
        let (from, to) = (parse_date(from)?, parse_date(to)?);
        let set = load(select.calendar_dir.as_deref())?;
        Ok(calendar(&set, &select.calendar)?.trading_days(from, to)?)
    })();
    match days {
        Ok(days) => {
            for d in days {
                writeln!(out, "{d}")?;
            }
            Ok(Ok(0))
        }
        Err(f) => Ok(Err(f)),
    }
}

fn is_trading_day(
    select: &CalendarSelect,
    date: &str,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let info = (|| -> Result<_, Failure> {
        let date = parse_date(date)?;
        let set = load(select.calendar_dir.as_deref())?;
        Ok(calendar(&set, &select.calendar)?.day_info(date)?)
    })();
    match info {
        Ok(info) => {
            if info.open {
                writeln!(
                    out,
                    "{} {}: 是交易日 / trading day",
                    info.date, select.calendar
                )?;
                Ok(Ok(0))
            } else {
                writeln!(
                    out,
                    "{} {}: 非交易日 / not a trading day: {} / {}",
                    info.date,
                    select.calendar,
                    info.describe_zh(),
                    info.describe_en()
                )?;
                Ok(Ok(1))
            }
        }
        Err(f) => Ok(Err(f)),
    }
}

fn phase(select: &CalendarSelect, instant: &str, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let result = (|| -> Result<_, Failure> {
        let set = load(select.calendar_dir.as_deref())?;
        let cal = calendar(&set, &select.calendar)?;
        let at = parse_instant(instant, cal.timezone())?;
        Ok((cal.phase_at(&at)?, cal.timezone()))
    })();
    match result {
        Ok((p, tz)) => {
            let local = tz
                .from_local_datetime(&p.local)
                .earliest()
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| p.local.to_string());
            let span = match (p.phase_start, p.phase_end) {
                (Some(s), Some(e)) => format!(" ({}–{})", s.format("%H:%M"), e.format("%H:%M")),
                _ => String::new(),
            };
            let day = if p.day.open {
                String::new()
            } else {
                format!(" — {} / {}", p.day.describe_zh(), p.day.describe_en())
            };
            writeln!(
                out,
                "{local} {} {} {} / {}{span}{day}",
                p.calendar,
                p.phase.as_str(),
                p.phase.label_zh(),
                p.phase.label_en()
            )?;
            Ok(Ok(0))
        }
        Err(f) => Ok(Err(f)),
    }
}

fn step(
    select: &CalendarSelect,
    date: &str,
    n: i64,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let result = (|| -> Result<NaiveDate, Failure> {
        let date = parse_date(date)?;
        let n = i32::try_from(n).map_err(|_| Failure::usage("N 太大", "N is too large"))?;
        let set = load(select.calendar_dir.as_deref())?;
        let cal = calendar(&set, &select.calendar)?;
        // `next DATE -n 1` is the first trading day strictly after DATE, from any day.
        let mut d = date;
        for _ in 0..n.unsigned_abs() {
            d = if n > 0 {
                cal.next_trading_day(d)?
            } else {
                cal.prev_trading_day(d)?
            };
        }
        Ok(d)
    })();
    match result {
        Ok(d) => {
            writeln!(out, "{d}")?;
            Ok(Ok(0))
        }
        Err(f) => Ok(Err(f)),
    }
}

fn coverage(
    select: &CalendarSelect,
    today: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let result = (|| -> Result<_, Failure> {
        let set = load(select.calendar_dir.as_deref())?;
        let cal = calendar(&set, &select.calendar)?;
        let today = match today {
            Some(t) => parse_date(t)?,
            None => cal.local_date(&wall_clock_now()),
        };
        Ok((cal.coverage(), today))
    })();
    match result {
        Ok((cov, today)) => {
            let left = cov.days_remaining(today);
            writeln!(
                out,
                "{}: {} .. {} ({left} 天剩余 / days left)",
                select.calendar, cov.first, cov.last
            )?;
            if cov.ends_within(today, ballast_calendar::COVERAGE_WARNING_DAYS) {
                writeln!(
                    out,
                    "警告：交易日历 {} 的数据将在 {} 后用尽，请导入下一年的休市安排 / warning: calendar {} data ends on {}; import next year's closure notice",
                    select.calendar, cov.last, select.calendar, cov.last
                )?;
            }
            Ok(Ok(0))
        }
        Err(f) => Ok(Err(f)),
    }
}

fn schedule_preview(
    select: &CalendarSelect,
    expression: &str,
    count: usize,
    from: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let result = (|| -> Result<_, Failure> {
        let set = load(select.calendar_dir.as_deref())?;
        let cal = calendar(&set, &select.calendar)?;
        let schedule = Schedule::parse_with_default_timezone(expression, cal.timezone())?;
        let from = match from {
            Some(f) => parse_instant(f, schedule.timezone())?,
            None => wall_clock_now(),
        };
        let p = preview(&schedule, cal, from, count)?;
        Ok((schedule, p))
    })();
    let (schedule, p) = match result {
        Ok(x) => x,
        Err(f) => return Ok(Err(f)),
    };
    writeln!(out, "# {}", schedule.describe_zh())?;
    writeln!(out, "# {}", schedule.describe_en())?;
    for f in &p.fires {
        writeln!(
            out,
            "{}",
            f.at.with_timezone(&schedule.timezone()).to_rfc3339()
        )?;
    }
    if !p.skipped.is_empty() {
        writeln!(out, "# 跳过 / skipped:")?;
        for s in &p.skipped {
            writeln!(out, "{} / {}", s.render_zh(), s.render_en())?;
        }
    }
    if let Some(e) = p.stopped {
        writeln!(
            err,
            "预览在交易日历数据结束处停止（{}） / preview stopped where the calendar data ends ({})",
            e.message_zh(),
            e.message_en()
        )?;
        return Ok(Ok(2));
    }
    Ok(Ok(0))
}

fn read_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::usage(
            format!("无法读取 {}：{e}", path.display()),
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// Parses FILE and checks that the loaded calendars plus FILE still form valid
/// calendars (known calendar ids, contiguous years, sessions covering the data).
fn check_in_context(
    file: &Path,
    dir: Option<&Path>,
) -> Result<(CalendarFile, CalendarSet, CalendarSet), Failure> {
    let text = read_file(file)?;
    let parsed = parse_calendar_file(&file.display().to_string(), &text)?;
    let current = load(dir)?;
    let mut layers = vec![ballast_calendar::bundled::layer()?];
    let mut dir_layer = match dir {
        Some(d) if d.is_dir() => read_calendar_dir(d)?,
        _ => Layer {
            name: "dir".to_string(),
            files: Vec::new(),
        },
    };
    // The imported file replaces a same-named file in DIR.
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    if let (Some(d), Some(name)) = (dir, &name) {
        let target = d.join(name).display().to_string();
        dir_layer.files.retain(|f| f.source() != target);
    }
    dir_layer.files.push(parsed.clone());
    layers.push(dir_layer);
    let after = CalendarSet::from_layers(layers)?;
    Ok((parsed, current, after))
}

fn describe_file(f: &CalendarFile) -> (String, String) {
    match f {
        CalendarFile::Year(y) => (
            format!(
                "年度文件：{} 年，交易日历 {}，{} 个休市段，{} 个调休上班日",
                y.year,
                y.calendars.join("、"),
                y.data.closures.len(),
                y.data.makeup_workdays.len()
            ),
            format!(
                "year file: {}, calendars {}, {} closures, {} make-up workdays",
                y.year,
                y.calendars.join(", "),
                y.data.closures.len(),
                y.data.makeup_workdays.len()
            ),
        ),
        CalendarFile::Definition(d) => (
            format!(
                "定义文件：交易日历 {}（{}），{} 个交易时段版本",
                d.id,
                d.name_zh,
                d.sessions.len()
            ),
            format!(
                "definition file: calendar {} ({}), {} session versions",
                d.id,
                d.name_en,
                d.sessions.len()
            ),
        ),
    }
}

fn validate(file: &Path, dir: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match check_in_context(file, dir) {
        Ok((parsed, _, _)) => {
            let (zh, en) = describe_file(&parsed);
            writeln!(out, "有效 / valid: {}", file.display())?;
            writeln!(out, "{zh}")?;
            writeln!(out, "{en}")?;
            Ok(Ok(0))
        }
        Err(f) => Ok(Err(f)),
    }
}

fn import(file: &Path, dir: &Path, yes: bool, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if !dir.is_dir() {
        return Ok(Err(Failure::usage(
            format!("目录 {} 不存在", dir.display()),
            format!("directory {} does not exist", dir.display()),
        )));
    }
    let (parsed, current, after) = match check_in_context(file, Some(dir)) {
        Ok(x) => x,
        Err(f) => return Ok(Err(f)),
    };
    let (zh, en) = describe_file(&parsed);
    writeln!(out, "{zh}")?;
    writeln!(out, "{en}")?;
    match &parsed {
        CalendarFile::Year(y) => {
            for cal_id in &y.calendars {
                let old = current
                    .get(cal_id)
                    .ok()
                    .and_then(|c| c.year(y.year))
                    .map(|f| f.data.clone())
                    .unwrap_or_else(YearData::default);
                let d = diff(&old, &y.data);
                writeln!(out, "## {cal_id} {}:", y.year)?;
                if d.is_empty() {
                    writeln!(out, "  无变化 / no change")?;
                }
                for line in d.render() {
                    writeln!(out, "  {line}")?;
                }
                if let Ok(c) = after.get(cal_id) {
                    let cov = c.coverage();
                    writeln!(
                        out,
                        "  导入后覆盖 / coverage after import: {} .. {}",
                        cov.first, cov.last
                    )?;
                }
            }
        }
        CalendarFile::Definition(d) => {
            let existed = current.get(&d.id).is_ok();
            writeln!(
                out,
                "## {}: {}",
                d.id,
                if existed {
                    "替换现有定义 / replaces the loaded definition"
                } else {
                    "新增交易日历 / new calendar"
                }
            )?;
        }
    }
    let Some(name) = file.file_name() else {
        return Ok(Err(Failure::usage("文件名无效", "invalid file name")));
    };
    let target = dir.join(name);
    if !yes {
        writeln!(
            out,
            "未写入（演练）。确认无误后加 --yes 写入 {} / dry run: nothing written; re-run with --yes to write {}",
            target.display(),
            target.display()
        )?;
        return Ok(Ok(0));
    }
    let text = match read_file(file) {
        Ok(t) => t,
        Err(f) => return Ok(Err(f)),
    };
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &target).with_context(|| format!("writing {}", target.display()))?;
    writeln!(out, "已写入 / written: {}", target.display())?;
    writeln!(
        out,
        "注意：此命令只写入文件，不留审计记录；对服务器请用 --server URL --token T（校验、审计并重新加载） / note: this only writes the file, without an audit record; for a server use --server URL --token T (validated, audited, reloaded)"
    )?;
    Ok(Ok(0))
}

/// A file name the server accepts as the target name (else it derives one from the content).
fn server_file_name(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    let ok = name.len() <= 100
        && name.len() > 5
        && name.ends_with(".toml")
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    ok.then(|| name.to_string())
}

/// `import --server`: POSTs the file to `/api/v1/calendars/import` (dry run unless `--yes`) and
/// prints the server's difference. Exit 1 for invalid data, 2 for other refusals.
fn import_to_server(
    file: &Path,
    server: &str,
    token: &str,
    yes: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let text = match read_file(file) {
        Ok(t) => t,
        Err(f) => return Ok(Err(f)),
    };
    let mut url = format!(
        "{}/api/v1/calendars/import?dry_run={}",
        server.trim_end_matches('/'),
        !yes
    );
    if let Some(name) = server_file_name(file) {
        url.push_str(&format!("&name={name}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sent = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/toml")
            .body(text)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    });
    let (status, body) = match sent {
        Ok(x) => x,
        Err(e) => {
            return Ok(Err(Failure::usage(
                format!("无法连接服务器 {server}：{e}"),
                format!("cannot reach the server {server}: {e}"),
            )));
        }
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    if !status.is_success() {
        let code = s(&v["code"]);
        if code.is_empty() {
            return Ok(Err(Failure::usage(
                format!("服务器返回 {status}：{body}"),
                format!("the server answered {status}: {body}"),
            )));
        }
        return Ok(Err(Failure {
            code: if code == "calendar.invalid_data" {
                1
            } else {
                2
            },
            message_zh: format!("错误 [{code}]：{}", s(&v["details"]["message_zh"])),
            message_en: format!("error [{code}]: {}", s(&v["details"]["message_en"])),
        }));
    }
    writeln!(out, "{}", s(&v["summary_zh"]))?;
    writeln!(out, "{}", s(&v["summary_en"]))?;
    for line in v["lines"].as_array().into_iter().flatten() {
        writeln!(out, "{}", s(line))?;
    }
    let target = s(&v["file"]);
    if v["applied"].as_bool() == Some(true) {
        writeln!(
            out,
            "已在服务器导入并记入审计 / imported on the server and audited: {target}"
        )?;
    } else {
        writeln!(
            out,
            "未写入（演练）。确认无误后加 --yes 在服务器导入 {target} / dry run: nothing written; re-run with --yes to import {target} on the server"
        )?;
    }
    Ok(Ok(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sel() -> CalendarSelect {
        CalendarSelect {
            calendar: "sse".to_string(),
            calendar_dir: None,
        }
    }

    fn run_cmd(cmd: CalendarCmd) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_with(cmd, &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn is_trading_day_exit_codes() {
        let (c, o, _) = run_cmd(CalendarCmd::IsTradingDay {
            select: sel(),
            date: "2026-03-02".to_string(),
        });
        assert_eq!(c, 0);
        assert!(o.contains("trading day"));
        let (c, o, _) = run_cmd(CalendarCmd::IsTradingDay {
            select: sel(),
            date: "2026-02-16".to_string(),
        });
        assert_eq!(c, 1);
        assert!(o.contains("Spring Festival closure"), "{o}");
        let (c, o, e) = run_cmd(CalendarCmd::IsTradingDay {
            select: sel(),
            date: "2027-01-04".to_string(),
        });
        assert_eq!(c, 2);
        assert!(o.is_empty());
        assert!(e.contains("calendar sse not loaded for 2027"), "{e}");
        assert!(e.contains("交易日历 sse 未加载 2027 年数据"), "{e}");
        let (c, _, e) = run_cmd(CalendarCmd::IsTradingDay {
            select: sel(),
            date: "2026-02-30".to_string(),
        });
        assert_eq!(c, 2);
        assert!(
            e.contains("expected YYYY-MM-DD") && e.contains("格式应为"),
            "{e}"
        );
    }

    #[test]
    fn trading_days_next_prev_phase() {
        let (c, o, _) = run_cmd(CalendarCmd::TradingDays {
            select: sel(),
            from: "2026-02-12".to_string(),
            to: "2026-02-25".to_string(),
        });
        assert_eq!(c, 0);
        assert_eq!(o, "2026-02-12\n2026-02-13\n2026-02-24\n2026-02-25\n");
        let (c, o, _) = run_cmd(CalendarCmd::Next {
            select: sel(),
            date: "2026-02-13".to_string(),
            n: 1,
        });
        assert_eq!((c, o.as_str()), (0, "2026-02-24\n"));
        let (c, o, _) = run_cmd(CalendarCmd::Prev {
            select: sel(),
            date: "2026-02-24".to_string(),
            n: 2,
        });
        assert_eq!((c, o.as_str()), (0, "2026-02-12\n"));
        let (c, o, _) = run_cmd(CalendarCmd::Phase {
            select: sel(),
            instant: "2026-03-02T10:00:00+08:00".to_string(),
        });
        assert_eq!(c, 0);
        assert!(
            o.starts_with("2026-03-02T10:00:00+08:00 sse continuous_trading"),
            "{o}"
        );
        let (c, _, e) = run_cmd(CalendarCmd::Phase {
            select: sel(),
            instant: "yesterday".to_string(),
        });
        assert_eq!(c, 2);
        assert!(e.contains("invalid instant"));
        let (c, _, e) = run_cmd(CalendarCmd::Next {
            select: CalendarSelect {
                calendar: "nyse".to_string(),
                calendar_dir: None,
            },
            date: "2026-02-13".to_string(),
            n: 1,
        });
        assert_eq!(c, 2);
        assert!(e.contains("unknown calendar nyse"));
    }

    #[test]
    fn schedule_preview_lists_fires_and_skips() {
        let (c, o, _) = run_cmd(CalendarCmd::SchedulePreview {
            select: sel(),
            expression: "30 8 * * * @trading".to_string(),
            count: 3,
            from: Some("2026-02-12".to_string()),
        });
        assert_eq!(c, 0);
        assert!(
            o.contains(
                "2026-02-12T08:30:00+08:00\n2026-02-13T08:30:00+08:00\n2026-02-24T08:30:00+08:00\n"
            ),
            "{o}"
        );
        assert!(
            o.contains("2026-02-16 skipped: Spring Festival closure"),
            "{o}"
        );
        let (c, _, e) = run_cmd(CalendarCmd::SchedulePreview {
            select: sel(),
            expression: "30 8 * * * @sometimes".to_string(),
            count: 3,
            from: Some("2026-02-12".to_string()),
        });
        assert_eq!(c, 2);
        assert!(e.contains("unknown filter @sometimes"), "{e}");
    }

    #[test]
    fn validate_and_import() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("cn-exchanges-2027.toml");
        std::fs::write(
            &file,
            "schema = 1\ncalendars = [\"sse\", \"szse\"]\nyear = 2027\n[[closure]]\nfrom = 2027-01-01\nreason_zh = \"元旦\"\nreason_en = \"New Year's Day\"\n",
        )
        .unwrap();
        let (c, o, _) = run_cmd(CalendarCmd::Validate {
            file: file.clone(),
            calendar_dir: None,
        });
        assert_eq!(c, 0, "{o}");
        let (c, o, _) = run_cmd(CalendarCmd::Import {
            file: file.clone(),
            calendar_dir: Some(dir.path().to_path_buf()),
            server: None,
            token: None,
            yes: false,
        });
        assert_eq!(c, 0);
        assert!(
            o.contains("+ 休市 closure 2027-01-01..2027-01-01 元旦"),
            "{o}"
        );
        assert!(o.contains("dry run"));
        assert!(!dir.path().join("cn-exchanges-2027.toml").exists());
        let (c, o, _) = run_cmd(CalendarCmd::Import {
            file: file.clone(),
            calendar_dir: Some(dir.path().to_path_buf()),
            server: None,
            token: None,
            yes: true,
        });
        assert_eq!(c, 0);
        assert!(o.contains("written"));
        assert!(dir.path().join("cn-exchanges-2027.toml").exists());
        let (c, _, _) = run_cmd(CalendarCmd::IsTradingDay {
            select: CalendarSelect {
                calendar: "szse".to_string(),
                calendar_dir: Some(dir.path().to_path_buf()),
            },
            date: "2027-01-01".to_string(),
        });
        assert_eq!(c, 1);

        // An invalid file: exit 1, file:line and field on stderr.
        let bad = src.path().join("bad.toml");
        std::fs::write(
            &bad,
            "schema = 1\ncalendars = [\"sse\"]\nyear = 2027\n[[makeup_workday]]\ndate = 2027-01-05\nreason_zh = \"x\"\nreason_en = \"y\"\n",
        )
        .unwrap();
        let (c, _, e) = run_cmd(CalendarCmd::Validate {
            file: bad,
            calendar_dir: None,
        });
        assert_eq!(c, 1);
        assert!(
            e.contains("bad.toml:5:8: field makeup_workday[0].date"),
            "{e}"
        );
        assert!(e.contains("调休上班日只能是周六或周日"), "{e}");
    }
    /// `import --server`: dry run shows the server's difference and writes nothing; `--yes`
    /// imports (the server audits and reloads); invalid data exits 1 with the server's reason.
    #[test]
    fn import_to_a_server() {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = ballast_server::Config {
            data_dir: data.path().to_path_buf(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            ..ballast_server::Config::default()
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let token = rt.block_on(async {
            let state = ballast_server::admin::open(config.clone(), true)
                .await
                .unwrap();
            ballast_server::admin::token_create(&state, "admin", "cli", &[], None)
                .await
                .unwrap()
        });
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let _ = rt.block_on(ballast_server::serve(config));
        });
        let server = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("cn-exchanges-2027.toml");
        std::fs::write(
            &file,
            "schema = 1\ncalendars = [\"sse\", \"szse\"]\nyear = 2027\n[[closure]]\nfrom = 2027-01-01\nreason_zh = \"元旦\"\nreason_en = \"New Year's Day\"\n",
        )
        .unwrap();
        let import = |file: &Path, yes: bool| {
            run_cmd(CalendarCmd::Import {
                file: file.to_path_buf(),
                calendar_dir: None,
                server: Some(server.clone()),
                token: Some(token.clone()),
                yes,
            })
        };
        let target = data.path().join("calendars").join("cn-exchanges-2027.toml");
        let (c, o, e) = import(&file, false);
        assert_eq!(c, 0, "{o}{e}");
        assert!(
            o.contains("+ 休市 closure 2027-01-01..2027-01-01 元旦"),
            "{o}"
        );
        assert!(o.contains("dry run"), "{o}");
        assert!(!target.exists());
        let (c, o, e) = import(&file, true);
        assert_eq!(c, 0, "{o}{e}");
        assert!(o.contains("imported on the server and audited"), "{o}");
        assert!(target.exists());
        let bad = src.path().join("bad.toml");
        std::fs::write(
            &bad,
            "schema = 1\ncalendars = [\"sse\"]\nyear = 2028\n[[makeup_workday]]\ndate = 2028-01-04\nreason_zh = \"x\"\nreason_en = \"y\"\n",
        )
        .unwrap();
        let (c, _, e) = import(&bad, false);
        assert_eq!(c, 1);
        assert!(
            e.contains("bad.toml:5:8: field makeup_workday[0].date"),
            "{e}"
        );
        let (c, _, e) = run_cmd(CalendarCmd::Import {
            file,
            calendar_dir: None,
            server: Some(server.clone()),
            token: Some("blt_wrong".into()),
            yes: false,
        });
        assert_eq!(c, 2);
        assert!(e.contains("auth.required"), "{e}");
    }
}
