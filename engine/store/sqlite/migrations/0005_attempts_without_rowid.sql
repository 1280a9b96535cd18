-- Attempts are keyed by (message_id, destination, number) and read only by that key. As a
-- rowid table with that primary key each insert wrote two b-trees, the table and its
-- automatic index; WITHOUT ROWID the key is the table. An attempt row is small (the
-- reply is an acknowledgement, sent is kept only when it differs from the stage output);
-- a large reply or sent body spills to overflow pages sooner than in a rowid table,
-- which costs space only for those rows.
CREATE TABLE attempts_new (
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
) WITHOUT ROWID;
INSERT INTO attempts_new (message_id, destination, number, at, duration_ns, ok, error, reply_summary, reply, sent)
    SELECT message_id, destination, number, at, duration_ns, ok, error, reply_summary, reply, sent FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
