//! Integration tests of ballast-calendar (one binary; modules beside this file).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod data;
mod loading;
mod policy;
mod queries;
mod schedule;
mod sessions;

use ballast_calendar::{Calendar, CalendarSet};
use chrono::{DateTime, NaiveDate, Utc};
use std::sync::OnceLock;

pub fn set() -> &'static CalendarSet {
    static SET: OnceLock<CalendarSet> = OnceLock::new();
    SET.get_or_init(|| CalendarSet::bundled().expect("bundled calendars load"))
}

pub fn sse() -> &'static Calendar {
    set().get("sse").unwrap()
}

pub fn szse() -> &'static Calendar {
    set().get("szse").unwrap()
}

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// An RFC 3339 instant, e.g. `2026-03-02T10:00:00+08:00`.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
