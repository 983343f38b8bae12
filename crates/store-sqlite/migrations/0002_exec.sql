-- Ballast schema, version 2 (SQLite): the operation-automation engine.
--
-- Same conventions as version 1: RFC 3339 UTC text timestamps bound by the application, JSON as
-- serde JSON text, STRICT tables. The statements on these tables are shared with the PostgreSQL
-- backend (src/exec_common.rs), so both schemas keep the same table and column names.

-- The script library: a script and its immutable versions.
CREATE TABLE scripts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    language    TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE script_versions (
    script_id        INTEGER NOT NULL REFERENCES scripts (id),
    version          INTEGER NOT NULL CHECK (version >= 1),
    content          TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    params           TEXT    NOT NULL CHECK (json_valid(params)),
    state            TEXT    NOT NULL,
    note             TEXT    NOT NULL,
    author           TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    state_changed_by TEXT,
    state_changed_at TEXT,
    PRIMARY KEY (script_id, version)
) STRICT;

-- Job plans and their immutable versions.
CREATE TABLE plans (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE plan_versions (
    plan_id    INTEGER NOT NULL REFERENCES plans (id),
    version    INTEGER NOT NULL CHECK (version >= 1),
    spec       TEXT    NOT NULL CHECK (json_valid(spec)),
    author     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (plan_id, version)
) STRICT;

-- Requests for a second person's approval.
CREATE TABLE approvals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    object_type  TEXT    NOT NULL,
    object_id    TEXT    NOT NULL,
    environment  TEXT,
    requested_by TEXT    NOT NULL,
    requested_at TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    payload      TEXT    NOT NULL CHECK (json_valid(payload)),
    state        TEXT    NOT NULL,
    decided_by   TEXT,
    decided_at   TEXT,
    comment      TEXT
) STRICT;
CREATE INDEX approvals_state ON approvals (state, id);
CREATE INDEX approvals_object ON approvals (kind, object_type, object_id, id);

-- Runs (ad-hoc commands and plan runs), their steps and their per-host tasks. `owner` and
-- `lease_until` name the replica driving a run (see claim_runs).
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    plan_id        INTEGER,
    plan_version   INTEGER,
    name           TEXT    NOT NULL,
    environment    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    requested_by   TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    started_at     TEXT,
    finished_at    TEXT,
    spec           TEXT    NOT NULL CHECK (json_valid(spec)),
    secrets_sealed TEXT,
    current_step   INTEGER NOT NULL,
    owner          TEXT,
    lease_until    TEXT,
    message        TEXT,
    updated_at     TEXT    NOT NULL,
    FOREIGN KEY (plan_id, plan_version) REFERENCES plan_versions (plan_id, version)
) STRICT;
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_environment ON runs (environment, id);
CREATE INDEX runs_plan ON runs (plan_id, id);

CREATE TABLE run_steps (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    message     TEXT,
    PRIMARY KEY (run_id, idx)
) STRICT;

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        INTEGER NOT NULL,
    step_idx      INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    transport     TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    batch         INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    exit_code     INTEGER,
    error_code    TEXT,
    error_message TEXT,
    stdout_bytes  INTEGER NOT NULL,
    stderr_bytes  INTEGER NOT NULL,
    truncated     INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    started_at    TEXT,
    finished_at   TEXT,
    FOREIGN KEY (run_id, step_idx) REFERENCES run_steps (run_id, idx)
) STRICT;
CREATE INDEX tasks_run_step ON tasks (run_id, step_idx);

-- A task's output in arrival order.
CREATE TABLE task_output (
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    stream  TEXT    NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    data    BLOB    NOT NULL,
    at      TEXT    NOT NULL,
    PRIMARY KEY (task_id, seq)
) STRICT;

-- Enrolled agents and their one-time enrolment tokens (only the tokens' SHA-256 is kept).
CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    hostname         TEXT NOT NULL,
    environment      TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL UNIQUE,
    facts            TEXT NOT NULL CHECK (json_valid(facts)),
    version          TEXT NOT NULL,
    enrolled_at      TEXT NOT NULL,
    last_seen_at     TEXT,
    revoked_at       TEXT,
    revoked_by       TEXT
) STRICT;

CREATE TABLE enroll_tokens (
    hash        TEXT PRIMARY KEY,
    environment TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    agent_id    TEXT
) STRICT;

-- SSH credentials (secrets sealed by the server) and pinned host keys.
CREATE TABLE ssh_credentials (
    name          TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE host_keys (
    host        TEXT    NOT NULL,
    port        INTEGER NOT NULL,
    key_line    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    pinned_by   TEXT    NOT NULL,
    pinned_at   TEXT    NOT NULL,
    PRIMARY KEY (host, port)
) STRICT;

-- Administrator settings: a JSON value by key.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL CHECK (json_valid(value)),
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
