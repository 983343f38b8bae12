-- Ballast schema, version 1 (SQLite).
--
-- Timestamps are RFC 3339 UTC text bound by the application (never a database default); JSON
-- columns hold serde JSON text. Tables are STRICT so a value of the wrong type is refused.

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    username             TEXT    NOT NULL UNIQUE,
    real_name            TEXT    NOT NULL,
    department           TEXT    NOT NULL,
    kind                 TEXT    NOT NULL CHECK (json_valid(kind)),
    disabled             INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    disabled_reason      TEXT,
    must_change_password INTEGER NOT NULL CHECK (must_change_password IN (0, 1)),
    mfa_enrolled         INTEGER NOT NULL CHECK (mfa_enrolled IN (0, 1)),
    created_at           TEXT    NOT NULL,
    updated_at           TEXT    NOT NULL
) STRICT;

-- What login needs and nobody else sees, one row per user.
CREATE TABLE user_credentials (
    user_id             INTEGER PRIMARY KEY REFERENCES users (id),
    password_hash       TEXT    NOT NULL,
    password_changed_at TEXT,
    mfa_secret          TEXT,
    mfa_last_step       INTEGER,
    failed_logins       INTEGER NOT NULL CHECK (failed_logins >= 0),
    locked_until        TEXT
) STRICT;

-- Unused recovery codes (SHA-256 hashes); a used code is deleted.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id),
    code_hash TEXT    NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

CREATE TABLE roles (
    key              TEXT    PRIMARY KEY,
    name_zh          TEXT    NOT NULL,
    name_en          TEXT    NOT NULL,
    permissions      TEXT    NOT NULL CHECK (json_valid(permissions)),
    privileged       INTEGER NOT NULL CHECK (privileged IN (0, 1)),
    builtin          INTEGER NOT NULL CHECK (builtin IN (0, 1)),
    allowed_networks TEXT    NOT NULL CHECK (json_valid(allowed_networks))
) STRICT;

-- A global scope has an empty scope_name, so the primary key also covers it.
-- created_at is NULL for bindings loaded from an export (which does not carry it).
CREATE TABLE role_bindings (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    role       TEXT    NOT NULL REFERENCES roles (key),
    scope_kind TEXT    NOT NULL CHECK (scope_kind IN ('global', 'environment', 'business_system')),
    scope_name TEXT    NOT NULL,
    created_at TEXT,
    PRIMARY KEY (user_id, role, scope_kind, scope_name)
) STRICT;

CREATE TABLE environments (
    name           TEXT PRIMARY KEY,
    description    TEXT NOT NULL,
    security_zones TEXT NOT NULL CHECK (json_valid(security_zones)),
    created_at     TEXT NOT NULL
) STRICT;

CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    csrf_token   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    last_seen_at TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    mfa_verified INTEGER NOT NULL CHECK (mfa_verified IN (0, 1)),
    source_ip    TEXT,
    user_agent   TEXT,
    revoked      INTEGER NOT NULL CHECK (revoked IN (0, 1))
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    permissions  TEXT    NOT NULL CHECK (json_valid(permissions)),
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
) STRICT;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- The hash-chained audit trail. `content` is the exact canonical text that was hashed; the
-- columns after `hash` are copies of content fields, for search. A UNIQUE prev_hash makes a fork
-- (two records chained after the same predecessor) impossible.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL UNIQUE,
    hash        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    object_type TEXT    NOT NULL,
    object_id   TEXT,
    outcome     TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, seq);
CREATE INDEX audit_log_outcome ON audit_log (outcome, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only at the database level. Tamper evidence still comes from the hash chain: whoever
-- can write the file can drop these triggers.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;

-- The chain head: exactly one row (seq 0 and the genesis hash while the chain is empty), read
-- and rewritten by every append. It is part of the schema, not product data.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL CHECK (seq >= 0),
    hash TEXT    NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints over (seq, hash); append-only like the records they sign.
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY REFERENCES audit_log (seq),
    hash      TEXT    NOT NULL,
    at        TEXT    NOT NULL,
    signature TEXT    NOT NULL
) STRICT;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only: DELETE refused');
END;

-- Leases on background work shared by server replicas.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
