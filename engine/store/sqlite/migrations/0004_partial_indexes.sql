-- The key-field indexes leave out the rows that have no value there (search never asks
-- for an empty field), and the status index leaves out sent messages, the great majority:
-- a search for them walks messages_by_received, where nearly every row matches. Each
-- message then costs fewer index writes when it is stored and when it is sent. The
-- queries spell the same conditions as literals so that SQLite can use these indexes.
DROP INDEX messages_by_control_id;
DROP INDEX messages_by_patient_id;
DROP INDEX messages_by_accession;
DROP INDEX messages_by_status;
DROP INDEX messages_by_message_type;
CREATE INDEX messages_by_control_id   ON messages (control_id, received_at DESC, id DESC)   WHERE control_id <> '';
CREATE INDEX messages_by_patient_id   ON messages (patient_id, received_at DESC, id DESC)   WHERE patient_id <> '';
CREATE INDEX messages_by_accession    ON messages (accession, received_at DESC, id DESC)    WHERE accession <> '';
CREATE INDEX messages_by_status       ON messages (status, received_at DESC, id DESC)       WHERE status <> 'sent';
CREATE INDEX messages_by_message_type ON messages (message_type, received_at DESC, id DESC) WHERE message_type <> '';
