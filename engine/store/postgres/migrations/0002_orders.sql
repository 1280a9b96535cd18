-- Order context: the last known state of each order, keyed by accession number, and the
-- messages that described it. Orders are not pruned with the message history: a study may
-- arrive long after its order, and an order is small.

CREATE TABLE orders (
    accession           text        COLLATE "C" PRIMARY KEY,
    placer_order_number text        COLLATE "C" NOT NULL DEFAULT '',
    filler_order_number text        COLLATE "C" NOT NULL DEFAULT '',
    patient_id          text        NOT NULL DEFAULT '',
    patient_name        text        NOT NULL DEFAULT '',
    patient_sex         text        NOT NULL DEFAULT '',
    patient_birth_date  text        NOT NULL DEFAULT '',
    priority            text        NOT NULL DEFAULT '',
    ordering_provider   text        NOT NULL DEFAULT '',
    location            text        NOT NULL DEFAULT '',
    procedure_code      text        NOT NULL DEFAULT '',
    procedure_text      text        NOT NULL DEFAULT '',
    reason              text        NOT NULL DEFAULT '',
    status              text        NOT NULL DEFAULT '',
    message_id          text        NOT NULL DEFAULT '',
    channel             text        NOT NULL DEFAULT '',
    ordered_at          timestamptz,                 -- NULL when unknown
    updated_at          timestamptz NOT NULL
);

CREATE INDEX orders_by_placer ON orders (placer_order_number, updated_at DESC) WHERE placer_order_number <> '';
CREATE INDEX orders_by_filler ON orders (filler_order_number, updated_at DESC) WHERE filler_order_number <> '';

-- No foreign key to messages: pruning history must not touch order context.
CREATE TABLE order_messages (
    accession  text        COLLATE "C" NOT NULL REFERENCES orders (accession) ON DELETE CASCADE,
    message_id text        COLLATE "C" NOT NULL,
    channel    text        NOT NULL DEFAULT '',
    at         timestamptz NOT NULL,
    PRIMARY KEY (accession, message_id)
);
