-- 0002: adoption and drift, tenant updates, commit authorship, retries.
--
-- SQLite cannot change a CHECK constraint in place, so both tables are
-- rebuilt with their rows.
CREATE TABLE tenants_new (
    id            TEXT PRIMARY KEY,
    tier          TEXT NOT NULL,
    release       TEXT NOT NULL,
    values_json   TEXT NOT NULL DEFAULT '{}',
    lifecycle     TEXT NOT NULL
                  CHECK (lifecycle IN ('active', 'offboarding', 'offboarded', 'drifted')),
    sync          TEXT NOT NULL CHECK (sync IN ('pending', 'committed', 'failed')),
    origin        TEXT NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'adopted')),
    commit_sha    TEXT,
    operation_id  INTEGER,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    offboarded_at TEXT
) STRICT;

INSERT INTO tenants_new (id, tier, release, values_json, lifecycle, sync, commit_sha, operation_id,
                         created_at, updated_at, offboarded_at)
SELECT id, tier, release, values_json, lifecycle, sync, commit_sha, operation_id, created_at,
       updated_at, offboarded_at
FROM tenants;

DROP TABLE tenants;
ALTER TABLE tenants_new RENAME TO tenants;
CREATE INDEX tenants_by_tier ON tenants (tier, id);

-- Operations: 'update' joins; who asked (the commit author); how many push
-- attempts failed and why the last one did, while the remote is unreachable.
CREATE TABLE operations_new (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('onboard', 'update', 'offboard')),
    tenant_id    TEXT NOT NULL,
    tier         TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    state        TEXT NOT NULL CHECK (state IN ('queued', 'pushed', 'failed')),
    commit_sha   TEXT,
    error        TEXT,
    error_type   TEXT,
    author_name  TEXT NOT NULL DEFAULT 'landlord',
    author_email TEXT NOT NULL DEFAULT 'landlord@localhost',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

INSERT INTO operations_new (id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type,
                            created_at, updated_at)
SELECT id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type, created_at,
       updated_at
FROM operations;

DROP TABLE operations;
ALTER TABLE operations_new RENAME TO operations;
CREATE INDEX operations_queued ON operations (id) WHERE state = 'queued';
CREATE INDEX operations_by_tenant ON operations (tenant_id, id);
