-- 0005: uploaded releases of the tenant chart.  location is where the
-- artifact lives: "local" (the OCI image layout in the data dir).
CREATE TABLE releases (
    version         TEXT PRIMARY KEY,
    tag             TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    chart_digest    TEXT NOT NULL,
    config_digest   TEXT NOT NULL,
    size            INTEGER NOT NULL,
    location        TEXT NOT NULL,
    app_version     TEXT,
    pushed_at       TEXT NOT NULL
) STRICT;
