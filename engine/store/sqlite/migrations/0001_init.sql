-- Times are INTEGER microseconds since the Unix epoch, UTC: compact, exactly ordered, and
-- the same precision as PostgreSQL's timestamptz.

CREATE TABLE messages (
    id           TEXT    NOT NULL PRIMARY KEY,
    channel      TEXT    NOT NULL,
    content_type TEXT    NOT NULL DEFAULT '',
    raw          BLOB    NOT NULL,
    received_at  INTEGER NOT NULL,
    source       TEXT,                         -- JSON object; NULL when there is none
    control_id   TEXT    NOT NULL DEFAULT '',
    message_type TEXT    NOT NULL DEFAULT '',
    patient_id   TEXT    NOT NULL DEFAULT '',
    accession    TEXT    NOT NULL DEFAULT '',
    sender       TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL,
    error        TEXT    NOT NULL DEFAULT '',
    updated_at   INTEGER NOT NULL,
    reprocess_of TEXT    NOT NULL DEFAULT ''   -- no foreign key: pruning the original must not touch its copies
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
    message_id TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    output     BLOB,
    error      TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE attempts (
    message_id    TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination   TEXT    NOT NULL,
    number        INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    duration_ns   INTEGER NOT NULL,
    ok            INTEGER NOT NULL,
    error         TEXT    NOT NULL DEFAULT '',
    reply_summary TEXT    NOT NULL DEFAULT '',
    reply         BLOB,
    sent          BLOB,
    PRIMARY KEY (message_id, destination, number)
);

CREATE TABLE deliveries (
    message_id  TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    channel     TEXT    NOT NULL,
    destination TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL,
    payload     BLOB,
    PRIMARY KEY (message_id, destination)
);

-- Dead letters are few among many deliveries: partial indexes keep the list cheap. The
-- queries spell status = 'dead_letter' as a literal so SQLite can match these.
CREATE INDEX deliveries_dead_letters ON deliveries (updated_at DESC, message_id DESC, destination DESC)
    WHERE status = 'dead_letter';
CREATE INDEX deliveries_dead_letters_by_channel ON deliveries (channel, updated_at DESC, message_id DESC, destination DESC)
    WHERE status = 'dead_letter';
