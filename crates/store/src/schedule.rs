//! Storage of scheduled job runs: the schedules (a plan, an environment, a calendar-aware
//! expression, variables, a catch-up policy, an owner) and the history of their fires.
//!
//! Like [`crate::exec`], two kinds of writes:
//! - **actions** (a schedule created, changed, deleted; an occurrence claimed with the fire
//!   records it produced) go through [`ScheduleTx`], inside a [`crate::Tx`], and are committed
//!   with their audit records;
//! - **bookkeeping** (the final outcome of a fire once its run was started or refused) goes through
//!   [`ScheduleStore::finish_fire`].
//!
//! Replicas on one database never fire an occurrence twice: [`ScheduleTx::claim_fire`] is a
//! compare-and-set on the schedule's `last_fire_at` (and `updated_at`, so an edit made meanwhile
//! also makes the claim fail). On PostgreSQL the losing transaction waits for the winner's row
//! lock, re-reads the row and changes nothing; on SQLite the write lock serialises them.
//!
//! Outcomes and catch-up policies are stored as strings; the server gives them meaning.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// A schedule: run `plan_id` (at `plan_version`, or the newest version at fire time) in
/// `environment` at the times of `expression` on `calendar`, requested by `owner`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRow {
    pub id: i64,
    /// Unique.
    pub name: String,
    pub plan_id: i64,
    /// `None`: the plan's newest version when the schedule fires.
    pub plan_version: Option<i64>,
    pub environment: String,
    /// The calendar crate's schedule expression, in canonical form.
    pub expression: String,
    /// The exchange calendar the expression's filters use (`sse`, `szse`).
    pub calendar: String,
    /// Variable values as a JSON object of strings; secret values are masked (`******`).
    pub vars: Value,
    /// The secret variable values, sealed with the server's credential key.
    pub secrets_sealed: Option<String>,
    /// `skip` or `run_once`: what happens to occurrences missed while no server was running.
    pub catch_up: String,
    pub enabled: bool,
    /// The real-name user the runs are requested by; their permissions are checked at fire time.
    pub owner: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    /// The latest scheduled time handled (fired, missed or refused).
    pub last_fire_at: Option<DateTime<Utc>>,
    /// When the schedule is next due; `None` when it cannot be computed.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// One handled occurrence of a schedule (or a day the calendar made it skip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFireRow {
    pub id: i64,
    pub schedule_id: i64,
    /// The occurrence's time (for a skipped day: the start of that day in the schedule's zone).
    pub scheduled_at: DateTime<Utc>,
    pub handled_at: DateTime<Utc>,
    /// `started`, `skipped_calendar`, `missed`, `caught_up`, `denied` or `failed`.
    pub outcome: String,
    pub run_id: Option<i64>,
    /// Why, for people (the guard's refusal, the calendar's reason, how many were missed).
    pub message: String,
}

/// A compare-and-set on a schedule's progress (see [`ScheduleTx::claim_fire`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireClaim {
    pub schedule_id: i64,
    /// The `last_fire_at` read (NULL-safe comparison).
    pub expected_last_fire_at: Option<DateTime<Utc>>,
    /// The `updated_at` read: an edit since then makes the claim fail.
    pub expected_updated_at: DateTime<Utc>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Filters for listing fires (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireQuery {
    pub schedule_id: Option<i64>,
    /// Only these outcomes; empty = all.
    pub outcomes: Vec<String>,
    /// Fires with `id < before_id` (paging).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Reads and bookkeeping.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// By name.
    async fn schedules(&self) -> Result<Vec<ScheduleRow>>;
    async fn schedule(&self, id: i64) -> Result<Option<ScheduleRow>>;
    async fn schedule_by_name(&self, name: &str) -> Result<Option<ScheduleRow>>;
    /// Enabled schedules with `next_fire_at <= now`, by (next_fire_at, id), at most `limit`.
    async fn due_schedules(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ScheduleRow>>;
    /// Newest first (by id).
    async fn fires(&self, q: &FireQuery) -> Result<Vec<ScheduleFireRow>>;
    /// The newest fire of each schedule that has one, by schedule id.
    async fn latest_fires(&self) -> Result<Vec<ScheduleFireRow>>;
    /// Records how a claimed fire ended (outcome, run, message, when); `NotFound` for an unknown
    /// fire.
    async fn finish_fire(
        &self,
        id: i64,
        outcome: &str,
        run_id: Option<i64>,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
}

/// Actions, committed with their audit records.
#[async_trait]
pub trait ScheduleTx: Send {
    /// `Conflict` on a duplicate name or an unknown plan. Returns the id.
    async fn insert_schedule(&mut self, s: &ScheduleRow) -> Result<i64>;
    /// Replaces everything but the id, `created_*` and `last_fire_at`; `NotFound` for an unknown
    /// schedule, `Conflict` on a duplicate name.
    async fn update_schedule(&mut self, s: &ScheduleRow) -> Result<()>;
    /// Deletes the schedule and its fire history; false if there was none.
    async fn delete_schedule(&mut self, id: i64) -> Result<bool>;
    /// Moves the schedule's `last_fire_at` and `next_fire_at` if its `last_fire_at` and
    /// `updated_at` are still the expected ones (NULL-safe). Returns whether it did: false means
    /// another replica (or an edit) got there first and nothing changed.
    async fn claim_fire(&mut self, c: &FireClaim) -> Result<bool>;
    /// Inserts fires (ids ignored); returns their ids in input order. `Conflict` for an unknown
    /// schedule.
    async fn insert_fires(&mut self, fires: &[ScheduleFireRow]) -> Result<Vec<i64>>;
}
