-- Applied with search_path set to the store's schema, so names are unqualified.
--
-- Keys and sort columns use the "C" collation: byte order, as in SQLite, so both backends
-- sort and paginate identically whatever the database's locale, and LIKE 'prefix%' can
-- use a plain btree index.

CREATE TABLE messages (
    id           text        COLLATE "C" PRIMARY KEY,
    channel      text        NOT NULL,
    content_type text        NOT NULL DEFAULT '',
    raw          bytea       NOT NULL,
    -- raw folded for Query.Text (valid UTF-8, lower case, see internal/query.Fold):
    -- bytea has no case-insensitive search, and lower() depends on the database's locale.
    raw_text     text        NOT NULL,
    received_at  timestamptz NOT NULL,
    source       jsonb,
    control_id   text        NOT NULL DEFAULT '',
    message_type text        COLLATE "C" NOT NULL DEFAULT '',
    patient_id   text        NOT NULL DEFAULT '',
    accession    text        NOT NULL DEFAULT '',
    sender       text        NOT NULL DEFAULT '',
    status       text        NOT NULL,
    error        text        NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL,
    reprocess_of text        NOT NULL DEFAULT '' -- no foreign key: pruning the original must not touch its copies
);

-- Search is newest first by (received_at, id); the selective filters get an index that
-- also yields that order, so a filtered page is an index range scan with no sort.
CREATE INDEX messages_by_received     ON messages (received_at DESC, id DESC);
CREATE INDEX messages_by_channel      ON messages (channel, received_at DESC, id DESC);
CREATE INDEX messages_by_control_id   ON messages (control_id, received_at DESC, id DESC);
CREATE INDEX messages_by_patient_id   ON messages (patient_id, received_at DESC, id DESC);
CREATE INDEX messages_by_accession    ON messages (accession, received_at DESC, id DESC);
CREATE INDEX messages_by_status       ON messages (status, received_at DESC, id DESC);
CREATE INDEX messages_by_message_type ON messages (message_type, received_at DESC, id DESC);

CREATE TABLE stages (
    message_id text        COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq        integer     NOT NULL,
    name       text        NOT NULL,
    at         timestamptz NOT NULL,
    output     bytea,
    error      text        NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE attempts (
    message_id    text        COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination   text        COLLATE "C" NOT NULL,
    number        integer     NOT NULL,
    at            timestamptz NOT NULL,
    duration_ns   bigint      NOT NULL,
    ok            boolean     NOT NULL,
    error         text        NOT NULL DEFAULT '',
    reply_summary text        NOT NULL DEFAULT '',
    reply         bytea,
    sent          bytea,
    PRIMARY KEY (message_id, destination, number)
);

CREATE TABLE deliveries (
    message_id  text        COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    channel     text        NOT NULL,
    destination text        COLLATE "C" NOT NULL,
    status      text        NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL,
    payload     bytea,
    PRIMARY KEY (message_id, destination)
);

-- Dead letters are few among many deliveries: partial indexes keep the list cheap.
CREATE INDEX deliveries_dead_letters ON deliveries (updated_at DESC, message_id DESC, destination DESC)
    WHERE status = 'dead_letter';
CREATE INDEX deliveries_dead_letters_by_channel ON deliveries (channel, updated_at DESC, message_id DESC, destination DESC)
    WHERE status = 'dead_letter';
