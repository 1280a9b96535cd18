-- Order context: the last known state of each order, keyed by accession number, and the
-- messages that described it. Orders are not pruned with the message history: a study may
-- arrive long after its order, and an order is small.

CREATE TABLE orders (
    accession           TEXT    NOT NULL PRIMARY KEY,
    placer_order_number TEXT    NOT NULL DEFAULT '',
    filler_order_number TEXT    NOT NULL DEFAULT '',
    patient_id          TEXT    NOT NULL DEFAULT '',
    patient_name        TEXT    NOT NULL DEFAULT '',
    patient_sex         TEXT    NOT NULL DEFAULT '',
    patient_birth_date  TEXT    NOT NULL DEFAULT '',
    priority            TEXT    NOT NULL DEFAULT '',
    ordering_provider   TEXT    NOT NULL DEFAULT '',
    location            TEXT    NOT NULL DEFAULT '',
    procedure_code      TEXT    NOT NULL DEFAULT '',
    procedure_text      TEXT    NOT NULL DEFAULT '',
    reason              TEXT    NOT NULL DEFAULT '',
    status              TEXT    NOT NULL DEFAULT '',
    message_id          TEXT    NOT NULL DEFAULT '',
    channel             TEXT    NOT NULL DEFAULT '',
    ordered_at          INTEGER,                     -- NULL when unknown
    updated_at          INTEGER NOT NULL
);

CREATE INDEX orders_by_placer ON orders (placer_order_number, updated_at DESC) WHERE placer_order_number <> '';
CREATE INDEX orders_by_filler ON orders (filler_order_number, updated_at DESC) WHERE filler_order_number <> '';

-- No foreign key to messages: pruning history must not touch order context.
CREATE TABLE order_messages (
    accession  TEXT    NOT NULL REFERENCES orders (accession) ON DELETE CASCADE,
    message_id TEXT    NOT NULL,
    channel    TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL,
    PRIMARY KEY (accession, message_id)
);
