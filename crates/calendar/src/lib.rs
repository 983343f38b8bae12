//! Ballast trading calendars.
//!
//! * **Calendars as data**: SSE and SZSE closures 2015–2026 bundled from TOML files in
//!   `data/calendar/` (embedded with `include_str!`), extendable and overridable by the
//!   files of a directory that the caller reads ([`Layer::from_sources`],
//!   [`CalendarSet::with_extra`]). Format and update procedure: `docs/CALENDAR.md`.
//! * **Fail closed**: any question about a date outside the loaded years is
//!   [`CalendarError::NotCovered`]; [`Calendar::coverage`] tells a UI when data runs out.
//! * **Sessions**: versioned trading-day phases ([`Calendar::phase_at`]).
//! * **Change windows**: [`policy::evaluate`], the guard function, with emergency
//!   [`policy::Override`]s.
//! * **Schedules**: cron + calendar filter + trading-day offsets ([`schedule::preview`]).
//!
//! Everything here is pure: no wall clock (time is passed in) and no IO (file contents
//! are passed in).

pub mod bundled;
pub mod calendar;
pub mod diff;
pub mod error;
pub mod file;
pub mod model;
pub mod policy;
pub mod schedule;
mod toml_support;

pub use calendar::{
    Calendar, CalendarSet, Coverage, DayInfo, DayKind, Holiday, Layer, NonTradingRun, PhaseAt,
};
/// The time-zone type used throughout (re-exported so callers need no chrono-tz dependency).
pub use chrono_tz::Tz;
pub use diff::{YearDiff, diff};
pub use error::{CalendarError, PolicyError, ValidationIssue, ValidationIssues};
pub use file::{CalendarFile, parse_calendar_file};
pub use model::{
    CalendarDef, Closure, ClosureKind, MakeupWorkday, Phase, PhaseSpan, SessionVersion, YearData,
    YearFile,
};
pub use policy::{
    Approver, DaySelector, Decision, OperationContext, Outcome, Override, OverrideRequest, Policy,
    PolicySet, Rule, Target, TimeWindow, evaluate,
};
pub use schedule::{DayFilter, Fire, Preview, Schedule, Skip, next_fire, preview};

/// The number of days before the end of coverage at which a UI should warn.
pub const COVERAGE_WARNING_DAYS: i64 = 60;
