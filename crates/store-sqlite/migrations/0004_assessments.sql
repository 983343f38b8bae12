-- Ballast schema, version 4 (SQLite): online maturity assessments.
--
-- Same conventions as versions 1–3. The statements on these tables are shared with the
-- PostgreSQL backend (src/assessment_common.rs), so both schemas keep the same names. Calendar
-- dates (`expires_on`, `due_on`) are ISO text (YYYY-MM-DD) on both backends.

-- An assessment of one catalog version: scope (`all` or `T4,T10-T20`), target level per item
-- (JSON object table → level), descriptive meta (JSON object of strings), owner and state.
CREATE TABLE assessments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,
    catalog_id      TEXT    NOT NULL,
    catalog_version TEXT    NOT NULL,
    scope           TEXT    NOT NULL,
    targets         TEXT    NOT NULL CHECK (json_valid(targets)),
    meta            TEXT    NOT NULL CHECK (json_valid(meta)),
    owner           TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN
                      ('draft', 'in_progress', 'in_review', 'signed_off')),
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_by      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    signed_off_by   TEXT,
    signed_off_at   TEXT
) STRICT;

-- Each in-scope item: assessor, reviewer and the item's review.
CREATE TABLE assessment_items (
    assessment_id  INTEGER NOT NULL REFERENCES assessments (id),
    item_table     INTEGER NOT NULL,
    assessor       TEXT,
    reviewer       TEXT,
    review_state   TEXT    NOT NULL CHECK (review_state IN
                     ('open', 'submitted', 'approved', 'changes_requested')),
    review_comment TEXT,
    reviewed_by    TEXT,
    reviewed_at    TEXT,
    PRIMARY KEY (assessment_id, item_table)
) STRICT;

-- One answer per rated clause; a clause without a row is unrated.
CREATE TABLE assessment_answers (
    assessment_id  INTEGER NOT NULL REFERENCES assessments (id),
    clause_id      TEXT    NOT NULL,
    item_table     INTEGER NOT NULL,
    rating         TEXT    NOT NULL CHECK (rating IN ('met', 'partial', 'not_met', 'na', 'unrated')),
    comment        TEXT,
    justification  TEXT,
    na_approved_by TEXT,
    rated_by       TEXT,
    rated_at       TEXT,
    PRIMARY KEY (assessment_id, clause_id)
) STRICT;

-- Evidence: a file (bytes kept here with their SHA-256), a link, or a platform reference.
CREATE TABLE assessment_evidence (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    assessment_id INTEGER NOT NULL REFERENCES assessments (id),
    clause_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('file', 'link', 'platform')),
    name          TEXT    NOT NULL,
    sha256        TEXT,
    size          INTEGER,
    content       BLOB,
    expires_on    TEXT,
    added_by      TEXT    NOT NULL,
    added_at      TEXT    NOT NULL,
    expired_at    TEXT
) STRICT;
CREATE INDEX assessment_evidence_clause ON assessment_evidence (assessment_id, clause_id);
CREATE INDEX assessment_evidence_expiry ON assessment_evidence (expires_on, id);

-- Improvement actions toward the targets.
CREATE TABLE improvement_actions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    assessment_id INTEGER NOT NULL REFERENCES assessments (id),
    item_table    INTEGER NOT NULL,
    title         TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    due_on        TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    clause_ids    TEXT    NOT NULL CHECK (json_valid(clause_ids)),
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_by    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
) STRICT;
CREATE INDEX improvement_actions_assessment ON improvement_actions (assessment_id, id);
