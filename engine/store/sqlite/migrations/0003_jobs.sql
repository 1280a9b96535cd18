-- AI jobs and the analyses reconciled from them. Both go with their message when it is
-- pruned (ON DELETE CASCADE; jobs_by_message keeps that delete an index lookup).

CREATE TABLE jobs (
    id             TEXT    NOT NULL PRIMARY KEY,
    message_id     TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    channel        TEXT    NOT NULL DEFAULT '',
    plugin         TEXT    NOT NULL,
    study_uid      TEXT    NOT NULL DEFAULT '',
    accession      TEXT    NOT NULL DEFAULT '',
    mode           TEXT    NOT NULL DEFAULT '',
    attempt        INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    deadline       INTEGER,                     -- NULL: never expires
    finished_at    INTEGER,                     -- NULL while open
    error          TEXT    NOT NULL DEFAULT '',
    model_name     TEXT    NOT NULL DEFAULT '',
    model_version  TEXT    NOT NULL DEFAULT '',
    plugin_version TEXT    NOT NULL DEFAULT '',
    latency_ms     INTEGER NOT NULL DEFAULT 0,
    request        BLOB,
    result         BLOB                         -- as received, valid JSON or not
);

-- Jobs lists newest first by (created_at, id); each filter's index yields that order.
CREATE INDEX jobs_by_created       ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_by_message       ON jobs (message_id, created_at DESC, id DESC);
CREATE INDEX jobs_by_study         ON jobs (study_uid, created_at DESC, id DESC);
CREATE INDEX jobs_by_plugin_status ON jobs (plugin, status, created_at DESC, id DESC);
-- The deadline sweep reads only open jobs. The query spells the status list exactly so,
-- as literals, so that SQLite can match this partial index.
CREATE INDEX jobs_open_by_deadline ON jobs (deadline, id)
    WHERE status IN ('queued', 'running') AND deadline IS NOT NULL;

CREATE TABLE analyses (
    message_id   TEXT    NOT NULL PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    channel      TEXT    NOT NULL DEFAULT '',
    study_uid    TEXT    NOT NULL DEFAULT '',
    accession    TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL,
    priority     TEXT    NOT NULL DEFAULT '',
    destinations TEXT,                          -- JSON array of strings; NULL when empty
    rules        TEXT,                          -- JSON array of strings; NULL when empty
    body         BLOB,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
