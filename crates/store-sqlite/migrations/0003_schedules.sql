-- Ballast schema, version 3 (SQLite): scheduled job runs.
--
-- Same conventions as versions 1 and 2. The statements on these tables are shared with the
-- PostgreSQL backend (src/schedule_common.rs), so both schemas keep the same names.

-- A schedule runs a plan in an environment at the times of a calendar-aware expression, requested
-- by its owner. `last_fire_at` is the latest occurrence handled; replicas claim an occurrence by a
-- compare-and-set on it. Secret variable values are sealed by the server (`secrets_sealed`).
CREATE TABLE schedules (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE,
    plan_id        INTEGER NOT NULL REFERENCES plans (id),
    plan_version   INTEGER,
    environment    TEXT    NOT NULL,
    expression     TEXT    NOT NULL,
    calendar       TEXT    NOT NULL,
    vars           TEXT    NOT NULL CHECK (json_valid(vars)),
    secrets_sealed TEXT,
    catch_up       TEXT    NOT NULL CHECK (catch_up IN ('skip', 'run_once')),
    enabled        INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    owner          TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    updated_by     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    last_fire_at   TEXT,
    next_fire_at   TEXT
) STRICT;
CREATE INDEX schedules_due ON schedules (enabled, next_fire_at, id);

-- Every handled occurrence: started, skipped by the calendar, missed, caught up, denied, failed.
CREATE TABLE schedule_fires (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id  INTEGER NOT NULL REFERENCES schedules (id),
    scheduled_at TEXT    NOT NULL,
    handled_at   TEXT    NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN
                   ('started', 'skipped_calendar', 'missed', 'caught_up', 'denied', 'failed')),
    run_id       INTEGER,
    message      TEXT    NOT NULL
) STRICT;
CREATE INDEX schedule_fires_schedule ON schedule_fires (schedule_id, id);
CREATE INDEX schedule_fires_outcome ON schedule_fires (outcome, id);
