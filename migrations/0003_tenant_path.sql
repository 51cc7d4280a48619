-- 0003: where a tenant's file is, when it is not where the configured layout
-- puts it (a flat file adopted while git-layout is sharded, or the reverse).
-- NULL means the configured layout's path.
ALTER TABLE tenants ADD COLUMN path TEXT;

-- The status follower reads the tenants changed since it last looked.
CREATE INDEX tenants_by_updated ON tenants (updated_at);
