-- Ballast schema, version 5 (SQLite): the CMDB.
--
-- Same conventions as the earlier versions. The statements on these tables are shared with the
-- PostgreSQL backend (src/cmdb_common.rs), so both schemas keep the same names.

-- A model's current definition (ballast_cmdb::Model as JSON) and every version it has had.
CREATE TABLE cmdb_models (
    key        TEXT    PRIMARY KEY,
    version    INTEGER NOT NULL,
    definition TEXT    NOT NULL CHECK (json_valid(definition)),
    builtin    INTEGER NOT NULL CHECK (builtin IN (0, 1)),
    updated_by TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
) STRICT;

CREATE TABLE cmdb_model_versions (
    key        TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    definition TEXT    NOT NULL CHECK (json_valid(definition)),
    author     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    PRIMARY KEY (key, version)
) STRICT;

-- Configuration items. `sources` says who set each attribute last (manual or discovery).
CREATE TABLE cmdb_cis (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model         TEXT    NOT NULL REFERENCES cmdb_models (key),
    environment   TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    attributes    TEXT    NOT NULL CHECK (json_valid(attributes)),
    sources       TEXT    NOT NULL CHECK (json_valid(sources)),
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    updated_by    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    discovered_at TEXT,
    UNIQUE (model, environment, name)
) STRICT;
CREATE INDEX cmdb_cis_name ON cmdb_cis (name);
CREATE INDEX cmdb_cis_env ON cmdb_cis (environment, model, id);

-- Every scalar attribute value (list items one by one), for searches by value.
CREATE TABLE cmdb_ci_values (
    ci_id INTEGER NOT NULL REFERENCES cmdb_cis (id),
    model TEXT    NOT NULL,
    key   TEXT    NOT NULL,
    value TEXT    NOT NULL
) STRICT;
CREATE INDEX cmdb_ci_values_lookup ON cmdb_ci_values (key, value, model);
CREATE INDEX cmdb_ci_values_ci ON cmdb_ci_values (ci_id);

-- Unique attribute values: the primary key is the constraint.
CREATE TABLE cmdb_ci_unique (
    model       TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    ci_id       INTEGER NOT NULL REFERENCES cmdb_cis (id),
    PRIMARY KEY (model, environment, key, value)
) STRICT;
CREATE INDEX cmdb_ci_unique_ci ON cmdb_ci_unique (ci_id);

-- `source KIND target`.
CREATE TABLE cmdb_relations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL CHECK (kind IN ('runs_on', 'belongs_to', 'depends_on', 'connects_to')),
    source_id  INTEGER NOT NULL REFERENCES cmdb_cis (id),
    target_id  INTEGER NOT NULL REFERENCES cmdb_cis (id),
    created_by TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    UNIQUE (kind, source_id, target_id)
) STRICT;
CREATE INDEX cmdb_relations_source ON cmdb_relations (source_id, kind);
CREATE INDEX cmdb_relations_target ON cmdb_relations (target_id, kind);

-- Every change to an instance or a relation. Not a foreign key: history outlives the instance.
CREATE TABLE cmdb_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ci_id       INTEGER NOT NULL,
    related_id  INTEGER,
    object_type TEXT    NOT NULL CHECK (object_type IN ('instance', 'relation')),
    op          TEXT    NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    via         TEXT    NOT NULL CHECK (via IN ('ui', 'api', 'import', 'discovery')),
    actor       TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    diff        TEXT    NOT NULL CHECK (json_valid(diff)),
    snapshot    TEXT    NOT NULL CHECK (json_valid(snapshot))
) STRICT;
CREATE INDEX cmdb_history_ci ON cmdb_history (ci_id, id);
CREATE INDEX cmdb_history_related ON cmdb_history (related_id, id);

-- Discovered values that differ from manually maintained ones, for review.
CREATE TABLE cmdb_conflicts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ci_id         INTEGER NOT NULL REFERENCES cmdb_cis (id),
    attribute     TEXT    NOT NULL,
    recorded      TEXT    NOT NULL CHECK (json_valid(recorded)),
    discovered    TEXT    NOT NULL CHECK (json_valid(discovered)),
    discovered_at TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('open', 'accepted', 'rejected')),
    decided_by    TEXT,
    decided_at    TEXT
) STRICT;
CREATE INDEX cmdb_conflicts_state ON cmdb_conflicts (state, id);
CREATE INDEX cmdb_conflicts_ci ON cmdb_conflicts (ci_id, id);
