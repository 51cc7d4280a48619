-- 0007: rollouts by tier in health-gated waves, pinning, rollback.
--
-- tenants.release stays the tenant's policy (1.2.3 pinned; 1.2 or 1.2.x
-- floating); tenants.chart_version is what its file carries: the range
-- (1.2.x) while no release is uploaded, else an exact version that only a
-- rollout, a PATCH or an onboarding chooses (an upload never moves anyone).
ALTER TABLE tenants ADD COLUMN chart_version TEXT;
UPDATE tenants SET chart_version = CASE WHEN release GLOB '*.*.*' THEN release ELSE release || '.x' END;

-- Operations: 'rollout' joins (one operation changes every tenant of a wave,
-- or returns every tenant a rollout touched, in one commit); such an
-- operation names no single tenant but its rollout.  SQLite cannot change a
-- CHECK constraint in place: the table is rebuilt with its rows.
CREATE TABLE operations_new (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('onboard', 'update', 'offboard', 'rollout')),
    tenant_id    TEXT,
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
    updated_at   TEXT NOT NULL,
    rollout_id   INTEGER
) STRICT;

INSERT INTO operations_new (id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type,
                            author_name, author_email, attempts, last_error, created_at, updated_at)
SELECT id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type, author_name,
       author_email, attempts, last_error, created_at, updated_at
FROM operations;

DROP TABLE operations;
ALTER TABLE operations_new RENAME TO operations;
CREATE INDEX operations_queued ON operations (id) WHERE state = 'queued';
CREATE INDEX operations_by_tenant ON operations (tenant_id, id);

-- The tenants a rollout operation changes (a tenant's commit history).
CREATE TABLE operation_tenants (
    operation_id INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, operation_id)
) STRICT;

-- A rollout: one version, a scope ({"tiers": [...]} or {"tenants": [...]}),
-- waves, what to do when a wave fails.  state: running, paused (by a caller,
-- or after a failed wave with on_failure pause), rolling_back (the rollback
-- commit is queued), and the ends: succeeded, rolled_back, aborted, failed.
CREATE TABLE rollouts (
    id            INTEGER PRIMARY KEY,
    version       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('running', 'paused', 'rolling_back', 'succeeded',
                                                 'rolled_back', 'aborted', 'failed')),
    on_failure    TEXT NOT NULL CHECK (on_failure IN ('pause', 'rollback')),
    scope         TEXT NOT NULL,
    wave_timeout  INTEGER NOT NULL,
    current_wave  INTEGER NOT NULL DEFAULT 1,
    reason        TEXT,
    rollback_op   INTEGER,
    rollback_sha  TEXT,
    author_name   TEXT NOT NULL,
    author_email  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    finished_at   TEXT
) STRICT;
CREATE INDEX rollouts_active ON rollouts (id) WHERE state IN ('running', 'paused', 'rolling_back');

-- Its waves, numbered from 1.  Times in *_ms are wall-clock milliseconds
-- since the epoch, so a restart keeps counting.
CREATE TABLE rollout_waves (
    rollout_id    INTEGER NOT NULL REFERENCES rollouts (id),
    wave          INTEGER NOT NULL,
    selector      TEXT NOT NULL,
    soak_seconds  INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'committing', 'waiting', 'soaking',
                                                 'succeeded', 'failed')),
    operation_id  INTEGER,
    commit_sha    TEXT,
    deadline_ms   INTEGER,
    soak_until_ms INTEGER,
    error         TEXT,
    started_at    TEXT,
    pushed_at     TEXT,
    ready_at      TEXT,
    finished_at   TEXT,
    PRIMARY KEY (rollout_id, wave)
) STRICT;

-- Every tenant a rollout concerns: in a wave, or skipped (wave NULL) with
-- the reason.  from_version is what its file carried before the rollout
-- moved it (what a rollback returns it to).
CREATE TABLE rollout_tenants (
    rollout_id   INTEGER NOT NULL REFERENCES rollouts (id),
    tenant_id    TEXT NOT NULL,
    tier         TEXT NOT NULL,
    wave         INTEGER,
    from_version TEXT,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'skipped', 'updating', 'ready', 'failed',
                                                'rolled_back')),
    reason       TEXT,
    prev_op      INTEGER,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (rollout_id, tenant_id)
) STRICT;
CREATE INDEX rollout_tenants_by_tenant ON rollout_tenants (tenant_id);
CREATE INDEX rollout_tenants_by_wave ON rollout_tenants (rollout_id, wave);

-- Pool environments (pooled-envs/<pool>.yaml) that move with the first wave
-- of a tier they serve.
CREATE TABLE rollout_pools (
    rollout_id   INTEGER NOT NULL REFERENCES rollouts (id),
    pool         TEXT NOT NULL,
    wave         INTEGER NOT NULL,
    from_version TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'moved', 'rolled_back')),
    PRIMARY KEY (rollout_id, pool)
) STRICT;

-- The version each tier runs: where the last successful rollout of that
-- tier brought it.  Floating tenants onboarded later start there.
CREATE TABLE tier_versions (
    tier       TEXT PRIMARY KEY,
    version    TEXT NOT NULL,
    rollout_id INTEGER,
    updated_at TEXT NOT NULL
) STRICT;
