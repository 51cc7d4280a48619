-- 0004: observed states, their transitions as events, and webhooks.
--
-- tenants.observed_state is the state the status follower last derived, so
-- a restart does not announce transitions that did not happen; it is not a
-- change of the tenant (updated_at stays).
ALTER TABLE tenants ADD COLUMN observed_state TEXT;
ALTER TABLE tenants ADD COLUMN observed_since TEXT;

-- One row per transition of a tenant's observed state: what GET
-- /api/v1/events streams (id is the SSE event id) and webhooks deliver.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    type       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_tenant ON events (tenant_id, id);

-- Subscriptions: event_types is a JSON array of types or prefixes ending
-- in '*' ("tenant.*").  The secret signs every delivery (HMAC-SHA256).
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
) STRICT;

-- One row per event and webhook: the delivery log.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id    INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at_ms  INTEGER NOT NULL,
    last_status INTEGER,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_at_ms) WHERE state = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);

-- Changes of tenants' desired state, in order, for the status follower:
-- it reads the rows after the last seq it handled (timestamps are not
-- unique enough: thousands of tenants are adopted in one millisecond).
-- Writes of observed_state alone do not count.
CREATE TABLE tenant_changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL
) STRICT;
INSERT INTO tenant_changes (tenant_id) SELECT id FROM tenants;
CREATE TRIGGER tenants_inserted AFTER INSERT ON tenants
BEGIN
    INSERT INTO tenant_changes (tenant_id) VALUES (NEW.id);
END;
CREATE TRIGGER tenants_updated
AFTER UPDATE OF tier, release, values_json, lifecycle, sync, commit_sha, path ON tenants
BEGIN
    INSERT INTO tenant_changes (tenant_id) VALUES (NEW.id);
END;
