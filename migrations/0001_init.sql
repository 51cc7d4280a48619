-- 0001: tenants and the outbox of git operations.
--
-- tenants.lifecycle is what landlord asked for (active, offboarding,
-- offboarded); tenants.sync says whether git carries it yet (pending,
-- committed, failed).  Observed cluster state is not stored here.
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    tier          TEXT NOT NULL,
    release       TEXT NOT NULL,
    values_json   TEXT NOT NULL DEFAULT '{}',
    lifecycle     TEXT NOT NULL CHECK (lifecycle IN ('active', 'offboarding', 'offboarded')),
    sync          TEXT NOT NULL CHECK (sync IN ('pending', 'committed', 'failed')),
    commit_sha    TEXT,
    operation_id  INTEGER,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    offboarded_at TEXT
) STRICT;

CREATE INDEX tenants_by_tier ON tenants (tier, id);

-- One row per requested change; the git writer takes queued rows in id order,
-- commits them, pushes, and records the commit (or why it failed).
CREATE TABLE operations (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('onboard', 'offboard')),
    tenant_id   TEXT NOT NULL,
    tier        TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL CHECK (state IN ('queued', 'pushed', 'failed')),
    commit_sha  TEXT,
    error       TEXT,
    error_type  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE INDEX operations_queued ON operations (id) WHERE state = 'queued';
CREATE INDEX operations_by_tenant ON operations (tenant_id, id);
