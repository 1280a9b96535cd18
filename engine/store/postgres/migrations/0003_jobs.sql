-- AI jobs and the analyses reconciled from them. Both go with their message when it is
-- pruned (ON DELETE CASCADE; jobs_by_message keeps that delete an index lookup).
--
-- Request, result and body are bytea, not jsonb: a result is kept exactly as received,
-- valid JSON or not, and jsonb would reorder its keys.

CREATE TABLE jobs (
    id             text        COLLATE "C" PRIMARY KEY,
    message_id     text        COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    channel        text        NOT NULL DEFAULT '',
    plugin         text        NOT NULL,
    study_uid      text        NOT NULL DEFAULT '',
    accession      text        NOT NULL DEFAULT '',
    mode           text        NOT NULL DEFAULT '',
    attempt        integer     NOT NULL,
    status         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    deadline       timestamptz,                 -- NULL: never expires
    finished_at    timestamptz,                 -- NULL while open
    error          text        NOT NULL DEFAULT '',
    model_name     text        NOT NULL DEFAULT '',
    model_version  text        NOT NULL DEFAULT '',
    plugin_version text        NOT NULL DEFAULT '',
    latency_ms     bigint      NOT NULL DEFAULT 0,
    request        bytea,
    result         bytea
);

-- Jobs lists newest first by (created_at, id); each filter's index yields that order.
CREATE INDEX jobs_by_created       ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_by_message       ON jobs (message_id, created_at DESC, id DESC);
CREATE INDEX jobs_by_study         ON jobs (study_uid, created_at DESC, id DESC);
CREATE INDEX jobs_by_plugin_status ON jobs (plugin, status, created_at DESC, id DESC);
-- The deadline sweep reads only open jobs.
CREATE INDEX jobs_open_by_deadline ON jobs (deadline, id)
    WHERE status IN ('queued', 'running') AND deadline IS NOT NULL;

CREATE TABLE analyses (
    message_id   text        COLLATE "C" PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    channel      text        NOT NULL DEFAULT '',
    study_uid    text        NOT NULL DEFAULT '',
    accession    text        NOT NULL DEFAULT '',
    status       text        NOT NULL,
    priority     text        NOT NULL DEFAULT '',
    destinations text[],                        -- NULL when empty
    rules        text[],                        -- NULL when empty
    body         bytea,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
