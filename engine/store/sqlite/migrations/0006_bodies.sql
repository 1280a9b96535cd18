-- Bodies larger than 2 KB, written once: a message's raw bytes (destination '') and a
-- delivery's own payload (a transform changed it). SQLite writes a row again, overflow
-- pages and all, whenever one of its columns changes size, and the status of a message and
-- of each delivery changes as it goes along; kept in those rows, a 100 KB ORU was written
-- two to four times over. The row keeps an empty value as the mark (see sqlite.go,
-- splitBody). Rows written before this migration keep their bodies where they are.
CREATE TABLE bodies (
    message_id  TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    body        BLOB NOT NULL,
    PRIMARY KEY (message_id, destination)
);
