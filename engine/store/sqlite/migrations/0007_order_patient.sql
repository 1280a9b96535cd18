-- The assigning authority of the order's MRN (PID-3.4) and the patient class (PV1-2), so
-- that results sent back for the order carry them: a RIS that serves several facilities
-- reads the MRN by its authority, and the class says what kind of visit it was (E for the
-- emergency department).
ALTER TABLE orders ADD COLUMN patient_id_authority TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN patient_class        TEXT NOT NULL DEFAULT '';
