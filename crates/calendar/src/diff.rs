//! Differences between two versions of a year's data, shown before an import.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

use crate::model::{Closure, MakeupWorkday, YearData};

/// What changes when `new` replaces `old`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct YearDiff {
    pub added_closures: Vec<Closure>,
    pub removed_closures: Vec<Closure>,
    pub added_makeup_workdays: Vec<MakeupWorkday>,
    pub removed_makeup_workdays: Vec<MakeupWorkday>,
    /// Weekdays that were trading days and no longer are (exchange calendars: make-up
    /// workdays never trade, so this depends on closures only).
    pub trading_days_removed: Vec<NaiveDate>,
    /// Weekdays that become trading days.
    pub trading_days_added: Vec<NaiveDate>,
}

impl YearDiff {
    pub fn is_empty(&self) -> bool {
        self.added_closures.is_empty()
            && self.removed_closures.is_empty()
            && self.added_makeup_workdays.is_empty()
            && self.removed_makeup_workdays.is_empty()
    }

    /// One line per change, in Chinese and English (`+` added, `-` removed).
    pub fn render(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for c in &self.removed_closures {
            lines.push(format!(
                "- 休市 closure {}..{} {} / {} [{}]",
                c.from,
                c.to,
                c.reason_zh,
                c.reason_en,
                c.kind.as_str()
            ));
        }
        for c in &self.added_closures {
            lines.push(format!(
                "+ 休市 closure {}..{} {} / {} [{}]",
                c.from,
                c.to,
                c.reason_zh,
                c.reason_en,
                c.kind.as_str()
            ));
        }
        for m in &self.removed_makeup_workdays {
            lines.push(format!(
                "- 调休上班 make-up workday {} {} / {}",
                m.date, m.reason_zh, m.reason_en
            ));
        }
        for m in &self.added_makeup_workdays {
            lines.push(format!(
                "+ 调休上班 make-up workday {} {} / {}",
                m.date, m.reason_zh, m.reason_en
            ));
        }
        for d in &self.trading_days_removed {
            lines.push(format!("  不再是交易日 no longer a trading day: {d}"));
        }
        for d in &self.trading_days_added {
            lines.push(format!("  新增交易日 becomes a trading day: {d}"));
        }
        lines
    }
}

fn closed_weekdays(data: &YearData) -> BTreeSet<NaiveDate> {
    let mut out = BTreeSet::new();
    for c in &data.closures {
        for d in c.from.iter_days().take_while(|d| *d <= c.to) {
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                out.insert(d);
            }
        }
    }
    out
}

/// Compares two versions of one year's data (`old` empty for a new year).
pub fn diff(old: &YearData, new: &YearData) -> YearDiff {
    let old_c: BTreeSet<&Closure> = old.closures.iter().collect();
    let new_c: BTreeSet<&Closure> = new.closures.iter().collect();
    let old_m: BTreeSet<&MakeupWorkday> = old.makeup_workdays.iter().collect();
    let new_m: BTreeSet<&MakeupWorkday> = new.makeup_workdays.iter().collect();
    let old_closed = closed_weekdays(old);
    let new_closed = closed_weekdays(new);
    YearDiff {
        added_closures: new_c.difference(&old_c).map(|c| (*c).clone()).collect(),
        removed_closures: old_c.difference(&new_c).map(|c| (*c).clone()).collect(),
        added_makeup_workdays: new_m.difference(&old_m).map(|m| (*m).clone()).collect(),
        removed_makeup_workdays: old_m.difference(&new_m).map(|m| (*m).clone()).collect(),
        trading_days_removed: new_closed.difference(&old_closed).copied().collect(),
        trading_days_added: old_closed.difference(&new_closed).copied().collect(),
    }
}
