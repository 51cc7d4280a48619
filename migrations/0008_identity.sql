-- 0008: identity and access.  Who asked for every change (audit), the
-- answers of POSTs sent with an Idempotency-Key, tier descriptions, and
-- tier changes as operations of the outbox.
--
-- Operations: the kinds tier_put and tier_delete join (tenant_id is '' for
-- them, tier names the tier); 'rollout' (0007, tenant_id NULL) and its
-- rollout_id stay.  SQLite cannot change a CHECK constraint in place, so
-- the table is rebuilt with its rows (as 0002 and 0007 did).
CREATE TABLE operations_new (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL
                 CHECK (kind IN ('onboard', 'update', 'offboard', 'rollout', 'tier_put',
                                 'tier_delete')),
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
                            author_name, author_email, attempts, last_error, created_at, updated_at,
                            rollout_id)
SELECT id, kind, tenant_id, tier, payload, state, commit_sha, error, error_type, author_name,
       author_email, attempts, last_error, created_at, updated_at, rollout_id
FROM operations;

DROP TABLE operations;
ALTER TABLE operations_new RENAME TO operations;
CREATE INDEX operations_queued ON operations (id) WHERE state = 'queued';
CREATE INDEX operations_by_tenant ON operations (tenant_id, id);
CREATE INDEX operations_by_tier ON operations (tier, id) WHERE tenant_id = '';

-- One row per request that tried to change something (POST, PUT, PATCH,
-- DELETE under /api/v1), refusals included: who (the token's sub, name and
-- email claims; NULL when no valid token came), what (method, path, the
-- tenant or tier it named), when, the request id, the HTTP status and the
-- problem type of a refusal, and the operation it queued, whose commit is
-- the resulting commit.  Kept audit-retention days.
CREATE TABLE audit (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    actor        TEXT,
    actor_name   TEXT,
    actor_email  TEXT,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    route        TEXT,
    tenant_id    TEXT,
    tier         TEXT,
    status       INTEGER NOT NULL,
    problem      TEXT,
    operation_id INTEGER,
    replayed     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX audit_by_tenant ON audit (tenant_id, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX audit_by_actor ON audit (actor, id);
CREATE INDEX audit_by_at ON audit (at);

-- The first answer to a POST carrying an Idempotency-Key, per caller and
-- key, replayed to retries with the same body.  in_flight while the first
-- request runs.  Kept idempotency-ttl seconds.
CREATE TABLE idempotency_keys (
    subject       TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    status        INTEGER,
    content_type  TEXT,
    location      TEXT,
    etag          TEXT,
    body          BLOB,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (subject, key)
) STRICT;
CREATE INDEX idempotency_by_age ON idempotency_keys (created_at_ms);

-- What the API says about a tier besides its template (which lives in git).
CREATE TABLE tier_info (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    updated_at  TEXT NOT NULL
) STRICT;
